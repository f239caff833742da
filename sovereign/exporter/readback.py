"""The exporter's series read back from Prometheus, per region and cluster: what `sovereign top` shows and
`sovereign fleet status` reports."""

from __future__ import annotations

from collections import defaultdict

import requests

from sovereign.errors import SovereignError

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


def _query(
    session: requests.Session, url: str, expr: str, setting: str
) -> list[tuple[tuple[str, str], float]]:
    # Prometheus' instant-query API is one GET returning JSON; requests covers it without another client.
    try:
        response = session.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)
    except requests.RequestException as exc:
        raise SovereignError(
            f"Prometheus at {url} is unreachable ({type(exc).__name__}): start it or fix {setting}"
        ) from exc
    try:
        body = response.json()
    except ValueError as exc:
        raise SovereignError(
            f"{url} answered HTTP {response.status_code} without JSON: is it Prometheus?"
        ) from exc
    if body.get("status") != "success":
        raise SovereignError(
            f"Prometheus at {url} refused {expr!r}: {body.get('error', response.status_code)}"
        )
    return [
        ((r["metric"].get("region", "?"), r["metric"].get("cluster", "?")), float(r["value"][1]))
        for r in body["data"]["result"]
    ]


def snapshot(url: str, setting: str = "--prometheus") -> dict[tuple[str, str], Row]:
    """Every query's value by (region, cluster); SovereignError naming `setting` (where the URL came from)
    when Prometheus cannot be read."""
    rows: dict[tuple[str, str], Row] = defaultdict(dict)
    with requests.Session() as session:
        for column, expr in QUERIES.items():
            for key, value in _query(session, url, expr, setting):
                rows[key][column] = value
    return dict(rows)
