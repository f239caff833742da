"""Stopping the demo: its own clean-up when it ends, and `sovereign demo down` from another shell, which
finds the running demo through the file `record_running` writes."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import psutil

from sovereign.demo.context import MEMBER_ENV, DemoContext, demo_root
from sovereign.demo.scenario import REGIONS
from sovereign.devenv import lifecycle

RUN_FILE = "demo.json"  # under demo_root(): the running demo's pid and regions


def record_running(demo: DemoContext) -> None:
    (demo.root / RUN_FILE).write_text(
        json.dumps({"pid": os.getpid(), "regions": [r.plan.region for r in demo.regions]})
    )


def stop(demo: DemoContext) -> None:
    """Stop what this demo started: its child processes, Prometheus and the regions' control planes."""
    for proc in reversed(demo.processes):
        proc.stop()
    demo.processes.clear()
    if demo.prometheus:
        demo.prometheus.stop()
    for region in demo.regions:
        lifecycle.down(region.plan.region, progress=lambda _line: None)
    (demo.root / RUN_FILE).unlink(missing_ok=True)


def demo_processes(root: Path) -> list[psutil.Process]:
    """Every process the demo started, directly or not, still alive."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        environ = proc.info["environ"] or {}
        cmdline = proc.info["cmdline"] or []
        mine = environ.get(MEMBER_ENV) == str(root) or any(str(root) in arg for arg in cmdline)
        if mine and proc.pid != os.getpid():
            found.append(proc)
    return found


def down(progress: Callable[[str], None]) -> list[int]:
    """Stop a running demo and everything it started; return the PIDs that had to be killed."""
    root = demo_root()
    try:
        state = json.loads((root / RUN_FILE).read_text())
    except (OSError, ValueError):
        state = {"pid": None, "regions": [plan.region for plan in REGIONS]}
    if state.get("pid") and psutil.pid_exists(state["pid"]):
        progress(f"stopping the demo (pid {state['pid']})")
        os.kill(state["pid"], signal.SIGTERM)
        try:
            psutil.Process(state["pid"]).wait(timeout=120)
        except psutil.TimeoutExpired:
            os.kill(state["pid"], signal.SIGKILL)
    for region in state["regions"]:
        lifecycle.down(region, progress=progress)
    leftovers = demo_processes(root)
    for proc in leftovers:
        proc.kill()
    (root / RUN_FILE).unlink(missing_ok=True)
    return [proc.pid for proc in leftovers]
