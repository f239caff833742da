"""The operator on a local control plane, as processes: `sovereign operator setup`, an OPA server on a
signed bundle, and `sovereign operator run`. The tests and the benchmark drive the operator through this,
exactly as a platform engineer would from a shell.

OPA keeps one port for its whole life here, so it can be stopped (the engine becomes unreachable) or
restarted on another bundle (the policy revision changes) under a running operator. OPA and the operator
read the bundle from one folder, as both mount one ConfigMap in a cluster: the operator believes OPA only
when it serves the revision the operator verified there itself.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from operators.manifests import onboard_namespace
from operators.sovereign_operator.kube import api_client
from sovereign import toolchain
from sovereign.devenv.process import ManagedProcess, free_port
from sovereign.errors import SovereignError
from sovereign.policy.bundle import (
    BUNDLE_DIR_ENV,
    TRUST_ANCHOR_ENV,
    SignedBundle,
    install_bundle,
    opa_server_args,
)
from sovereign.policy.opa_token import opa_server_env
from sovereign.vocabulary import (
    CLUSTER_REQUEST,
    CLUSTERS,
    DEPLOYMENTS,
    GROUP,
    LLAMA_DEPLOYMENT,
    RAY_GROUP,
    RAY_SERVICE,
    RAY_VERSION,
    RAYSERVICES,
    REQUESTS,
    SOVEREIGN_CLUSTER,
    VERSION,
)

T = TypeVar("T")
_PLURALS = {
    SOVEREIGN_CLUSTER: CLUSTERS,
    LLAMA_DEPLOYMENT: DEPLOYMENTS,
    CLUSTER_REQUEST: REQUESTS,
    RAY_SERVICE: RAYSERVICES,
}
_GROUPS = {
    CLUSTERS: (GROUP, VERSION),
    DEPLOYMENTS: (GROUP, VERSION),
    REQUESTS: (GROUP, VERSION),
    RAYSERVICES: (RAY_GROUP, RAY_VERSION),
}

READY_TIMEOUT_S = 60.0


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy, and return that; SovereignError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if result := probe():
            return result
        if time.monotonic() >= deadline:
            raise SovereignError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def tls_ready(host: str, port: int, ca: Path) -> bool:
    """Whether a TLS server with a certificate of `ca` for `host` answers at host:port (raises if not)."""
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection((host, port), timeout=1) as raw,
        context.wrap_socket(raw, server_hostname=host),
    ):
        return True


class LocalOpa:
    """An OPA server verifying and serving a signed bundle, on one port for its whole life."""

    def __init__(self, workdir: Path, bundle: SignedBundle) -> None:
        self.workdir = workdir
        self.bundle = bundle
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, bundle: SignedBundle | None = None) -> None:
        self.stop()
        argv = [str(toolchain.binary("opa")), "run", "--server", f"--addr=127.0.0.1:{self.port}"]
        argv += ["--log-level=error", "--disable-telemetry", *opa_server_args(bundle or self.bundle)]
        self.process = ManagedProcess("opa", argv, self.workdir / "opa.log", env=opa_server_env())
        self.process.start()
        self.process.wait_ready(
            lambda: requests.get(f"{self.url}/health?bundles=true", timeout=1).status_code == 200,
            READY_TIMEOUT_S,
            f"{self.url}/health",
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def kill(self) -> None:
        """SIGKILL OPA: it answers nothing more, and its port refuses connections at once."""
        if self.process is not None:
            self.process.kill()
            self.process = None


class LocalOperator:
    def __init__(
        self,
        kubeconfig: Path,
        ca_dir: Path,
        workdir: Path,
        bundle: SignedBundle,
        run_args: list[str] | None = None,
        in_process: bool = False,
    ) -> None:
        """`in_process`: the operator judges with the signed bundle in-process (Wasm) instead of asking the
        OPA server (which still serves the same bundle, for whoever else asks)."""
        self.kubeconfig = kubeconfig
        self.ca_dir = ca_dir
        self.workdir = workdir
        self.bundle = bundle
        self.run_args = run_args or []
        self.in_process = in_process
        self.credentials = workdir / "credentials"
        self.bundle_dir = workdir / "policy-bundle"  # what OPA serves and the operator verifies
        self.opa = LocalOpa(workdir, bundle)
        self.webhook_port = free_port()
        self.health_port = free_port()
        self.metrics_port = free_port()  # /metrics: decisions, engine health, compliance, accreditations
        self.process: ManagedProcess | None = None
        self._starts = 0
        self.api_client = api_client(kubeconfig)

    @property
    def custom(self) -> Any:
        """The administrator's CustomObjectsApi (what a platform engineer's kubectl would do)."""
        return client.CustomObjectsApi(self.api_client)

    # --- the administrator's view of the objects ----------------------------------------------------
    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        group, version = body["apiVersion"].split("/")
        plural = _PLURALS[body["kind"]]
        if namespace := body["metadata"].get("namespace"):
            return self.custom.create_namespaced_custom_object(group, version, namespace, plural, body)
        return self.custom.create_cluster_custom_object(group, version, plural, body)

    def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        group, version = _GROUPS[plural]
        try:
            if namespace:
                return self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
            return self.custom.get_cluster_custom_object(group, version, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch(self, plural: str, name: str, patch: dict[str, Any], namespace: str | None = None) -> None:
        group, version = _GROUPS[plural]
        if namespace:
            self.custom.patch_namespaced_custom_object(group, version, namespace, plural, name, patch)
        else:
            self.custom.patch_cluster_custom_object(group, version, plural, name, patch)

    def delete(self, plural: str, name: str, namespace: str | None = None) -> None:
        group, version = _GROUPS[plural]
        if namespace:
            self.custom.delete_namespaced_custom_object(group, version, namespace, plural, name)
        else:
            self.custom.delete_cluster_custom_object(group, version, plural, name)

    def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        group, version = _GROUPS[plural]
        return list(self.custom.list_namespaced_custom_object(group, version, namespace, plural)["items"])

    def event_reasons(self, namespace: str, name: str) -> list[str]:
        """Reasons of the Events recorded about the object `name` in `namespace`, oldest first."""
        events = client.CoreV1Api(self.api_client).list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}"
        )
        return [e.reason for e in sorted(events.items, key=lambda e: str(e.metadata.creation_timestamp))]

    @property
    def opa_url(self) -> str:
        return self.opa.url

    # --- one-time ------------------------------------------------------------------------------------
    def setup(self) -> None:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "sovereign",
                "operator",
                "setup",
                f"--out={self.credentials}",
                f"--ca-dir={self.ca_dir}",
                f"--webhook-port={self.webhook_port}",
                f"--kubeconfig={self.kubeconfig}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise SovereignError(f"sovereign operator setup failed:\n{done.stdout}{done.stderr}")

    def onboard(self, namespace: str) -> None:
        """Create a namespace for sovereign workloads (labelled, with the operator's RoleBinding)."""
        dynamic = DynamicClient(self.api_client)
        for doc in onboard_namespace(namespace):
            resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            dynamic.server_side_apply(
                resource, body=doc, field_manager="sovereign-localrun", force_conflicts=True
            )

    # --- OPA -----------------------------------------------------------------------------------------
    def start_opa(self, bundle: SignedBundle | None = None) -> None:
        """(Re)start OPA on its port, on `bundle` (default: the one given at construction), installed
        first in the bundle folder the operator verifies."""
        self.opa.start(install_bundle(bundle or self.bundle, self.bundle_dir))

    def stop_opa(self) -> None:
        self.opa.stop()

    # --- the operator --------------------------------------------------------------------------------
    def start(self, *extra: str) -> None:
        """Start `sovereign operator run` and wait until kopf is live and the webhook answers TLS."""
        self.stop()
        self._starts += 1
        argv = [
            sys.executable,
            "-m",
            "sovereign",
            "operator",
            "run",
            f"--credentials={self.credentials}",
            f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
            f"--metrics-port={self.metrics_port}",
            *self.run_args,
            *extra,
        ]
        env = {
            "SOVEREIGN_OPA_URL": "" if self.in_process else self.opa_url,
            BUNDLE_DIR_ENV: str(self.bundle_dir),
            TRUST_ANCHOR_ENV: str(self.bundle.verification_key),
            "PYTHONUNBUFFERED": "1",
        }
        self.process = ManagedProcess("sovereign-operator", argv, self.log_path, env=env)
        self.process.start()
        self.process.wait_ready(self._ready, READY_TIMEOUT_S, "liveness and webhook")

    @property
    def log_path(self) -> Path:
        return self.workdir / f"operator-{self._starts}.log"

    def _ready(self) -> bool:
        live = requests.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code == 200
        return live and tls_ready("127.0.0.1", self.webhook_port, self.credentials / "ca.crt")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def kill(self) -> None:
        """SIGKILL the operator's whole process group: no cleanup runs, as in a node failure."""
        if self.process is not None:
            self.process.kill()
            self.process = None

    def log(self) -> str:
        # In start order: operator-10.log comes after operator-9.log, though not as text.
        logs = sorted(self.workdir.glob("operator-*.log"), key=lambda path: int(path.stem.split("-")[-1]))
        return "\n".join(path.read_text(errors="replace") for path in logs)

    def close(self) -> None:
        self.stop()
        self.stop_opa()
