"""Policy drift: re-judge every LlamaDeployment, in one batched query, whenever the answer may have changed.

A full pass runs at start, then when the policy bundle revision changes, when the decision date changes
(an accreditation valid through yesterday is expired today), when the screening list file changes, and
every recheck interval whatever happened. Each tick only asks the engine for its revision; while the
engine cannot answer, nothing is re-judged and nothing is changed (see reconcile.py on holding).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from kubernetes.client.exceptions import ApiException

from operators.sovereign_operator import rayservice
from operators.sovereign_operator.admission import Admission
from operators.sovereign_operator.facts import claims_by_cluster, rayservice_claim
from operators.sovereign_operator.kube import Kube, api_error
from operators.sovereign_operator.reconcile import Converged, Reconciler
from sovereign.exporter.engine_health import observe_engine
from sovereign.policy.judgement import Action, Judge, Judgement, Verdict
from sovereign.vocabulary import (
    CLUSTERS,
    DEPLOYMENTS,
    LABEL_REQUEST_UID,
    RAY_GROUP,
    RAY_VERSION,
    RAYSERVICES,
    REQUESTS,
)

log = logging.getLogger(__name__)
_RETRIES = 2  # re-reads of objects that changed between the list and the status write


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


class DeploymentFleet:
    """Every LlamaDeployment, read in one list per kind and converged together."""

    def __init__(self, kube: Kube, reconciler: Reconciler, judge: Judge) -> None:
        self.kube = kube
        self.reconciler = reconciler
        self.judge = judge

    def converge(self, cluster: str | None = None) -> Converged:
        """Converge every deployment (or those on `cluster`), then remove what lost its owner."""
        total = Converged()
        keys: set[tuple[str, str]] | None = None
        for _ in range(1 + _RETRIES):
            # Dependents before owners: a RayService listed here whose LlamaDeployment is missing from the
            # later list is really orphaned, never one created between the two lists.
            rayservices = {_key(rs): rs for rs in self.kube.list_all(RAYSERVICES, RAY_GROUP, RAY_VERSION)}
            deployments = self.kube.list_all(DEPLOYMENTS)
            clusters = {c["metadata"]["name"]: c for c in self.kube.list_all(CLUSTERS)}
            if keys is None:
                self._sweep(deployments, rayservices)
            chosen = [
                d
                for d in deployments
                if (cluster is None or d["spec"].get("clusterRef") == cluster)
                and (keys is None or _key(d) in keys)
            ]
            self.reconciler.compliance.listed(deployments, clusters.values())
            result = self.reconciler.converge(
                self.judge,
                chosen,
                clusters,
                claims_by_cluster(deployments, rayservices.values()),
                rayservices,
                guard_version=True,
            )
            total.changed += result.changed
            total.held += result.held
            total.failed += result.failed
            if not result.moved_on:
                break
            keys = set(result.moved_on)
        self._rejudge_direct(deployments, clusters, rayservices, cluster)
        return total

    def _rejudge_direct(
        self,
        deployments: list[Mapping[str, Any]],
        clusters: Mapping[str, Mapping[str, Any]],
        rayservices: Mapping[tuple[str, str], Mapping[str, Any]],
        cluster: str | None,
    ) -> None:
        """RayServices made directly were admitted on what they would run; the policy may have changed
        since: one the policy now refuses is suspended (a person resumes it, and admission judges it
        again); one nothing can be decided about is left as it is, as a LlamaDeployment's would be."""
        claims = claims_by_cluster(deployments, rayservices.values())
        admission = Admission(self.judge)
        for key, rs in rayservices.items():
            direct = rayservice_claim(rs)
            if direct is None or rayservice.is_suspended(rs) or cluster not in (None, direct[0]):
                continue
            if admission.rayservice_action(rs, clusters, claims) is Action.REFUSE:
                log.info("suspending RayService %s/%s: the policy refuses it now", *key)
                try:
                    self.kube.patch_rayservice(*key, rayservice.SUSPEND_PATCH)
                except ApiException as exc:
                    log.warning("cannot suspend RayService %s/%s: %s", *key, api_error(exc))

    def _sweep(
        self, deployments: list[Mapping[str, Any]], rayservices: Mapping[tuple[str, str], Mapping[str, Any]]
    ) -> None:
        """Delete RayServices whose LlamaDeployment is gone, and SovereignClusters whose ClusterRequest is.

        Kubernetes' garbage collector does this through owner references where it runs; this covers the
        deletions missed while the operator was down, and control planes without a collector.
        """
        live = {d["metadata"]["uid"] for d in deployments}
        for rs in rayservices.values():
            owner = rayservice.owner_uid(rs)
            if owner is not None and owner not in live:
                self._delete_rayservice(rs)
        made = self.kube.list_all(CLUSTERS)  # before their requests, as above
        requests = {r["metadata"]["uid"] for r in self.kube.list_all(REQUESTS)}
        for cluster in made:
            made_for = ((cluster.get("metadata") or {}).get("labels") or {}).get(LABEL_REQUEST_UID)
            if made_for and made_for not in requests:
                log.info(
                    "deleting SovereignCluster %s: its ClusterRequest is gone", cluster["metadata"]["name"]
                )
                self.kube.delete_cluster(cluster["metadata"]["name"], cluster["metadata"]["uid"])

    def _delete_rayservice(self, rs: Mapping[str, Any]) -> None:
        namespace, name = _key(rs)
        log.info("deleting RayService %s/%s: its LlamaDeployment is gone", namespace, name)
        try:
            self.kube.delete_rayservice(namespace, name, rs["metadata"]["uid"])
        except ApiException as exc:
            log.warning("cannot delete RayService %s/%s: %s", namespace, name, api_error(exc))


def policy_revision(judge: Judge) -> str | None:
    """The revision the judge's engine judges with now; None when it cannot judge. The probe is also the
    operator's engine health check (`sovereign_policy_engine_up{point="admission"}`)."""
    # Asked of the engine, not the judge: a probe is no decision, and leaves no decision record.
    probe = Judgement.of(judge.engine.decide({}))
    observe_engine("admission", probe)
    return None if probe.verdict is Verdict.UNDECIDED else probe.policy_revision


class DriftWatcher:
    def __init__(
        self,
        fleet: DeploymentFleet,
        judge: Judge,
        recheck_s: float,
        clock: Callable[[], float] = time.monotonic,
        screening_version: Callable[[], object] = lambda: None,
    ) -> None:
        self.fleet = fleet
        self.judge = judge
        self.recheck_s = recheck_s
        self.clock = clock
        self.screening_version = screening_version
        self.revision: str | None = None
        self.as_of: date | None = None
        self.screened_with: object = None
        self.last_pass = float("-inf")
        self.held = 0  # deployments the last pass could not judge (the engine failed mid-pass)

    def _due(self, revision: str, as_of: date, screened_with: object) -> str | None:
        if self.held:
            return f"{self.held} deployments held while the engine could not judge"
        if revision != self.revision:
            return f"policy revision {self.revision or '(none)'} -> {revision}"
        if as_of != self.as_of:
            return f"decision date {self.as_of} -> {as_of}"
        if screened_with != self.screened_with:
            return "the screening list changed"
        if self.clock() - self.last_pass >= self.recheck_s:
            return f"recheck every {self.recheck_s:.0f} s"
        return None

    def tick(self) -> str | None:
        """One check; runs a full pass when one is due and returns why it ran (None: not due, or the
        engine cannot judge now)."""
        revision, as_of, screened_with = (
            policy_revision(self.judge),
            self.judge.today(),
            self.screening_version(),
        )
        reason = self._due(revision, as_of, screened_with) if revision is not None else None
        if reason is None:
            return None
        started = self.clock()
        result = self.fleet.converge()
        log.info(
            "drift pass (%s): %d statuses changed, %d held, %d failed, in %.1f s",
            reason,
            result.changed,
            len(result.held),
            len(result.failed),
            self.clock() - started,
        )
        self.revision, self.as_of, self.screened_with, self.last_pass = (
            revision,
            as_of,
            screened_with,
            started,
        )
        self.held = len(result.held)
        return reason

    def run(self, stop: threading.Event, interval_s: float) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # one failed pass (API server away) must not end drift detection
                log.exception("drift pass failed; retrying in %.0f s", interval_s)
            stop.wait(interval_s)
