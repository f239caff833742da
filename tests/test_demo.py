"""The main job end to end: `sovereign demo --check` on real parts, and `sovereign demo down` leaving
no process behind."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

SOVEREIGN = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "sovereign"


def _env(state: Path) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOVEREIGN_", "PULUMI_")) and k != "KUBECONFIG"
    }
    return {**clean, "SOVEREIGN_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}


def _leftovers(state: Path) -> list[psutil.Process]:
    """Processes of this demo: started under its state folder, or carrying its marker in their environment."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        environ = proc.info["environ"] or {}
        cmdline = proc.info["cmdline"] or []
        marker = environ.get("SOVEREIGN_DEMO_MEMBER", "")
        if marker.startswith(str(state)) or any(str(state) in arg for arg in cmdline):
            found.append(proc)
    return found


def _wait_gone(state: Path, timeout: float = 30) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    left = _leftovers(state)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [p for p in _leftovers(state) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return left


@pytest.mark.timeout(1800)
def test_demo_check_holds_every_outcome_and_stops_everything(tmp_path: Path) -> None:
    done = subprocess.run(
        [SOVEREIGN, "demo", "--check"], env=_env(tmp_path), capture_output=True, text=True, timeout=1800
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    for outcome in (
        "passed: eu-text-only: preview refuses eu-rotterdam-1-noncompliant.yaml",
        "passed: EU text request answered",
        "passed: EU image request refused with REGION_MODALITY",
        "passed: us-defense image request answered",
        "passed: ClusterRequest lattice-usdef-approved approved",
        "passed: ClusterRequest northwind-fvey-denied denied (screening hit)",
        "passed: what-if predicts fvey-london-1-chat suspended (ACCREDITATION_MISSING), and nothing else",
        "passed: publishing refuses until fvey-london-1-chat is named",
        "passed: published with --accept-suspensions fvey-london-1-chat",
        "passed: policy change suspends fvey-london-1-chat (ACCREDITATION_MISSING)",
        "passed: Prometheus has GPUs allocated by region",
        "passed: compliance matrix written",
    ):
        assert outcome in output, outcome
    assert "FAILED" not in output
    assert ", 0 failed" in output
    assert _wait_gone(tmp_path) == []


@pytest.mark.timeout(900)
def test_demo_down_stops_a_running_demo_and_everything_it_started(tmp_path: Path) -> None:
    env = _env(tmp_path)
    log = tmp_path / "demo.out"
    with open(log, "w") as out:
        demo = subprocess.Popen([SOVEREIGN, "demo"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        # Stop it while it is busy: control planes, exporters and Prometheus are up by step 4.
        while "4. `sovereign up`" not in log.read_text() and time.monotonic() < deadline:
            assert demo.poll() is None, log.read_text()[-3000:]
            time.sleep(1)
        assert len(_leftovers(tmp_path)) > 5  # etcd, apiservers, OPAs, exporters, Prometheus ...
        down = subprocess.run(
            [SOVEREIGN, "demo", "down"], env=env, capture_output=True, text=True, timeout=300
        )
        assert down.returncode == 0, down.stdout + down.stderr
        assert demo.wait(timeout=60) is not None
        assert _wait_gone(tmp_path) == []
    finally:
        if demo.poll() is None:
            demo.kill()
        for proc in _leftovers(tmp_path):
            proc.kill()
