"""The exporter process: one registry with the GPU collector, the accounting collector (when an API
server is configured) and the source health; served over HTTP, or printed once.

Only prometheus-client (and nvidia-ml-py for real GPUs) are needed unless an API server is configured:
the kubernetes client and the trace replay are imported on demand, so a bare GPU node runs it as is.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from sovereign.errors import BadInput
from sovereign.exporter.cardinality import BoundedLabel
from sovereign.exporter.dcgm import DcgmCollector
from sovereign.exporter.gpus import GpuReader, NvmlReader
from sovereign.exporter.health import SourceHealth
from sovereign.exporter.placement import NodePlacement
from sovereign.vocabulary import CLUSTERS_RESOURCE

if TYPE_CHECKING:  # imported on demand below: it needs the kubernetes package
    from sovereign.exporter.accounting import ClusterAccounting


class Scope(StrEnum):
    """What one exporter reports. A node's GPUs are read on that node; GPU allocation and quotas are
    cluster-wide, so on a cluster of many GPU nodes one exporter reports them (`cluster`) and every node's
    reports only its GPUs (`node`): `sum by` over the series then counts each allocation once."""

    all = "all"
    node = "node"
    cluster = "cluster"


@dataclass(frozen=True)
class ExporterConfig:
    node: str
    region: str
    cluster: str
    kubeconfig: Path | None = None
    in_cluster: bool = False
    gpu_trace: Path | None = None
    interval_s: float = 15.0
    tenant_limit: int = 50
    sovereign_clusters_crd: str = CLUSTERS_RESOURCE
    scope: Scope = Scope.all


class Exporter:
    def __init__(self, config: ExporterConfig) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self.health = SourceHealth()
        self.placement = NodePlacement(region=config.region, cluster=config.cluster)
        if config.scope is not Scope.cluster:
            self.registry.register(
                DcgmCollector(self._gpu_reader(), config.node, self.placement.labels, self.health)
            )
        self.accounting = self._accounting()
        if self.accounting is not None:
            self.registry.register(self.accounting)
        self.registry.register(self.health)  # last: it reports what the collectors above just saw

    def _gpu_reader(self) -> GpuReader:
        if self.config.gpu_trace is None:
            return NvmlReader()
        from sovereign.exporter.gpu_trace import TraceReplayReader

        return TraceReplayReader(self.config.gpu_trace)

    def _accounting(self) -> ClusterAccounting | None:
        if self.config.kubeconfig is None and not self.config.in_cluster:
            if self.config.scope is Scope.cluster:
                raise BadInput(
                    "--scope cluster accounts from an API server: give --in-cluster or --kubeconfig"
                )
            return None
        try:
            from kubernetes import client, config

            from sovereign.exporter.accounting import ClusterAccounting, CrdRef
        except ImportError as exc:
            self.health.down("kubernetes", f"python package kubernetes is not installed ({exc})")
            return None
        try:
            crd = CrdRef.parse(self.config.sovereign_clusters_crd)
        except ValueError as exc:
            raise BadInput(f"--sovereignclusters-crd: {exc}") from exc
        try:
            if self.config.in_cluster:
                config.load_incluster_config()
                api = client.ApiClient()
            else:
                api = config.new_client_from_config(config_file=str(self.config.kubeconfig))
        except (config.ConfigException, OSError, ValueError) as exc:
            flag = "--in-cluster" if self.config.in_cluster else f"--kubeconfig {self.config.kubeconfig}"
            raise BadInput(f"{flag}: cannot load the cluster configuration ({exc}): fix or drop it") from exc
        return ClusterAccounting(
            api,
            self.health,
            self.placement,
            node=self.config.node,
            tenant=BoundedLabel(limit=self.config.tenant_limit),
            sovereign_clusters=crd,
            cluster_wide=self.config.scope is not Scope.node,
            node_local=self.config.scope is not Scope.cluster,
        )

    def poll(self) -> None:
        if self.accounting is not None:
            self.accounting.poll()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, addr: str, port: int, stop: threading.Event) -> None:
        """Serve /metrics until `stop` is set, polling the API server every interval. The first poll comes
        before the first scrape can, so no series is ever exposed without its sovereignty labels."""
        self.poll()
        try:
            server, thread = start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            raise BadInput(
                f"--addr {addr} --port {port}: cannot listen there ({exc.strerror}): pick another"
            ) from exc
        try:
            while not stop.wait(self.config.interval_s):
                self.poll()
        finally:
            server.shutdown()
            thread.join(timeout=5)


def default_node() -> str:
    # NODE_NAME is what a DaemonSet passes through the downward API (spec.nodeName).
    return os.environ.get("NODE_NAME") or os.uname().nodename
