"""Admission latency: the operator's webhook under 100 admission requests/s, beside a no-op webhook.

    .venv/bin/python benchmarks/admission_bench.py [--rate 100] [--duration 60] [--engine wasm] [--markdown]

Everything runs as processes on a fresh local control plane (etcd, kube-apiserver with the KubeRay CRDs, an
OPA server on the signed bundle, `sovereign operator run` under its ServiceAccount, judging through that
server or, with --engine wasm, with the same signed bundle in-process). Beside the operator's
webhook a no-op webhook is served the same way: kopf's WebhookServer (aiohttp) in a process of its own,
with the operator's certificate and the same client-certificate check, answering "allowed" to everything.
It is registered for the same resources, operations, namespaces, failure policy and timeout, so the API
server calls both, in parallel, for every admission request: the same requests at the same moments,
whatever the machine's load does.

The load: `--rate` requests/s, open loop (sent on schedule, however slow the answers), for `--duration`
seconds, as the admin user from up to 64 connections, in the namespace the operator manages, in a fixed
mix per ten requests: one LlamaDeployment created, two updated (replicas 1 <-> 2), two RayServices made
directly (judged on what they would run), five of those updated (their Serve config's num_replicas
1 <-> 2). Objects updated were created and reconciled before the window. The operator's own writes that
follow (a RayService created or updated per LlamaDeployment change) pass both webhooks too: counted in
the API server's figures, not in the rate driven.

Figures: the API server's `apiserver_admission_webhook_admission_duration_seconds` histogram, read from its
/metrics before and after the window (the difference is the window's), per webhook; quantiles are
interpolated within its buckets as Prometheus' histogram_quantile does, and the share of calls within
25 ms is exact when 0.025 is a bucket bound. Webhook failures (timeouts included) and denials come from
`apiserver_admission_webhook_rejection_count`; what the clients saw is counted apart. The CPU time each
process used in the window, per call of the operator's webhook, says where the machine's time went.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from operator_env import (
    apiserver_metrics,
    bench_cluster,
    component_pids,
    cpu_seconds,
    dev_state,
    running_operator,
)
from prometheus_client.parser import text_string_to_metric_families
from report import load, machine, show

from operators.localrun import LocalOperator, tls_ready, wait_until
from operators.sovereign_operator import rayservice
from operators.sovereign_operator.admission import webhook_configuration
from operators.sovereign_operator.credentials import Credentials
from serving.manifest import RAY_IMAGE, dump_serve_config, load_serve_config
from sovereign.devenv.controlplane import ControlPlane
from sovereign.devenv.process import ManagedProcess, free_port
from sovereign.policy import subjects
from sovereign.policy.bundle import build_bundle
from sovereign.policy.clusters import ClusterSpec, Deployment
from sovereign.policy.rest_engine import NAME as REST_NAME
from sovereign.policy.wasm_engine import NAME as WASM_NAME
from sovereign.vocabulary import (
    DEPLOYMENTS,
    GROUP,
    LABEL_MANAGED_BY,
    PHASE_RUNNING,
    RAY_GROUP,
    RAY_VERSION,
    RAYSERVICES,
    VERSION,
)

HISTOGRAM = "apiserver_admission_webhook_admission_duration_seconds"
REJECTIONS = "apiserver_admission_webhook_rejection_count"
P99_TARGET_S = 0.025
NAMESPACE = "bench"
NOOP_CONFIGURATION = "bench-noop"
POOL = 50  # objects of each kind the updates go round
# Per ten requests: one LlamaDeployment created, two updated; two RayServices made directly, five updated.
MIX = ("ld-create", "rs-update", "ld-update", "rs-create", "rs-update")
MIX += ("rs-update", "ld-update", "rs-create", "rs-update", "rs-update")
MERGE = {"Content-Type": "application/merge-patch+json"}


# --- the no-op webhook -----------------------------------------------------------------------------------
def serve_noop(credentials: Path, port: int) -> None:
    """Serve "allowed" to every review on kopf's WebhookServer, as the operator serves its own."""
    from operators.sovereign_operator.runner import webhook_server

    server = webhook_server(Credentials.load(credentials), port)

    async def allow(request: dict[str, Any], **_: Any) -> dict[str, Any]:
        review = request.get("request") or {}
        return {
            "apiVersion": request.get("apiVersion", "admission.k8s.io/v1"),
            "kind": "AdmissionReview",
            "response": {"uid": review.get("uid"), "allowed": True},
        }

    async def run() -> None:
        async for _ in server(allow):  # one client config per (re)start of the server
            print(f"no-op webhook serving on port {port}", flush=True)

    asyncio.run(run())


@contextmanager
def noop_webhook(client: Client, operator: LocalOperator, workdir: Path) -> Iterator[int]:
    """The no-op webhook served and registered beside the operator's, for the same requests, from the
    process whose pid this yields once the API server calls it."""
    port = free_port()
    process = ManagedProcess(
        "noop-webhook",
        [sys.executable, __file__, "--serve-noop", str(operator.credentials), "--port", str(port)],
        workdir / "noop-webhook.log",
        env={"PYTHONPATH": os.pathsep.join(sys.path)},
    )
    process.start()
    try:
        credentials = Credentials.load(operator.credentials)
        process.wait_ready(lambda: tls_ready("127.0.0.1", port, credentials.ca), 60, "the no-op webhook")
        url = f"https://{credentials.webhook['host']}:{port}"
        config = webhook_configuration(url, credentials.ca.read_bytes())
        config["metadata"]["name"] = NOOP_CONFIGURATION
        for webhook in config["webhooks"]:
            webhook["name"] = webhook["name"].replace(".admission.", ".noop.")
        client.post(
            f"{client.base}/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", config
        )

        def called() -> bool:
            client.post(f"{client.url(GROUP, VERSION, DEPLOYMENTS)}?dryRun=All", client.workload_probe)
            return any(".noop." in name for name in webhook_histograms(client.metrics()))

        wait_until(called, 60, "the API server to call the no-op webhook", interval=0.5)
        assert process.pid is not None
        yield process.pid
    finally:
        process.stop()


# --- the load ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sent:
    kind: str
    seconds: float
    status: int
    message: str

    @property
    def outcome(self) -> str:
        if 200 <= self.status < 300:
            return "admitted"
        if self.status == 403 and "denied the request" in self.message:
            return "denied by a webhook"
        if "failed calling webhook" in self.message or "deadline" in self.message:
            return "webhook failed or timed out"
        return f"other error {self.status}"


class Client:
    """The administrator's requests on one keep-alive session per thread: a load generator's (the official
    client validates each call's arguments, which would cost this process more CPU than the requests)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.base = plane.apiserver_url
        self.token = plane.admin_token
        self.ca = str(plane.pki_dir / "ca.crt")
        self.workload_probe: dict[str, Any] = {}  # a LlamaDeployment to dry-run (Workload sets it)
        self._local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            session = requests.Session()
            session.trust_env = False
            session.verify = self.ca
            session.headers["Authorization"] = f"Bearer {self.token}"
            self._local.session = session
        return self._local.session  # type: ignore[no-any-return]

    def url(self, group: str, version: str, plural: str) -> str:
        return f"{self.base}/apis/{group}/{version}/namespaces/{NAMESPACE}/{plural}"

    def post(self, url: str, body: dict[str, Any]) -> None:
        self.session().post(url, json=body, timeout=60).raise_for_status()

    def send(self, kind: str, method: str, url: str, body: dict[str, Any]) -> Sent:
        started = time.perf_counter()
        headers = MERGE if method == "PATCH" else {}
        response = self.session().request(method, url, json=body, headers=headers, timeout=60)
        elapsed = time.perf_counter() - started
        message = "" if response.ok else str(response.json().get("message", response.text))
        return Sent(kind, elapsed, response.status_code, message)

    def metrics(self) -> str:
        return apiserver_metrics(self.plane)


class Workload:
    """What each slot of the mix sends: new objects, and updates going round pools made beforehand."""

    def __init__(self, client: Client, spec: ClusterSpec) -> None:
        self.client = client
        self.cluster = subjects.sovereign_cluster(spec)
        declared = Deployment.model_validate(
            {"name": "template", "model": "llama-3.1-8b-instruct", "end_use": "defense"}
        )
        self._ld = subjects.llama_deployment(spec, declared, NAMESPACE)
        client.workload_probe = self.ld("probe")
        self._rs = self._direct_rayservice()
        config = load_serve_config(self._rs["spec"]["serveConfigV2"])
        self._serve_configs: dict[int, str] = {}
        for replicas in (1, 2):
            config["applications"][0]["args"]["llm_configs"][0]["deployment_config"]["num_replicas"] = (
                replicas
            )
            self._serve_configs[replicas] = dump_serve_config(config)
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _direct_rayservice(self) -> dict[str, Any]:
        """What the operator would write for the template deployment, made by hand: no owner, no operator
        label (admission judges it on what it would run, like any RayService made directly)."""
        owned = {**self._ld, "metadata": {**self._ld["metadata"], "uid": "direct"}}
        judged = subjects.deployment_input(self.cluster, owned)
        body = rayservice.desired(owned, self.cluster, judged, RAY_IMAGE)
        del body["metadata"]["ownerReferences"]
        del body["metadata"]["labels"][LABEL_MANAGED_BY]
        return body

    def ld(self, name: str) -> dict[str, Any]:
        return {**self._ld, "metadata": {"name": name, "namespace": NAMESPACE}}

    def rs(self, name: str) -> dict[str, Any]:
        return {**self._rs, "metadata": {**self._rs["metadata"], "name": name}}

    def create_pools(self, operator: LocalOperator) -> None:
        """The objects the updates go round, created and reconciled before the window."""
        for index in range(POOL):
            self.client.post(self.client.url(GROUP, VERSION, DEPLOYMENTS), self.ld(f"pool-{index:03d}"))
            self.client.post(
                self.client.url(RAY_GROUP, RAY_VERSION, RAYSERVICES), self.rs(f"direct-{index:03d}")
            )

        def reconciled() -> bool:
            phases = [d.get("status", {}).get("phase") for d in operator.list(DEPLOYMENTS, NAMESPACE)]
            return phases.count(PHASE_RUNNING) == POOL

        wait_until(reconciled, 300, f"{POOL} LlamaDeployments running", interval=0.5)

    def send(self, kind: str) -> Sent:
        with self._lock:
            number = self._counts[kind]
            self._counts[kind] += 1
        # Round the pool, each pass flipping every object (its replicas 1 -> 2, then 2 -> 1): a new spec.
        target, replicas = f"{number % POOL:03d}", 2 if (number // POOL) % 2 == 0 else 1
        ld_url = self.client.url(GROUP, VERSION, DEPLOYMENTS)
        rs_url = self.client.url(RAY_GROUP, RAY_VERSION, RAYSERVICES)
        if kind == "ld-create":
            return self.client.send(kind, "POST", ld_url, self.ld(f"new-{number:05d}"))
        if kind == "rs-create":
            return self.client.send(kind, "POST", rs_url, self.rs(f"direct-new-{number:05d}"))
        if kind == "ld-update":
            return self.client.send(
                kind, "PATCH", f"{ld_url}/pool-{target}", {"spec": {"replicas": replicas}}
            )
        body = {"spec": {"serveConfigV2": self._serve_configs[replicas]}}
        return self.client.send(kind, "PATCH", f"{rs_url}/direct-{target}", body)


def drive(workload: Workload, rate: float, duration: float) -> tuple[list[Sent], float]:
    """Send the mix at `rate` per second for `duration` seconds, on schedule; what came back, and the rate
    sent (below `rate` only when this process could not keep the schedule)."""
    total = int(rate * duration)
    with ThreadPoolExecutor(max_workers=64, thread_name_prefix="load") as pool:
        started = time.perf_counter()
        futures = []
        for index in range(total):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(workload.send, MIX[index % len(MIX)]))
        scheduled = time.perf_counter() - started
        sent = [future.result() for future in futures]
    return sent, total / max(scheduled, 1 / rate)


# --- the API server's figures ------------------------------------------------------------------------------
Buckets = dict[float, float]  # upper bound -> cumulative count


def webhook_histograms(text: str) -> dict[str, Buckets]:
    """The admission duration histogram per webhook name, summed over operations and outcomes."""
    found: dict[str, Buckets] = {}
    for family in text_string_to_metric_families(text):
        if family.name != HISTOGRAM:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets = found.setdefault(sample.labels["name"], {})
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return found


def webhook_rejections(text: str) -> Counter[tuple[str, str]]:
    """Rejections per (webhook name, error type): no_error is a denial, calling_webhook_error a webhook
    that failed or timed out, apiserver_internal_error the API server's own."""
    found: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(REJECTIONS):
                found[(sample.labels["name"], sample.labels["error_type"])] += sample.value
    return found


def window(before: Buckets, after: Buckets) -> Buckets:
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def quantile(q: float, buckets: Buckets) -> float:
    """Prometheus' histogram_quantile: linear within the bucket the rank falls in."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # past the last finite bound: that bound, as Prometheus answers
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


def within(limit: float, buckets: Buckets) -> float | None:
    """The share of calls within `limit` seconds, when `limit` is a bucket bound (else unknown)."""
    total = buckets[max(buckets)]
    return buckets[limit] / total if limit in buckets and total else None


def _server(name: str) -> str:
    return "no-op" if ".noop." in name else "operator"


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


@dataclass
class Measured:
    sent: list[Sent]
    rate: float  # sent per second
    elapsed: float  # from the first scrape to the last
    before: str  # the API server's /metrics then
    after: str
    load_before: str
    load_after: str
    cpu: dict[str, float]  # CPU seconds each component used in the window


def measure(rate: float, duration: float, in_process: bool) -> Measured:
    with tempfile.TemporaryDirectory(prefix="admission-bench-") as tmp:
        workdir = Path(tmp)
        dev_state(workdir / "state")
        bundle = build_bundle(progress=lambda _: None)
        with running_operator(workdir, bundle, in_process=in_process) as (plane, operator):
            client = Client(plane)
            operator.onboard(NAMESPACE)
            spec = bench_cluster(0, "us-defense", None)
            operator.create(subjects.sovereign_cluster(spec))
            workload = Workload(client, spec)
            workload.create_pools(operator)
            with noop_webhook(client, operator, workdir) as noop:
                pids = {**component_pids(plane, operator), "no-op webhook": noop}
                before, load_before, cpu_before = client.metrics(), load(), cpu_seconds(pids)
                started = time.perf_counter()
                sent, sent_rate = drive(workload, rate, duration)
                time.sleep(2)  # the operator's writes that follow the last requests
                after, elapsed = client.metrics(), time.perf_counter() - started
                cpu = {name: used - cpu_before[name] for name, used in cpu_seconds(pids).items()}
                return Measured(sent, sent_rate, elapsed, before, after, load_before, load(), cpu)


def summarise(run: Measured, duration: float, engine: str, markdown: bool) -> None:
    before, after = webhook_histograms(run.before), webhook_histograms(run.after)
    rejected = webhook_rejections(run.after) - webhook_rejections(run.before)
    servers: dict[str, Buckets] = {}
    for name in after:
        merged = servers.setdefault(_server(name), {})
        for bound, count in window(before.get(name, {}), after[name]).items():
            merged[bound] = merged.get(bound, 0.0) + count

    def rejections(server: str, error: str) -> float:
        return sum(n for (name, kind), n in rejected.items() if _server(name) == server and kind == error)

    def failed(server: str) -> float:
        return rejections(server, "calling_webhook_error")

    rows = []
    for server in ("operator", "no-op"):
        buckets = servers[server]
        calls, share = buckets[math.inf], within(P99_TARGET_S, buckets)
        denied = rejections(server, "no_error")
        rows.append(
            [
                server,
                f"{calls:.0f} ({calls / run.elapsed:.0f}/s)",
                _ms(quantile(0.5, buckets)),
                _ms(quantile(0.99, buckets)),
                "n/a" if share is None else f"{share:.2%}",
                f"{denied:.0f}",
                f"{failed(server):.0f}",
            ]
        )
    ours, noop = servers["operator"], servers["no-op"]
    p99, share = quantile(0.99, ours), within(P99_TARGET_S, ours)
    # With 25 ms a bucket bound the share says it exactly; otherwise the interpolated p99 does.
    met = share >= 0.99 if share is not None else p99 <= P99_TARGET_S
    kinds = Counter(s.kind for s in run.sent)
    outcomes = Counter(s.outcome for s in run.sent)
    latencies = [s.seconds for s in run.sent]
    facts = [
        *machine(),
        ("load average (1, 5, 15 min) before / after", f"{run.load_before} / {run.load_after}"),
        ("the operator judges with", engine),
        (
            "sent",
            f"{len(run.sent)} in {duration:.0f} s ({run.rate:.1f}/s; the last answered after "
            f"{run.elapsed:.0f} s): " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
        ),
        ("answers", ", ".join(f"{outcome} {n}" for outcome, n in sorted(outcomes.items()))),
        (
            "client, end to end",
            f"p50 {_ms(_percentile(latencies, 0.5))}, p99 {_ms(_percentile(latencies, 0.99))}",
        ),
        (
            "CPU in the window per call of the operator's webhook (all work, reconciles too)",
            ", ".join(f"{name} {used / ours[math.inf] * 1000:.1f} ms" for name, used in run.cpu.items()),
        ),
        ("histogram buckets (s)", ", ".join(f"{b:g}" for b in sorted(ours) if not math.isinf(b))),
        (
            "operator / no-op",
            " ".join(f"p{q * 100:.0f} {quantile(q, ours) / quantile(q, noop):.2f}x" for q in (0.5, 0.99)),
        ),
    ]
    limit = f"{P99_TARGET_S * 1000:.0f} ms"
    targets = [
        f"operator webhook p99 <= {limit}: {'met' if met else 'MISSED'} (p99 {_ms(p99)}, "
        f"within {limit}: {'n/a' if share is None else f'{share:.2%}'})",
        f"0 webhook timeouts or failures: {'met' if not failed('operator') else 'MISSED'} "
        f"({failed('operator'):.0f})",
    ]
    header = [
        "webhook",
        "calls (per s answered)",
        "p50",
        "p99",
        f"within {limit}",
        "denied",
        "failed or timed out",
    ]
    show(facts, header, rows, targets, title="admission webhook latency", markdown=markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="admission requests sent per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument(
        "--engine",
        choices=[REST_NAME, WASM_NAME],
        default=REST_NAME,
        help="how the operator judges: through the OPA server, or the bundle in-process",
    )
    parser.add_argument("--markdown", action="store_true", help="print the results as Markdown")
    parser.add_argument("--serve-noop", type=Path, help=argparse.SUPPRESS)  # the no-op webhook's process
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_noop:
        serve_noop(args.serve_noop, args.port)
    else:
        run = measure(args.rate, args.duration, args.engine == WASM_NAME)
        summarise(run, args.duration, args.engine, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
