"""ClusterRequests: a contractor asks for an accredited cluster; the policy answers, with its reasons.

The request becomes the SovereignCluster and LlamaDeployments it asks for (manifests.request_proposal);
its organisation is screened against the denied-party list and every requested model is judged, in one
batched query. Approved when the policy allows every model; the operator then creates the
SovereignCluster, labelled with the request (a namespaced object cannot own a cluster-scoped one, so the
operator removes it with its request instead of Kubernetes' garbage collector). Each decision is kept:
`status.history` and an Event per decision.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from operators.manifests import CLUSTERS, REQUEST_UID_LABEL, REQUESTS, request_proposal
from operators.sovereign_operator import conditions
from operators.sovereign_operator.conditions import CLUSTER_PROVISIONED, DECIDED
from operators.sovereign_operator.fleet import Judge
from operators.sovereign_operator.kube import Kube, api_error
from sovereign.policy.engine import BUNDLE_UNVERIFIED, ENGINE_UNAVAILABLE

log = logging.getLogger(__name__)
_ENGINE_FAILURES = {ENGINE_UNAVAILABLE, BUNDLE_UNVERIFIED}

APPROVED = "Approved"
DENIED = "Denied"
PENDING = "Pending"


class NotYet(Exception):
    """No decision can be made now (no screening list, no policy engine): try again after `delay` s."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


class RequestDesk:
    def __init__(self, kube: Kube, judge: Judge, screening_available: bool, retry_s: float = 10.0) -> None:
        self.kube = kube
        self.judge = judge
        self.screening_available = screening_available
        self.retry_s = retry_s

    def decide(self, request: Mapping[str, Any]) -> str:
        """Decide a request (once per generation), provision an approved one (idempotently), write the
        status in one patch and record the Events; returns the phase."""
        meta, status = request["metadata"], dict(request.get("status") or {})
        generation = int(meta.get("generation") or 0)
        cluster, deployments = request_proposal(request)
        events: list[tuple[str, str, str]] = []
        if not (status.get("phase") in (APPROVED, DENIED) and status.get("observedGeneration") == generation):
            status, event = self._judge(request, status, cluster, deployments)
            events.append(event)
        if status["phase"] == APPROVED:
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
            if (cluster["metadata"].get("labels") or {}).get(REQUEST_UID_LABEL) == uid:
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
        if not self.screening_available:
            self._pending(
                request,
                status,
                "ScreeningListMissing",
                "the operator has no denied-party list (sovereign operator run --screening-list): "
                "an organisation that cannot be screened cannot be approved",
            )
        verdicts = self.judge.verdicts(deployments, {cluster["metadata"]["name"]: cluster}, {})
        decisions = [v.decision or {} for v in verdicts]
        failures = {
            v["message"]
            for d in decisions
            for v in d.get("violations", [])
            if v.get("code") in _ENGINE_FAILURES
        }
        if failures:
            self._pending(request, status, "PolicyEngineUnavailable", "; ".join(sorted(failures)))
        approved = all(d.get("allow") is True for d in decisions)
        phase = APPROVED if approved else DENIED
        reasons = [
            {**violation, "model": deployment["spec"]["model"]}
            for deployment, decision in zip(deployments, decisions, strict=True)
            for violation in decision.get("violations", [])
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
        revision = decisions[0].get("policy_revision")
        obligations = {(o["code"], o["message"]): o for d in decisions for o in d.get("obligations", [])}
        decided = {
            **status,
            "phase": phase,
            "observedGeneration": generation,
            "decision": {
                "approved": approved,
                "revision": revision,
                "engine": decisions[0].get("engine"),
                "asOf": self.judge.as_of().isoformat(),
                "decidedAt": decided_at,
            },
            "reasons": reasons,
            "obligations": [obligations[k] for k in sorted(obligations)],
            "history": [
                *(status.get("history") or []),
                {"time": decided_at, "phase": phase, "revision": revision, "codes": codes},
            ],
        }
        condition = conditions.condition(DECIDED, "True", phase, summary, generation)
        event = ("Normal" if approved else "Warning", f"ClusterRequest{phase}", message)
        return _with_condition(decided, condition), event

    def _pending(self, request: Mapping[str, Any], status: dict[str, Any], reason: str, message: str) -> None:
        previous = conditions.find(status.get("conditions"), DECIDED)
        if not previous or previous.get("reason") != reason:
            generation = int(request["metadata"].get("generation") or 0)
            pending = {
                **status,
                "phase": PENDING,
                "observedGeneration": generation,
                "history": [
                    *(status.get("history") or []),
                    {"time": conditions.now(), "phase": PENDING, "revision": None, "codes": [reason]},
                ],
            }
            condition = conditions.condition(DECIDED, "Unknown", reason, message, generation)
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
            return True, conditions.condition(CLUSTER_PROVISIONED, "True", "Created", message, generation)
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = self.kube.get_cluster(name) or {}
        if ((existing.get("metadata") or {}).get("labels") or {}).get(REQUEST_UID_LABEL) == request[
            "metadata"
        ]["uid"]:
            message = f"SovereignCluster {name} created for this request"
            return False, conditions.condition(CLUSTER_PROVISIONED, "True", "Created", message, generation)
        message = (
            f"SovereignCluster {name} exists and was not made for this request: "
            "submit one with another spec.clusterName"
        )
        return False, conditions.condition(CLUSTER_PROVISIONED, "False", "NameTaken", message, generation)

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
