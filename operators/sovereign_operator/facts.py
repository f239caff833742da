"""The facts the operator gathers before a judgement: each deployment's cluster, and the GPUs its elders hold.

Python gathers facts here and never judges: inputs are formed by the one mapping
(`sovereign.policy.subjects.deployment_input`) and judged by the one `Judge`, in ONE batched evaluation. A
deployment whose input cannot be formed (its cluster is gone, its spec is unreadable) is UNJUDGEABLE, and
what that means is `Judgement.action`'s to say.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
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


def claims_by_cluster(
    deployments: Iterable[Mapping[str, Any]], rayservices: Iterable[Mapping[str, Any]] = ()
) -> dict[str, list[Claim]]:
    """Every claim on each cluster: the LlamaDeployments', and the RayServices' made directly."""
    claims: dict[str, list[Claim]] = {}
    for deployment in deployments:
        claims.setdefault(str(deployment["spec"].get("clusterRef")), []).append(claim_of(deployment))
    for rs in rayservices:
        if (direct := rayservice_claim(rs)) is not None:
            claims.setdefault(direct[0], []).append(direct[1])
    return claims


def gpus_in_use(deployment: Mapping[str, Any], claims: Iterable[Claim]) -> int:
    """GPUs the cluster's other deployments hold, counting only those created before this one.

    Judging each deployment against its elders (in creation order) means a quota overrun stops the
    newest deployments, not every deployment on the cluster; a deployment not created yet (admission)
    is younger than all.
    """
    own = claim_of(deployment)
    return sum(
        c.gpus
        for c in claims
        if c.key != own.key and c.holds and (not own.created or (c.created, c.key) < (own.created, own.key))
    )


def deployment_facts(
    deployment: Mapping[str, Any],
    clusters: Mapping[str, Mapping[str, Any]],
    claims: Mapping[str, list[Claim]],
) -> DecisionInput | Judgement:
    """One deployment's decision input, or the UNJUDGEABLE judgement saying why it has none."""
    ref = str((deployment.get("spec") or {}).get("clusterRef"))
    cluster = clusters.get(ref)
    if cluster is None:
        message = f"SovereignCluster {ref} does not exist: create it, or fix spec.clusterRef"
        return Judgement.unjudgeable(k8s.REASON_CLUSTER_NOT_FOUND, message)
    try:
        return deployment_input(cluster, deployment, gpus_in_use=gpus_in_use(deployment, claims.get(ref, [])))
    except BadInput as exc:
        return Judgement.unjudgeable(k8s.REASON_INVALID_SPEC, str(exc))


# A deployment -> `input.weights` for its checkpoint, the UNJUDGEABLE judgement when it must be read and
# cannot be, or None when weights are not judged here (operators.sovereign_operator.weights_mounts).
WeightsGatherer = Callable[[Mapping[str, Any]], "dict[str, Any] | Judgement | None"]


def deployment_documents(
    judge: Judge,
    deployments: list[Mapping[str, Any]],
    clusters: Mapping[str, Mapping[str, Any]],
    claims: Mapping[str, list[Claim]],
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
    claims: Mapping[str, list[Claim]],
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
