"""GPUs held by deployments, read from the objects the API server returns (plain dicts).

A RayService holds the GPUs its head and worker group containers ask for (`nvidia.com/gpu` limits,
times replicas and hosts per replica) unless it is suspended or being deleted. KubeRay's schema makes
these fields well-typed; an object that still cannot be read is left out and named in the problems
returned beside the result, so one bad object never hides the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.utils import parse_quantity

from sovereign.exporter.placement import Workload
from sovereign.vocabulary import GPU_RESOURCE, LABEL_CLUSTER, LABEL_MODEL, LABEL_REGION, LABEL_TENANT

UNKNOWN = "unknown"
_FINISHED_PHASES = {"Succeeded", "Failed"}


@dataclass(frozen=True, order=True)
class AllocationKey:
    region: str
    cluster: str
    model: str
    tenant: str


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata", {})
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', 'object')} {where}{meta.get('name', '?')}"


def _pod_gpus(pod_spec: Mapping[str, Any]) -> int:
    total = 0
    for container in pod_spec.get("containers") or []:
        limit = ((container.get("resources") or {}).get("limits") or {}).get(GPU_RESOURCE)
        if limit is not None:
            total += int(parse_quantity(limit))
    return total


def _gpus(rayservice: Mapping[str, Any], scale: Callable[[Mapping[str, Any]], int]) -> int:
    """The head's GPUs plus each worker group's, at `scale(group)` pods of it."""
    try:
        cluster = rayservice["spec"]["rayClusterConfig"]
        gpus = _pod_gpus(cluster["headGroupSpec"]["template"].get("spec") or {})
        for group in cluster.get("workerGroupSpecs") or []:
            per_pod = _pod_gpus(group["template"].get("spec") or {})
            gpus += per_pod * scale(group) * int(group.get("numOfHosts", 1))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{_name(rayservice)}: cannot read its GPU requests ({exc!r})") from exc
    return gpus


def requested_gpus(rayservice: Mapping[str, Any]) -> int:
    """GPUs a RayService holds at its declared size."""
    return _gpus(rayservice, lambda group: int(group.get("replicas", group.get("minReplicas", 0))))


def most_gpus(rayservice: Mapping[str, Any]) -> int:
    """GPUs a RayService may hold at its largest: each worker group at the most of its replicas,
    minReplicas and maxReplicas (an autoscaler may take it to maxReplicas)."""
    return _gpus(
        rayservice,
        lambda group: max(int(group.get(key) or 0) for key in ("replicas", "minReplicas", "maxReplicas")),
    )


def is_running(rayservice: Mapping[str, Any]) -> bool:
    suspended = (rayservice.get("spec", {}).get("rayClusterConfig") or {}).get("suspend") is True
    return not suspended and not rayservice.get("metadata", {}).get("deletionTimestamp")


def allocation(
    rayservices: Iterable[Mapping[str, Any]], tenant: Callable[[str | None], str]
) -> tuple[dict[AllocationKey, int], list[str]]:
    """GPUs held per region/cluster/model/tenant by the running RayServices, and the unreadable ones."""
    held: dict[AllocationKey, int] = {}
    problems = []
    for rs in rayservices:
        if not is_running(rs):
            continue
        try:
            gpus = requested_gpus(rs)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        labels = rs.get("metadata", {}).get("labels") or {}
        key = AllocationKey(
            region=labels.get(LABEL_REGION) or UNKNOWN,
            cluster=labels.get(LABEL_CLUSTER) or UNKNOWN,
            model=labels.get(LABEL_MODEL) or UNKNOWN,
            tenant=tenant(labels.get(LABEL_TENANT)),
        )
        held[key] = held.get(key, 0) + gpus
    return held, problems


def workloads(pods: Iterable[Mapping[str, Any]], default: Workload) -> tuple[set[Workload], list[str]]:
    """The deployments holding GPUs among these pods (missing region/cluster labels take the default's),
    and the pods that could not be read."""
    found = set()
    problems = []
    for pod in pods:
        meta = pod.get("metadata", {})
        if (pod.get("status") or {}).get("phase") in _FINISHED_PHASES or meta.get("deletionTimestamp"):
            continue
        try:
            if not _pod_gpus(pod.get("spec") or {}):
                continue
        except (TypeError, ValueError) as exc:
            problems.append(f"{_name(pod)}: cannot read its GPU limits ({exc!r})")
            continue
        labels = meta.get("labels") or {}
        found.add(
            Workload(
                region=labels.get(LABEL_REGION, default.region),
                cluster=labels.get(LABEL_CLUSTER, default.cluster),
                model=labels.get(LABEL_MODEL, ""),
                namespace=meta.get("namespace", ""),
            )
        )
    return found, problems
