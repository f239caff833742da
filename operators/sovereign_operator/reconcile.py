"""From a judgement to the cluster's state: the RayService to run, suspend or leave, and the status to show.

`Judgement.action(mode)` (the judgement API) says what a judgement means under the cluster's enforcement
mode; this module says what each action means for a RayService:

| judgement, action                            | PolicyCompliant | RayService                              |
|----------------------------------------------|-----------------|-----------------------------------------|
| allowed: ADMIT                               | True            | run (create, update, resume)            |
| denied, enforce: REFUSE                      | False           | suspend if it exists; never create      |
| denied, warn / dryrun: WARN / RECORD         | False           | run (violations shown / only recorded)  |
| undecided (engine, screening list): HOLD     | Unknown         | hold: create nothing, change nothing    |
| unjudgeable (cluster gone, bad spec): REFUSE | Unknown         | suspend if it exists; never create      |

An unreachable engine holds rather than suspends: it is an outage of the judge, not a finding, and
suspending every running model on an OPA restart would turn one outage into many. A deleted
SovereignCluster is a finding: nothing vouches for the workload any more. Suspending is reversible;
the operator never deletes a RayService except with its LlamaDeployment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from operators.sovereign_operator import conditions, rayservice
from operators.sovereign_operator.compliance import ComplianceReport
from operators.sovereign_operator.conditions import Status
from operators.sovereign_operator.facts import ClusterClaims, judge_deployments
from operators.sovereign_operator.kube import Kube, api_error
from sovereign import vocabulary as k8s
from sovereign.policy.decision_input import DecisionInput
from sovereign.policy.judgement import Action, Judge, Judgement, Mode, Verdict
from sovereign.policy.subjects import deployment_gpus, enforcement_mode

log = logging.getLogger(__name__)

# The Event recorded when a decision changes a status (beside the RayService's own, unless allowed).
_DECISION_EVENTS = {
    k8s.REASON_ALLOWED: k8s.EVENT_POLICY_ALLOWED,
    k8s.REASON_DENIED: k8s.EVENT_POLICY_DENIED,
    k8s.REASON_DENIED_WARN_ONLY: k8s.EVENT_VIOLATIONS_WARNED,
    k8s.REASON_DENIED_DRY_RUN: k8s.EVENT_VIOLATIONS_RECORDED,
}


class Course(StrEnum):
    """What happens to the RayService."""

    RUN = "run"
    SUSPEND = "suspend"
    HOLD = "hold"


# What each action of the judgement API means for a deployment's RayService (see the module table).
_COURSES = {
    Action.ADMIT: Course.RUN,
    Action.WARN: Course.RUN,
    Action.RECORD: Course.RUN,
    Action.REFUSE: Course.SUSPEND,
    Action.HOLD: Course.HOLD,
}


@dataclass(frozen=True)
class Resolution:
    """A judgement resolved for one deployment on its cluster: its course and the status that says so."""

    action: Action  # what the judgement means on the cluster (Judgement.action)
    compliant: Status
    reason: str  # PolicyCompliant's reason
    message: str
    allowed: bool | None
    violations: list[dict[str, Any]] = field(default_factory=list)
    obligations: list[dict[str, Any]] = field(default_factory=list)
    revision: str | None = None
    engine: str | None = None
    judged: DecisionInput | None = None  # the facts judged: what a RayService that runs is told

    @property
    def course(self) -> Course:
        return _COURSES[self.action]


def resolve(judgement: Judgement, mode: Mode) -> Resolution:
    """What `judgement` means for a deployment on a cluster in enforcement `mode` (see the module table)."""
    action = judgement.action(mode)
    if judgement.verdict is Verdict.UNJUDGEABLE:
        reason, message = judgement.problem or ("NoDecision", "no decision")
        return Resolution(action, "Unknown", reason, message, None)
    common = {
        "violations": list(judgement.violations),
        "obligations": list(judgement.obligations),
        "revision": judgement.policy_revision,
        "engine": judgement.engine,
        "judged": DecisionInput.from_document(judgement.input) if judgement.input else None,
    }
    if judgement.verdict is Verdict.ALLOWED:
        message = "the policy allows this deployment"
        return Resolution(action, "True", k8s.REASON_ALLOWED, message, True, **common)
    if judgement.verdict is Verdict.UNDECIDED:
        reason = conditions.undecided_reason([judgement])
        return Resolution(action, "Unknown", reason, judgement.message, None, **common)
    # Keyed on the action, never the mode: Judgement.action is the one reading of a mode.
    summary = f"denied by the policy: {', '.join(judgement.codes)}"
    reason, message = {
        Action.WARN: (k8s.REASON_DENIED_WARN_ONLY, f"{summary} (warn mode: running)"),
        Action.RECORD: (k8s.REASON_DENIED_DRY_RUN, f"{summary} (dryrun mode: recorded only)"),
    }.get(action, (k8s.REASON_DENIED, summary))
    return Resolution(action, "False", reason, message, False, **common)


@dataclass(frozen=True)
class Applied:
    """The RayService after acting: what it is now, and the Deployed condition and event that say so."""

    phase: str
    exists: bool
    deployed: Status
    reason: str
    message: str
    event: str | None = None  # the event reason, when the RayService changed


Written = Literal["written", "unchanged", "moved-on"]
# Takes a deployment's status to write instead of PATCHing it at once (see Reconciler.converge).
StatusSink = Callable[[Mapping[str, Any], dict[str, Any]], None]


@dataclass
class _Writes:
    """How one deployment's status is written."""

    guard_version: bool  # only if the object is unchanged since it was read
    sink: StatusSink | None  # None: PATCHed at once; else handed over once the deployment is converged
    pending: dict[str, Any] | None = None  # for the sink: the last status written


class _Exists(ApiException):
    """A RayService assumed absent exists (a create answered 409): read it and converge again."""


@dataclass
class Converged:
    changed: int = 0
    held: list[tuple[str, str]] = field(default_factory=list)  # undecided: judge again when the engine is up
    moved_on: list[tuple[str, str]] = field(default_factory=list)  # changed since read: not acted on
    failed: list[tuple[str, str]] = field(default_factory=list)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


class Reconciler:
    def __init__(self, kube: Kube, ray_image: str, compliance: ComplianceReport | None = None) -> None:
        self.kube = kube
        self.ray_image = ray_image
        self.compliance = compliance or ComplianceReport()

    def converge(
        self,
        judge: Judge,
        deployments: list[Mapping[str, Any]],
        clusters: Mapping[str, Mapping[str, Any]],
        claims: Mapping[str, ClusterClaims],
        rayservices: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
        guard_version: bool = False,
        status_to: StatusSink | None = None,
    ) -> Converged:
        """Judge `deployments` in one batched query of `judge`; bring their RayServices and statuses in line.

        `rayservices` (by namespace/name) saves a GET per deployment when the caller listed them all, or
        knows there are none yet (a LlamaDeployment just created): one that exists after all is read when
        its create is refused as a conflict. `guard_version` acts only on objects unchanged since they were
        read (the others are returned). `status_to` takes each status instead of a PATCH now: kopf's patch
        of the object it handles, written with kopf's own bookkeeping in one request once the handler
        returns (so after acting, which is idempotent: a crash in between converges again).
        """
        judgements = judge_deployments(judge, list(deployments), clusters, claims)
        result = Converged()
        for deployment, judgement in zip(deployments, judgements, strict=True):
            cluster = clusters.get(str(deployment["spec"].get("clusterRef"))) or {}
            resolution = resolve(judgement, enforcement_mode(cluster))
            self.compliance.acted(deployment, cluster, resolution.action)
            key = _key(deployment)
            if resolution.course is Course.HOLD:
                result.held.append(key)
            writes = _Writes(guard_version, status_to)
            try:
                actual = rayservices.get(key) if rayservices is not None else self.kube.get_rayservice(*key)
                try:
                    done = self._converge_one(deployment, cluster, resolution, actual, writes)
                except _Exists:
                    writes = _Writes(guard_version, status_to)  # what was planned without it is moot
                    actual = self.kube.get_rayservice(*key)
                    done = self._converge_one(deployment, cluster, resolution, actual, writes)
            except ApiException as exc:
                log.warning("LlamaDeployment %s/%s: %s", *key, api_error(exc))
                result.failed.append(key)
                continue
            finally:
                if status_to is not None and writes.pending is not None:
                    status_to(deployment, writes.pending)
            if done == "moved-on":
                result.moved_on.append(key)
            elif done == "written":
                result.changed += 1
        return result

    # --- one deployment ------------------------------------------------------------------------------
    def _converge_one(
        self,
        deployment: Mapping[str, Any],
        cluster: Mapping[str, Any],
        out: Resolution,
        actual: Mapping[str, Any] | None,
        writes: _Writes,
    ) -> Written:
        meta = deployment["metadata"]
        if actual is not None and rayservice.owner_uid(actual) != meta["uid"]:
            applied = Applied(
                k8s.PHASE_PENDING,
                False,
                "False",
                k8s.REASON_NAME_CONFLICT,
                f"RayService {meta['namespace']}/{meta['name']} exists and is not this LlamaDeployment's: "
                "delete it or rename the LlamaDeployment",
            )
            return self._write(deployment, out, applied, writes)
        # What a RUN course writes, built once (a YAML dump) for the plan and the act alike.
        wanted = self._wanted(deployment, cluster, out) if out.course is Course.RUN else None
        planned = self._plan(deployment, out, actual, wanted)
        written = self._write(deployment, out, planned, writes)
        if written == "moved-on" or (written == "unchanged" and planned.event is None):
            return written
        try:
            self._act(deployment, out, actual, wanted)
        except _Exists:
            raise
        except ApiException as exc:
            failed = Applied(
                k8s.PHASE_PENDING, actual is not None, "False", k8s.REASON_APPLY_FAILED, api_error(exc)
            )
            self._write(deployment, out, failed, writes, guarded=False)
            self._event(deployment, k8s.EVENT_WARNING, k8s.EVENT_RAYSERVICE_APPLY_FAILED, api_error(exc))
            return "written"
        kind = k8s.EVENT_NORMAL if out.compliant == "True" else k8s.EVENT_WARNING
        reasons = [planned.event] if planned.event else []
        if written == "written" and not (planned.event and out.compliant == "True"):
            reasons.append(_DECISION_EVENTS.get(out.reason, out.reason))
        for reason in reasons:
            self._event(deployment, kind, reason, f"{planned.message}; {out.message}")
        return "written"

    def _plan(
        self,
        deployment: Mapping[str, Any],
        out: Resolution,
        actual: Mapping[str, Any] | None,
        wanted: Mapping[str, Any] | None,
    ) -> Applied:
        """The state the action will leave, without acting yet (the status says so before the act, or in
        kopf's patch right after it)."""
        name = "RayService {}/{}".format(*_key(deployment))
        if wanted is not None:
            if actual is None:
                event: str | None = k8s.EVENT_RAYSERVICE_CREATED
            elif rayservice.is_suspended(actual):
                event = k8s.EVENT_RAYSERVICE_RESUMED
            elif not rayservice.is_current(actual, wanted):
                event = k8s.EVENT_RAYSERVICE_UPDATED
            else:
                event = None
            return Applied(k8s.PHASE_RUNNING, True, "True", k8s.REASON_APPLIED, f"{name} runs", event)
        if actual is None:
            if out.course is Course.HOLD:
                return Applied(
                    k8s.PHASE_PENDING,
                    False,
                    "False",
                    k8s.REASON_AWAITING_DECISION,
                    f"{name} waits for a decision",
                )
            return Applied(
                k8s.PHASE_REFUSED, False, "False", k8s.REASON_NOT_CREATED, f"{name} is not created"
            )
        if out.course is Course.HOLD:
            if rayservice.is_suspended(actual):
                return Applied(
                    k8s.PHASE_SUSPENDED, True, "False", k8s.REASON_SUSPENDED, f"{name} stays suspended"
                )
            return Applied(k8s.PHASE_RUNNING, True, "True", k8s.REASON_APPLIED, f"{name} keeps running")
        event = None if rayservice.is_suspended(actual) else k8s.EVENT_RAYSERVICE_SUSPENDED
        return Applied(
            k8s.PHASE_SUSPENDED, True, "False", k8s.REASON_SUSPENDED, f"{name} is suspended", event
        )

    def _act(
        self,
        deployment: Mapping[str, Any],
        out: Resolution,
        actual: Mapping[str, Any] | None,
        wanted: dict[str, Any] | None,
    ) -> None:
        namespace, name = _key(deployment)
        if wanted is not None:
            if actual is None:
                try:
                    self.kube.create_rayservice(wanted)
                    return
                except ApiException as exc:
                    if exc.status == 409:  # there after all (a retry after a crash, a name taken): read it
                        raise _Exists(status=409, reason=exc.reason) from None
                    raise
            elif rayservice.is_current(actual, wanted):
                return
            self.kube.restore_rayservice(namespace, name, rayservice.restoration(wanted))
        elif out.course is Course.SUSPEND and actual is not None and not rayservice.is_suspended(actual):
            self.kube.patch_rayservice(namespace, name, rayservice.SUSPEND_PATCH)

    def _wanted(
        self, deployment: Mapping[str, Any], cluster: Mapping[str, Any], out: Resolution
    ) -> dict[str, Any]:
        if out.judged is None:  # a RUN course comes only from a judgement the policy made on an input
            raise RuntimeError("a RayService is written only for a judged deployment")
        return rayservice.desired(deployment, cluster, out.judged, self.ray_image)

    # --- status and events ---------------------------------------------------------------------------
    def _status(self, deployment: Mapping[str, Any], out: Resolution, applied: Applied) -> dict[str, Any]:
        meta = deployment["metadata"]
        generation = int(meta.get("generation") or 0)
        old = (deployment.get("status") or {}).get("conditions")
        return {
            "observedGeneration": generation,
            "phase": applied.phase,
            "gpus": deployment_gpus(deployment),
            "rayService": meta["name"] if applied.exists else None,
            "policy": {"allowed": out.allowed, "revision": out.revision, "engine": out.engine},
            "violations": out.violations,
            "obligations": out.obligations,
            "conditions": conditions.stamped(
                [
                    conditions.condition(
                        k8s.CONDITION_POLICY_COMPLIANT, out.compliant, out.reason, out.message, generation
                    ),
                    conditions.condition(
                        k8s.CONDITION_DEPLOYED, applied.deployed, applied.reason, applied.message, generation
                    ),
                ],
                old,
            ),
        }

    @staticmethod
    def _essence(status: Mapping[str, Any] | None) -> dict[str, Any]:
        """What a status says, less timestamps and the revision/engine that last confirmed it: a status is
        rewritten when the outcome changes, not each time a new policy revision agrees with it."""
        status = dict(status or {})
        policy = dict(status.pop("policy", None) or {})
        return {
            **{k: status.get(k) for k in ("observedGeneration", "phase", "gpus", "rayService")},
            "allowed": policy.get("allowed"),
            "violations": status.get("violations") or [],
            "obligations": status.get("obligations") or [],
            "conditions": conditions.without_times(status.get("conditions")),
        }

    def _write(
        self,
        deployment: Mapping[str, Any],
        out: Resolution,
        applied: Applied,
        writes: _Writes,
        guarded: bool = True,
    ) -> Written:
        """Write the status if it changes; "moved-on" when the object changed since it was read."""
        status = self._status(deployment, out, applied)
        if self._essence(status) == self._essence(deployment.get("status")):
            return "unchanged"
        if writes.sink is not None:
            writes.pending = status
            return "written"
        namespace, name = _key(deployment)
        version = deployment["metadata"].get("resourceVersion") if writes.guard_version and guarded else None
        try:
            self.kube.patch_status(k8s.DEPLOYMENTS, namespace, name, status, version)
        except ApiException as exc:
            if exc.status == 409:  # changed since we read it: kopf's handler judges the newer version
                return "moved-on"
            raise
        return "written"

    def _event(self, deployment: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        try:
            self.kube.event(dict(deployment), kind, reason, message)
        except ApiException as exc:  # an event is a record, not a reason to fail the reconcile
            log.warning("cannot record event %s: %s", reason, api_error(exc))

    def remove(self, deployment: Mapping[str, Any]) -> None:
        """The LlamaDeployment is gone: delete the RayService it controlled (and nothing of another's)."""
        self.compliance.removed(deployment)
        namespace, name = _key(deployment)
        actual = self.kube.get_rayservice(namespace, name)
        if actual is not None and rayservice.owner_uid(actual) == deployment["metadata"]["uid"]:
            log.info("deleting RayService %s/%s with its LlamaDeployment", namespace, name)
            self.kube.delete_rayservice(namespace, name, actual["metadata"]["uid"])
