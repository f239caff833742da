"""The report's plots, drawn with matplotlib and returned as inline SVG (text kept as text, ids salted per
plot so several can share one page). Each returns None when there is nothing to draw."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime

import matplotlib
from matplotlib.axes import Axes
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from sovereign.report.data import ChargebackRow, FiredAlert, RegionUse, Series

TOP = 10


def _svg(name: str, figure: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: no XML declaration or doctype


def _figure(draw: Callable[[Figure], None], name: str, size: tuple[float, float] = (9, 3.2)) -> str:
    figure = Figure(figsize=size, layout="constrained")
    draw(figure)
    return _svg(name, figure)


def _times(series: Series) -> list[datetime]:
    return [datetime.fromtimestamp(t, UTC) for t, _ in series]


def _time_axis(axes: Axes) -> None:
    axes.xaxis.set_major_formatter(DateFormatter("%H:%M"))
    axes.set_xlabel("UTC")
    axes.grid(alpha=0.3)


def allocation_vs_use(regions: list[RegionUse]) -> str | None:
    if not any(r.allocated or r.used for r in regions):
        return None

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        for colour, region in zip(matplotlib.color_sequences["tab10"], regions, strict=False):
            if region.allocated:
                axes.plot(_times(region.allocated), [v for _, v in region.allocated], color=colour,
                          label=f"{region.region} allocated")  # fmt: skip
            if region.used:
                axes.plot(_times(region.used), [v for _, v in region.used], color=colour, linestyle="--",
                          label=f"{region.region} in use")  # fmt: skip
        axes.set_ylabel("GPUs")
        axes.set_ylim(bottom=0)
        _time_axis(axes)
        axes.legend(loc="upper left", fontsize="small")

    return _figure(draw, "allocation")


def top_tenants(owners: list[tuple[str, float]], chargeback: list[ChargebackRow]) -> str | None:
    callers: dict[str, float] = {}
    for row in chargeback:
        callers[row.tenant] = callers.get(row.tenant, 0.0) + row.gpu_seconds
    if not owners and not callers:
        return None

    def bars(axes: Axes, items: list[tuple[str, float]], title: str, unit: str) -> None:
        shown = items[:TOP][::-1]  # largest on top
        axes.barh([name for name, _ in shown], [value for _, value in shown], color="#4c72b0")
        axes.set_title(title, fontsize="medium")
        axes.set_xlabel(unit)
        axes.grid(axis="x", alpha=0.3)

    def draw(figure: Figure) -> None:
        left, right = figure.subplots(1, 2)
        bars(left, owners, "GPUs held, by deployment tenant", "GPU-hours")
        bars(right, sorted(callers.items(), key=lambda c: -c[1]), "GPU time served, by caller", "GPU-seconds")

    return _figure(draw, "tenants", (9, 3.6))


def compliance(series: dict[str, Series]) -> str | None:
    if not any(series.values()):
        return None

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        for region, values in sorted(series.items()):
            axes.step(_times(values), [v for _, v in values], where="post", label=region)
        axes.set_ylabel("deployments compliant")
        axes.set_ylim(-0.05, 1.05)
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
        _time_axis(axes)
        axes.legend(loc="lower left", fontsize="small")

    return _figure(draw, "compliance")


def alerts(fired: list[FiredAlert]) -> str | None:
    if not fired:
        return None
    totals: dict[str, float] = {}
    for alert in fired:
        totals[alert.name] = totals.get(alert.name, 0.0) + alert.firing_s
    shown = sorted(totals.items(), key=lambda t: t[1])

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        axes.barh([name for name, _ in shown], [seconds / 60 for _, seconds in shown], color="#c44e52")
        axes.set_xlabel("minutes firing (all instances)")
        axes.grid(axis="x", alpha=0.3)

    return _figure(draw, "alerts", (9, 0.5 + 0.35 * len(shown)))
