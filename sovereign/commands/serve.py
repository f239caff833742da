"""`sovereign serve --local FILE | --watch`: run RayServices on a local Ray, KubeRay's job when local."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sovereign.audit.keys import load_signing_key
from sovereign.devenv.state import attached, dev_kubeconfig
from sovereign.errors import BadInput, ToolMissing
from sovereign.policy.screening_source import configured_list

_out = Console(soft_wrap=True)  # a status line is one line, however long


def _say(line: str) -> None:
    _out.print(line, highlight=False)


def _kubeconfig(explicit: Path | None, controlplane: str) -> Path:
    if explicit is not None:
        return explicit
    if env := os.environ.get("KUBECONFIG"):
        return Path(env)
    if found := dev_kubeconfig(controlplane):
        return found
    raise BadInput(
        f"--watch needs an API server: give --kubeconfig, set KUBECONFIG, or start one with "
        f"'sovereign dev up --name {controlplane}'"
    )


def serve(
    local: Annotated[
        Path | None,
        typer.Option("--local", help="A RayService YAML file: apply its serveConfigV2 to a local Ray."),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Serve every non-suspended RayService in the API server; write their status."
        ),
    ] = False,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="For --watch (default: $KUBECONFIG, else the dev control plane's).")
    ] = None,
    controlplane: Annotated[str, typer.Option("--name", "-n", help="Dev control plane for --watch.")] = "dev",
    port: Annotated[
        int,
        typer.Option(
            help="HTTP port of the local Serve proxy.", min=1, max=65535, envvar="SOVEREIGN_SERVE_PORT"
        ),
    ] = 8000,
    num_cpus: Annotated[int, typer.Option(help="CPUs the local Ray may schedule on.", min=1)] = 2,
    num_gpus: Annotated[
        int,
        typer.Option(
            help="GPUs the local node advertises to Ray, so GPU-sized replicas are placed (they run on CPU "
            "when no device is present).",
            min=0,
        ),
    ] = 0,
    interval: Annotated[float, typer.Option(help="Seconds between reconcile passes.", min=0.1)] = 1.0,
) -> None:
    """Serve RayServices on a local Ray, as KubeRay would on a cluster; Ctrl-C stops it.

    Each RayService is served under http://127.0.0.1:PORT/<namespace>/<name>/v1 (OpenAI API) with its
    sovereign metrics at .../metrics; Ray's own metrics are on the port printed at start.
    """
    if (local is None) == (not watch):
        raise BadInput("give exactly one of --local RAYSERVICE.yaml or --watch")
    try:
        from serving.dataplane import DataPlane, LocalRay, load_rayservice_file
        from serving.dataplane import watch as watch_api
    except ImportError as exc:
        raise ToolMissing(
            f"the serving stack is not installed ({exc.name}): run .venv/bin/pip install -e '.[serving]'"
        ) from None
    # Checked before Ray starts: bad input costs nothing and applies nothing.
    # Every request is screened: a data plane without a list is refused here, naming the setting.
    screening = configured_list(enforcing=True)
    load_signing_key()  # every request's judgement is recorded: no audit key, no data plane (exit 2)
    obj = load_rayservice_file(local) if local is not None else None
    config_path = _kubeconfig(kubeconfig, controlplane) if watch else None
    _say(f"screening list: {screening.path} ({screening.origin})")
    ray = LocalRay(num_cpus=num_cpus, num_gpus=num_gpus, http_port=port)
    _say(f"starting a local Ray ({num_cpus} CPUs, {num_gpus} GPUs advertised): Serve on {ray.url}")
    _say(f"Ray metrics on :{ray.metrics_port}")
    ray.start()
    plane = DataPlane(ray, progress=_say)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if obj is not None:
            while not stop.is_set():
                plane.reconcile([obj])  # each change of its Ready condition is printed
                time.sleep(interval)
        else:
            assert config_path is not None
            _say(f"watching RayServices through {config_path}")
            with attached("data plane", config_path, {"serve": port, "ray metrics": ray.metrics_port}):
                watch_api(plane, config_path, stop, interval)
    except KeyboardInterrupt:
        pass
    finally:
        _say("stopping the local Ray")
        ray.stop()
