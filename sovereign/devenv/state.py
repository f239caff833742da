"""Where control planes keep their state, and how a running one is found and health-checked."""

from __future__ import annotations

import json
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


def component_health(state: dict[str, Any], component: dict[str, Any]) -> str:
    """'ok', 'unhealthy: <why>' or 'not running'."""
    if not pid_alive(component.get("pid")):
        return "not running"
    headers = {}
    if component["name"] == "kube-apiserver":
        headers["Authorization"] = f"Bearer {_admin_token(state['kubeconfig'])}"
    try:
        resp = requests.get(component["health_url"], headers=headers, verify=state["ca_file"], timeout=2)
    except requests.RequestException as exc:
        return f"unhealthy: {type(exc).__name__}"
    return "ok" if resp.status_code == 200 else f"unhealthy: HTTP {resp.status_code}"
