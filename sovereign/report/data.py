"""What the report reads from Prometheus over its window, as typed data; nothing here is computed that
Prometheus already records.

The chargeback is the recording rules' (infra/monitoring/rules, group sovereign-chargeback): each is an
hour's worth, so the window is read as whole hours ending now, one instant per hour, summed.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

from sovereign.report.prometheus_api import Labels, PrometheusApi

Series = list[tuple[float, float]]  # (Unix time, value)
PLOT_POINTS = 240
_HOUR = 3600.0


@dataclass(frozen=True)
class Window:
    end: float
    seconds: float

    @property
    def start(self) -> float:
        return self.end - self.seconds

    @property
    def step(self) -> float:
        return max(1.0, self.seconds / PLOT_POINTS)

    @property
    def range(self) -> str:
        return f"{int(self.seconds)}s"

    @property
    def hours(self) -> int:
        """Whole hours of chargeback that cover the window."""
        return max(1, math.ceil(self.seconds / _HOUR))


@dataclass(frozen=True)
class RegionUse:
    region: str
    allocated: Series  # GPUs held by running deployments
    used: Series  # GPUs busy: the sum of their utilisation
    gpu_hours: float  # allocated over the window


@dataclass
class ChargebackRow:
    """What one caller (`tenant`, the x-tenant-id of its requests) used of one model on one cluster."""

    region: str
    cluster: str
    model: str
    tenant: str
    tokens: float = 0.0
    gpu_seconds: float = 0.0
    joules: float = 0.0

    @property
    def gpu_seconds_per_1k(self) -> float | None:
        return 1000 * self.gpu_seconds / self.tokens if self.tokens else None

    @property
    def joules_per_1k(self) -> float | None:
        return 1000 * self.joules / self.tokens if self.tokens else None


@dataclass(frozen=True)
class FiredAlert:
    name: str
    severity: str
    scope: str
    labels: Labels  # what it was about: its labels less the alert's own and the scrape's
    firing_s: float


@dataclass
class Report:
    prometheus: str
    window: Window
    regions: list[RegionUse] = field(default_factory=list)
    owners: list[tuple[str, float]] = field(default_factory=list)  # deployment tenant, GPU-hours
    chargeback: list[ChargebackRow] = field(default_factory=list)
    compliance: dict[str, Series] = field(default_factory=dict)  # region -> compliant share
    noncompliant: list[Labels] = field(default_factory=list)  # now
    alerts: list[FiredAlert] = field(default_factory=list)


_CHARGEBACK = {
    "tokens": "region_cluster_model_tenant:sovereign_tokens:increase1h",
    "gpu_seconds": "region_cluster_model_tenant:sovereign_gpu_seconds:attributed1h",
    "joules": "region_cluster_model_tenant:gpu_energy_joules:attributed1h",
}
_NOT_THE_SUBJECT = {"alertname", "alertstate", "severity", "scope", "instance", "job"}


def _by_region(found: list[tuple[Labels, Series]]) -> dict[str, Series]:
    return {labels.get("region", "?"): values for labels, values in found}


def _regions(api: PrometheusApi, window: Window) -> list[RegionUse]:
    def over_time(expr: str) -> dict[str, Series]:
        return _by_region(api.range(expr, window.start, window.end, window.step))

    allocated = over_time("sum by (region) (sovereign_gpu_allocated)")
    used = over_time("sum by (region) (DCGM_FI_DEV_GPU_UTIL) / 100")
    expr = f"sum by (region) (increase(sovereign_gpu_hours_total[{window.range}]))"
    hours = {labels.get("region", "?"): value for labels, value in api.instant(expr, window.end)}
    return [
        RegionUse(region, allocated.get(region, []), used.get(region, []), hours.get(region, 0.0))
        for region in sorted(set(allocated) | set(used) | set(hours))
    ]


def _chargeback(api: PrometheusApi, window: Window) -> list[ChargebackRow]:
    """The hourly recording rules at the end of each hour of the window, summed per caller and model."""
    rows: dict[tuple[str, ...], ChargebackRow] = {}
    for hour in range(window.hours):
        at = window.end - hour * _HOUR
        for column, recorded in _CHARGEBACK.items():
            for labels, value in api.instant(recorded, at):
                key = tuple(labels.get(k, "") for k in ("region", "cluster", "model", "tenant"))
                row = rows.setdefault(key, ChargebackRow(*key))
                setattr(row, column, getattr(row, column) + value)
    return sorted(rows.values(), key=lambda r: (-r.gpu_seconds, r.tenant, r.model))


def _alerts(api: PrometheusApi, window: Window) -> list[FiredAlert]:
    """Every alert that fired in the window, by what it was about, and for how long (evaluations firing
    times the evaluation interval: never missed, however briefly it fired)."""
    evaluation_s = api.evaluation_interval_s()
    fired = api.instant(f'count_over_time(ALERTS{{alertstate="firing"}}[{window.range}])', window.end)
    seconds: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
    for labels, evaluations in fired:
        subject = tuple(sorted((k, v) for k, v in labels.items() if k not in _NOT_THE_SUBJECT))
        seconds[(labels["alertname"], subject)] += evaluations * evaluation_s
    kind = {labels["alertname"]: (labels.get("severity", ""), labels.get("scope", "")) for labels, _ in fired}
    return sorted(
        (FiredAlert(name, *kind[name], dict(subject), total) for (name, subject), total in seconds.items()),
        key=lambda a: (a.name, sorted(a.labels.items())),
    )


def read(api: PrometheusApi, seconds: float, end: float | None = None) -> Report:
    window = Window(end if end is not None else time.time(), seconds)
    owners = api.instant(f"sum by (tenant) (increase(sovereign_gpu_hours_total[{window.range}]))", window.end)
    compliance = api.range(
        "avg by (region) (sovereign_deployment_compliant)", window.start, window.end, window.step
    )
    return Report(
        prometheus=api.url,
        window=window,
        regions=_regions(api, window),
        owners=sorted(((labels.get("tenant", "?"), v) for labels, v in owners), key=lambda o: -o[1]),
        chargeback=_chargeback(api, window),
        compliance=_by_region(compliance),
        noncompliant=[labels for labels, _ in api.instant("sovereign_deployment_compliant == 0", window.end)],
        alerts=_alerts(api, window),
    )
