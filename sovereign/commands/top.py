"""`sovereign top`: GPU use, GPU-hours, quota and compliance per region and cluster, read from Prometheus."""

from __future__ import annotations

import time
from itertools import groupby
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from sovereign.exporter.readback import Row, snapshot
from sovereign.report.prometheus_api import PrometheusApi

NO_DATA = "no data"
# (header, the row's key, format): short headers, so that a table fits 80 columns without cutting names.
_COLUMNS = (
    ("GPUs\nalloc", "allocated", "{:.0f}"),
    ("GPU\nquota", "quota", "{:.0f}"),
    ("GPUs\ntotal", "capacity", "{:.0f}"),
    ("util\n%", "util", "{:.1f}"),
    ("GPUs\nbusy", "busy", "{:.0f}"),
    ("GPU-h\n24h", "gpu_hours", "{:.2f}"),
)


def _cell(row: Row, key: str, fmt: str) -> str:
    return fmt.format(row[key]) if key in row else f"[dim]{NO_DATA}[/]"


def _noncompliant(row: Row) -> str:
    if "deployments" not in row:
        return f"[dim]{NO_DATA}[/]"
    noncompliant = row.get("noncompliant", 0)
    shown = f"{noncompliant:.0f} of {row['deployments']:.0f}"
    return f"[bold red]{shown}[/]" if noncompliant else shown


def render(rows: dict[tuple[str, str], Row], url: str) -> Table:
    """One line per region, its clusters beneath it: a name is never cut, the numbers wrap instead."""
    table = Table(
        title=f"sovereign GPUs and compliance ({url})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=0,  # the box already puts a space between columns
    )
    table.add_column("region / cluster", no_wrap=True)
    for header, _, _ in _COLUMNS:
        table.add_column(header, justify="right")
    table.add_column("non-\ncompliant", justify="right")
    for region, clusters in groupby(sorted(rows.items()), key=lambda item: item[0][0]):
        table.add_row(f"[bold]{escape(region)}[/]")
        for (_, cluster), row in clusters:
            cells = [_cell(row, key, fmt) for _, key, fmt in _COLUMNS]
            if "quota" in row and row.get("allocated", 0) > row["quota"]:
                cells[0] = f"[bold red]{cells[0]}[/]"
            table.add_row(f"  {escape(cluster)}", *cells, _noncompliant(row))
    if not rows:
        table.caption = "no sovereign series in this Prometheus yet"
    return table


def top(
    prometheus: Annotated[
        str, typer.Option(help="Prometheus base URL.", envvar="SOVEREIGN_PROMETHEUS_URL")
    ] = "http://127.0.0.1:9090",
    once: Annotated[bool, typer.Option("--once", help="Render once and exit.")] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between refreshes.")] = 5.0,
) -> None:
    """Live view of GPU use, GPU-hours, quota and compliance per region and cluster."""
    api = PrometheusApi.at(prometheus)
    console = Console()
    if once:
        console.print(render(snapshot(api), api.url))
        return
    with Live(render(snapshot(api), api.url), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(render(snapshot(api), api.url), refresh=True)
        except KeyboardInterrupt:
            return
