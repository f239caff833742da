"""The exporter's own command line, `python -m sovereign.exporter`, and the serving both command lines share.

argparse rather than Typer because this entry point must run on a bare GPU node that has only
prometheus-client and nvidia-ml-py; `sovereign exporter` (sovereign/commands/exporter.py) takes the same
options in the CLI's style and serves through `serve` here.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from sovereign.errors import SovereignError
from sovereign.exporter.service import Exporter, ExporterConfig, Scope, default_node
from sovereign.vocabulary import CLUSTERS_RESOURCE

# Loopback unless told otherwise: a scrape target on every interface is a choice made for a node's network.
DEFAULT_ADDR = "127.0.0.1"
DEFAULT_PORT = 9401
DEFAULTS = ExporterConfig(node="", region="", cluster="")


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sovereign.exporter",
        description="Serve DCGM-compatible GPU metrics with sovereignty labels, GPU allocation accounting "
        "and per-source health on /metrics.",
    )
    p.add_argument("--once", action="store_true", help="print the exposition text once and exit")
    p.add_argument("--addr", default=DEFAULT_ADDR, help="listen address (default: %(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="listen port (default: %(default)s)")
    p.add_argument(
        "--node", default=default_node(), help="node name for Hostname (default: $NODE_NAME or host)"
    )
    p.add_argument(
        "--region", default=os.environ.get("SOVEREIGN_REGION", "unknown"), help="this node's region"
    )
    p.add_argument(
        "--cluster", default=os.environ.get("SOVEREIGN_CLUSTER", "unknown"), help="this node's cluster"
    )
    api = p.add_mutually_exclusive_group()
    api.add_argument("--kubeconfig", type=Path, help="account GPU allocation from this API server")
    api.add_argument("--in-cluster", action="store_true", help="account from the API server of this pod")
    p.add_argument(
        "--scope",
        choices=[scope.value for scope in Scope],
        default=Scope.all.value,
        help="all: this node's GPUs and the cluster's allocation; node: only the GPUs (one per GPU node); "
        "cluster: only the allocation and quotas (one per cluster) (default: %(default)s)",
    )
    p.add_argument("--gpu-trace", type=Path, help="replay this NVML trace JSON instead of reading NVML")
    p.add_argument(
        "--interval", type=_positive, default=DEFAULTS.interval_s, help="API server poll interval in seconds"
    )
    p.add_argument(
        "--tenant-limit",
        type=int,
        default=DEFAULTS.tenant_limit,
        help="distinct tenants before others become 'other'",
    )
    p.add_argument(
        "--sovereignclusters-crd",
        default=CLUSTERS_RESOURCE,
        help="GROUP/VERSION/PLURAL of the SovereignCluster resource (default: %(default)s)",
    )
    return p


def serve(config: ExporterConfig, addr: str, port: int, once: bool) -> int:
    """Print the exposition once, or serve /metrics on addr:port until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="sovereign exporter: %(message)s", stream=sys.stderr)
    exporter = Exporter(config)
    if once:
        exporter.poll()
        sys.stdout.write(exporter.exposition().decode())
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"sovereign exporter: serving http://{addr}:{port}/metrics", file=sys.stderr, flush=True)
    exporter.serve(addr, port, stop)
    return 0


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    config = ExporterConfig(
        node=args.node,
        region=args.region,
        cluster=args.cluster,
        kubeconfig=args.kubeconfig,
        in_cluster=args.in_cluster,
        gpu_trace=args.gpu_trace,
        interval_s=args.interval,
        tenant_limit=args.tenant_limit,
        sovereign_clusters_crd=args.sovereignclusters_crd,
        scope=Scope(args.scope),
    )
    return serve(config, args.addr, args.port, args.once)


def main() -> None:
    try:
        sys.exit(run(sys.argv[1:]))
    except SovereignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
