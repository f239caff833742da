"""`sovereign exporter`: the exporter, with the options of `python -m sovereign.exporter` (the entry point
for a bare GPU node, sovereign/exporter/entry.py), served by the same code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sovereign.errors import BadInput
from sovereign.exporter.entry import DEFAULT_ADDR, DEFAULT_PORT, DEFAULTS, serve
from sovereign.exporter.service import ExporterConfig, Scope, default_node


def exporter(
    once: Annotated[bool, typer.Option("--once", help="Print the exposition text once and exit.")] = False,
    addr: Annotated[
        str, typer.Option(help="Listen address; 0.0.0.0 to be scraped from other machines.")
    ] = DEFAULT_ADDR,
    port: Annotated[int, typer.Option(help="Listen port.", min=1, max=65535)] = DEFAULT_PORT,
    node: Annotated[
        str | None,
        typer.Option(help="Node name for the Hostname label (default: $NODE_NAME, else the host)."),
    ] = None,
    region: Annotated[str, typer.Option(envvar="SOVEREIGN_REGION", help="This node's region.")] = "unknown",
    cluster: Annotated[
        str, typer.Option(envvar="SOVEREIGN_CLUSTER", help="This node's cluster.")
    ] = "unknown",
    kubeconfig: Annotated[
        Path | None, typer.Option(help="Account GPU allocation from this API server.")
    ] = None,
    in_cluster: Annotated[
        bool, typer.Option("--in-cluster", help="Account GPU allocation from the API server of this pod.")
    ] = False,
    scope: Annotated[
        Scope,
        typer.Option(
            help="all: this node's GPUs and the cluster's allocation; node: only the GPUs (one exporter per "
            "GPU node); cluster: only the allocation and quotas (one per cluster)."
        ),
    ] = Scope.all,
    gpu_trace: Annotated[
        Path | None, typer.Option(help="Replay this NVML trace JSON instead of reading NVML.")
    ] = None,
    interval: Annotated[
        float, typer.Option(help="API server poll interval in seconds.", min=0.1)
    ] = DEFAULTS.interval_s,
    tenant_limit: Annotated[
        int, typer.Option(help="Distinct tenants before the others become 'other'.", min=1)
    ] = DEFAULTS.tenant_limit,
    sovereignclusters_crd: Annotated[
        str, typer.Option(help="GROUP/VERSION/PLURAL of the SovereignCluster resource.")
    ] = DEFAULTS.sovereign_clusters_crd,
) -> None:
    """Serve DCGM-compatible GPU metrics with sovereignty labels, GPU allocation accounting and per-source
    health on /metrics (loopback unless --addr says otherwise)."""
    if kubeconfig is not None and in_cluster:
        raise BadInput("give --kubeconfig or --in-cluster, not both: one API server accounts the GPUs")
    config = ExporterConfig(
        node=node or default_node(),
        region=region,
        cluster=cluster,
        kubeconfig=kubeconfig,
        in_cluster=in_cluster,
        gpu_trace=gpu_trace,
        interval_s=interval,
        tenant_limit=tenant_limit,
        sovereign_clusters_crd=sovereignclusters_crd,
        scope=scope,
    )
    raise typer.Exit(serve(config, addr, port, once))
