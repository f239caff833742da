"""Which deployment this node's GPUs serve: the sovereignty labels joined onto every DCGM series.

The deployment is read from the pods the API server has bound to this node that request GPUs and carry
the `sovereign.dev/*` labels the operator puts on the RayService pod templates. Which GPU belongs to
which pod is only known to the kubelet (its pod-resources socket), so the join is per node: when one
deployment holds GPUs here every GPU gets its labels; with none or several, `model` and `namespace`
stay empty (unattributed) and region/cluster come from the exporter's own configuration.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    region: str
    cluster: str
    model: str
    namespace: str


class NodePlacement:
    def __init__(self, region: str, cluster: str) -> None:
        self.default = Workload(region=region, cluster=cluster, model="", namespace="")
        self._workloads: set[Workload] = set()
        self._lock = threading.Lock()

    def assign(self, workloads: set[Workload]) -> None:
        with self._lock:
            self._workloads = set(workloads)

    def labels(self) -> dict[str, str]:
        with self._lock:
            only = next(iter(self._workloads)) if len(self._workloads) == 1 else self.default
        return {
            "region": only.region,
            "cluster": only.cluster,
            "model": only.model,
            "namespace": only.namespace,
        }
