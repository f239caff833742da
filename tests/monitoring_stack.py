"""The monitoring stack on real components, for tests/test_monitoring_e2e.py: a control plane of its own
(etcd, kube-apiserver, OPA), `sovereign operator setup|run` with its OPA server, the data plane
(`sovereign serve --watch`: the operator's RayServices on a local Ray, each request judged by the serving
guard), the exporter (`python -m sovereign.exporter`, replaying the real H100 NVML trace), and Debian's
Prometheus scraping all three with the shipped rules, their time compressed (below).

Nothing here emits a metric: every series Prometheus holds comes from those components. The test only
declares objects (SovereignClusters, LlamaDeployments, the GPU pod KubeRay would make for a worker, as
there is no kubelet), sends requests, and changes conditions the way they change in production: a new
policy bundle, an accreditation date, OPA stopping, a quota lowered, the exporter's network path to the
API server cut (`Relay`).
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client

from operators.localrun import LocalOperator, wait_until
from operators.sovereign_operator import rayservice
from sovereign import toolchain
from sovereign.devenv.controlplane import ControlPlaneConfig, running_controlplane
from sovereign.devenv.process import ManagedProcess, free_port
from sovereign.devenv.prometheus import RULES_DIR, PrometheusConfig, PrometheusServer, ScrapeJob
from sovereign.exporter.gpu_trace import H100_TRACE
from sovereign.models.tiny import TINY_MODELS, build_model
from sovereign.policy import subjects
from sovereign.policy.bundle import (
    BUNDLE_DIR_ENV,
    TRUST_ANCHOR_ENV,
    PolicySources,
    SignedBundle,
    build_bundle,
)
from sovereign.policy.clusters import ClusterSpec, Deployment, load_cluster
from sovereign.policy.screening_source import SCREENING_LIST_ENV
from sovereign.policydata import load_policy_data
from sovereign.vocabulary import CLUSTERS

TENANT = "mon-acme"  # the namespace every deployment here is in
SERVED = "mon-eu-1"  # warn mode: a denied deployment keeps running, so its GPUs stay allocated
SUSPENDED = "mon-eu-2"  # enforce mode: its one deployment is denied and suspended
QUOTA = "mon-eu-3"  # warn mode: one deployment of 4 GPUs, more than the local Ray has, so never loaded
CHAT = f"{SERVED}-chat"  # llama-3.1-8b-instruct, commercial, 1 replica x 2 GPUs, served by the tiny model
VISION = f"{SUSPENDED}-vision"  # llama-3.2-11b-vision-instruct: refused in the EU (REGION_MODALITY, ...)
BATCH = f"{QUOTA}-batch"  # allocated 4 GPUs: the quota alerts' subject (a quota change rewrites its
# RayService, as every change of the facts a deployment was judged on does: CHAT's would be reloaded)
TEXT_MODEL, VISION_MODEL = "llama-3.1-8b-instruct", "llama-3.2-11b-vision-instruct"
REGION = "eu-text-only"
NODE = "gpu-node-mon"
CAPACITY = 8
# Time compression for the test copy of the rules: each `for:` and each range of minutes becomes seconds.
FOR_S, RANGE_S = 2, 10
WAIT_S = 60.0


def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not seen within {timeout:.0f} s (last: {last!r})")


def png_data_url() -> str:
    """A small image, as a client sends one inline (the EU text-only region refuses it)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 30)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def compressed_rules(folder: Path) -> list[Path]:
    """Copies of the shipped rule files with every `for:` cut to FOR_S seconds and every range of minutes
    (`[5m]`, `[15m]`, `[30m]`) to RANGE_S seconds, so an alert fires and resolves within a test. Thresholds
    and expressions are otherwise the shipped ones; the shipped files are never changed."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = f"{FOR_S}s"
                rule["expr"] = re.sub(r"\[\d+m\]", f"[{RANGE_S}s]", rule["expr"])
        copy = folder / path.name
        copy.write_text(yaml.safe_dump(doc, sort_keys=False))
        copies.append(copy)
    return copies


class Relay:
    """A TCP relay on loopback to the API server: the exporter's network path to it, which `cut` breaks
    (every connection closed, new ones refused) and `start` restores on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        # Bound at once (a port picked now and bound later can be taken meanwhile, by Ray's workers here).
        self._listener: socket.socket | None = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._serve(self._listener)

    def start(self) -> None:
        """Listen again on the same port, after a cut."""
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._serve(self._listener)

    def _serve(self, listener: socket.socket) -> None:
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _ = listener.accept()
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                return  # cut
            upstream.settimeout(None)
            with self._lock:
                self._open |= {downstream, upstream}
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        with self._lock:
            self._open.discard(sock)

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown first: close() alone leaves a socket blocked in accept() listening.
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            open_now = list(self._open)
        for sock in open_now:
            self._close(sock)

    def kubeconfig(self, admin: Path, out: Path) -> Path:
        """`admin` with its server replaced by this relay (the API server's certificate names 127.0.0.1)."""
        doc = yaml.safe_load(admin.read_text())
        for entry in doc["clusters"]:
            entry["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        out.write_text(yaml.safe_dump(doc))
        return out


def cluster_spec(name: str, enforcement: str, quota: int, accreditation_expires: str) -> ClusterSpec:
    """A text-only EU cluster run by the operator of clusters/eu-frankfurt-1.yaml, for TENANT."""
    base = load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-frankfurt-1.yaml")
    return ClusterSpec.model_validate(
        base.model_dump()
        | {
            "name": name,
            "tenants": [TENANT],
            "gpu_quota": quota,
            "enforcement": enforcement,
            "accreditations": [{"scheme": "bsi-c5", "expires": accreditation_expires}],
            "deployments": [],
        }
    )


def days_from_today(days: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


def policy_without_commercial_use(work: Path) -> SignedBundle:
    """The real policy with `commercial` taken out of the eu-text-only region's end uses: a new revision
    under which CHAT is denied (END_USE_NOT_PERMITTED), signed as `sovereign bundle build` signs."""
    root = work / "policies"
    shutil.copytree(toolchain.REPO_ROOT / "policies", root)
    profile = root / "data" / "regions" / f"{REGION}.yaml"
    doc = yaml.safe_load(profile.read_text())
    doc["end_uses"]["allowed"] = [use for use in doc["end_uses"]["allowed"] if use != "commercial"]
    profile.write_text(yaml.safe_dump(doc))
    sources = PolicySources(root=root, load_data=lambda: load_policy_data(root / "data").opa_document())
    return build_bundle(sources, work / "bundle", progress=lambda line: None)


@dataclass
class MonitoringStack:
    prometheus: PrometheusServer
    operator: LocalOperator
    relay: Relay
    serve_url: str  # the data plane's Serve proxy
    exporter_started: float
    policy_change: SignedBundle

    @property
    def chat_url(self) -> str:
        return f"{self.serve_url}/{TENANT}/{CHAT}/v1"

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """The instant answer to `expr`, now or at the Unix time `at`."""
        params: dict[str, Any] = {"query": expr} | ({"time": at} if at is not None else {})
        response = requests.get(f"{self.prometheus.url}/api/v1/query", params=params, timeout=5)
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    def values(self, expr: str, *by: str, at: float | None = None) -> dict[tuple[str, ...], float]:
        """The instant answer to `expr`, now or at the Unix time `at`, keyed by its `by` labels' values."""
        return {tuple(r["metric"].get(k, "") for k in by): float(r["value"][1]) for r in self.query(expr, at)}

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """Prometheus's own view of the alert `name`: each pending or firing instance, with its labels."""
        body = requests.get(f"{self.prometheus.url}/api/v1/alerts", timeout=5).json()
        return [a for a in body["data"]["alerts"] if a["labels"]["alertname"] == name]

    def chat(self, prompt: str = "hi", tenant: str = "acme", **extra: Any) -> requests.Response:
        body = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": 3}
        return requests.post(
            f"{self.chat_url}/chat/completions",
            json=body | extra,
            headers={"x-tenant-id": tenant},
            timeout=60,
        )

    def patch_cluster(self, name: str, spec: dict[str, Any]) -> None:
        self.operator.patch(CLUSTERS, name, {"spec": spec})


def _deploy(operator: LocalOperator, spec: ClusterSpec, deployment: Deployment) -> dict[str, Any]:
    body = subjects.llama_deployment(spec, deployment, TENANT)
    operator.create(body)
    return body


def _suspended(operator: LocalOperator, name: str) -> bool:
    rs = operator.get("rayservices", name, TENANT)
    return rs is not None and rayservice.is_suspended(rs)


def _gpu_pod(operator: LocalOperator, spec: ClusterSpec, deployment: dict[str, Any]) -> None:
    """The worker pod KubeRay would make from the RayService's labelled template, bound to NODE with its
    GPU: there is no kubelet here, and the exporter reads which deployment holds a node's GPUs from it."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{CHAT}-worker",
            "labels": rayservice.labels(deployment, subjects.sovereign_cluster(spec)),
        },
        "spec": {
            "nodeName": NODE,
            "containers": [
                {
                    "name": "ray-worker",
                    "image": "rayproject/ray",
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }
            ],
        },
    }
    client.CoreV1Api(operator.api_client).create_namespaced_pod(TENANT, pod)


@contextmanager
def running_stack(work: Path, bundle: SignedBundle, screening_list: Path) -> Iterator[MonitoringStack]:
    processes: list[ManagedProcess] = []
    config = ControlPlaneConfig(name="monitoring", state_dir=work / "controlplane")
    with running_controlplane(config) as plane:
        operator = LocalOperator(
            plane.kubeconfig,
            plane.pki_dir,
            work / "operator",
            bundle,
            ["--drift-interval=1", f"--screening-list={screening_list}"],
        )
        relay = Relay(("127.0.0.1", plane.ports.apiserver))
        prometheus: PrometheusServer | None = None
        try:
            # The data plane first: Ray boots while the rest is set up. It serves every RayService the
            # operator makes (the quota cluster's 4-GPU one is never placed: Ray has 2).
            serve_port = free_port()
            dataplane = ManagedProcess(
                "dataplane",
                [
                    sys.executable, "-m", "sovereign", "serve", "--watch",
                    f"--kubeconfig={plane.kubeconfig}", f"--port={serve_port}",
                    "--num-cpus=2", "--num-gpus=2", "--interval=0.5",
                ],
                work / "dataplane.log",
                # Ray's workers inherit this: the guard asks the operator's OPA and believes it only on the
                # bundle the operator's folder holds (a policy change reaches both).
                env={
                    "SOVEREIGN_OPA_URL": operator.opa_url,
                    BUNDLE_DIR_ENV: str(operator.bundle_dir),
                    TRUST_ANCHOR_ENV: str(bundle.verification_key),
                    SCREENING_LIST_ENV: str(screening_list),
                    "PYTHONUNBUFFERED": "1",
                },
            )  # fmt: skip
            dataplane.start()
            processes.append(dataplane)

            operator.setup()
            operator.start_opa()
            operator.start()
            operator.onboard(TENANT)
            served = cluster_spec(SERVED, "warn", CAPACITY, days_from_today(365))
            refusing = cluster_spec(SUSPENDED, "warn", CAPACITY, days_from_today(365))
            quota = cluster_spec(QUOTA, "warn", CAPACITY, days_from_today(365))
            for spec in (served, refusing, quota):
                operator.create(subjects.sovereign_cluster(spec, capacity=CAPACITY))
            # Admitted in warn mode, then its cluster enforces: the operator suspends it, and it stays
            # non-compliant throughout. Sized past the local Ray's GPUs, so it never loads meanwhile.
            vision = Deployment(name="vision", model=VISION_MODEL, end_use="commercial", gpus_per_replica=4)
            _deploy(operator, refusing, vision)
            wait_until(lambda: operator.get("rayservices", VISION, TENANT), WAIT_S, "the vision RayService")
            operator.patch(CLUSTERS, SUSPENDED, {"spec": {"enforcement": "enforce"}})
            wait_until(lambda: _suspended(operator, VISION), WAIT_S, "the vision RayService suspended")
            try:  # a second one, now refused at admission (and counted)
                _deploy(operator, refusing, vision.model_copy(update={"name": "vision-again"}))
            except client.ApiException as exc:
                assert exc.status == 403 and "REGION_MODALITY" in str(exc.body), exc
            else:
                raise AssertionError("admission let a vision deployment onto an EU text-only cluster")
            weights = build_model(
                next(m for m in TINY_MODELS if m.stands_in_for == TEXT_MODEL), work / "models"
            )[0]
            chat = _deploy(
                operator,
                served,
                Deployment(
                    name="chat",
                    model=TEXT_MODEL,
                    end_use="commercial",
                    gpus_per_replica=2,
                    weights=str(weights),
                ),
            )
            _deploy(
                operator,
                quota,
                Deployment(name="batch", model=TEXT_MODEL, end_use="research", gpus_per_replica=4),
            )
            _gpu_pod(operator, served, chat)

            exporter_port = free_port()
            exporter = ManagedProcess(
                "exporter",
                [
                    sys.executable, "-m", "sovereign.exporter",
                    "--addr=127.0.0.1", f"--port={exporter_port}", f"--node={NODE}",
                    f"--region={REGION}", f"--cluster={SERVED}",
                    f"--kubeconfig={relay.kubeconfig(plane.kubeconfig, work / 'exporter.kubeconfig')}",
                    f"--gpu-trace={H100_TRACE}", "--interval=0.5",
                ],
                work / "exporter.log",
            )  # fmt: skip
            exporter.start()
            processes.append(exporter)
            exporter_started = time.monotonic()

            prometheus = PrometheusServer(
                PrometheusConfig(
                    state_dir=work / "prometheus",
                    jobs=[
                        ScrapeJob("sovereign-operator", [f"127.0.0.1:{operator.metrics_port}"]),
                        ScrapeJob("sovereign-exporter", [f"127.0.0.1:{exporter_port}"]),
                        ScrapeJob(
                            "sovereign-serving", [f"127.0.0.1:{serve_port}"], f"/{TENANT}/{CHAT}/metrics"
                        ),
                    ],
                    rule_files=compressed_rules(work / "rules"),
                    scrape_interval="1s",
                )
            )
            prometheus.start()
            policy_change = policy_without_commercial_use(work / "policy-change")  # while Ray starts

            stack = MonitoringStack(
                prometheus, operator, relay, f"http://127.0.0.1:{serve_port}", exporter_started, policy_change
            )
            dataplane.wait_ready(
                lambda: stack.chat().status_code == 200, 300, f"a chat completion from {CHAT}"
            )
            yield stack
        finally:
            for process in reversed(processes):
                process.stop()
            if prometheus is not None:
                prometheus.stop()
            relay.cut()
            operator.close()
