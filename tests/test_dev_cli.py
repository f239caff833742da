"""`sovereign dev up | down | status` as a user runs them: real processes, no orphans, clear failures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sovereign import toolchain
from sovereign.devenv.process import free_port
from sovereign.devenv.state import attached

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

SOVEREIGN = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "sovereign"


@pytest.fixture(autouse=True)
def _built_bundle(monkeypatch: pytest.MonkeyPatch, bundle_env: dict[str, str]) -> None:
    """`dev up` serves the session's built bundle (a test that wants none says so)."""
    for name, value in bundle_env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    # Whatever a test left running is a bug in the code under test, but never leak it into the next test.
    for proc in _processes_under(tmp_path):
        proc.kill()


def _processes_under(folder: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(folder) in arg for arg in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _run(state_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "SOVEREIGN_STATE_DIR": str(state_dir), **(env or {})}
    return subprocess.run(
        [SOVEREIGN, "dev", *args], capture_output=True, text=True, env=full_env, timeout=240
    )


def _wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        time.sleep(0.1)
    return alive


def test_up_status_down_leaves_nothing_behind(state_dir: Path) -> None:
    up = _run(state_dir, "up", "--name", "cli")
    assert up.returncode == 0, up.stderr
    assert "control plane 'cli' is up" in up.stdout
    assert "starting kube-apiserver" in up.stdout  # progress is shown
    # The dated screening sample every local enforcement point picks up by default.
    sample = state_dir / "screening" / "dev-sample.json"
    assert f"screening list: {sample}, a dated SAMPLE" in up.stdout
    assert json.loads(sample.read_text())["sample"] is True

    status = _run(state_dir, "status", "--name", "cli", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["healthy"] is True
    assert Path(report["kubeconfig"]).is_file()
    assert report["apiserver_url"].startswith("https://127.0.0.1:")
    assert {c["name"]: c["health"] for c in report["components"]} == {
        "etcd": "ok",
        "kube-apiserver": "ok",
        "kube-controller-manager": "ok",
        "opa": "ok",
    }
    assert all(isinstance(c["port"], int) for c in report["components"])  # each one's port, never None
    pids = [report["supervisor_pid"], *(c["pid"] for c in report["components"])]

    # What runs against it apart from `dev up` (here this process, as the operator would) is listed too.
    with socket.socket() as webhook, pytest.MonkeyPatch.context() as patch:
        webhook.bind(("127.0.0.1", 0))
        webhook.listen()
        port = webhook.getsockname()[1]
        patch.setenv("SOVEREIGN_STATE_DIR", str(state_dir))
        with attached("operator", Path(report["kubeconfig"]), {"webhook": port}):
            listed = json.loads(_run(state_dir, "status", "--name", "cli", "--json").stdout)
            table = _run(state_dir, "status", "--name", "cli", env={"COLUMNS": "300"}).stdout
    operator = next(c for c in listed["components"] if c["name"] == "operator")
    assert (operator["pid"], operator["port"], operator["health"]) == (os.getpid(), port, "ok")
    assert f"{port} webhook" in table
    crds = subprocess.run(
        [toolchain.binary("kubectl"), f"--kubeconfig={report['kubeconfig']}", "get", "crds", "-o", "name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for crd in ("rayservices.ray.io", "sovereignclusters.sovereign.dev", "llamadeployments.sovereign.dev"):
        assert crd in crds  # KubeRay's CRDs and sovereign's own are installed

    again = _run(state_dir, "up", "--name", "cli")
    assert again.returncode == 0 and "already up" in again.stdout

    down = _run(state_dir, "down", "--name", "cli")
    assert down.returncode == 0, down.stderr
    assert _wait_gone(pids) == []
    after = _run(state_dir, "status", "--name", "cli", "--json")
    assert after.returncode == 1 and json.loads(after.stdout)["running"] is False


def test_killing_the_supervisor_takes_every_component_with_it(state_dir: Path) -> None:
    assert _run(state_dir, "up", "--name", "orphans").returncode == 0
    report = json.loads(_run(state_dir, "status", "--name", "orphans", "--json").stdout)
    component_pids = [c["pid"] for c in report["components"]]
    assert all(psutil.pid_exists(pid) for pid in component_pids)

    os.kill(report["supervisor_pid"], signal.SIGKILL)

    assert _wait_gone(component_pids) == []
    assert _processes_under(state_dir) == []


def test_a_port_in_use_fails_with_one_clear_line_and_starts_nothing(state_dir: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = _run(state_dir, "up", "--name", "busy", "--apiserver-port", str(port))
    assert done.returncode == 2
    assert f"port {port} (--apiserver-port) is already in use" in done.stderr
    assert _processes_under(state_dir) == []


def test_without_a_built_bundle_up_says_to_build_one_and_starts_nothing(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, bundle_env: dict[str, str]
) -> None:
    for name in bundle_env:
        monkeypatch.delenv(name)
    done = _run(state_dir, "up", "--name", "unbuilt")
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "sovereign bundle build" in line
    assert _processes_under(state_dir) == []
    assert list(state_dir.rglob("*")) == []  # no key, no bundle, no control plane folder


def test_missing_binaries_say_to_run_make_tools(
    state_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    empty = tmp_path_factory.mktemp("no-tools")
    done = _run(state_dir, "up", "--name", "notools", env={"SOVEREIGN_TOOLS_DIR": str(empty)})
    assert done.returncode == 2
    assert "run 'make tools'" in done.stderr
    assert _processes_under(state_dir) == []


def test_a_component_not_ready_in_time_stops_everything_started(state_dir: Path) -> None:
    done = _run(state_dir, "up", "--name", "slow", "--ready-timeout", "0.2")
    assert done.returncode == 1
    assert "did not become ready" in done.stderr
    assert "within 0 s" in done.stderr or "within 1 s" in done.stderr  # rounded in the message
    time.sleep(0.5)
    assert _processes_under(state_dir) == []
