"""The judgement of the LlamaDeployments a stack declares, shared by the program and the policy pack.

Objects become decision inputs only through `sovereign.policy.subjects.deployment_input` (the one
mapping) and are judged only through the judgement API; the facts the input needs besides the
LlamaDeployment itself travel with it as its `policy_context`.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from sovereign.audit.record import Point
from sovereign.audit.trail import AuditTrail, open_log
from sovereign.audit.writer import close_on_signals
from sovereign.policy.engine import engine_from_env
from sovereign.policy.judgement import Judge, Judgement, Subject
from sovereign.policy.screening_source import Screening
from sovereign.policy.subjects import declared_gpus_in_use, deployment_input


def policy_context(cluster: dict[str, Any], deployments: list[dict[str, Any]], index: int) -> dict[str, Any]:
    """What judging `deployments[index]` needs: its SovereignCluster, and the GPUs its siblings hold."""
    return {"cluster": cluster, "gpusInUse": declared_gpus_in_use(deployments, index)}


# Pulumi stops the policy pack (and an interrupted program) with a signal, then kills it: the preview's
# segment is closed on the signal, so it ends with a final signed head. Installed at import, which runs in
# the main thread; the pack's judgements run in gRPC worker threads, where no handler can be installed.
close_on_signals()


@cache
def judge() -> Judge:
    """The process's judge; each judgement it makes is a record of the process's decision log (preview)."""
    recorder = AuditTrail(open_log("preview"), Point.PREVIEW)
    return Judge(engine_from_env(), Screening.enforcing(), recorder=recorder)


def subject(deployment: dict[str, Any]) -> Subject:
    meta = deployment.get("metadata") or {}
    return Subject(f"LlamaDeployment {meta.get('namespace')}/{meta.get('name')}")


def policy_input(deployment: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The document the policy evaluates for one LlamaDeployment (BadInput when it cannot be judged)."""
    inp = deployment_input(context["cluster"], deployment, gpus_in_use=int(context["gpusInUse"]))
    return judge().policy_input(inp)


@cache
def _judge_json(doc_json: str, about: Subject) -> Judgement:
    return judge().judge_document(json.loads(doc_json), about)


def judge_one(doc: dict[str, Any], about: Subject) -> Judgement:
    """One judgement per distinct input per process: several policies of the pack ask about the same one."""
    return _judge_json(json.dumps(doc, sort_keys=True), about)


def judge_many(docs: list[dict[str, Any]], about: list[Subject]) -> list[Judgement]:
    return judge().judge_documents(docs, about)


def summary(judgement: Judgement) -> dict[str, Any]:
    """What the stack output shows per deployment: allowed or not, and every code."""
    return {
        "allowed": judgement.allowed,
        "violations": judgement.codes,
        "obligations": sorted({str(o.get("code")) for o in judgement.obligations}),
        "policyRevision": judgement.policy_revision,
    }
