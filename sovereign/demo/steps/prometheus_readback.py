"""Step: GPU allocation, GPU-hours, the decisions of the previews, admission and serving, read back from
Prometheus."""

from __future__ import annotations

from sovereign.demo.context import DemoContext
from sovereign.demo.polling import wait_for

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
}


def read_prometheus(demo: DemoContext) -> None:
    prometheus = demo.prometheus
    assert prometheus is not None
    for title, expr in QUERIES.items():
        rows = wait_for(f"Prometheus: {expr}", lambda e=expr: prometheus.query(e), 60)
        shown = ", ".join(
            f"{'/'.join(str(v) for v in row['metric'].values()) or 'total'}={float(row['value'][1]):.3g}"
            for row in rows
        )
        demo.report.say(f"{title}: {shown}")
        demo.report.expect(f"Prometheus has {title}", bool(rows))
