"""The facts the operator gathers before a judgement: each deployment's cluster, and the GPUs its elders hold.

Python gathers facts here and never judges: inputs are formed by the one mapping
(`sovereign.policy.subjects.deployment_input`) and judged by the one `Judge`, in ONE batched evaluation. A
deployment whose input cannot be formed (its cluster is gone, its spec is unreadable) is UNJUDGEABLE, and
what that means is `Judgement.action`'s to say.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from operators.sovereign_operator.rayservice import owner_uid as rayservice_owner_uid
from sovereign import vocabulary as k8s
from sovereign.errors import BadInput
from sovereign.exporter.allocation import is_running, most_gpus
from sovereign.policy.decision_input import DecisionInput
from sovereign.policy.judgement import Judge, Judgement, Subject
from sovereign.policy.subjects import deployment_gpus, deployment_input


@dataclass(frozen=True)
class Claim:
    """GPUs one LlamaDeployment (or a RayService made directly) asks for, and whether it holds them now."""

    key: tuple[str, str]  # namespace, name
    created: str  # creationTimestamp (RFC 3339 UTC, so it sorts as text)
    gpus: int
    holds: bool


def claim_of(deployment: Mapping[str, Any]) -> Claim:
    meta = deployment.get("metadata") or {}
    return Claim(
        key=(str(meta.get("namespace")), str(meta.get("name"))),
        created=str(meta.get("creationTimestamp") or ""),
        gpus=deployment_gpus(deployment),
        holds=(deployment.get("status") or {}).get("phase") == k8s.PHASE_RUNNING,
    )


def rayservice_claim(rs: Mapping[str, Any]) -> tuple[str, Claim] | None:
    """The claim of a RayService no LlamaDeployment owns (made directly, admitted on what it would run),
    by its cluster: the most GPUs it may scale to, held while it is not suspended. None for the operator's
    own RayServices (their LlamaDeployments claim them) and for one naming no cluster."""
    meta = rs.get("metadata") or {}
    ref = (meta.get("labels") or {}).get(k8s.LABEL_CLUSTER)
    if not ref or rayservice_owner_uid(rs) is not None:
        return None
    try:
        gpus = most_gpus(rs)
    except ValueError:
        gpus = 0  # unreadable: admission refused it; nothing it could hold is known
    claim = Claim(
        key=(str(meta.get("namespace")), str(meta.get("name"))),
        created=str(meta.get("creationTimestamp") or ""),
        gpus=gpus,
        holds=is_running(rs),
    )
    return str(ref), claim


# The kinds of object that claim GPUs, in the order a claim's creation time is looked up by name: a
# LlamaDeployment's before a RayService's of the same name.
_KINDS = (k8s.LLAMA_DEPLOYMENT, k8s.RAY_SERVICE)


class ClusterClaims:
    """Every claim on one cluster, by the object making it (its kind and namespace/name), with the GPUs
    held kept in creation order and summed as they go: the GPUs a deployment's elders hold are a bisection
    and a lookup (judging each of a rollout's n deployments by a pass over every claim was n² steps).
    Changed as objects come and go (`put`, `drop`) while handler threads read it: one lock guards it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claims: dict[tuple[str, tuple[str, str]], Claim] = {}
        self._held: list[tuple[str, tuple[str, str], str]] = []  # (created, key, kind) of holders, sorted
        self._gpus: list[int] = []  # the GPUs of each of _held
        self._sums: list[int] | None = None  # GPUs of _held[:i] at i; rebuilt on the next read of a change

    def put(self, kind: str, claim: Claim) -> None:
        """`kind`'s object `claim.key` claims `claim` now (in place of what it claimed before)."""
        with self._lock:
            self._remove(kind, claim.key)
            self._claims[(kind, claim.key)] = claim
            if claim.holds:
                entry = (claim.created, claim.key, kind)
                index = bisect_left(self._held, entry)
                self._held.insert(index, entry)
                self._gpus.insert(index, claim.gpus)

    def drop(self, kind: str, key: tuple[str, str]) -> None:
        """`kind`'s object `key` claims nothing (it is gone)."""
        with self._lock:
            self._remove(kind, key)

    def _remove(self, kind: str, key: tuple[str, str]) -> None:
        old = self._claims.pop((kind, key), None)
        if old is not None and old.holds:
            index = bisect_left(self._held, (old.created, key, kind))
            del self._held[index], self._gpus[index]
        self._sums = None

    def created(self, key: tuple[str, str]) -> str | None:
        """When the object named `key` first claimed its GPUs (a LlamaDeployment's, else a RayService's)."""
        with self._lock:
            found = (self._claims.get((kind, key)) for kind in _KINDS)
            return next((claim.created for claim in found if claim is not None), None)

    def held_before(self, own: Claim) -> int:
        """GPUs held by the claims older than `own` (by creation time, then name; all of them when `own` is
        not created yet), none of its own name's counted."""
        with self._lock:
            if self._sums is None:
                self._sums = list(accumulate(self._gpus, initial=0))
            place = (own.created, own.key)
            held = self._sums[bisect_left(self._held, place) if own.created else len(self._held)]
            for kind in _KINDS:  # its own name's claims that sort ahead of it (another kind, a name reused)
                claim = self._claims.get((kind, own.key))
                if claim is not None and claim.holds and (not own.created or claim.created < own.created):
                    held -= claim.gpus
            return held


class ClaimLedger:
    """Every cluster's claims, kept as the objects making them come, change, move clusters and go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clusters: dict[str, ClusterClaims] = {}
        self._where: dict[tuple[str, tuple[str, str]], str] = {}  # (kind, key) -> the cluster it claims on

    def on(self, ref: str) -> ClusterClaims:
        """The claims on cluster `ref`, kept up to date (none made yet: an empty set, kept nowhere, so a
        review naming a cluster that does not exist leaves nothing behind)."""
        with self._lock:
            return self._clusters.get(ref) or ClusterClaims()

    def put(self, kind: str, ref: str, claim: Claim) -> None:
        """`kind`'s object `claim.key` claims `claim` on cluster `ref` now, and nothing elsewhere."""
        with self._lock:
            before = self._where.get((kind, claim.key))
            self._where[(kind, claim.key)] = ref
            cluster = self._clusters.setdefault(ref, ClusterClaims())
            moved_from = self._clusters.get(before) if before not in (None, ref) else None
        if moved_from is not None:
            moved_from.drop(kind, claim.key)
        cluster.put(kind, claim)

    def drop(self, kind: str, key: tuple[str, str]) -> None:
        """`kind`'s object `key` claims nothing (it is gone, or not a claim any more)."""
        with self._lock:
            ref = self._where.pop((kind, key), None)
            cluster = self._clusters.get(ref) if ref is not None else None
        if cluster is not None:
            cluster.drop(kind, key)


def claims_by_cluster(
    deployments: Iterable[Mapping[str, Any]], rayservices: Iterable[Mapping[str, Any]] = ()
) -> dict[str, ClusterClaims]:
    """Every claim on each cluster, from a listing: the LlamaDeployments', and the RayServices' made
    directly."""
    claims: dict[str, ClusterClaims] = {}
    for deployment in deployments:
        ref = str(deployment["spec"].get("clusterRef"))
        claims.setdefault(ref, ClusterClaims()).put(k8s.LLAMA_DEPLOYMENT, claim_of(deployment))
    for rs in rayservices:
        if (direct := rayservice_claim(rs)) is not None:
            claims.setdefault(direct[0], ClusterClaims()).put(k8s.RAY_SERVICE, direct[1])
    return claims


def gpus_in_use(deployment: Mapping[str, Any], claims: ClusterClaims | None) -> int:
    """GPUs the cluster's other deployments hold, counting only those created before this one.

    Judging each deployment against its elders (in creation order) means a quota overrun stops the
    newest deployments, not every deployment on the cluster; a deployment not created yet (admission)
    is younger than all.
    """
    return 0 if claims is None else claims.held_before(claim_of(deployment))


def deployment_facts(
    deployment: Mapping[str, Any],
    clusters: Mapping[str, Mapping[str, Any]],
    claims: Mapping[str, ClusterClaims],
) -> DecisionInput | Judgement:
    """One deployment's decision input, or the UNJUDGEABLE judgement saying why it has none."""
    ref = str((deployment.get("spec") or {}).get("clusterRef"))
    cluster = clusters.get(ref)
    if cluster is None:
        message = f"SovereignCluster {ref} does not exist: create it, or fix spec.clusterRef"
        return Judgement.unjudgeable(k8s.REASON_CLUSTER_NOT_FOUND, message)
    try:
        return deployment_input(cluster, deployment, gpus_in_use=gpus_in_use(deployment, claims.get(ref)))
    except BadInput as exc:
        return Judgement.unjudgeable(k8s.REASON_INVALID_SPEC, str(exc))


# A deployment -> `input.weights` for its checkpoint, the UNJUDGEABLE judgement when it must be read and
# cannot be, or None when weights are not judged here (operators.sovereign_operator.weights_mounts).
WeightsGatherer = Callable[[Mapping[str, Any]], "dict[str, Any] | Judgement | None"]


def deployment_documents(
    judge: Judge,
    deployments: list[Mapping[str, Any]],
    clusters: Mapping[str, Mapping[str, Any]],
    claims: Mapping[str, ClusterClaims],
    workload: Mapping[str, Any] | None = None,
    weights: WeightsGatherer | None = None,
) -> list[dict[str, Any] | Judgement]:
    """The policy inputs of `deployments`, in order (an UNJUDGEABLE judgement where none can be formed);
    `workload`: what the RayService they stand for would run (admission of a RayService as submitted);
    `weights`: the checkpoints' facts (admission, where the operator mounts the model store)."""
    docs: list[dict[str, Any] | Judgement] = []
    for deployment in deployments:
        facts = deployment_facts(deployment, clusters, claims)
        if isinstance(facts, Judgement):
            docs.append(facts)
            continue
        checkpoint = weights(deployment) if weights is not None else None
        if isinstance(checkpoint, Judgement):
            docs.append(checkpoint)
            continue
        ran = dict(workload) if workload is not None else None
        docs.append(judge.policy_input(facts, workload=ran, weights=checkpoint))
    return docs


def judge_deployments(
    judge: Judge,
    deployments: list[Mapping[str, Any]],
    clusters: Mapping[str, Mapping[str, Any]],
    claims: Mapping[str, ClusterClaims],
    workload: Mapping[str, Any] | None = None,
    weights: WeightsGatherer | None = None,
    about: str | None = None,
) -> list[Judgement]:
    """Judgements in order, from ONE batched evaluation (see `deployment_documents`); `about`: the object
    judged when it is not the deployments themselves (that RayService), as the decision records name it."""
    subjects = [Subject(about or subject_name(d)) for d in deployments]
    documents = deployment_documents(judge, deployments, clusters, claims, workload, weights)
    return judge.judge_documents(documents, subjects)


def subject_name(obj: Mapping[str, Any]) -> str:
    """How a decision record names a Kubernetes object: kind namespace/name (kind name when cluster-wide)."""
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', 'object')} {where}{meta.get('name')}"
