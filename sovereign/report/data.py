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
from typing import Any

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

    @property
    def hour_ends(self) -> tuple[float, ...]:
        """The instants the hourly chargeback rules are read at: the end of each of those hours."""
        return tuple(self.end - hour * _HOUR for hour in range(self.hours))


@dataclass(frozen=True)
class RegionUse:
    region: str
    allocated: Series  # GPUs held by running deployments
    used: Series  # GPUs busy: the sum of their utilisation
    gpu_hours: float  # allocated over the window


@dataclass
class ChargebackRow:
    """What one caller (`tenant`, the x-tenant-id of its requests) used of one model on one cluster, and its
    cost per 1,000 tokens as the per-caller recording rules give it (None: no token served)."""

    region: str
    cluster: str
    model: str
    tenant: str
    tokens: float = 0.0
    gpu_seconds: float = 0.0
    joules: float = 0.0
    gpu_seconds_per_1k: float | None = None
    joules_per_1k: float | None = None


@dataclass(frozen=True)
class FiredAlert:
    name: str
    severity: str
    scope: str
    labels: Labels  # what it was about: its labels less the alert's own and the scrape's
    firing_s: float


@dataclass(frozen=True)
class Plotted:
    """One PromQL query a figure draws and the values behind it (a bar chart shows the largest ten),
    carried on the page with the figure so that each plot can be checked against Prometheus: the instant
    answers at `at` (added up over the hours of a chargeback window, token-weighted for a rate per 1,000
    tokens), or the range over the window at `step`. A value is keyed by its `by` labels' values joined
    with " / "."""

    query: str
    by: tuple[str, ...]
    values: dict[str, float] | dict[str, Series]
    at: tuple[float, ...] = ()
    step: float | None = None

    def as_json(self) -> dict[str, Any]:
        when: dict[str, Any] = {"step": self.step} if self.step is not None else {"at": list(self.at)}
        return {"query": self.query, "by": list(self.by), **when, "values": self.values}


@dataclass
class Report:
    prometheus: str
    window: Window
    regions: list[RegionUse] = field(default_factory=list)
    owners: list[tuple[str, float]] = field(default_factory=list)  # deployment tenant, GPU-hours
    callers: list[tuple[str, float]] = field(default_factory=list)  # caller, GPU-seconds attributed
    chargeback: list[ChargebackRow] = field(default_factory=list)
    compliance: dict[str, Series] = field(default_factory=dict)  # region -> compliant share
    noncompliant: list[Labels] = field(default_factory=list)  # now
    alerts: list[FiredAlert] = field(default_factory=list)
    evaluation_s: float = 60.0  # Prometheus's rule evaluation interval: an ALERTS sample's worth

    @property
    def alert_seconds(self) -> dict[str, float]:
        """Seconds each alert fired in the window, all its instances together."""
        totals: dict[str, float] = defaultdict(float)
        for alert in self.alerts:
            totals[alert.name] += alert.firing_s
        return dict(totals)

    def plotted(self) -> dict[str, list[Plotted]]:
        """What each figure (by its id on the page) draws, as the queries it was read with."""
        window, hours = self.window, self.window.hour_ends

        def key(row: ChargebackRow) -> str:
            return " / ".join((row.region, row.cluster, row.model, row.tenant))

        def per_1k(column: str) -> dict[str, float]:
            return {key(r): v for r in self.chargeback if (v := getattr(r, column)) is not None}

        return {
            "plot-allocation": [
                Plotted(
                    ALLOCATED,
                    ("region",),
                    {r.region: r.allocated for r in self.regions if r.allocated},
                    step=window.step,
                ),
                Plotted(
                    IN_USE,
                    ("region",),
                    {r.region: r.used for r in self.regions if r.used},
                    step=window.step,
                ),
                Plotted(
                    gpu_hours(window),
                    ("region",),
                    {r.region: r.gpu_hours for r in self.regions},
                    at=(window.end,),
                ),
            ],
            "plot-tenants": [
                Plotted(gpu_hours(window, "tenant"), ("tenant",), dict(self.owners), at=(window.end,)),
                Plotted(CALLER_GPU_SECONDS, ("tenant",), dict(self.callers), at=hours),
            ],
            "plot-compliance": [Plotted(COMPLIANT, ("region",), self.compliance, step=window.step)],
            "plot-alerts": [
                Plotted(
                    alert_seconds(window, self.evaluation_s),
                    ("alertname",),
                    self.alert_seconds,
                    at=(window.end,),
                ),
            ],
            "plot-cost": [
                Plotted(query, _ROW_KEY, per_1k(column), at=hours) for column, query in _PER_1K.items()
            ],
        }


# The queries the report reads, named so that its page can say which drew what.
ALLOCATED = "sum by (region) (sovereign_gpu_allocated)"
IN_USE = "sum by (region) (DCGM_FI_DEV_GPU_UTIL) / 100"
COMPLIANT = "avg by (region) (sovereign_deployment_compliant)"
CALLER_GPU_SECONDS = "sum by (tenant) (region_cluster_model_tenant:sovereign_gpu_seconds:attributed1h)"
_ROW_KEY = ("region", "cluster", "model", "tenant")
_CHARGEBACK = {
    "tokens": "region_cluster_model_tenant:sovereign_tokens:increase1h",
    "gpu_seconds": "region_cluster_model_tenant:sovereign_gpu_seconds:attributed1h",
    "joules": "region_cluster_model_tenant:gpu_energy_joules:attributed1h",
}
_PER_1K = {
    "gpu_seconds_per_1k": "region_cluster_model_tenant:sovereign_gpu_seconds_per_1k_tokens:ratio1h",
    "joules_per_1k": "region_cluster_model_tenant:gpu_energy_joules_per_1k_tokens:ratio1h",
}
_NOT_THE_SUBJECT = {"alertname", "alertstate", "severity", "scope", "instance", "job"}


def gpu_hours(window: Window, by: str = "region") -> str:
    return f"sum by ({by}) (increase(sovereign_gpu_hours_total[{window.range}]))"


def _alerts_firing(window: Window) -> str:
    return f'count_over_time(ALERTS{{alertstate="firing"}}[{window.range}])'


def alert_seconds(window: Window, evaluation_s: float) -> str:
    """Seconds each alert fired: evaluations firing times the evaluation interval."""
    return f"sum by (alertname) ({_alerts_firing(window)}) * {evaluation_s:g}"


def _by_region(found: list[tuple[Labels, Series]]) -> dict[str, Series]:
    return {labels.get("region", "?"): values for labels, values in found}


def _regions(api: PrometheusApi, window: Window) -> list[RegionUse]:
    def over_time(expr: str) -> dict[str, Series]:
        return _by_region(api.range(expr, window.start, window.end, window.step))

    allocated = over_time(ALLOCATED)
    used = over_time(IN_USE)
    hours = {labels.get("region", "?"): value for labels, value in api.instant(gpu_hours(window), window.end)}
    return [
        RegionUse(region, allocated.get(region, []), used.get(region, []), hours.get(region, 0.0))
        for region in sorted(set(allocated) | set(used) | set(hours))
    ]


def chargeback(api: PrometheusApi, window: Window) -> list[ChargebackRow]:
    """The hourly recording rules at the end of each hour of the window, summed per caller and model; a
    rate per 1,000 tokens over several hours is the hourly rates weighted by the tokens of each hour."""
    rows: dict[tuple[str, ...], ChargebackRow] = {}
    weighted: dict[tuple[tuple[str, ...], str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for at in window.hour_ends:
        hour: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
        for column, recorded in (_CHARGEBACK | _PER_1K).items():
            for labels, value in api.instant(recorded, at):
                hour[tuple(labels.get(k, "") for k in _ROW_KEY)][column] = value
        for key, values in hour.items():
            row = rows.setdefault(key, ChargebackRow(*key))
            for column in _CHARGEBACK:
                setattr(row, column, getattr(row, column) + values.get(column, 0.0))
            for column in _PER_1K:
                if column in values:  # the rule records no rate for an hour without tokens
                    sums = weighted[(key, column)]
                    sums[0] += values[column] * values.get("tokens", 0.0)
                    sums[1] += values.get("tokens", 0.0)
    for (key, column), (total, tokens) in weighted.items():
        if tokens > 0:
            setattr(rows[key], column, total / tokens)
    return sorted(rows.values(), key=lambda r: (-r.gpu_seconds, r.tenant, r.model))


def _callers(api: PrometheusApi, window: Window) -> list[tuple[str, float]]:
    """GPU-seconds attributed to each caller over the window's hours, largest first."""
    totals: dict[str, float] = defaultdict(float)
    for at in window.hour_ends:
        for labels, value in api.instant(CALLER_GPU_SECONDS, at):
            totals[labels.get("tenant", "?")] += value
    return sorted(totals.items(), key=lambda c: -c[1])


def _alerts(api: PrometheusApi, window: Window, evaluation_s: float) -> list[FiredAlert]:
    """Every alert that fired in the window, by what it was about, and for how long (evaluations firing
    times the evaluation interval: never missed, however briefly it fired)."""
    fired = api.instant(_alerts_firing(window), window.end)
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
    evaluation_s = api.evaluation_interval_s()
    owners = api.instant(gpu_hours(window, "tenant"), window.end)
    compliance = api.range(COMPLIANT, window.start, window.end, window.step)
    return Report(
        prometheus=api.url,
        window=window,
        regions=_regions(api, window),
        owners=sorted(((labels.get("tenant", "?"), v) for labels, v in owners), key=lambda o: -o[1]),
        callers=_callers(api, window),
        chargeback=chargeback(api, window),
        compliance=_by_region(compliance),
        noncompliant=[labels for labels, _ in api.instant("sovereign_deployment_compliant == 0", window.end)],
        alerts=_alerts(api, window, evaluation_s),
        evaluation_s=evaluation_s,
    )
