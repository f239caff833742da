"""The report's plots, drawn with matplotlib and returned as inline SVG (text kept as text, ids salted per
plot so several can share one page), keyed by the id of the figure that holds each on the page: the same
ids as `Report.plotted`, which says what each drew. Each is None when there is nothing to draw."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime

import matplotlib
from matplotlib.axes import Axes
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from sovereign.report.data import ChargebackRow, RegionUse, Report, Series

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


def top_tenants(owners: list[tuple[str, float]], callers: list[tuple[str, float]]) -> str | None:
    if not owners and not callers:
        return None

    def draw(figure: Figure) -> None:
        left, right = figure.subplots(1, 2)
        _bars(left, owners[:TOP], "GPUs held, by deployment tenant", "GPU-hours")
        _bars(right, callers[:TOP], "GPU time served, by caller", "GPU-seconds")

    return _figure(draw, "tenants", (9, 3.6))


def _bars(axes: Axes, items: list[tuple[str, float]], title: str, unit: str, colour: str = "#4c72b0") -> None:
    shown = items[::-1]  # largest on top
    axes.barh([name for name, _ in shown], [value for _, value in shown], color=colour)
    axes.set_title(title, fontsize="medium")
    axes.set_xlabel(unit)
    axes.grid(axis="x", alpha=0.3)


def cost_per_1k_tokens(rows: list[ChargebackRow]) -> str | None:
    """Each caller's GPU-seconds and joules per 1,000 tokens on each model it was served."""
    costed = sorted((r for r in rows if r.gpu_seconds_per_1k is not None), key=lambda r: -r.tokens)[:TOP]
    if not costed:
        return None

    def draw(figure: Figure) -> None:
        left, right = figure.subplots(1, 2, sharey=True)
        names = [f"{r.tenant} · {r.model}" for r in costed]
        _bars(left, list(zip(names, [r.gpu_seconds_per_1k or 0.0 for r in costed], strict=True)),
              "GPU-seconds per 1,000 tokens", "GPU-s")  # fmt: skip
        joules = [
            (n, r.joules_per_1k) for n, r in zip(names, costed, strict=True) if r.joules_per_1k is not None
        ]
        _bars(right, joules, "joules per 1,000 tokens", "J", "#dd8452")

    return _figure(draw, "cost", (9, 0.9 + 0.35 * len(costed)))


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


def alerts(seconds: dict[str, float]) -> str | None:
    if not seconds:
        return None
    shown = sorted(seconds.items(), key=lambda t: t[1])

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        axes.barh([name for name, _ in shown], [s / 60 for _, s in shown], color="#c44e52")
        axes.set_xlabel("minutes firing (all instances)")
        axes.grid(axis="x", alpha=0.3)

    return _figure(draw, "alerts", (9, 0.5 + 0.35 * len(shown)))


def figures(report: Report) -> dict[str, str | None]:
    """Every plot of the report by the id of its figure on the page."""
    return {
        "plot-allocation": allocation_vs_use(report.regions),
        "plot-tenants": top_tenants(report.owners, report.callers),
        "plot-cost": cost_per_1k_tokens(report.chargeback),
        "plot-compliance": compliance(report.compliance),
        "plot-alerts": alerts(report.alert_seconds),
    }
