"""ClusterRequests: a contractor asks for an accredited cluster; the policy answers, with its reasons.

The request becomes the SovereignCluster and LlamaDeployments it asks for (subjects.request_proposal);
every requested model is judged through the judgement API as an approval (`approval: true`: the policy
refuses to approve an organisation that could not be screened), in one batched query. Approved when the
policy allows every model; the operator then creates the SovereignCluster, labelled with the request (a
namespaced object cannot own a cluster-scoped one, so the operator removes it with its request instead of
Kubernetes' garbage collector). Each decision is kept: `status.history` and an Event per decision.

A request that cannot be decided now (no engine, no current screening list) or whose decision cannot be
written (the API server refused it) is tried again with backoff (1 s, doubling, at most `retry_s`) by the
desk's own retry thread, and its status says why it waits (Decided=Unknown, its reason, "retrying in N s").
kopf keeps no progress of its own for requests: its retries need a status write, so one the operator may
not make (403) would have left the request stuck for good.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from operators.sovereign_operator import conditions
from operators.sovereign_operator.facts import subject_name
from operators.sovereign_operator.kube import Kube, api_error
from sovereign.errors import BadInput
from sovereign.policy.judgement import Judge, Judgement, Subject, Verdict
from sovereign.policy.subjects import deployment_input, request_proposal
from sovereign.vocabulary import (
    CLUSTERS,
    CONDITION_CLUSTER_PROVISIONED,
    CONDITION_DECIDED,
    EVENT_CLUSTER_REQUEST_APPROVED,
    EVENT_CLUSTER_REQUEST_DENIED,
    EVENT_NORMAL,
    EVENT_SOVEREIGN_CLUSTER_CREATED,
    EVENT_WARNING,
    LABEL_REQUEST_UID,
    PHASE_APPROVED,
    PHASE_DENIED,
    PHASE_PENDING,
    REASON_CREATED,
    REASON_INVALID_SPEC,
    REASON_NAME_TAKEN,
    REASON_RETRYING,
    REQUESTS,
)

log = logging.getLogger(__name__)


FIRST_RETRY_S = 1.0


class NotYet(Exception):
    """No decision can be made now: `reason` (a condition reason) and `message` say why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class _Retry:
    attempt: int  # failed attempts so far
    due: float  # time.monotonic() of the next one


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


def is_settled(request: Mapping[str, Any]) -> bool:
    """Whether nothing is left to do for the request: denied, or approved and its cluster provisioned (or
    its name taken), or refused as unjudgeable (its spec cannot change)."""
    status = request.get("status") or {}
    if is_decided(request):
        return status["phase"] == PHASE_DENIED or bool(
            conditions.find(status.get("conditions"), CONDITION_CLUSTER_PROVISIONED)
        )
    decided = conditions.find(status.get("conditions"), CONDITION_DECIDED)
    return decided is not None and decided.get("reason") == REASON_INVALID_SPEC


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
    def __init__(
        self, kube: Kube, judge: Judge, retry_s: float = 10.0, first_retry_s: float = FIRST_RETRY_S
    ) -> None:
        self.kube = kube
        self.judge = judge
        self.retry_s = retry_s  # the longest wait between two attempts
        self.first_retry_s = first_retry_s
        self._waiting: dict[tuple[str, str], _Retry] = {}
        # Judgements made but not yet written, per (uid, generation): a retry writes them, judging nothing
        # again (each judgement is a record of the decision log).
        self._unwritten: dict[tuple[str, int], list[Judgement]] = {}
        # One request at a time: kopf's handler threads and the retry thread must not decide one twice.
        self._lock = threading.RLock()

    def offer(self, request: Mapping[str, Any]) -> None:
        """A request seen on the watch (the first listing too: a restarted operator takes up what it left):
        decide it, unless it is settled or already waiting for its retry."""
        with self._lock:
            if _key(request) not in self._waiting and not is_settled(request):
                self._attempt(request, 0)

    def retry_due(self) -> None:
        """Try again each waiting request whose backoff has passed."""
        now = time.monotonic()
        with self._lock:
            due = [(key, waiting) for key, waiting in self._waiting.items() if waiting.due <= now]
            for key, waiting in due:
                try:
                    request = self.kube.get_request(*key)
                except Exception as exc:  # the API server away: read it again later
                    delay = self._schedule(key, waiting.attempt + 1)
                    log.warning(
                        "clusterrequest %s/%s: cannot read it (%s); retrying in %.0f s", *key, exc, delay
                    )
                    continue
                if request is None:  # withdrawn meanwhile
                    self._waiting.pop(key, None)
                    continue
                self._attempt(request, waiting.attempt + 1)

    def run_retries(self, stop: threading.Event, tick_s: float = 0.5) -> None:
        while not stop.wait(tick_s):
            try:
                self.retry_due()
            except Exception:  # one failed pass (API server away) must not end the retries
                log.exception("retrying ClusterRequests failed")

    def decide(self, request: Mapping[str, Any]) -> str:
        """Decide a request (once per generation), provision an approved one (idempotently), write the
        status in one patch and record the Events; returns the phase. Raises NotYet when no decision can
        be made now, ApiException when the API server refuses a write."""
        status = dict(request.get("status") or {})
        cluster, deployments = request_proposal(request)
        events: list[tuple[str, str, str]] = []
        meta = request["metadata"]
        decision_key = (str(meta.get("uid")), int(meta.get("generation") or 0))
        if not is_decided(request):
            if decision_key not in self._unwritten:
                self._unwritten[decision_key] = self._judge(request, cluster, deployments)
            status, event = self._decided(request, status, deployments, self._unwritten[decision_key])
            events.append(event)
        if status["phase"] == PHASE_APPROVED:
            created, condition = self._provision(request, cluster)
            status = _with_condition(status, condition)
            if condition["status"] == "True":
                status["sovereignCluster"] = cluster["metadata"]["name"]
            if created:
                events.append((EVENT_NORMAL, EVENT_SOVEREIGN_CLUSTER_CREATED, condition["message"]))
        if _essence(status) != _essence(request.get("status")):
            self.kube.patch_status(REQUESTS, *_key(request), status)
        self._unwritten.pop(decision_key, None)
        for kind, reason, message in events:
            self._event(request, kind, reason, message)
        return str(status["phase"])

    def withdraw(self, request: Mapping[str, Any]) -> None:
        """The request is gone: stop retrying it, remove the SovereignCluster created for it."""
        uid = request["metadata"]["uid"]
        with self._lock:
            self._waiting.pop(_key(request), None)
            self._unwritten = {key: j for key, j in self._unwritten.items() if key[0] != uid}
        for cluster in self.kube.list_all(CLUSTERS):
            if (cluster["metadata"].get("labels") or {}).get(LABEL_REQUEST_UID) == uid:
                log.info("deleting SovereignCluster %s with its ClusterRequest", cluster["metadata"]["name"])
                self.kube.delete_cluster(cluster["metadata"]["name"], cluster["metadata"]["uid"])

    # --- internals -----------------------------------------------------------------------------------
    def _attempt(self, request: Mapping[str, Any], attempt: int) -> None:
        """Decide now; on a transient failure say why in the status and schedule the next attempt."""
        key = _key(request)
        try:
            self.decide(request)
        except NotYet as exc:
            if exc.reason == REASON_INVALID_SPEC:  # its spec cannot change: no attempt would do better
                self._waiting.pop(key, None)
                self._record_wait(request, exc.reason, exc.message)
                return
            delay = self._schedule(key, attempt)
            self._record_wait(request, exc.reason, f"{exc.message}; retrying in {delay:.0f} s")
        except Exception as exc:  # like a controller: any failure (a refused write, no API server) is retried
            delay = self._schedule(key, attempt)
            why = _failure(exc)
            log.warning("clusterrequest %s/%s: %s; retrying in %.0f s", *key, why, delay)
            self._record_wait(request, REASON_RETRYING, f"{why}; retrying in {delay:.0f} s", logged=True)
        else:
            self._waiting.pop(key, None)

    def _schedule(self, key: tuple[str, str], attempt: int) -> float:
        delay = min(self.retry_s, self.first_retry_s * 2**attempt)
        self._waiting[key] = _Retry(attempt, time.monotonic() + delay)
        return delay

    def _judge(
        self, request: Mapping[str, Any], cluster: dict[str, Any], deployments: list[dict[str, Any]]
    ) -> list[Judgement]:
        """One judgement per requested model; raises NotYet when no decision can be made."""
        try:
            docs = approval_documents(self.judge, cluster, deployments)
        except BadInput as exc:
            raise NotYet(REASON_INVALID_SPEC, str(exc)) from None
        judgements = self.judge.judge_documents(docs, [Subject(subject_name(request))] * len(docs))
        if undecided := [j for j in judgements if j.verdict is Verdict.UNDECIDED]:
            message = "; ".join(sorted({j.message for j in undecided}))
            raise NotYet(conditions.undecided_reason(undecided), message)
        return judgements

    def _decided(
        self,
        request: Mapping[str, Any],
        status: dict[str, Any],
        deployments: list[dict[str, Any]],
        judgements: list[Judgement],
    ) -> tuple[dict[str, Any], tuple[str, str, str]]:
        """The decided status and its Event."""
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
        event = (
            (EVENT_NORMAL, EVENT_CLUSTER_REQUEST_APPROVED, message)
            if approved
            else (EVENT_WARNING, EVENT_CLUSTER_REQUEST_DENIED, message)
        )
        return _with_condition(decided, condition), event

    def _record_wait(
        self, request: Mapping[str, Any], reason: str, message: str, logged: bool = False
    ) -> None:
        """Say in the status why the request waits (Decided=Unknown); a new reason is also an Event and a
        line of its history. Best effort: the write that failed may be this one too; then it is logged,
        unless the caller `logged` that failure already."""
        status = dict(request.get("status") or {})
        previous = conditions.find(status.get("conditions"), CONDITION_DECIDED)
        if previous and (previous.get("reason"), previous.get("message")) == (reason, message):
            return
        generation = int(request["metadata"].get("generation") or 0)
        changed = not previous or previous.get("reason") != reason
        pending = {**status, "phase": PHASE_PENDING, "observedGeneration": generation}
        if changed:
            entry = {"time": conditions.now(), "phase": PHASE_PENDING, "revision": None, "codes": [reason]}
            pending["history"] = [*(status.get("history") or []), entry]
        condition = conditions.condition(CONDITION_DECIDED, "Unknown", reason, message, generation)
        try:
            self.kube.patch_status(REQUESTS, *_key(request), _with_condition(pending, condition))
        except Exception as exc:  # the failure it would record may be this very write's
            if not logged:
                log.warning(
                    "clusterrequest %s/%s waits (%s: %s): %s", *_key(request), reason, message, _failure(exc)
                )
            return
        if changed:
            self._event(request, EVENT_WARNING, reason, message)

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


def _failure(exc: Exception) -> str:
    """What went wrong, in the API server's words, with the fix when it is the operator's RBAC."""
    if not isinstance(exc, ApiException):
        return f"{type(exc).__name__}: {exc}"
    said = f"the API server refused: {api_error(exc)}"
    if exc.status == 403:
        # The operator writes only in onboarded namespaces (operators/rbac/operator.yaml).
        said += (
            " (onboard the namespace: label it sovereign.dev/managed=true and bind the operator's "
            "ClusterRole sovereign-operator-namespace there, as operators/examples/namespaces.yaml does)"
        )
    return said


def _with_condition(status: dict[str, Any], condition: dict[str, Any]) -> dict[str, Any]:
    old = status.get("conditions") or []
    others = [c for c in old if c.get("type") != condition["type"]]
    return {**status, "conditions": conditions.stamped([*others, condition], old)}


def _essence(status: Mapping[str, Any] | None) -> dict[str, Any]:
    status = dict(status or {})
    status.pop("kopf", None)
    return {**status, "conditions": conditions.without_times(status.get("conditions"))}
