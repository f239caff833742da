"""The exporter's series read back from Prometheus, per region and cluster: what `sovereign top` shows and
`sovereign fleet status` reports."""

from __future__ import annotations

from collections import defaultdict

from sovereign.report.prometheus_api import PrometheusApi

# Raw series rather than the recording rules, so this also works on a Prometheus without them.
QUERIES = {
    "allocated": "sum by (region, cluster) (sovereign_gpu_allocated)",
    "quota": "sum by (region, cluster) (sovereign_gpu_quota)",
    "capacity": "sum by (region, cluster) (sovereign_gpu_capacity)",
    "util": "avg by (region, cluster) (DCGM_FI_DEV_GPU_UTIL)",
    # GPUs doing work now; `> bool` keeps idle GPUs as 0, so a cluster whose GPUs all idle says 0.
    "busy": "sum by (region, cluster) (DCGM_FI_DEV_GPU_UTIL > bool 0)",
    "gpu_hours": "sum by (region, cluster) (increase(sovereign_gpu_hours_total[24h]))",
    "deployments": "count by (region, cluster) (sovereign_deployment_compliant)",
    "noncompliant": "count by (region, cluster) (sovereign_deployment_compliant == 0)",
}
Row = dict[str, float]


def snapshot(api: PrometheusApi) -> dict[tuple[str, str], Row]:
    """Every query's value by (region, cluster); SovereignError naming the setting the URL came from when
    Prometheus cannot be read."""
    rows: dict[tuple[str, str], Row] = defaultdict(dict)
    for column, expr in QUERIES.items():
        for labels, value in api.instant(expr):
            rows[(labels.get("region", "?"), labels.get("cluster", "?"))][column] = value
    return dict(rows)
