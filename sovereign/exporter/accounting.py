"""GPU allocation accounting from the API server: GPUs held and GPU-hours per region, cluster, model and
tenant, GPU capacity and quota per SovereignCluster, and which deployment holds this node's GPUs.

Each poll reads three sources (RayServices, SovereignClusters, this node's pods); one that fails is
reported down and the others are still served. GPU-hours integrate the allocation seen at the previous
poll over the time since, and only across polls that both succeeded: an outage is not billed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sovereign import vocabulary as k8s
from sovereign.exporter.allocation import AllocationKey, allocation, workloads
from sovereign.exporter.cardinality import BoundedLabel
from sovereign.exporter.health import SourceHealth
from sovereign.exporter.placement import NodePlacement

log = logging.getLogger("sovereign.exporter")
_TIMEOUT_S = 10
_KEY_LABELS = ["region", "cluster", "model", "tenant"]


@dataclass(frozen=True)
class CrdRef:
    group: str
    version: str
    plural: str

    @classmethod
    def parse(cls, text: str) -> CrdRef:
        """From GROUP/VERSION/PLURAL, e.g. sovereign.dev/v1alpha1/sovereignclusters."""
        parts = text.split("/")
        if len(parts) != 3 or not all(parts):
            raise ValueError(
                f"expected GROUP/VERSION/PLURAL, e.g. sovereign.dev/v1alpha1/sovereignclusters, got {text!r}"
            )
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}/{self.version}"


RAYSERVICES = CrdRef(k8s.RAY_GROUP, k8s.RAY_VERSION, k8s.RAYSERVICES)
SOVEREIGN_CLUSTERS = CrdRef(k8s.GROUP, k8s.VERSION, k8s.CLUSTERS)


@dataclass(frozen=True)
class ClusterGpus:
    region: str
    cluster: str
    capacity: float | None
    quota: float | None


def _failure(exc: Exception, what: CrdRef | str) -> str:
    if isinstance(exc, ApiException) and exc.status == 404:
        return f"{what} is not served by the API server (is its CRD installed?)"
    if isinstance(exc, ApiException):
        return f"listing {what} failed: HTTP {exc.status} {exc.reason}"
    return f"API server unreachable while listing {what}: {exc}"


_API_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


class ClusterAccounting(Collector):
    def __init__(
        self,
        api: client.ApiClient,
        health: SourceHealth,
        placement: NodePlacement,
        node: str,
        tenant: BoundedLabel,
        sovereign_clusters: CrdRef = SOVEREIGN_CLUSTERS,
        clock: Callable[[], float] = time.monotonic,
        cluster_wide: bool = True,
        node_local: bool = True,
    ) -> None:
        """`cluster_wide`: account RayServices and SovereignClusters (the same answer from every node, so
        one exporter per cluster should); `node_local`: label this node's GPUs from its pods."""
        self._cluster_wide, self._node_local = cluster_wide, node_local
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._health = health
        self._placement = placement
        self._node = node
        self._tenant = tenant
        self._clusters_crd = sovereign_clusters
        self._clock = clock
        self._lock = threading.Lock()
        self._allocated: dict[AllocationKey, int] | None = None  # None: not known (source down)
        self._allocated_at = 0.0
        self._gpu_hours: dict[AllocationKey, float] = {}
        self._clusters: list[ClusterGpus] | None = None
        self._unreadable: dict[str, list[str]] = {}

    def poll(self) -> None:
        if self._cluster_wide:
            self._poll_rayservices()
            self._poll_sovereign_clusters()
        if self._node_local:
            self._poll_node_pods()

    def _list(self, crd: CrdRef) -> list[dict[str, Any]]:
        found = self._custom.list_cluster_custom_object(
            crd.group, crd.version, crd.plural, _request_timeout=_TIMEOUT_S
        )
        return list(found.get("items", []))

    def _poll_rayservices(self) -> None:
        try:
            items = self._list(RAYSERVICES)
        except _API_ERRORS as exc:
            self._health.down("rayservices", _failure(exc, RAYSERVICES))
            with self._lock:
                self._allocated = None
            return
        held, problems = allocation(items, self._tenant)
        now = self._clock()
        with self._lock:
            if self._allocated is not None:
                hours = (now - self._allocated_at) / 3600
                for key, gpus in self._allocated.items():
                    self._gpu_hours[key] = self._gpu_hours.get(key, 0.0) + gpus * hours
            for key in held:  # a counter starts at 0, so Prometheus' increase() sees its first hour
                self._gpu_hours.setdefault(key, 0.0)
            self._allocated, self._allocated_at = held, now
        self._record_unreadable("rayservices", problems)
        self._health.up("rayservices")

    def _poll_sovereign_clusters(self) -> None:
        try:
            items = self._list(self._clusters_crd)
        except _API_ERRORS as exc:
            self._health.down("sovereignclusters", _failure(exc, self._clusters_crd))
            with self._lock:
                self._clusters = None
            return
        clusters, problems = [], []
        for item in items:
            try:
                clusters.append(_cluster_gpus(item))
            except (TypeError, ValueError) as exc:
                problems.append(f"SovereignCluster {item.get('metadata', {}).get('name')}: {exc}")
        with self._lock:
            self._clusters = clusters
        self._record_unreadable("sovereignclusters", problems)
        self._health.up("sovereignclusters")

    def _poll_node_pods(self) -> None:
        try:
            response = self._core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self._node}",
                _request_timeout=_TIMEOUT_S,
                _preload_content=False,
            )
            pods = json.loads(response.data).get("items", [])
        except _API_ERRORS as exc:
            self._health.down("pods", _failure(exc, f"pods on node {self._node}"))
            self._placement.assign(set())
            return
        found, problems = workloads(pods, self._placement.default)
        self._placement.assign(found)
        self._record_unreadable("pods", problems)
        self._health.up("pods")

    def _record_unreadable(self, source: str, problems: list[str]) -> None:
        with self._lock:
            changed = self._unreadable.get(source, []) != problems
            self._unreadable[source] = problems
        if changed:
            for problem in problems:
                log.warning("%s: left out: %s", source, problem)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            allocated = dict(self._allocated) if self._allocated is not None else None
            hours = dict(self._gpu_hours)
            clusters = list(self._clusters) if self._clusters is not None else None
            unreadable = {source: len(problems) for source, problems in self._unreadable.items()}
        if allocated is not None:
            yield _per_key(
                GaugeMetricFamily(
                    "sovereign_gpu_allocated",
                    "GPUs requested by running (non-suspended) RayServices.",
                    labels=_KEY_LABELS,
                ),
                allocated,
            )
        if self._cluster_wide:  # a counter from 0: absent only where this exporter never accounts
            yield _per_key(
                CounterMetricFamily(
                    "sovereign_gpu_hours",
                    "GPU-hours allocated to RayServices since the exporter started.",
                    labels=_KEY_LABELS,
                ),
                hours,
            )
        if clusters is not None:
            capacity = GaugeMetricFamily(
                "sovereign_gpu_capacity",
                "GPUs a SovereignCluster has (spec.gpu.capacity).",
                labels=["region", "cluster"],
            )
            quota = GaugeMetricFamily(
                "sovereign_gpu_quota",
                "GPUs a SovereignCluster may allocate (spec.gpu.quota).",
                labels=["region", "cluster"],
            )
            for c in clusters:
                if c.capacity is not None:
                    capacity.add_metric([c.region, c.cluster], c.capacity)
                if c.quota is not None:
                    quota.add_metric([c.region, c.cluster], c.quota)
            yield capacity
            yield quota
        family = GaugeMetricFamily(
            "sovereign_exporter_unreadable_objects",
            "Objects left out of the last poll because they could not be read (see the exporter log).",
            labels=["source"],
        )
        for source, count in sorted(unreadable.items()):
            family.add_metric([source], count)
        yield family


def _per_key(family: GaugeMetricFamily | CounterMetricFamily, values: dict[AllocationKey, Any]) -> Metric:
    for key, value in sorted(values.items()):
        family.add_metric(_values(key), value)
    return family


def _values(key: AllocationKey) -> list[str]:
    return [key.region, key.cluster, key.model, key.tenant]


def _cluster_gpus(item: dict[str, Any]) -> ClusterGpus:
    meta, spec = item.get("metadata", {}), item.get("spec") or {}
    gpu = spec.get("gpu") or {}
    region = spec.get("region") or (meta.get("labels") or {}).get(k8s.LABEL_REGION) or "unknown"

    def number(field: str) -> float | None:
        value = gpu.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"spec.gpu.{field} must be a number, got {value!r}")
        return float(value)

    return ClusterGpus(
        region=region, cluster=meta.get("name", "unknown"), capacity=number("capacity"), quota=number("quota")
    )
