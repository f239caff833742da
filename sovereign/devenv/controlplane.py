"""A local Kubernetes control plane (etcd + kube-apiserver) and an OPA server, on loopback.

This is the envtest pattern: the real API server with RBAC, static-token admin in system:masters and
ServiceAccount token issuance, but no kubelet or controller-manager. Everything it starts is a child
process that dies with its parent (see process.py); `stop()` tears down in reverse order.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from sovereign import toolchain
from sovereign.devenv.pki import LocalCA, service_account_signing_key
from sovereign.devenv.process import ManagedProcess, free_port, port_in_use
from sovereign.errors import BadInput, SovereignError
from sovereign.policy.bundle import configured_bundle, opa_server_args
from sovereign.policy.opa_token import opa_server_env

ADMIN_USER = "sovereign-admin"
READY_TIMEOUT_S = 90.0
# The identity the API server calls admission webhooks as (a client certificate from the local CA).
WEBHOOK_CLIENT = "kube-apiserver-webhook-client"
COMPONENT_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "opa")


@dataclass
class Ports:
    etcd_client: int = 0
    etcd_peer: int = 0
    apiserver: int = 0
    controller_manager: int = 0
    opa: int = 0

    def resolve(self) -> Ports:
        """Pick free loopback ports for those left at 0; refuse ports already taken."""
        chosen: dict[str, int] = {}
        for name, port in vars(self).items():
            if port and port_in_use(port):
                flag = name.replace("_", "-")
                raise BadInput(
                    f"port {port} (--{flag}-port) is already in use on 127.0.0.1: "
                    "free it or choose another port (leave it unset to pick a free one)"
                )
            chosen[name] = port or free_port()
        return Ports(**chosen)


@dataclass
class ControlPlaneConfig:
    name: str
    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    opa_args: list[str] | None = None  # what OPA serves; default: the built bundle, verified with the anchor
    manifests: list[Path] = field(default_factory=list)  # applied after the KubeRay CRDs
    ready_timeout_s: float = READY_TIMEOUT_S


class ControlPlane:
    def __init__(self, config: ControlPlaneConfig, progress: Callable[[str], None] = print) -> None:
        self.config = config
        self.progress = progress
        self.dir = config.state_dir
        self.processes: list[ManagedProcess] = []
        self.ports = Ports()
        self.admin_token = ""

    # --- paths -------------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.dir / "pki"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def opa_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.opa}"

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start everything or nothing: any failure stops what was already started, then re-raises."""
        binaries = {name: toolchain.binary(name) for name in COMPONENT_BINARIES}
        crds = toolchain.kuberay_crds()
        # Never built here: no bundle or trust anchor is an error naming the command that builds one.
        opa_args = self.config.opa_args or opa_server_args(configured_bundle())
        opa_env = opa_server_env()  # the token OPA requires (made in the state dir the first time)
        self.ports = self.config.ports.resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_etcd(binaries["etcd"])
            self._start_apiserver(binaries["kube-apiserver"])
            self._write_kubeconfig()
            self._start_controller_manager(binaries["kube-controller-manager"])
            self._apply(binaries["kubectl"], crds, "KubeRay CRDs")
            if self.config.manifests:
                self._apply(binaries["kubectl"], self.config.manifests, "sovereign manifests")
            self._start_opa(binaries["opa"], opa_args, opa_env)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.dir / "logs" / f"{name}.log", env=env)
        proc.start()
        self.processes.append(proc)
        return proc

    # --- components --------------------------------------------------------------------------------
    def _start_etcd(self, etcd: Path) -> None:
        self.progress(f"starting etcd on 127.0.0.1:{self.ports.etcd_client}")
        data = self.dir / "etcd"
        shutil.rmtree(data, ignore_errors=True)
        url = f"http://127.0.0.1:{self.ports.etcd_client}"
        proc = self._spawn(
            "etcd",
            [
                str(etcd),
                f"--name={self.config.name}",
                f"--data-dir={data}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{self.ports.etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.ports.etcd_peer}",
                f"--initial-cluster={self.config.name}=http://127.0.0.1:{self.ports.etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        proc.wait_ready(
            lambda: requests.get(f"{url}/health", timeout=1).json().get("health") == "true",
            self.config.ready_timeout_s,
            f"GET {url}/health",
        )

    def _start_apiserver(self, apiserver: Path) -> None:
        self.progress(f"starting kube-apiserver on 127.0.0.1:{self.ports.apiserver}")
        ca = LocalCA(self.pki_dir)
        serving = ca.issue_server_cert("apiserver", ["127.0.0.1", "localhost"])
        sa = service_account_signing_key(self.pki_dir)
        self.admin_token = secrets.token_hex(24)
        tokens = self.pki_dir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
        admission = self._webhook_client_config(ca)
        proc = self._spawn(
            "kube-apiserver",
            [
                str(apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports.apiserver}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert_path}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                # No controller-manager creates default ServiceAccounts here.
                "--disable-admission-plugins=ServiceAccount",
                f"--service-account-issuer={self.apiserver_url}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--cert-dir={self.pki_dir / 'generated'}",
                "--enable-priority-and-fairness=false",
                f"--admission-control-config-file={admission}",
            ],
        )
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        proc.wait_ready(
            lambda: (
                requests.get(
                    f"{self.apiserver_url}/readyz", headers=headers, verify=str(ca.cert_path), timeout=2
                ).status_code
                == 200
            ),
            self.config.ready_timeout_s,
            f"GET {self.apiserver_url}/readyz",
        )

    def _webhook_client_config(self, ca: LocalCA) -> Path:
        """The API server presents a client certificate from the control plane's CA to every admission
        webhook, so a webhook (the sovereign operator's) can refuse callers that are not the API server."""
        client = ca.issue_client_cert(WEBHOOK_CLIENT)
        kubeconfig = self.pki_dir / "webhook-clients.kubeconfig"
        user = {"client-certificate": str(client.cert), "client-key": str(client.key)}
        kubeconfig.write_text(
            yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "users": [{"name": "*", "user": user}]})
        )
        webhook = {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "WebhookAdmissionConfiguration",
            "kubeConfigFile": str(kubeconfig),
        }
        config = self.pki_dir / "admission.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "apiserver.config.k8s.io/v1",
                    "kind": "AdmissionConfiguration",
                    "plugins": [{"name": "ValidatingAdmissionWebhook", "configuration": webhook}],
                }
            )
        )
        return config

    def _start_controller_manager(self, binary: Path) -> None:
        """Only the garbage collector and the namespace controller: without them, foreground deletes,
        owner-reference cascades and namespace deletion never finish. No other controller runs."""
        self.progress("starting kube-controller-manager (garbage collector, namespace controller)")
        ca = LocalCA(self.pki_dir)
        serving = ca.issue_server_cert("controller-manager", ["127.0.0.1", "localhost"])
        proc = self._spawn(
            "kube-controller-manager",
            [
                str(binary),
                f"--kubeconfig={self.kubeconfig}",
                "--controllers=garbagecollector,namespace",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports.controller_manager}",
                "--authentication-skip-lookup=true",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
            ],
        )
        health = self._health_url("kube-controller-manager")
        proc.wait_ready(
            lambda: requests.get(health, verify=str(ca.cert_path), timeout=2).status_code == 200,
            self.config.ready_timeout_s,
            f"GET {health}",
        )

    def _write_kubeconfig(self) -> None:
        ca_pem = (self.pki_dir / "ca.crt").read_text()
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.config.name,
                    "cluster": {
                        "server": self.apiserver_url,
                        "certificate-authority-data": base64.b64encode(ca_pem.encode()).decode(),
                    },
                }
            ],
            "users": [{"name": ADMIN_USER, "user": {"token": self.admin_token}}],
            "contexts": [
                {"name": self.config.name, "context": {"cluster": self.config.name, "user": ADMIN_USER}}
            ],
            "current-context": self.config.name,
        }
        self.kubeconfig.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def kubectl(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(toolchain.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _apply(self, kubectl: Path, manifests: list[Path], what: str) -> None:
        self.progress(f"applying {what} ({len(manifests)} files)")
        args = ["apply", "--server-side", "--force-conflicts", "--field-manager=sovereign-dev"]
        for manifest in manifests:
            args += ["-f", str(manifest)]
        done = self.kubectl(*args)
        if done.returncode != 0:
            raise SovereignError(f"applying {what} failed: {done.stderr.strip()}")
        names = [
            f"crd/{doc['metadata']['name']}"
            for manifest in manifests
            for doc in yaml.safe_load_all(manifest.read_text())
            if doc and doc.get("kind") == "CustomResourceDefinition"
        ]
        if names:
            waited = self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names, timeout=90)
            if waited.returncode != 0:
                raise SovereignError(f"{what} did not become Established: {waited.stderr.strip()}")

    def _start_opa(self, opa: Path, bundle_args: list[str], env: dict[str, str]) -> None:
        self.progress(f"starting OPA on 127.0.0.1:{self.ports.opa}")
        # --watch: a rebuilt bundle (`sovereign bundle build`) is verified and served without a restart.
        served = ["--watch", *bundle_args]
        proc = self._spawn(
            "opa",
            [
                str(opa),
                "run",
                "--server",
                f"--addr=127.0.0.1:{self.ports.opa}",
                "--log-level=error",
                "--disable-telemetry",
                *served,
            ],
            env,
        )
        proc.wait_ready(
            lambda: requests.get(f"{self.opa_url}/health?bundles=true", timeout=1).status_code == 200,
            self.config.ready_timeout_s,
            f"GET {self.opa_url}/health",
        )

    # --- reporting ---------------------------------------------------------------------------------
    def describe(self) -> dict[str, object]:
        """What `sovereign dev status` and the tests read: URLs, kubeconfig and each component's PID."""
        ports = {
            "etcd": self.ports.etcd_client,
            "kube-apiserver": self.ports.apiserver,
            "kube-controller-manager": self.ports.controller_manager,
            "opa": self.ports.opa,
        }
        return {
            "name": self.config.name,
            "kubeconfig": str(self.kubeconfig),
            "apiserver_url": self.apiserver_url,
            "opa_url": self.opa_url,
            "ca_file": str(self.pki_dir / "ca.crt"),
            "started_at": time.time(),
            "components": [
                {
                    "name": p.name,
                    "pid": p.pid,
                    "port": ports[p.name],
                    "health_url": self._health_url(p.name),
                    "log": str(p.log_path),
                }
                for p in self.processes
            ],
        }

    def _health_url(self, component: str) -> str:
        return {
            "etcd": f"http://127.0.0.1:{self.ports.etcd_client}/health",
            "kube-apiserver": f"{self.apiserver_url}/readyz",
            "kube-controller-manager": f"https://127.0.0.1:{self.ports.controller_manager}/healthz",
            "opa": f"{self.opa_url}/health",
        }[component]

    def write_state(self, extra: dict[str, object]) -> Path:
        path = self.dir / "state.json"
        path.write_text(json.dumps({**self.describe(), **extra}, indent=2))
        return path


@contextmanager
def running_controlplane(config: ControlPlaneConfig) -> Iterator[ControlPlane]:
    """A control plane owned by the caller's process for the length of a `with` block (tests, benchmarks)."""
    plane = ControlPlane(config, progress=lambda _line: None)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
