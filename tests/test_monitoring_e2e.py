"""End to end on real components (tests/monitoring_stack.py): the operator, the data plane serving a tiny
Llama through the guard, the exporter and Debian's Prometheus with the shipped rules (time compressed).
No series here is injected: each comes from the component METRICS.md names.

First what Prometheus holds (GPU samples, allocation, decisions, compliance, `sovereign top`); then each
alert, driven by its real condition and watched through Prometheus's own alerts API until it fires with
the right labels and resolves when the condition clears; last, every recording rule and every dashboard
expression returns data.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client
from monitoring_stack import (
    BATCH,
    CAPACITY,
    CHAT,
    NODE,
    QUOTA,
    REGION,
    SERVED,
    SUSPENDED,
    TENANT,
    TEXT_MODEL,
    VISION,
    VISION_MODEL,
    MonitoringStack,
    days_from_today,
    eventually,
    png_data_url,
    running_stack,
)
from report_page import FIGURES, ReportPage, assert_drawn_as_answered, number

from infra.monitoring.dashboards import dashboards
from operators.localrun import install_bundle
from sovereign.exporter.gpu_trace import H100_TRACE
from sovereign.policy.bundle import SignedBundle

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent
OPA = {"engine": "opa-rest"}
IMAGE = [{"type": "image_url", "image_url": {"url": png_data_url()}}, {"type": "text", "text": "what is it"}]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, signed_bundle: SignedBundle, current_screening_list: Path
) -> Iterator[MonitoringStack]:
    with running_stack(tmp_path_factory.mktemp("monitoring"), signed_bundle, current_screening_list) as built:
        yield built


def firing(stack: MonitoringStack, name: str, **labels: str) -> list[dict[str, Any]]:
    """The instances of alert `name` whose labels include `labels`, once every one of them fires."""
    found = [a for a in stack.alerts(name) if labels.items() <= a["labels"].items()]
    return found if found and all(a["state"] == "firing" for a in found) else []


def resolved(stack: MonitoringStack, name: str, **labels: str) -> bool:
    return not [a for a in stack.alerts(name) if labels.items() <= a["labels"].items()]


def pending_then_firing(stack: MonitoringStack, name: str, **labels: str) -> dict[str, Any]:
    """Watch an alert with a `for:` go pending, then fire; its firing instance."""
    states: list[str] = []

    def fired() -> dict[str, Any] | None:
        for alert in stack.alerts(name):
            if labels.items() <= alert["labels"].items():
                if not states or states[-1] != alert["state"]:
                    states.append(alert["state"])
                if alert["state"] == "firing":
                    return alert
        return None

    alert = eventually(fired, f"{name} {labels} firing")
    assert states[0] == "pending", f"{name} fired without going pending first: {states}"
    return alert


# --- what Prometheus holds --------------------------------------------------------------------------------
def test_prometheus_sees_the_h100_trace_with_the_labels_of_the_deployment_holding_the_gpu(
    stack: MonitoringStack,
) -> None:
    raw = json.loads(H100_TRACE.read_text())
    selector = f'{{Hostname="{NODE}"}}'
    eventually(lambda: stack.query(f"max_over_time(DCGM_FI_DEV_GPU_UTIL{selector}[15m]) >= 99"), "busy phase")
    eventually(lambda: stack.values(f"DCGM_FI_DEV_GPU_UTIL{selector}") == {(): 0.0}, "idle after the trace")
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
        "region": REGION,
        "cluster": SERVED,
        "model": TEXT_MODEL,  # joined from the worker pod of the deployment on this node
        "namespace": TENANT,
    }
    assert float(series["value"][1]) == raw["trace"][-1]["fb_used_bytes"] / 2**20


def test_allocation_quota_and_gpu_hours_follow_the_operators_rayservices(stack: MonitoringStack) -> None:
    by = ("region", "cluster", "model", "tenant")
    # The suspended vision deployment holds nothing; the 4-GPU batch deployment holds its GPUs while it
    # runs, whether or not Ray could place it.
    expected = {(REGION, SERVED, TEXT_MODEL, TENANT): 2.0, (REGION, QUOTA, TEXT_MODEL, TENANT): 4.0}
    eventually(lambda: stack.values("sovereign_gpu_allocated", *by) == expected, "allocation")
    clusters = {(SERVED,): float(CAPACITY), (SUSPENDED,): float(CAPACITY), (QUOTA,): float(CAPACITY)}
    assert stack.values("sovereign_gpu_quota", "cluster") == clusters
    assert stack.values("sovereign_gpu_capacity", "cluster") == clusters
    ratio = stack.values("region_cluster:sovereign_gpu_allocated_per_quota:ratio", "cluster")
    assert ratio == {(SERVED,): 2 / CAPACITY, (QUOTA,): 4 / CAPACITY}
    hours = eventually(
        lambda: (h := stack.values("sovereign_gpu_hours_total", *by)) and min(h.values()) > 0 and h,
        "GPU-hours accumulating",
    )
    elapsed = time.monotonic() - stack.exporter_started
    assert hours[(REGION, QUOTA, TEXT_MODEL, TENANT)] <= 4 * elapsed / 3600
    assert hours[(REGION, QUOTA, TEXT_MODEL, TENANT)] / hours[(REGION, SERVED, TEXT_MODEL, TENANT)] == (
        pytest.approx(2, rel=0.05)
    )


def test_decisions_engine_health_and_compliance_come_from_the_operator_and_the_guard(
    stack: MonitoringStack,
) -> None:
    assert stack.chat(tenant="acme").status_code == 200
    refused = stack.chat(prompt=IMAGE, tenant="acme")  # type: ignore[arg-type]
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "REGION_MODALITY"

    def decisions() -> set[tuple[str, ...]]:
        by = ("point", "cluster", "model", "decision", "code")
        return set(stack.values("sovereign_policy_decisions_total", *by))

    expected = {
        ("serving", SERVED, TEXT_MODEL, "allow", "none"),
        ("serving", SERVED, TEXT_MODEL, "deny", "REGION_MODALITY"),
        ("admission", SERVED, TEXT_MODEL, "allow", "none"),
        ("admission", SUSPENDED, VISION_MODEL, "deny", "REGION_MODALITY"),  # refused at admission
    }
    eventually(lambda: expected <= decisions(), f"decisions {expected}")
    assert stack.values("sovereign_policy_engine_up", "point", "engine") == {
        ("admission", "opa-rest"): 1.0,
        ("serving", "opa-rest"): 1.0,
    }
    compliance = stack.values("sovereign_deployment_compliant", "cluster", "namespace", "deployment", "model")
    assert compliance == {
        (SERVED, TENANT, CHAT, TEXT_MODEL): 1.0,
        (QUOTA, TENANT, BATCH, TEXT_MODEL): 1.0,
        (SUSPENDED, TENANT, VISION, VISION_MODEL): 0.0,
    }
    tokens = eventually(
        lambda: stack.values("sovereign_completion_tokens_total", "cluster", "tenant"), "completion tokens"
    )
    assert tokens[(SERVED, "acme")] >= 1


def test_top_once_renders_gpus_quota_and_compliance_per_cluster(stack: MonitoringStack) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sovereign", "top", "--once", "--prometheus", stack.prometheus.url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    # A region's line, then its clusters' lines indented beneath it:
    # cluster -> [region, allocated, quota, capacity, util, busy, GPU-h, non-compliant "of" all]
    rows: dict[str, list[str]] = {}
    region = None
    for line in done.stdout.splitlines():
        if line.startswith("  ") and region is not None:
            cluster, *cells = line.replace("no data", "no-data").split()
            rows[cluster] = [region, *cells]
        elif line and not line.startswith(" ") and len(line.split()) == 1 and not line.startswith("─"):
            region = line.strip()
    assert rows[SERVED][:4] == [REGION, "2", "8", "8"] and rows[SERVED][-3:] == ["0", "of", "1"]
    assert rows[QUOTA][:4] == [REGION, "4", "8", "8"] and rows[QUOTA][-3:] == ["0", "of", "1"]
    assert rows[SUSPENDED][:4] == [REGION, "no-data", "8", "8"] and rows[SUSPENDED][-3:] == ["1", "of", "1"]


# --- each alert, fired by its real condition and resolved when it clears ---------------------------------
def test_a_policy_change_fires_non_compliant_deployment_until_it_is_reverted(stack: MonitoringStack) -> None:
    ours = {"deployment": CHAT}
    stack.operator.start_opa(stack.policy_change)  # a re-signed bundle: commercial use leaves the EU
    alert = pending_then_firing(stack, "SovereignNonCompliantDeployment", **ours)
    assert alert["labels"] == {
        "alertname": "SovereignNonCompliantDeployment",
        "severity": "critical",
        "scope": "tenant",
        "region": REGION,
        "cluster": SERVED,
        "namespace": TENANT,
        "deployment": CHAT,
        "model": TEXT_MODEL,
        "instance": alert["labels"]["instance"],
        "job": "sovereign-operator",
    }
    assert "not allowed by the current policy" in alert["annotations"]["description"]
    stack.operator.start_opa()  # the policy is reverted
    eventually(lambda: resolved(stack, "SovereignNonCompliantDeployment", **ours), "compliant again")
    assert firing(stack, "SovereignNonCompliantDeployment", deployment=VISION)  # still refused


def test_an_accreditation_expiring_soon_and_one_expired_fire_until_renewed(stack: MonitoringStack) -> None:
    ours = {"cluster": SUSPENDED}
    stack.patch_cluster(
        SUSPENDED,
        {
            "accreditations": [
                {"scheme": "bsi-c5", "expires": days_from_today(10)},
                {"scheme": "secnumcloud", "expires": days_from_today(-1)},
            ]
        },
    )
    [soon] = eventually(lambda: firing(stack, "SovereignAccreditationExpiringSoon", **ours), "expiring soon")
    assert soon["labels"] | {"instance": ""} == {
        "alertname": "SovereignAccreditationExpiringSoon",
        "severity": "warning",
        "scope": "cluster",
        "region": REGION,
        "cluster": SUSPENDED,
        "scheme": "bsi-c5",
        "instance": "",
        "job": "sovereign-operator",
    }
    # Valid through its tenth day from today: it expires in 10 days and the rest of today.
    assert "expires in 10d " in soon["annotations"]["description"]
    [expired] = eventually(lambda: firing(stack, "SovereignAccreditationExpired", **ours), "expired")
    assert (expired["labels"]["scheme"], expired["labels"]["severity"]) == ("secnumcloud", "critical")

    stack.patch_cluster(
        SUSPENDED, {"accreditations": [{"scheme": "bsi-c5", "expires": days_from_today(365)}]}
    )
    eventually(lambda: resolved(stack, "SovereignAccreditationExpiringSoon", **ours), "renewed")
    eventually(lambda: resolved(stack, "SovereignAccreditationExpired", **ours), "expired one removed")


def test_the_policy_engine_down_fires_for_the_operator_and_serving_until_opa_returns(
    stack: MonitoringStack,
) -> None:
    stack.operator.stop_opa()
    try:
        refused = stack.chat()
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "ENGINE_UNAVAILABLE"
        admission = pending_then_firing(stack, "SovereignPolicyEngineDown", point="admission", **OPA)
        assert admission["labels"]["job"] == "sovereign-operator"
        # Serving fires both ways in: its engine gauge, and its rate of ENGINE_UNAVAILABLE decisions (which
        # needs requests that keep being refused).
        [gauge] = eventually(
            lambda: firing(stack, "SovereignPolicyEngineDown", point="serving", **OPA), "serving's gauge"
        )
        assert (gauge["labels"]["job"], gauge["labels"]["scope"]) == ("sovereign-serving", "platform")
        [rate] = eventually(
            lambda: (
                stack.chat().status_code == 503
                and firing(stack, "SovereignPolicyEngineDown", point="serving", cluster=SERVED)
            ),
            "serving's ENGINE_UNAVAILABLE decisions",
        )
        assert rate["labels"]["region"] == REGION
    finally:
        stack.operator.start_opa()
    eventually(lambda: stack.chat().status_code == 200, "served again")
    eventually(lambda: resolved(stack, "SovereignPolicyEngineDown"), "engine up at every point")


def test_a_refused_bundle_fires_until_the_signed_one_is_back(stack: MonitoringStack) -> None:
    bundle = stack.operator.bundle_dir / "bundle.tar.gz"  # what the operator and serving verify OPA with
    signed = bundle.read_bytes()
    tampered = bundle.with_name(".tampered")
    tampered.write_bytes(signed[:-64] + bytes(64))
    os.replace(tampered, bundle)
    try:
        alert = eventually(
            lambda: firing(stack, "SovereignPolicyBundleRefused", point="admission"), "bundle refused"
        )
        assert alert[0]["labels"]["reason"] == "BUNDLE_UNVERIFIED"
        assert alert[0]["labels"]["scope"] == "platform"
    finally:
        install_bundle(stack.operator.bundle, stack.operator.bundle_dir)
    eventually(lambda: resolved(stack, "SovereignPolicyBundleRefused"), "bundle believed again")
    eventually(lambda: resolved(stack, "SovereignPolicyEngineDown"), "engine up again")


def test_lowering_a_quota_fires_nearly_full_then_exceeded_until_it_is_raised(stack: MonitoringStack) -> None:
    ours = {"cluster": QUOTA}
    stack.patch_cluster(QUOTA, {"gpu": {"capacity": CAPACITY, "quota": 4}})  # 4 of 4 allocated
    nearly = pending_then_firing(stack, "SovereignGpuQuotaNearlyFull", **ours)
    assert (nearly["labels"]["region"], nearly["labels"]["scope"]) == (REGION, "cluster")
    assert nearly["annotations"]["description"] == f"{REGION}/{QUOTA} has allocated 100% of its GPU quota."

    stack.patch_cluster(QUOTA, {"gpu": {"capacity": CAPACITY, "quota": 3}})  # warn mode: it keeps running
    exceeded = pending_then_firing(stack, "SovereignGpuQuotaExceeded", **ours)
    assert exceeded["labels"]["severity"] == "critical"
    assert (
        exceeded["annotations"]["description"] == f"{REGION}/{QUOTA} has allocated 133.3% of its GPU quota."
    )
    eventually(lambda: resolved(stack, "SovereignGpuQuotaNearlyFull", **ours), "no longer merely near")
    eventually(
        lambda: firing(stack, "SovereignNonCompliantDeployment", deployment=BATCH), "GPU_QUOTA_EXCEEDED"
    )

    stack.patch_cluster(QUOTA, {"gpu": {"capacity": CAPACITY, "quota": CAPACITY}})
    eventually(lambda: resolved(stack, "SovereignGpuQuotaExceeded", **ours), "quota raised")
    eventually(
        lambda: resolved(stack, "SovereignNonCompliantDeployment", deployment=BATCH), "compliant again"
    )


def test_the_exporter_cut_off_from_the_api_server_fires_source_down_until_it_reconnects(
    stack: MonitoringStack,
) -> None:
    stack.relay.cut()
    try:
        down = eventually(
            lambda: (
                (found := stack.alerts("SovereignExporterSourceDown"))
                and {a["labels"]["source"] for a in found if a["state"] == "firing"}
                >= {"rayservices", "pods"}
                and found
            ),
            "every API source down",
        )
        assert {a["labels"]["source"] for a in down} >= {"rayservices", "sovereignclusters", "pods"}
        assert {a["labels"]["job"] for a in down} == {"sovereign-exporter"}
        assert "nvml" not in {a["labels"]["source"] for a in down}  # the GPUs are still read
    finally:
        stack.relay.start()
    eventually(lambda: resolved(stack, "SovereignExporterSourceDown"), "every source up again")


def test_allocated_gpus_idle_fire_until_the_deployment_leaves_the_gpu(stack: MonitoringStack) -> None:
    ours = {"cluster": SERVED, "model": TEXT_MODEL}
    alert = eventually(
        lambda: firing(stack, "SovereignAllocatedGpusIdle", **ours), "idle since the trace ended"
    )
    assert alert[0]["labels"]["scope"] == "cluster"
    # Its worker pod goes from the node: the GPU no longer belongs to the deployment.
    client.CoreV1Api(stack.operator.api_client).delete_namespaced_pod(f"{CHAT}-worker", TENANT)
    eventually(lambda: resolved(stack, "SovereignAllocatedGpusIdle", **ours), "the GPU released")


# --- everything the dashboards and recording rules read ---------------------------------------------------
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


def test_every_recording_rule_and_dashboard_expression_returns_data(stack: MonitoringStack) -> None:
    """Last: the alerts above left a refused bundle and ENGINE_UNAVAILABLE decisions in the range."""
    for _ in range(3):  # traffic within the rate windows: answered and refused
        assert stack.chat().status_code == 200
        assert stack.chat(prompt=IMAGE).status_code == 403  # type: ignore[arg-type]
    rules = stack.prometheus.config.rule_files
    recorded = [r["record"] for path in rules for g in _groups(path) for r in g["rules"] if "record" in r]
    exprs = {
        (name, panel["title"], _concrete(target["expr"]))
        for name, text in dashboards().items()
        for panel in json.loads(text)["panels"]
        for target in panel.get("targets", [])
    }

    def empty() -> list[str]:
        missing = [name for name in recorded if not stack.query(name)]
        return missing + [
            f"{name} / {title}: {expr}" for name, title, expr in sorted(exprs) if not stack.query(expr)
        ]

    eventually(lambda: not empty(), f"data for every recording rule and panel (empty: {empty()})")
    for name, text in dashboards().items():
        for variable in json.loads(text)["templating"]["list"]:
            if variable["type"] != "query":
                continue
            metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]).groups()
            response = requests.get(
                f"{stack.prometheus.url}/api/v1/label/{label}/values",
                params={"match[]": _concrete(metric)},
                timeout=5,
            ).json()
            assert response["data"], f"{name}: variable {variable['name']} has no values"


def _groups(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text())["groups"])


# --- chargeback and the report ----------------------------------------------------------------------------
def test_the_replayed_h100_trace_gives_the_energy_a_hand_computation_gives(stack: MonitoringStack) -> None:
    trace = json.loads(H100_TRACE.read_text())["trace"]
    # By hand: NVML's total energy counter (mJ) from the first sample to the last, which then holds.
    joules = (trace[-1]["energy_mj"] - trace[0]["energy_mj"]) / 1000
    assert joules == pytest.approx(2186.461)
    # ...which is what the GPU drew: the power samples integrated over the trace, within their 200 ms steps.
    drawn = sum((b["t"] - a["t"]) * (a["power_mw"] + b["power_mw"]) / 2000 for a, b in pairwise(trace))
    assert drawn == pytest.approx(joules, rel=0.05)
    recorded = stack.values(
        "region_cluster_model_tenant:gpu_energy_joules:increase1h", "cluster", "model", "tenant"
    )
    # increase() extrapolates half a scrape interval past the first sample: well under 2 % here.
    assert recorded[(SERVED, TEXT_MODEL, TENANT)] == pytest.approx(joules, rel=0.02)
    per_1k = stack.values("region_cluster_model:gpu_energy_joules_per_1k_tokens:ratio1h", "cluster", "model")
    tokens = stack.values("region_cluster_model_tenant:sovereign_tokens:increase1h", "cluster", "model")
    served = sum(v for (cluster, model), v in tokens.items() if (cluster, model) == (SERVED, TEXT_MODEL))
    assert per_1k[(SERVED, TEXT_MODEL)] == pytest.approx(
        1000 * recorded[(SERVED, TEXT_MODEL, TENANT)] / served
    )


def test_sovereign_report_writes_chargeback_compliance_and_alerts_as_one_html_page(
    stack: MonitoringStack, tmp_path: Path
) -> None:
    """Last: every alert above has fired within the report's hour."""
    out = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "sovereign", "report", "--prometheus", stack.prometheus.url, "--since", "1h",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    # Self-contained: no script, no stylesheet or image to fetch; the SVGs refer only within themselves.
    assert "<script" not in text and "<link" not in text
    assert re.findall(r'(?:src|href)="(?!#)[^"]*"', text) == []
    page = ReportPage(text)
    assert page.sections == [
        "Allocation and use per region",
        "Top tenants",
        "Chargeback",
        "Compliance over time",
        "Alerts fired",
    ]
    # Each plot in its own figure, and every value it drew is Prometheus's answer to the query it names.
    assert list(page.svgs_in.items()) == [(figure, 1) for figure in FIGURES]  # one plot each, in order
    assert page.svgs == 5
    expected = {
        "plot-allocation": {
            "sum by (region) (sovereign_gpu_allocated)",
            "sum by (region) (DCGM_FI_DEV_GPU_UTIL) / 100",
            "sum by (region) (increase(sovereign_gpu_hours_total[3600s]))",  # regions' GPU-hours
        },
        "plot-tenants": {
            "sum by (tenant) (increase(sovereign_gpu_hours_total[3600s]))",
            "sum by (tenant) (region_cluster_model_tenant:sovereign_gpu_seconds:attributed1h)",
        },
        "plot-cost": {
            "region_cluster_model_tenant:sovereign_gpu_seconds_per_1k_tokens:ratio1h",
            "region_cluster_model_tenant:gpu_energy_joules_per_1k_tokens:ratio1h",
        },
        "plot-compliance": {"avg by (region) (sovereign_deployment_compliant)"},
        "plot-alerts": {
            # times the stack's evaluation interval, 1 s (its scrape interval)
            'sum by (alertname) (count_over_time(ALERTS{alertstate="firing"}[3600s])) * 1'
        },
    }
    assert {figure: {p["query"] for p in drawn} for figure, drawn in page.figures.items()} == expected
    assert_drawn_as_answered(page, stack.query)
    hours = page.plotted("plot-allocation", "sum by (region) (increase(sovereign_gpu_hours_total[3600s]))")
    assert hours["values"][REGION] > 0
    compliance = page.plotted("plot-compliance", "avg by (region) (sovereign_deployment_compliant)")
    assert min(v for _, v in compliance["values"][REGION]) < 1  # the policy change above shows

    header, *rows = page.rows["chargeback-rows"]
    assert header[:3] == ["caller", "model", "region / cluster"]
    rows_by = {(row[0], row[1]): row for row in rows}
    acme = rows_by[("acme", TEXT_MODEL)]
    assert acme[2] == f"{REGION} / {SERVED}"
    # The table is Prometheus's answer at the instant the report read the hour (the one its cost plot names),
    # to the token its cells show: asked any later, the chats above may have reached Prometheus since.
    [read_at] = page.plotted(
        "plot-cost", "region_cluster_model_tenant:sovereign_gpu_seconds_per_1k_tokens:ratio1h"
    )["at"]
    tokens = stack.values(
        "region_cluster_model_tenant:sovereign_tokens:increase1h", "cluster", "tenant", at=read_at
    )
    assert tokens[(SERVED, "acme")] > 0
    assert number(acme[3]) == pytest.approx(tokens[(SERVED, "acme")], abs=0.5)
    # Every caller of the model pays the model's joules per 1,000 tokens, which come from the trace.
    trace = json.loads(H100_TRACE.read_text())["trace"]
    joules = (trace[-1]["energy_mj"] - trace[0]["energy_mj"]) / 1000
    ours = [row for (_, model), row in rows_by.items() if model == TEXT_MODEL and SERVED in row[2]]
    assert sum(number(row[5]) for row in ours) == pytest.approx(joules, rel=0.03)
    assert number(acme[7]) == pytest.approx(1000 * joules / sum(number(row[3]) for row in ours), rel=0.03)

    fired = {row[0] for row in page.rows["alert-rows"][1:]}
    assert fired >= {
        "SovereignNonCompliantDeployment",
        "SovereignAccreditationExpiringSoon",
        "SovereignAccreditationExpired",
        "SovereignPolicyEngineDown",
        "SovereignPolicyBundleRefused",
        "SovereignGpuQuotaNearlyFull",
        "SovereignGpuQuotaExceeded",
        "SovereignExporterSourceDown",
        "SovereignAllocatedGpusIdle",
    }
    noncompliant = [row[0] for row in page.rows["noncompliant"][1:]]
    assert noncompliant == [f"{TENANT}/{VISION}"]
