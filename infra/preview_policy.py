"""The preview-time enforcement point: the policy decision on every LlamaDeployment a stack would create.

Run by the policy pack in infra/policy_pack/ (`pulumi preview --policy-pack infra/policy_pack`, applied by
default by `sovereign preview|up`). Each LlamaDeployment is judged by the same engine, on the same signed
bundle, through the same object mapping as at admission. Its SovereignCluster's enforcement mode says
what a violation does: `enforce` fails the preview (mandatory), `warn` and `dryrun` only report (advisory).
Obligations (AI Act, licence attribution) are always advisory. Anything that cannot be judged is a
mandatory violation: unknown means deny. Each decision is counted and, when a Pushgateway is configured,
pushed (infra/preview_metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from infra import decisions
from infra.kube_object import KubeObject, normalise_numbers
from infra.preview_metrics import DECISIONS
from sovereign import vocabulary as k8s
from sovereign.errors import SovereignError
from sovereign.policy.judgement import Action, Judgement
from sovereign.policy.subjects import enforcement_mode

KUBE_OBJECT_TYPE = f"pulumi-python:{KubeObject._resource_type_name}"
# Actions that fail the preview: an enforced denial, nothing to judge, or no decision (unknown means deny).
BLOCKING = {Action.REFUSE, Action.HOLD}


def _llama_deployment(args: ResourceValidationArgs) -> dict[str, Any] | None:
    manifest = args.props.get("manifest") if args.resource_type == KUBE_OBJECT_TYPE else None
    if not manifest or manifest.get("kind") != k8s.LLAMA_DEPLOYMENT:
        return None
    return manifest if str(manifest.get("apiVersion", "")).startswith(f"{k8s.GROUP}/") else None


def _judge(args: ResourceValidationArgs) -> tuple[Action, Judgement] | None:
    """(what the cluster's mode makes of it, the judgement) for a LlamaDeployment; None for the rest."""
    deployment = _llama_deployment(args)
    if deployment is None:
        return None
    deployment, context = normalise_numbers(deployment), normalise_numbers(args.props.get("policy_context"))
    if not context:
        why = "no policy_context (its SovereignCluster) travels with it"
        judgement = Judgement.unjudgeable(k8s.REASON_INVALID_SPEC, why)
        return judgement.action(), judgement
    try:
        judgement = decisions.judge_one(
            decisions.policy_input(deployment, context), decisions.subject(deployment)
        )
    except SovereignError as exc:
        judgement = Judgement.unjudgeable(k8s.REASON_INVALID_SPEC, str(exc))
    else:
        spec = deployment.get("spec") or {}
        region = str((context["cluster"].get("spec") or {}).get("region"))
        DECISIONS.record(args.urn, region, str(spec.get("clusterRef")), str(spec.get("model")), judgement)
    return judgement.action(enforcement_mode(context["cluster"])), judgement


def _line(item: dict[str, Any]) -> str:
    citation = f" [{item['citation']}]" if item.get("citation") else ""
    return f"{item['code']}: {item['message']}{citation}"


def _violations(blocking: bool) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        judged = _judge(args)
        if judged is None or judged[0] is Action.ADMIT or (judged[0] in BLOCKING) != blocking:
            return
        judgement = judged[1]
        if judgement.problem:
            report_violation(f"cannot be judged: {judgement.problem[1]}", None)
        for violation in judgement.violations:
            report_violation(_line(violation), None)

    return validate


def _obligations(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    judged = _judge(args)
    for obligation in judged[1].obligations if judged else []:
        report_violation(_line(obligation), None)


POLICIES = [
    ResourceValidationPolicy(
        name="sovereign-decision",
        description="The sovereign policy allows this LlamaDeployment on its cluster (enforce mode).",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_violations(blocking=True),
    ),
    ResourceValidationPolicy(
        name="sovereign-decision-reported",
        description="Violations on clusters in warn or dryrun mode: reported, not blocking.",
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=_violations(blocking=False),
    ),
    ResourceValidationPolicy(
        name="sovereign-obligations",
        description="Obligations that come with an allowed deployment (EU AI Act, licence attribution).",
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=_obligations,
    ),
]
