"""Bring a named dev control plane up or down through its detached supervisor process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from sovereign import toolchain
from sovereign.audit import keys as audit_keys
from sovereign.devenv.controlplane import COMPONENT_BINARIES, Ports
from sovereign.devenv.state import controlplane_dir, pid_alive, read_state
from sovereign.errors import SovereignError
from sovereign.policy.bundle import configured_bundle
from sovereign.policy.screening_source import SCREENING_LIST_ENV, install_dev_sample

UP_TIMEOUT_S = 180.0


def running_state(name: str) -> dict[str, Any] | None:
    state = read_state(name)
    if state and pid_alive(state.get("supervisor_pid")):
        return state
    return None


def _install_dev_inputs(progress: Callable[[str], None]) -> None:
    sample = install_dev_sample()  # re-dated at each `up`
    progress(f"screening list: {sample}, a dated SAMPLE (set ${SCREENING_LIST_ENV} to use a real one)")
    # The enforcement points refuse to start without a decision log to write: the dev one is made here.
    progress(f"decision log: signed with the audit key {audit_keys.ensure_key()} (`sovereign audit verify`)")


def up(
    name: str,
    *,
    apiserver_port: int = 0,
    opa_port: int = 0,
    manifests: list[Path] | None = None,
    ready_timeout_s: float | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Start the control plane `name` unless it runs already; return its state. Streams progress."""
    if state := running_state(name):
        _install_dev_inputs(progress)
        progress(f"control plane '{name}' is already up")
        return state
    # Fail fast, in this process, on missing binaries: the supervisor would only say the same later.
    for binary in COMPONENT_BINARIES:
        toolchain.binary(binary)
    toolchain.kuberay_crds()
    configured_bundle()  # no bundle or trust anchor: one line naming `sovereign bundle build`, exit 2
    Ports(apiserver=apiserver_port, opa=opa_port).resolve()  # a taken port is bad input: say so here
    _install_dev_inputs(progress)

    folder = controlplane_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state.json").unlink(missing_ok=True)
    log_path = folder / "supervisor.log"
    argv = [sys.executable, "-m", "sovereign.devenv.supervisor", name]
    if apiserver_port:
        argv += ["--apiserver-port", str(apiserver_port)]
    if opa_port:
        argv += ["--opa-port", str(opa_port)]
    if ready_timeout_s is not None:
        argv += ["--ready-timeout", str(ready_timeout_s)]
    for manifest in manifests or []:
        argv += ["--manifest", str(manifest)]
    with open(log_path, "w") as log:
        supervisor = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    shown = 0
    deadline = time.monotonic() + UP_TIMEOUT_S
    while time.monotonic() < deadline:
        lines = log_path.read_text(errors="replace").splitlines()
        for line in lines[shown:]:
            if line not in ("ready",) and not line.startswith("failed: "):
                progress(line)
        shown = len(lines)
        if (state := read_state(name)) and state.get("ready"):
            return state
        if supervisor.poll() is not None:
            error = folder / "error.txt"
            reason = error.read_text() if error.exists() else "\n".join(lines[-10:])
            raise SovereignError(f"control plane '{name}' failed to start: {reason}")
        time.sleep(0.2)
    _terminate(supervisor.pid)
    raise SovereignError(
        f"control plane '{name}' was not ready within {UP_TIMEOUT_S:.0f} s and was stopped; see {log_path}"
    )


def _terminate(pid: int, grace: float = 30.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        psutil.Process(pid).wait(timeout=grace)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)  # its children get SIGKILL from the kernel (PR_SET_PDEATHSIG)


def down(name: str, progress: Callable[[str], None] = print) -> bool:
    """Stop `name`; True if something was running. Leaves no process behind."""
    state = read_state(name)
    if not state:
        progress(f"control plane '{name}' is not running")
        return False
    _terminate(int(state["supervisor_pid"]))
    for component in state.get("components", []):
        pid = component.get("pid")
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    (controlplane_dir(name) / "state.json").unlink(missing_ok=True)
    progress(f"control plane '{name}' stopped")
    return True
