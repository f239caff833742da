"""Judging many LlamaDeployments at once: gather each one's decision input, ask the engine ONE batched query.

Python gathers facts here (the cluster, GPUs already held, screening hits) and never judges: a deployment
whose input cannot be formed (its cluster is gone, its spec is unreadable) gets no decision, and what that
means is up to the reconciler's fail-closed rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from operators.manifests import decision_input, deployment_gpus
from sovereign.errors import BadInput
from sovereign.policy.engine import PolicyEngine

RUNNING = "Running"

# Reasons a deployment has no decision.
CLUSTER_NOT_FOUND = "ClusterNotFound"
INVALID_SPEC = "InvalidSpec"


@dataclass(frozen=True)
class Claim:
    """GPUs one LlamaDeployment asks for, and whether its RayService holds them now."""

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
        holds=(deployment.get("status") or {}).get("phase") == RUNNING,
    )


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


@dataclass(frozen=True)
class Verdict:
    """The policy's decision on one deployment, or why none could be asked for."""

    decision: dict[str, Any] | None = None
    problem: tuple[str, str] | None = None  # (reason, message)


Screen = Callable[[str], list[dict[str, Any]]]


class Judge:
    """Forms decision inputs through operators.manifests.decision_input and asks one engine."""

    def __init__(self, engine: PolicyEngine, as_of: Callable[[], date], screen: Screen) -> None:
        self.engine = engine
        self.as_of = as_of
        # Screening is fuzzy matching over the whole list: once per operator name is enough.
        self._screen = cache(screen)

    def inputs(
        self,
        deployments: list[Mapping[str, Any]],
        clusters: Mapping[str, Mapping[str, Any]],
        claims: Mapping[str, list[Claim]],
    ) -> list[dict[str, Any] | Verdict]:
        """Each deployment's policy input, or a Verdict saying why it has none."""
        today = self.as_of()
        result: list[dict[str, Any] | Verdict] = []
        for deployment in deployments:
            ref = str((deployment.get("spec") or {}).get("clusterRef"))
            cluster = clusters.get(ref)
            if cluster is None:
                message = f"SovereignCluster {ref} does not exist: create it, or fix spec.clusterRef"
                result.append(Verdict(problem=(CLUSTER_NOT_FOUND, message)))
                continue
            try:
                inp = decision_input(
                    cluster, deployment, gpus_in_use=gpus_in_use(deployment, claims.get(ref, [])), as_of=today
                )
            except BadInput as exc:
                result.append(Verdict(problem=(INVALID_SPEC, str(exc))))
                continue
            result.append(inp.policy_input(self._screen(inp.cluster.operator.name)))
        return result

    def verdicts(
        self,
        deployments: list[Mapping[str, Any]],
        clusters: Mapping[str, Mapping[str, Any]],
        claims: Mapping[str, list[Claim]],
    ) -> list[Verdict]:
        """Verdicts in order, from ONE batched evaluation of the distinct inputs."""
        formed = self.inputs(deployments, clusters, claims)
        return decide_batched(formed, self.engine)


def decide_batched(formed: list[dict[str, Any] | Verdict], engine: PolicyEngine) -> list[Verdict]:
    """One `decide_many` over the distinct inputs (a decision depends on its input only, and many
    deployments share one: same cluster, model and size), mapped back in order."""
    positions: dict[str, int] = {}
    unique: list[dict[str, Any]] = []
    slots: list[int | Verdict] = []
    for item in formed:
        if isinstance(item, Verdict):
            slots.append(item)
            continue
        key = json.dumps(item, sort_keys=True)
        if key not in positions:
            positions[key] = len(unique)
            unique.append(item)
        slots.append(positions[key])
    decisions = engine.decide_many(unique) if unique else []
    return [slot if isinstance(slot, Verdict) else Verdict(decision=decisions[slot]) for slot in slots]
