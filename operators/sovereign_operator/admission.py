"""The validating admission webhook for LlamaDeployments and RayServices in sovereign-managed namespaces.

The API server calls it (ValidatingWebhookConfiguration below, applied by `sovereign operator setup`)
for CREATE and UPDATE in namespaces labelled sovereign.dev/managed=true, with failurePolicy Fail: while
the webhook is down nothing is admitted there, and nothing elsewhere waits on it.

Why not kopf's `settings.admission.managed`: kopf 1.45 writes the configuration without a
namespaceSelector and rewrites the whole `webhooks` list on every change, so the namespace scoping that
keeps a down webhook from stalling the rest of the cluster could not stay. kopf still serves the webhook;
its handler ids are the URL paths used here.

What is judged is the intent: an UPDATE that leaves the spec (and, for a RayService, its sovereign labels)
as it was is admitted without a decision, so status, label and finalizer bookkeeping never hangs on the
policy; a suspended RayService runs nothing and is admitted, so suspending is never refused.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import kopf
import yaml
from pydantic import ValidationError

from operators.sovereign_operator import rayservice
from operators.sovereign_operator.facts import (
    ClusterClaims,
    deployment_documents,
    judge_deployments,
    subject_name,
)
from operators.sovereign_operator.weights_mounts import WeightsMounts
from operators.sovereign_operator.workload import workload_facts
from serving.args import IMPORT_PATH, ServingArgs
from serving.manifest import load_serve_config
from sovereign.exporter.allocation import most_gpus
from sovereign.exporter.decisions import record_decision
from sovereign.exporter.engine_health import observe_engine
from sovereign.policy.decision_input import describe_errors
from sovereign.policy.judgement import Action, Judge, Judgement, Subject, Verdict, strictest
from sovereign.policy.subjects import enforcement_mode, rayservice_deployments
from sovereign.vocabulary import (
    DEPLOYMENTS,
    GROUP,
    LABEL_CLUSTER,
    LABEL_MANAGED,
    RAY_CLUSTER,
    RAY_GROUP,
    RAY_SERVICE,
    RAY_VERSION,
    RAYCLUSTERS,
    RAYJOBS,
    RAYSERVICES,
    REASON_CLUSTER_NOT_FOUND,
    REASON_INVALID_SPEC,
    VERSION,
)

CONFIGURATION_NAME = "sovereign-operator"
LLAMA_WEBHOOK = DEPLOYMENTS  # kopf handler id = URL path
RAYSERVICE_WEBHOOK = RAYSERVICES
RAYCLUSTER_WEBHOOK = RAYCLUSTERS
RAYJOB_WEBHOOK = RAYJOBS
# Where in a LlamaDeployment to look for each code's cause; the rest are facts of the SovereignCluster.
_FIELDS = {
    "UNKNOWN_MODEL": "spec.model",
    "REGION_MODALITY": "spec.model",
    "EU_MULTIMODAL_LICENCE": "spec.model",
    "AI_ACT_SYSTEMIC_RISK": "spec.model",
    "END_USE_NOT_PERMITTED": "spec.endUse",
    "GPU_QUOTA_EXCEEDED": "spec.replicas x spec.gpusPerReplica",
    "DATA_RESIDENCY": "spec.weights.country / the SovereignCluster",
    "INVALID_INPUT": "spec",
    "TENANT_NOT_ALLOWED": "metadata.namespace / spec.clusterRef",
    "WEIGHTS_MISMATCH": "spec.weights.path / spec.model",
    "WEIGHTS_SIGNATURE_INVALID": "spec.weights.path / spec.weights.signer",
}


def webhook_configuration(url: str, ca_pem: bytes, timeout_s: int = 10) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration for a webhook served at `url` (https://HOST:PORT)."""

    def webhook(path: str, group: str, version: str, plural: str) -> dict[str, Any]:
        return {
            "name": f"{plural}.admission.{GROUP}",
            "clientConfig": {"url": f"{url}/{path}", "caBundle": base64.b64encode(ca_pem).decode()},
            "rules": [
                {
                    "apiGroups": [group],
                    "apiVersions": [version],
                    "resources": [plural],
                    "operations": ["CREATE", "UPDATE"],
                    "scope": "Namespaced",
                }
            ],
            "namespaceSelector": {"matchLabels": {LABEL_MANAGED: "true"}},
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": timeout_s,
        }

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME},
        "webhooks": [
            webhook(LLAMA_WEBHOOK, GROUP, VERSION, DEPLOYMENTS),
            webhook(RAYSERVICE_WEBHOOK, RAY_GROUP, RAY_VERSION, RAYSERVICES),
            webhook(RAYCLUSTER_WEBHOOK, RAY_GROUP, RAY_VERSION, RAYCLUSTERS),
            webhook(RAYJOB_WEBHOOK, RAY_GROUP, RAY_VERSION, RAYJOBS),
        ],
    }


def _refuse(message: str) -> kopf.AdmissionError:
    return kopf.AdmissionError(message, code=403)


def _cite(violation: Mapping[str, Any]) -> str:
    code = str(violation.get("code"))
    where = f" ({_FIELDS[code]})" if code in _FIELDS else ""
    return f"{code}{where}: {violation.get('message')} [{violation.get('citation')}]"


class Admission:
    def __init__(self, judge: Judge, weights: WeightsMounts | None = None) -> None:
        self.judge = judge
        # Where the operator reads checkpoints to judge their facts and signatures (none: not at admission).
        self.weights = weights or WeightsMounts()

    def review_deployment(
        self,
        body: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        clusters: Mapping[str, Mapping[str, Any]],
        claims: Mapping[str, ClusterClaims],
    ) -> list[str]:
        """Admission warnings for a LlamaDeployment, or raise kopf.AdmissionError to refuse it."""
        if old is not None and old.get("spec") == body.get("spec"):
            return []
        return self._review(body, [body], clusters, claims)

    def review_rayservice(
        self,
        body: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        clusters: Mapping[str, Mapping[str, Any]],
        claims: Mapping[str, ClusterClaims],
    ) -> list[str]:
        """Admission warnings for a RayService, or raise kopf.AdmissionError to refuse it."""
        if old is not None and _governed(old) == _governed(body):
            return []
        if rayservice.is_suspended(body):
            return []
        deployments, declared, config = self._as_deployments(body, claims)
        cluster = clusters.get(str(deployments[0]["spec"].get("clusterRef")))
        # Judged with what it would run besides the deployments it declares (a missing cluster is refused
        # by the review itself).
        workload = (
            workload_facts(body, config, cluster, deployments[0], declared) if cluster is not None else None
        )
        return self._review(body, deployments, clusters, claims, workload)

    def rayservice_action(
        self,
        body: Mapping[str, Any],
        clusters: Mapping[str, Mapping[str, Any]],
        claims: Mapping[str, ClusterClaims],
    ) -> Action:
        """What the policy, as of now, makes of a RayService no LlamaDeployment owns (a drift pass asks):
        REFUSE when it cannot be read as a judged workload, its cluster is gone, or enforce mode denies it;
        HOLD when nothing could be decided; otherwise what its judgements' mode says (ADMIT, WARN, RECORD)."""
        documents, cluster = self.rayservice_documents(body, clusters, claims)
        mode = enforcement_mode(cluster or {})
        about = [Subject(subject_name(body))] * len(documents)
        return strictest(j.action(mode) for j in self.judge.judge_documents(documents, about))

    def rayservice_documents(
        self,
        body: Mapping[str, Any],
        clusters: Mapping[str, Mapping[str, Any]],
        claims: Mapping[str, ClusterClaims],
    ) -> tuple[list[dict[str, Any] | Judgement], Mapping[str, Any] | None]:
        """The policy inputs of a RayService no LlamaDeployment owns, one per model it serves, formed from
        what it would run (an UNJUDGEABLE judgement in their place when it cannot be read as a judged
        workload or its cluster is gone), and its SovereignCluster."""
        try:
            deployments, declared, config = self._as_deployments(body, claims)
        except kopf.AdmissionError as exc:
            return [Judgement.unjudgeable(REASON_INVALID_SPEC, str(exc))], None
        ref = str(deployments[0]["spec"].get("clusterRef"))
        cluster = clusters.get(ref)
        if cluster is None:
            message = (
                f"SovereignCluster {ref} does not exist: create it, or fix metadata.labels[{LABEL_CLUSTER}]"
            )
            return [Judgement.unjudgeable(REASON_CLUSTER_NOT_FOUND, message)], None
        workload = workload_facts(body, config, cluster, deployments[0], declared)
        return deployment_documents(self.judge, deployments, clusters, claims, workload), cluster

    def review_ray_workload(self, body: Mapping[str, Any], rayservice_uid: str | None) -> None:
        """A RayCluster or RayJob: refused unless it is the RayCluster KubeRay makes for a RayService
        (controlled by it; `rayservice_uid` is that RayService's, if it exists), which admission judged as a
        whole. Not a policy judgement: nothing in it names a model or an end use, so no decision input can
        be formed (unjudgeable, as ARCHITECTURE.md says), and the refusal says so."""
        owner = next(
            (
                ref
                for ref in (body.get("metadata") or {}).get("ownerReferences") or []
                if ref.get("controller") and ref.get("kind") == RAY_SERVICE
            ),
            None,
        )
        if body.get("kind") == RAY_CLUSTER and owner is not None and owner.get("uid") == rayservice_uid:
            return
        raise _refuse(
            f"{_describe(body)} cannot be judged: in a sovereign-managed namespace Ray runs only as the "
            "RayService the operator generates from a LlamaDeployment (and the RayCluster KubeRay makes "
            "for it); declare a LlamaDeployment instead"
        )

    # --- internals -----------------------------------------------------------------------------------
    def _review(
        self,
        body: Mapping[str, Any],
        deployments: list[dict[str, Any]] | list[Mapping[str, Any]],
        clusters: Mapping[str, Mapping[str, Any]],
        claims: Mapping[str, ClusterClaims],
        workload: Mapping[str, Any] | None = None,
    ) -> list[str]:
        what = _describe(body)
        ref = str(deployments[0]["spec"].get("clusterRef"))
        cluster = clusters.get(ref)
        if cluster is None:
            raise _refuse(
                f"{what}: spec.clusterRef: SovereignCluster {ref} does not exist: "
                "create it first or fix the name"
            )
        mode = enforcement_mode(cluster)
        judgements = judge_deployments(
            self.judge,
            list(deployments),
            clusters,
            claims,
            workload,
            weights=self.weights.fact,
            about=subject_name(body),
        )
        problems = [j.message for j in judgements if j.verdict is Verdict.UNJUDGEABLE]
        if problems:
            raise _refuse(f"{what} cannot be judged: " + "; ".join(problems))
        for deployment, judgement in zip(deployments, judgements, strict=True):
            _record(deployment, cluster, judgement)
        refused = [(d, j) for d, j in zip(deployments, judgements, strict=True) if not j.allowed]
        if not refused:
            return []
        actions = {j.action(mode) for _, j in refused}
        header = (
            f"{what} is denied by the sovereign policy on SovereignCluster {ref} "
            f"({mode} mode, policy revision {judgements[0].policy_revision})"
        )
        if Action.HOLD in actions:
            undecided = [j for _, j in refused if j.verdict is Verdict.UNDECIDED]
            raise _refuse(
                f"{what}: the policy engine cannot decide, and no decision means no admission: "
                + "; ".join(_cite(v) for j in undecided for v in j.violations)
            )
        denials = [f"model {d['spec'].get('model')}: {_cite(v)}" for d, j in refused for v in j.violations]
        if Action.REFUSE in actions:
            raise _refuse(f"{header}: " + "; ".join(denials))
        if Action.WARN in actions:
            return [f"{header}; admitted in warn mode: {denial}" for denial in denials]
        return []  # dryrun: recorded only (the decision counter here, status and events by the reconciler)

    @staticmethod
    def _as_deployments(
        body: Mapping[str, Any], claims: Mapping[str, ClusterClaims]
    ) -> tuple[list[dict[str, Any]], list[ServingArgs], dict[str, Any]]:
        """The LlamaDeployment(s) a RayService amounts to, read from what it would actually run, so that
        it is judged through the one decision-input mapping like any LlamaDeployment; the serving args
        that declare them; and its spec.serveConfigV2 as read (once: the workload facts read it too)."""
        what = _describe(body)
        meta = body.get("metadata") or {}
        ref = (meta.get("labels") or {}).get(LABEL_CLUSTER)
        if not ref:
            raise _refuse(
                f"{what}: metadata.labels[{LABEL_CLUSTER}] is missing: in a sovereign-managed namespace a "
                "RayService comes from a LlamaDeployment; declare one instead"
            )
        try:
            config = load_serve_config((body.get("spec") or {}).get("serveConfigV2") or "") or {}
            apps = list(config.get("applications") or [])
        except (yaml.YAMLError, AttributeError, TypeError):
            raise _refuse(
                f"{what}: spec.serveConfigV2 is not a Serve config (YAML with applications[])"
            ) from None
        if not apps:
            raise _refuse(
                f"{what}: spec.serveConfigV2.applications is empty: nothing to judge, nothing admitted"
            )
        try:
            gpus = most_gpus(body)  # the quota is judged on what it may scale to, not what it starts with
        except ValueError as exc:
            raise _refuse(f"{what}: {exc}") from None
        key = (str(meta.get("namespace")), str(meta.get("name")))
        created = claims[ref].created(key) if ref in claims else None
        declared = []
        for index, app in enumerate(apps):
            where = f"spec.serveConfigV2.applications[{index}]"
            # Another builder's args say nothing the policy can judge: it declares no deployment, and the
            # policy refuses it as what it would run (WORKLOAD_IMPORT_PATH_NOT_ALLOWED, workload facts).
            if app.get("import_path") != IMPORT_PATH:
                continue
            try:
                declared.append(ServingArgs.model_validate(app.get("args") or {}))
            except ValidationError as exc:
                raise _refuse(
                    f"{what}: {where}.args is invalid\n{describe_errors(exc, f'{where}.args')}"
                ) from None
        if not declared:
            raise _refuse(
                f"{what} cannot be judged: no application of spec.serveConfigV2 is built by {IMPORT_PATH}, "
                "whose args carry the deployment the policy judges; declare a LlamaDeployment instead"
            )
        # Judged through the one mapping, as the LlamaDeployments its args declare.
        served = [args.model_dump(mode="json") for args in declared]
        deployments = rayservice_deployments(body, served, gpus, created)
        return deployments, declared, config


def _record(deployment: Mapping[str, Any], cluster: Mapping[str, Any], judgement: Judgement) -> None:
    observe_engine("admission", judgement)
    record_decision(
        "admission",
        str((cluster.get("spec") or {}).get("region")),
        str(deployment["spec"].get("clusterRef")),
        str(deployment["spec"].get("model")),
        "allow" if judgement.allowed else "deny",
        judgement.codes,
    )


def _governed(obj: Mapping[str, Any]) -> tuple[Any, Any]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return obj.get("spec"), {k: v for k, v in labels.items() if k.startswith(f"{GROUP}/")}


def _describe(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind', 'object')} {meta.get('namespace')}/{meta.get('name')}"
