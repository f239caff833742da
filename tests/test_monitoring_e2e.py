"""End to end with a real Prometheus (Debian's 2.42) loading our rules and scraping:

- the exporter as a process (`python -m sovereign.exporter`), replaying the real H100 NVML trace and
  accounting against the real kube-apiserver with KubeRay's CRDs;
- the policy decision and engine-health counters as the enforcement points record them
  (`record_decision`, `set_engine_up`, `record_bundle_refused`, served from this process);
- serving's own metrics (`serving.metrics.ServingMetrics`) fed a scripted request mix;
- STAND-INS only for what no component exports yet: the operator's `sovereign_deployment_compliant` and
  `sovereign_accreditation_expiry_timestamp_seconds`, with the names and labels METRICS.md expects.

After a scripted workload, Prometheus' HTTP API must return the expected values, every recording rule
must produce series and every PromQL expression in the dashboards must return data.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client, config
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from test_exporter_accounting import (
    create_sovereign_clusters,
    gpu_pod,
    install_sovereign_cluster_crd,
    labels,
    rayservice,
    remove_test_objects,
    sovereign_cluster,
)

from infra.monitoring.dashboards import dashboards
from serving.metrics import ServingMetrics
from sovereign import toolchain
from sovereign.devenv.controlplane import ControlPlane
from sovereign.devenv.process import ManagedProcess, free_port
from sovereign.exporter.decisions import record_decision
from sovereign.exporter.engine_health import record_bundle_refused, set_engine_up
from sovereign.exporter.gpu_trace import H100_TRACE

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
MONITORING = REPO / "infra" / "monitoring"
TRACE = H100_TRACE
NAMESPACE = "monitoring-e2e"
NODE = "gpu-node-e2e"
# Cluster names of this module only: other tests may leave RayServices in the shared control plane.
EU = ("eu-text-only", "e2e-eu-1")
US = ("us-defense", "e2e-us-1")
OURS = 'cluster=~"e2e-.*"'
M8B, M70B, VISION = "llama-3.1-8b-instruct", "llama-3.3-70b-instruct", "llama-3.2-11b-vision-instruct"


@dataclass
class Stack:
    prometheus: str
    exporter_started: float
    kubeconfig: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=5)
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def values(self, expr: str, *by: str) -> dict[tuple[str, ...], float]:
        return {tuple(r["metric"].get(k, "") for k in by): float(r["value"][1]) for r in self.query(expr)}


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not seen within {timeout:.0f} s (last: {last!r})")


class OperatorStandIns:
    """What the operator is expected to export (infra/monitoring/METRICS.md); it does not yet."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        compliant = Gauge(
            "sovereign_deployment_compliant",
            "stand-in",
            ["region", "cluster", "namespace", "deployment", "model"],
            registry=self.registry,
        )
        compliant.labels(*EU, NAMESPACE, "eu-8b-acme", M8B).set(1)
        compliant.labels(*EU, NAMESPACE, "eu-vision", VISION).set(0)
        compliant.labels(*US, NAMESPACE, "us-8b-dod", M8B).set(1)
        expiry = Gauge(
            "sovereign_accreditation_expiry_timestamp_seconds",
            "stand-in",
            ["region", "cluster", "scheme"],
            registry=self.registry,
        )
        expiry.labels(*EU, "bsi-c5").set(time.time() + 20 * 86400)
        expiry.labels(*US, "dod-il5").set(time.time() + 200 * 86400)


def serving_traffic(metrics: ServingMetrics, i: int) -> None:
    """A scripted request mix through serving's real metrics: allowed text, a refused image."""
    metrics.observe(
        model=M8B, tenant="acme", decision="allow", code="none", seconds=0.05 + (i % 10) * 0.05,
        prompt_tokens=120, completion_tokens=300,
    )  # fmt: skip
    metrics.observe(model=VISION, tenant="acme", decision="deny", code="REGION_MODALITY", seconds=0.002)


def enforcement_traffic() -> None:
    """Decisions as the three enforcement points record them (the real module, not a stand-in)."""
    record_decision("serving", *EU, M8B, "allow", [])
    record_decision("serving", *EU, VISION, "deny", ["REGION_MODALITY"])
    record_decision("admission", *US, M8B, "allow", [])
    record_decision("preview", *EU, VISION, "deny", ["REGION_MODALITY", "EU_MULTIMODAL_LICENCE"])


def prometheus_config(path: Path, targets: dict[str, int]) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(p) for p in sorted((MONITORING / "rules").glob("*.yml"))],
                "scrape_configs": [
                    {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                    for job, port in targets.items()
                ],
            }
        )
    )


@pytest.fixture(scope="module")
def stack(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("monitoring-e2e")
    admin = config.new_client_from_config(config_file=str(controlplane.kubeconfig))
    core, custom = client.CoreV1Api(admin), client.CustomObjectsApi(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    for body in (
        rayservice("eu-8b-acme", labels(*EU, M8B, "acme"), workers=((2, 1),), namespace=NAMESPACE),
        rayservice("eu-70b-globex", labels(*EU, M70B, "globex"), 1, ((1, 4),), namespace=NAMESPACE),
        rayservice("us-8b-dod", labels(*US, M8B, "dod"), head_gpus=1, namespace=NAMESPACE),
    ):
        custom.create_namespaced_custom_object("ray.io", "v1", NAMESPACE, "rayservices", body)
    install_sovereign_cluster_crd(controlplane)
    create_sovereign_clusters(
        admin, [sovereign_cluster(EU[1], EU[0], "FR", 16, 8), sovereign_cluster(US[1], US[0], "US", 8, 4)]
    )
    core.create_namespaced_pod(NAMESPACE, gpu_pod("eu-8b-acme-worker", NODE, labels(*EU, M8B, "acme")))

    operator = OperatorStandIns()
    serving = ServingMetrics(region=EU[0], cluster=EU[1], models=[M8B, VISION], max_tenants=8)
    servers = {
        "enforcement": start_http_server(0, addr="127.0.0.1"),  # the default registry: record_decision & co
        "serving": start_http_server(0, addr="127.0.0.1", registry=serving.registry),
        "operator-stand-ins": start_http_server(0, addr="127.0.0.1", registry=operator.registry),
    }
    ports = {"exporter": free_port(), "prometheus": free_port()}
    prometheus_config(
        work / "prometheus.yml",
        {"sovereign-exporter": ports["exporter"]} | {job: s.server_port for job, (s, _) in servers.items()},
    )
    prometheus = ManagedProcess(
        "prometheus",
        [
            str(toolchain.system_binary("prometheus", "run 'make tools'")),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            "--log.level=warn",
        ],
        work / "prometheus.log",
    )
    exporter = ManagedProcess(
        "exporter",
        [
            sys.executable, "-m", "sovereign.exporter",
            "--addr=127.0.0.1", f"--port={ports['exporter']}", f"--node={NODE}",
            f"--region={EU[0]}", f"--cluster={EU[1]}", f"--kubeconfig={controlplane.kubeconfig}",
            f"--gpu-trace={TRACE}", "--interval=0.5",
        ],
        work / "exporter.log",
    )  # fmt: skip
    stop = threading.Event()

    def traffic() -> None:
        i = 0
        while not stop.wait(0.2):
            serving_traffic(serving, i)
            enforcement_traffic()
            i += 1

    traffic_thread = threading.Thread(target=traffic, daemon=True)
    try:
        set_engine_up("serving", "wasm", True)
        set_engine_up("admission", "opa-rest", True)
        record_bundle_refused("admission", "bad_signature")
        traffic_thread.start()
        prometheus.start()
        url = f"http://127.0.0.1:{ports['prometheus']}"
        prometheus.wait_ready(lambda: requests.get(f"{url}/-/ready", timeout=1).ok, 30, f"GET {url}/-/ready")
        exporter.start()
        started = time.monotonic()
        exporter.wait_ready(
            lambda: requests.get(f"http://127.0.0.1:{ports['exporter']}/metrics", timeout=1).ok,
            30,
            "GET /metrics",
        )
        yield Stack(prometheus=url, exporter_started=started, kubeconfig=controlplane.kubeconfig)
    finally:
        stop.set()
        exporter.stop()
        prometheus.stop()
        for server, thread in servers.values():
            server.shutdown()
            thread.join(timeout=5)
        remove_test_objects(admin, NAMESPACE, [EU[1], US[1]])


def test_prometheus_sees_the_h100_trace_idle_busy_idle_with_sovereignty_labels(stack: Stack) -> None:
    raw = json.loads(TRACE.read_text())
    selector = f'{{Hostname="{NODE}"}}'
    eventually(
        lambda: stack.query(f"max_over_time(DCGM_FI_DEV_GPU_UTIL{selector}[5m]) >= 99"),  # busy: 99-100 %
        30,
        "the busy phase in Prometheus",
    )
    eventually(
        lambda: stack.values(f"DCGM_FI_DEV_GPU_UTIL{selector}") == {(): 0.0},
        15,
        "the idle phase after the trace",
    )
    peak_power = max(s["power_mw"] for s in raw["trace"]) / 1000
    power = stack.values(f"max_over_time(DCGM_FI_DEV_POWER_USAGE{selector}[5m])")[()]
    assert 400 < power <= peak_power  # the busy phase was scraped, at most its peak
    [series] = stack.query(f"DCGM_FI_DEV_FB_USED{selector}")
    assert series["metric"] | {"instance": ""} == {
        "__name__": "DCGM_FI_DEV_FB_USED",
        "job": "sovereign-exporter",
        "instance": "",
        "gpu": "0",
        "UUID": raw["device"]["uuid"],
        "device": "nvidia0",
        "modelName": raw["device"]["name"],
        "Hostname": NODE,
        "region": EU[0],
        "cluster": EU[1],
        "model": M8B,  # joined from the GPU pod bound to this node
        "namespace": NAMESPACE,
    }
    assert float(series["value"][1]) == raw["trace"][-1]["fb_used_bytes"] / 2**20


def test_allocation_quota_and_gpu_hours_follow_the_rayservices(stack: Stack) -> None:
    by = ("region", "cluster", "model", "tenant")
    expected = {(*EU, M8B, "acme"): 2.0, (*EU, M70B, "globex"): 5.0, (*US, M8B, "dod"): 1.0}
    eventually(lambda: stack.values(f"sovereign_gpu_allocated{{{OURS}}}", *by) == expected, 30, "allocation")
    assert stack.values("sovereign_gpu_quota", "cluster") == {(EU[1],): 8.0, (US[1],): 4.0}
    assert stack.values("sovereign_gpu_capacity", "cluster") == {(EU[1],): 16.0, (US[1],): 8.0}
    assert stack.values(f"region_cluster:sovereign_gpu_allocated_per_quota:ratio{{{OURS}}}", "cluster") == {
        (EU[1],): 7 / 8,
        (US[1],): 1 / 4,
    }

    hours = eventually(
        lambda: (
            (h := stack.values(f"sovereign_gpu_hours_total{{{OURS}}}", *by)) and min(h.values()) > 0 and h
        ),
        30,
        "GPU-hours accumulating",
    )
    elapsed = time.monotonic() - stack.exporter_started
    assert hours[(*EU, M70B, "globex")] <= 5 * elapsed / 3600
    # Same running time, so GPU-hours stand in the ratio of the GPUs held (within one 0.5 s poll).
    ratio = hours[(*EU, M70B, "globex")] / hours[(*EU, M8B, "acme")]
    assert ratio == pytest.approx(5 / 2, rel=0.05)

    # Scripted change: suspend the 70B deployment; its GPUs leave the allocation and the quota share.
    custom = client.CustomObjectsApi(config.new_client_from_config(config_file=str(stack.kubeconfig)))
    custom.patch_namespaced_custom_object(
        "ray.io",
        "v1",
        NAMESPACE,
        "rayservices",
        "eu-70b-globex",
        {"spec": {"rayClusterConfig": {"suspend": True}}},
    )
    eventually(
        lambda: (
            stack.values(f"region_cluster:sovereign_gpu_allocated:sum{{{OURS}}}", "cluster").get((EU[1],))
            == 2.0
        ),
        30,
        "EU allocation after suspending the 70B deployment",
    )
    frozen = stack.values(f"sovereign_gpu_hours_total{{{OURS}}}", *by)[(*EU, M70B, "globex")]
    time.sleep(2.5)
    assert stack.values(f"sovereign_gpu_hours_total{{{OURS}}}", *by)[(*EU, M70B, "globex")] == pytest.approx(
        frozen, abs=1e-6
    )


def test_decisions_from_every_enforcement_point_reach_prometheus(stack: Stack) -> None:
    decisions = eventually(
        lambda: stack.values(
            f"region_cluster_point_decision_code:sovereign_policy_decisions:rate5m{{{OURS}}} > 0",
            "point",
            "decision",
            "code",
        ),
        30,
        "decision rates",
    )
    assert set(decisions) == {
        ("serving", "allow", "none"),
        ("serving", "deny", "REGION_MODALITY"),
        ("admission", "allow", "none"),
        ("preview", "deny", "REGION_MODALITY"),
        ("preview", "deny", "EU_MULTIMODAL_LICENCE"),
    }


def test_every_recording_rule_produces_series(stack: Stack) -> None:
    rules = yaml.safe_load((MONITORING / "rules" / "sovereign-recording.rules.yml").read_text())
    recorded = [rule["record"] for group in rules["groups"] for rule in group["rules"]]
    assert len(recorded) == 15

    def missing() -> list[str]:
        return [name for name in recorded if not stack.query(name)]

    eventually(lambda: not missing(), 30, f"series for every recording rule (missing: {missing()})")


def _concrete(expr: str) -> str:
    """A dashboard expression as Grafana would send it with every variable at 'All'."""
    for variable, value in {
        "$__rate_interval": "1m",
        "$__range": "1h",
        "$region": ".*",
        "$cluster": ".*",
    }.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


def test_every_dashboard_expression_and_variable_returns_data(stack: Stack) -> None:
    exprs = {
        (name, panel["title"], target["expr"])
        for name, text in dashboards().items()
        for panel in json.loads(text)["panels"]
        for target in panel.get("targets", [])
    }
    assert len(exprs) >= 20

    def empty() -> list[str]:
        return [
            f"{name} / {title}: {expr}"
            for name, title, expr in sorted(exprs)
            if not stack.query(_concrete(expr))
        ]

    eventually(lambda: not empty(), 30, f"data for every dashboard expression (empty: {empty()})")

    for name, text in dashboards().items():
        for variable in json.loads(text)["templating"]["list"]:
            if variable["type"] != "query":
                continue
            metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]).groups()
            response = requests.get(
                f"{stack.prometheus}/api/v1/label/{label}/values",
                params={"match[]": _concrete(metric)},
                timeout=5,
            ).json()
            assert response["data"], f"{name}: variable {variable['name']} has no values"


def test_top_once_renders_gpus_quota_and_compliance_per_cluster(stack: Stack) -> None:
    eventually(lambda: stack.query("sovereign_deployment_compliant"), 30, "compliance series")
    done = subprocess.run(
        [sys.executable, "-m", "sovereign", "top", "--once", "--prometheus", stack.prometheus],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    rows = {  # cluster -> [region, allocated, quota, capacity, util, busy, GPU-h, non-compliant / all]
        cols[1]: [cols[0], *cols[2:]]
        for line in done.stdout.splitlines()
        if len(cols := [c.strip() for c in line.split("│")[1:-1]]) == 9
    }
    assert "GPU-h 24h" in done.stdout and "non-compliant" in done.stdout
    eu, us = rows[EU[1]], rows[US[1]]
    assert eu[0] == EU[0] and eu[2:4] == ["8", "16"]  # quota, capacity
    assert us[:4] == [US[0], "1", "4", "8"]  # allocated, quota, capacity
    assert eu[-1] == "1 / 2"  # the vision deployment is not compliant
    assert us[-1] == "0 / 1"
    assert float(eu[4]) == 0.0 and eu[5] == "0"  # the trace has ended: the GPU is idle
