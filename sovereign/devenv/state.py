"""Where control planes keep their state, and how a running one is found and health-checked."""

from __future__ import annotations

import json
import os
import socket
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


@contextmanager
def attached(component: str, kubeconfig: Path, ports: dict[str, int]) -> Iterator[None]:
    """While the block runs, `sovereign dev status` of the control plane `kubeconfig` names lists
    `component` (a process started apart from `dev up`: the operator, the data plane) with its ports."""
    folder = state_root() / "attached"
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / f"{component}-{os.getpid()}.json"
    entry = {"name": component, "pid": os.getpid(), "ports": ports, "server": _kubeconfig_server(kubeconfig)}
    record.write_text(json.dumps(entry))
    try:
        yield
    finally:
        record.unlink(missing_ok=True)


def attached_components(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The live processes attached to this control plane (its API server), as status lists components."""
    found = []
    for record in sorted((state_root() / "attached").glob("*.json")):
        try:
            entry = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if not pid_alive(entry.get("pid")):
            record.unlink(missing_ok=True)  # its process died without removing it
            continue
        if entry.get("server") == state.get("apiserver_url"):
            ports = entry["ports"]
            found.append(
                {
                    "name": entry["name"],
                    "pid": entry["pid"],
                    "port": next(iter(ports.values())),
                    "ports": ports,
                    "log": "(its terminal)",
                }
            )
    return found


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
