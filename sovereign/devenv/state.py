"""Where control planes keep their state, and how a running one is found and health-checked."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import requests
import yaml

from sovereign.state_dir import state_root


def controlplane_dir(name: str) -> Path:
    return state_root() / "controlplanes" / name


def read_state(name: str) -> dict[str, Any] | None:
    path = controlplane_dir(name) / "state.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def dev_kubeconfig(name: str = "dev") -> Path | None:
    """The kubeconfig of the running dev control plane `name`, if it runs: what a command falls back to
    when neither --kubeconfig nor $KUBECONFIG names one (a second terminal, where nothing was exported)."""
    state = read_state(name)
    return Path(state["kubeconfig"]) if state and Path(state["kubeconfig"]).is_file() else None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _admin_token(kubeconfig: str) -> str:
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    return str(doc["users"][0]["user"]["token"])


def _kubeconfig_server(kubeconfig: Path) -> str | None:
    try:
        return str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    except (OSError, yaml.YAMLError, LookupError, TypeError):
        return None


class Attached:
    """The record of a process attached to a control plane (see `attached`): what `dev status` lists, and
    the last error the process met, which `sovereign request status` shows when a decision does not come
    ("operator failing: ...")."""

    def __init__(self, path: Path, entry: dict[str, Any]) -> None:
        self.path = path
        self.entry = entry
        self._lock = threading.Lock()

    def failed(self, message: str) -> None:
        with self._lock:
            self.entry["last_error"] = {"message": message, "time": time.time()}
            # Written whole and renamed: a reader never sees half a record.
            partial = self.path.with_suffix(".tmp")
            partial.write_text(json.dumps(self.entry))
            partial.replace(self.path)

    def log_handler(self, level: int = logging.WARNING) -> logging.Handler:
        """A logging handler that records every message at `level` or above as the last error."""
        record = self

        class _LastError(logging.Handler):
            def emit(self, entry: logging.LogRecord) -> None:
                message = entry.getMessage()
                if entry.exc_info and entry.exc_info[1] is not None:
                    message = f"{message}: {entry.exc_info[1]}"
                try:
                    record.failed(message)
                except OSError:
                    self.handleError(entry)

        return _LastError(level)


@contextmanager
def attached(component: str, kubeconfig: Path, ports: dict[str, int]) -> Iterator[Attached]:
    """While the block runs, `sovereign dev status` of the control plane `kubeconfig` names lists
    `component` (a process started apart from `dev up`: the operator, the data plane) with its ports."""
    folder = state_root() / "attached"
    folder.mkdir(parents=True, exist_ok=True)
    record = Attached(
        folder / f"{component}-{os.getpid()}.json",
        {"name": component, "pid": os.getpid(), "ports": ports, "server": _kubeconfig_server(kubeconfig)},
    )
    record.path.write_text(json.dumps(record.entry))
    try:
        yield record
    finally:
        record.path.unlink(missing_ok=True)


def attached_to(server: str | None) -> list[dict[str, Any]]:
    """The records of the live processes attached to the API server at `server` (dead ones are removed)."""
    found = []
    for path in sorted((state_root() / "attached").glob("*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not pid_alive(entry.get("pid")):
            path.unlink(missing_ok=True)  # its process died without removing it
            continue
        if entry.get("server") == server:
            found.append(entry)
    return found


def attached_components(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The live processes attached to this control plane (its API server), as status lists components."""
    return [
        {
            "name": entry["name"],
            "pid": entry["pid"],
            "port": next(iter(entry["ports"].values())),
            "ports": entry["ports"],
            "log": "(its terminal)",
        }
        for entry in attached_to(state.get("apiserver_url"))
    ]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def component_health(state: dict[str, Any], component: dict[str, Any]) -> str:
    """'ok', 'unhealthy: <why>' or 'not running'."""
    if not pid_alive(component.get("pid")):
        return "not running"
    if "health_url" not in component:  # an attached process: alive and listening is all it tells
        return "ok" if _listening(component["port"]) else f"unhealthy: nothing on port {component['port']}"
    headers = {}
    if component["name"] == "kube-apiserver":
        headers["Authorization"] = f"Bearer {_admin_token(state['kubeconfig'])}"
    try:
        resp = requests.get(component["health_url"], headers=headers, verify=state["ca_file"], timeout=2)
    except requests.RequestException as exc:
        return f"unhealthy: {type(exc).__name__}"
    return "ok" if resp.status_code == 200 else f"unhealthy: HTTP {resp.status_code}"
