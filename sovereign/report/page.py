"""The report as one self-contained HTML page: inline CSS, the plots inline as SVG, no external assets.
Rendered with Jinja2, every value autoescaped (label values come from the clusters' and callers' names)."""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, StrictUndefined

from sovereign.report import plots
from sovereign.report.data import Report

_templates = Environment(
    loader=PackageLoader("sovereign.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render_html(report: Report) -> str:
    return _templates.get_template("report.html.j2").render(
        r=report,
        start=_utc(report.window.start),
        end=_utc(report.window.end),
        chargeback_start=_utc(report.window.end - 3600 * report.window.hours),
        number=_number,
        plots=plots.figures(report),
        plotted={figure: [p.as_json() for p in drawn] for figure, drawn in report.plotted().items()},
    )
