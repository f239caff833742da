"""`sovereign top`: GPU use, GPU-hours, quota and compliance per region and cluster, read from Prometheus."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from sovereign.exporter.readback import Row, snapshot
from sovereign.report.prometheus_api import PrometheusApi


def _cell(row: Row, column: str, fmt: str = "{:.0f}") -> str:
    return fmt.format(row[column]) if column in row else "-"


def render(rows: dict[tuple[str, str], Row], url: str) -> Table:
    table = Table(title=f"sovereign GPUs and compliance ({url})", title_justify="left")
    for header in (
        "region",
        "cluster",
        "GPUs alloc",
        "quota",
        "capacity",
        "util %",
        "GPUs busy",
        "GPU-h 24h",
        "non-compliant",
    ):
        table.add_column(header, justify="left" if header in ("region", "cluster") else "right")
    for (region, cluster), row in sorted(rows.items()):
        over = "quota" in row and row.get("allocated", 0) > row["quota"]
        noncompliant = row.get("noncompliant", 0)
        table.add_row(
            region,
            cluster,
            f"[bold red]{_cell(row, 'allocated')}[/]" if over else _cell(row, "allocated"),
            _cell(row, "quota"),
            _cell(row, "capacity"),
            _cell(row, "util", "{:.1f}"),
            _cell(row, "busy"),
            _cell(row, "gpu_hours", "{:.2f}"),
            f"[bold red]{noncompliant:.0f}[/] / {_cell(row, 'deployments')}"
            if noncompliant
            else f"0 / {_cell(row, 'deployments')}",
        )
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
