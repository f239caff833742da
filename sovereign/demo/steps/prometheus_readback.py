"""Step: GPU allocation, GPU-hours, the decisions of the previews, admission and serving, read back from
Prometheus."""

from __future__ import annotations

from typing import Any

from sovereign.demo.context import DemoContext
from sovereign.demo.polling import wait_for
from sovereign.demo.scenario import CALLERS
from sovereign.devenv.prometheus import PrometheusServer

QUERIES = {
    "GPUs allocated by region": "sum by (region) (sovereign_gpu_allocated)",
    "GPU-hours by region": "sum by (region) (sovereign_gpu_hours_total)",
    "decisions by enforcement point": "sum by (point, decision) (sovereign_policy_decisions_total)",
    # The EU preview that refused the vision deployment, pushed by its short-lived policy pack.
    "the EU preview's refusal": (
        'sum by (region, code) (sovereign_policy_decisions_total{point="preview", decision="deny", '
        'code="EU_MULTIMODAL_LICENCE"})'
    ),
    "serving requests": "sum by (region, decision) (sovereign_requests_total)",
    # Chargeback's recording rules: what each caller's tokens cost on the model that served them.
    "each caller's GPU-seconds per 1,000 tokens": (
        "sum by (region, model, tenant) "
        "(region_cluster_model_tenant:sovereign_gpu_seconds_per_1k_tokens:ratio1h)"
    ),
}
# Queries whose answer must name every one of these values of a label, not merely some.
EVERY = {"each caller's GPU-seconds per 1,000 tokens": ("tenant", CALLERS)}


def read_prometheus(demo: DemoContext) -> None:
    prometheus = demo.prometheus
    assert prometheus is not None
    for title, expr in QUERIES.items():
        label, every = EVERY.get(title, ("", frozenset()))
        what = f"Prometheus: {expr}" + (f" with every {label} of {sorted(every)}" if every else "")
        rows = wait_for(what, lambda t=title, e=expr: answer(prometheus, t, e), 60)
        shown = ", ".join(
            f"{'/'.join(str(v) for v in row['metric'].values()) or 'total'}={float(row['value'][1]):.3g}"
            for row in rows
        )
        demo.report.say(f"{title}: {shown}")
        demo.report.expect(f"Prometheus has {title}", bool(rows))


def answer(prometheus: PrometheusServer, title: str, expr: str) -> list[dict[str, Any]]:
    """Prometheus's answer to `expr`, or nothing while it lacks a label value EVERY requires of `title`."""
    rows = prometheus.query(expr)
    label, every = EVERY.get(title, ("", frozenset()))
    return rows if every <= {row["metric"].get(label) for row in rows} else []
