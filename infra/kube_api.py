"""How the program and the Kubernetes object provider reach an API server: kubeconfig + context."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient

from sovereign.errors import BadInput

REACH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Connection:
    """Where objects go. `server` identifies the cluster; the kubeconfig path is only how to reach it."""

    kubeconfig: str
    context: str
    server: str

    def as_props(self) -> dict[str, str]:
        return {"kubeconfig": self.kubeconfig, "context": self.context, "server": self.server}

    @classmethod
    def from_props(cls, props: dict[str, Any]) -> Connection:
        return cls(str(props["kubeconfig"]), str(props["context"]), str(props["server"]))


def default_kubeconfig() -> str:
    """What kubectl would use: $KUBECONFIG, else ~/.kube/config."""
    return os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


def _api_client(kubeconfig: str, context: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig, context=context or None)


def connect(kubeconfig: str, context: str, where: str) -> Connection:
    """Resolve and check the connection: BadInput naming the kubeconfig, context or endpoint that fails.

    `where` names the settings to fix (e.g. the stack's config keys).
    """
    # $KUBECONFIG may list several files, as for kubectl: at least one must exist.
    path = os.pathsep.join(
        str(Path(p).expanduser()) for p in (kubeconfig or default_kubeconfig()).split(os.pathsep)
    )
    if not any(Path(p).is_file() for p in path.split(os.pathsep)):
        raise BadInput(
            f"{where}: kubeconfig {path} does not exist: set the kubeconfig key to an existing file"
        )
    try:
        api = _api_client(path, context)
    except ConfigException as exc:
        raise BadInput(f"{where}: kubeconfig {path}, context {context or '(current)'}: {exc}") from None
    server = str(api.configuration.host)
    try:
        client.VersionApi(api).get_code(_request_timeout=REACH_TIMEOUT_S)
    except Exception as exc:  # refused, TLS, timeout, 401...: every one means the objects cannot be applied
        raise BadInput(
            f"{where}: the API server {server} (kubeconfig {path}, context {context or '(current)'}) "
            f"is unreachable: {type(exc).__name__}: {_first_line(exc)}; start it (sovereign dev up) "
            "or fix the kubeconfig/context keys"
        ) from None
    finally:
        api.close()
    return Connection(path, context, server)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"


_clients: dict[tuple[str, str], DynamicClient] = {}
_clients_lock = threading.Lock()


def dynamic_client(conn: Connection) -> DynamicClient:
    """One discovery-caching client per kubeconfig and context, shared by the provider's worker threads."""
    key = (conn.kubeconfig, conn.context)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = DynamicClient(_api_client(conn.kubeconfig, conn.context))
        return _clients[key]
