"""`sovereign dev up | down | status` as a user runs them: real processes, no orphans, clear failures.

`up`, `status` (what `up` started and the operator and data plane running against it, each with its ports
and health), `up` again and `down` leaving nothing behind are run as the README has a platform engineer run
them, in tests/test_readme_journeys.py."""

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

from sovereign.devenv.process import free_port

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


def test_a_free_port_is_outside_the_range_outgoing_connections_take_and_binds() -> None:
    """free_port chooses under the kernel's ephemeral range, so the many outgoing connections of a run
    (kube clients, OPA calls) cannot take it before its server binds it; the port is free to bind."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(20000 <= port < low for port in ports) and len(ports) > 1
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", ports.pop()))
