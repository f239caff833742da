"""`sovereign report`: chargeback, allocation and use, compliance and alerts over a window, as one
self-contained HTML page read from Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sovereign.report.data import read
from sovereign.report.prometheus_api import PrometheusApi, parse_duration


def report(
    prometheus: Annotated[
        str, typer.Option(help="Prometheus base URL.", envvar="SOVEREIGN_PROMETHEUS_URL")
    ] = "http://127.0.0.1:9090",
    since: Annotated[str, typer.Option(help="The window, ending now: 90m, 24h, 7d.")] = "24h",
    out: Annotated[Path, typer.Option(help="Where to write the HTML page.")] = Path("report.html"),
) -> None:
    """Write an HTML report with plots: allocation vs use per region, top tenants, chargeback (GPU-seconds
    and joules per 1,000 tokens), compliance over time, alerts fired."""
    # Imported here, not with the module: the plots' matplotlib takes about a second to import, which
    # every other command would pay.
    from sovereign.report.page import render_html

    seconds = parse_duration(since)
    api = PrometheusApi.at(prometheus)
    found = read(api, seconds)
    out.write_text(render_html(found))
    print(
        f"report of the last {since} written to {out}: {len(found.regions)} regions, "
        f"{len(found.chargeback)} chargeback rows, {len(found.alerts)} alerts fired"
    )
