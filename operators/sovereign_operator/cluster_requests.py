"""ClusterRequests: a contractor asks for an accredited cluster; the policy answers, with its reasons.

The request becomes the SovereignCluster and LlamaDeployments it asks for (subjects.request_proposal);
every requested model is judged through the judgement API as an approval (`approval: true`: the policy
refuses to approve an organisation that could not be screened), in one batched query. Approved when the
policy allows every model; the operator then creates the SovereignCluster, labelled with the request (a
namespaced object cannot own a cluster-scoped one, so the operator removes it with its request instead of
Kubernetes' garbage collector). Each decision is kept: `status.history` and an Event per decision.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NoReturn

from kubernetes.client.exceptions import ApiException

from operators.sovereign_operator import conditions
from operators.sovereign_operator.facts import subject_name
from operators.sovereign_operator.kube import Kube, api_error
from sovereign.errors import BadInput
from sovereign.policy.judgement import Judge, Subject, Verdict
from sovereign.policy.subjects import deployment_input, request_proposal
from sovereign.vocabulary import (
    CLUSTERS,
    CONDITION_CLUSTER_PROVISIONED,
    CONDITION_DECIDED,
    LABEL_REQUEST_UID,
    PHASE_APPROVED,
    PHASE_DENIED,
    PHASE_PENDING,
    REASON_CREATED,
    REASON_INVALID_SPEC,
    REASON_NAME_TAKEN,
    REQUESTS,
)

log = logging.getLogger(__name__)


class NotYet(Exception):
    """No decision can be made now (no policy engine): try again after `delay` s."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


def is_decided(request: Mapping[str, Any]) -> bool:
    """Whether the request's current generation was approved or denied (a pending one awaits a decision)."""
    status = request.get("status") or {}
    generation = int((request.get("metadata") or {}).get("generation") or 0)
    decided = status.get("phase") in (PHASE_APPROVED, PHASE_DENIED)
    return decided and status.get("observedGeneration") == generation


def approval_documents(
    judge: Judge, cluster: Mapping[str, Any], deployments: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The policy inputs of a request's proposal (`request_proposal`), one per model, judged as an approval
    (`approval: true`); BadInput when the request cannot be judged."""
    return [judge.policy_input(deployment_input(cluster, d), approval=True) for d in deployments]


class RequestDesk:
    def __init__(self, kube: Kube, judge: Judge, retry_s: float = 10.0) -> None:
        self.kube = kube
        self.judge = judge
        self.retry_s = retry_s

    def decide(self, request: Mapping[str, Any]) -> str:
        """Decide a request (once per generation), provision an approved one (idempotently), write the
        status in one patch and record the Events; returns the phase."""
        status = dict(request.get("status") or {})
        cluster, deployments = request_proposal(request)
        events: list[tuple[str, str, str]] = []
        if not is_decided(request):
            status, event = self._judge(request, status, cluster, deployments)
            events.append(event)
        if status["phase"] == PHASE_APPROVED:
            created, condition = self._provision(request, cluster)
            status = _with_condition(status, condition)
            if condition["status"] == "True":
                status["sovereignCluster"] = cluster["metadata"]["name"]
            if created:
                events.append(("Normal", "SovereignClusterCreated", condition["message"]))
        if _essence(status) != _essence(request.get("status")):
            self.kube.patch_status(REQUESTS, *_key(request), status)
        for kind, reason, message in events:
            self._event(request, kind, reason, message)
        return str(status["phase"])

    def withdraw(self, request: Mapping[str, Any]) -> None:
        """The request is gone: remove the SovereignCluster created for it."""
        uid = request["metadata"]["uid"]
        for cluster in self.kube.list_all(CLUSTERS):
            if (cluster["metadata"].get("labels") or {}).get(LABEL_REQUEST_UID) == uid:
                log.info("deleting SovereignCluster %s with its ClusterRequest", cluster["metadata"]["name"])
                self.kube.delete_cluster(cluster["metadata"]["name"], cluster["metadata"]["uid"])

    # --- internals -----------------------------------------------------------------------------------
    def _judge(
        self,
        request: Mapping[str, Any],
        status: dict[str, Any],
        cluster: dict[str, Any],
        deployments: list[dict[str, Any]],
    ) -> tuple[dict[str, Any], tuple[str, str, str]]:
        """The decided status and its Event; raises NotYet (after recording why) when none can be made."""
        try:
            docs = approval_documents(self.judge, cluster, deployments)
        except BadInput as exc:
            self._pending(request, status, REASON_INVALID_SPEC, str(exc))
        judgements = self.judge.judge_documents(docs, [Subject(subject_name(request))] * len(docs))
        if undecided := [j for j in judgements if j.verdict is Verdict.UNDECIDED]:
            message = "; ".join(sorted({j.message for j in undecided}))
            self._pending(request, status, conditions.undecided_reason(undecided), message)
        approved = all(j.allowed for j in judgements)
        phase = PHASE_APPROVED if approved else PHASE_DENIED
        reasons = [
            {**violation, "model": deployment["spec"]["model"]}
            for deployment, judgement in zip(deployments, judgements, strict=True)
            for violation in judgement.violations
        ]
        codes = sorted({r["code"] for r in reasons})
        spec = request["spec"]
        if approved:
            models = ", ".join(d["spec"]["model"] for d in deployments)
            summary = f"approved: the policy allows {models} for {spec['endUse']} in region {spec['region']}"
            message = summary
        else:
            summary = f"denied: {', '.join(codes)}"
            message = summary + "; " + "; ".join(f"{r['model']}: {r['message']}" for r in reasons)
        generation = int(request["metadata"].get("generation") or 0)
        decided_at = conditions.now()
        revision = judgements[0].policy_revision
        obligations = {(o["code"], o["message"]): o for j in judgements for o in j.obligations}
        decided = {
            **status,
            "phase": phase,
            "observedGeneration": generation,
            "decision": {
                "approved": approved,
                "revision": revision,
                "engine": judgements[0].engine,
                "asOf": self.judge.today().isoformat(),
                "decidedAt": decided_at,
            },
            "reasons": reasons,
            "obligations": [obligations[k] for k in sorted(obligations)],
            "history": [
                *(status.get("history") or []),
                {"time": decided_at, "phase": phase, "revision": revision, "codes": codes},
            ],
        }
        condition = conditions.condition(CONDITION_DECIDED, "True", phase, summary, generation)
        event = ("Normal" if approved else "Warning", f"ClusterRequest{phase}", message)
        return _with_condition(decided, condition), event

    def _pending(
        self, request: Mapping[str, Any], status: dict[str, Any], reason: str, message: str
    ) -> NoReturn:
        previous = conditions.find(status.get("conditions"), CONDITION_DECIDED)
        if not previous or previous.get("reason") != reason:
            generation = int(request["metadata"].get("generation") or 0)
            pending = {
                **status,
                "phase": PHASE_PENDING,
                "observedGeneration": generation,
                "history": [
                    *(status.get("history") or []),
                    {"time": conditions.now(), "phase": PHASE_PENDING, "revision": None, "codes": [reason]},
                ],
            }
            condition = conditions.condition(CONDITION_DECIDED, "Unknown", reason, message, generation)
            self.kube.patch_status(REQUESTS, *_key(request), _with_condition(pending, condition))
            self._event(request, "Warning", reason, message)
        raise NotYet(message, self.retry_s)

    def _provision(self, request: Mapping[str, Any], cluster: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Create the SovereignCluster unless it exists for this request: (created now, condition)."""
        name = cluster["metadata"]["name"]
        generation = int(request["metadata"].get("generation") or 0)
        try:
            self.kube.create_cluster(cluster)
            message = f"SovereignCluster {name} created for this request"
            return True, conditions.condition(
                CONDITION_CLUSTER_PROVISIONED, "True", REASON_CREATED, message, generation
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = self.kube.get_cluster(name) or {}
        if ((existing.get("metadata") or {}).get("labels") or {}).get(LABEL_REQUEST_UID) == request[
            "metadata"
        ]["uid"]:
            message = f"SovereignCluster {name} created for this request"
            return False, conditions.condition(
                CONDITION_CLUSTER_PROVISIONED, "True", REASON_CREATED, message, generation
            )
        message = (
            f"SovereignCluster {name} exists and was not made for this request: "
            "submit one with another spec.clusterName"
        )
        return False, conditions.condition(
            CONDITION_CLUSTER_PROVISIONED, "False", REASON_NAME_TAKEN, message, generation
        )

    def _event(self, request: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        try:
            self.kube.event(dict(request), kind, reason, message)
        except ApiException as exc:
            log.warning("cannot record event %s: %s", reason, api_error(exc))


def _with_condition(status: dict[str, Any], condition: dict[str, Any]) -> dict[str, Any]:
    old = status.get("conditions") or []
    others = [c for c in old if c.get("type") != condition["type"]]
    return {**status, "conditions": conditions.stamped([*others, condition], old)}


def _essence(status: Mapping[str, Any] | None) -> dict[str, Any]:
    status = dict(status or {})
    status.pop("kopf", None)
    return {**status, "conditions": conditions.without_times(status.get("conditions"))}
