"""The long-lived parent of one dev control plane (`sovereign dev up` starts it detached).

Its children die with it (PR_SET_PDEATHSIG), so `dev down` only has to stop this one process, and a
supervisor killed outright still leaves no etcd, API server or OPA behind.
Usage: python -m sovereign.devenv.supervisor NAME [--apiserver-port N] [--opa-port N] [--ready-timeout S]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from operators.manifests import dev_manifests
from sovereign.devenv.controlplane import READY_TIMEOUT_S, ControlPlane, ControlPlaneConfig, Ports
from sovereign.devenv.state import controlplane_dir
from sovereign.errors import SovereignError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sovereign-supervisor")
    parser.add_argument("name")
    parser.add_argument("--apiserver-port", type=int, default=0)
    parser.add_argument("--opa-port", type=int, default=0)
    parser.add_argument(
        "--manifest", action="append", type=Path, help="applied after the KubeRay CRDs (default: sovereign's)"
    )
    parser.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT_S)
    args = parser.parse_args(argv)

    folder = controlplane_dir(args.name)
    error_file = folder / "error.txt"
    error_file.unlink(missing_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    config = ControlPlaneConfig(
        name=args.name,
        state_dir=folder,
        ports=Ports(apiserver=args.apiserver_port, opa=args.opa_port),
        manifests=args.manifest if args.manifest is not None else dev_manifests(),
        ready_timeout_s=args.ready_timeout,
    )
    plane = ControlPlane(config, progress=lambda line: print(line, flush=True))
    try:
        plane.start()
    except SovereignError as exc:
        error_file.write_text(str(exc))
        print(f"failed: {exc}", flush=True)
        return 2
    plane.write_state({"supervisor_pid": os.getpid(), "ready": True})
    print("ready", flush=True)
    try:
        while not stop.wait(1.0):
            dead = [p.name for p in plane.processes if p.exited() is not None]
            if dead:
                print(f"component exited unexpectedly: {', '.join(dead)}; stopping the rest", flush=True)
                break
    finally:
        plane.stop()
        (folder / "state.json").unlink(missing_ok=True)
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
