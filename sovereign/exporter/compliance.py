"""The operator's compliance series: `sovereign_deployment_compliant` per LlamaDeployment and
`sovereign_accreditation_expiry_timestamp_seconds` per accreditation of each SovereignCluster.

The operator feeds them what it acts on (operators/sovereign_operator/compliance.py): a deployment's
series the action its judgement resolved to, a cluster's the accreditations it was judged with. Nothing
is judged here; this only holds the last values and hands them to Prometheus on each scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

DeploymentKey = tuple[str, str]  # namespace, name


@dataclass(frozen=True)
class DeploymentSeries:
    region: str
    cluster: str
    namespace: str
    deployment: str
    model: str
    compliant: bool


@dataclass(frozen=True)
class AccreditationSeries:
    region: str
    cluster: str
    scheme: str
    expires: date  # the last day it is valid (the policy accepts it while as_of <= expires)

    @property
    def expiry_timestamp(self) -> float:
        """The first instant it is no longer valid: midnight UTC after its last day (the policy's as_of
        is a UTC date)."""
        return datetime.combine(self.expires + timedelta(days=1), time.min, tzinfo=UTC).timestamp()


class ComplianceGauges(Collector):
    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self._lock = threading.Lock()
        self._deployments: dict[DeploymentKey, DeploymentSeries] = {}
        self._accreditations: list[AccreditationSeries] = []
        if registry is not None:
            registry.register(self)

    def set_deployment(self, series: DeploymentSeries) -> None:
        with self._lock:
            self._deployments[(series.namespace, series.deployment)] = series

    def forget_deployment(self, key: DeploymentKey) -> None:
        with self._lock:
            self._deployments.pop(key, None)

    def keep_deployments(self, keys: Iterable[DeploymentKey]) -> None:
        """Drop the series of every deployment not in `keys` (a full listing: the others are gone)."""
        live = set(keys)
        with self._lock:
            self._deployments = {k: v for k, v in self._deployments.items() if k in live}

    def set_accreditations(self, accreditations: Iterable[AccreditationSeries]) -> None:
        """Replace every accreditation series (a full listing of the clusters)."""
        with self._lock:
            self._accreditations = list(accreditations)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            deployments = sorted(self._deployments.items())
            accreditations = list(self._accreditations)
        compliant = GaugeMetricFamily(
            "sovereign_deployment_compliant",
            "1 when the current policy allows the LlamaDeployment, 0 when it does not.",
            labels=["region", "cluster", "namespace", "deployment", "model"],
        )
        for _, d in deployments:
            compliant.add_metric([d.region, d.cluster, d.namespace, d.deployment, d.model], int(d.compliant))
        yield compliant
        # Two entries for one scheme on one cluster are one series: the later expiry is the one that holds.
        expiry: dict[tuple[str, str, str], float] = {}
        for a in accreditations:
            key = (a.region, a.cluster, a.scheme)
            expiry[key] = max(expiry.get(key, 0.0), a.expiry_timestamp)
        family = GaugeMetricFamily(
            "sovereign_accreditation_expiry_timestamp_seconds",
            "Unix time a SovereignCluster's accreditation stops being valid (after its last valid day, UTC).",
            labels=["region", "cluster", "scheme"],
        )
        for key, seconds in sorted(expiry.items()):
            family.add_metric(list(key), seconds)
        yield family


COMPLIANCE = ComplianceGauges()
