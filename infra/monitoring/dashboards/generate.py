"""The Grafana dashboards, built with grafana-foundation-sdk and written next to this file as JSON.

Regenerate after a change: `python -m infra.monitoring.dashboards.generate`; a test fails while the
committed JSON differs from what this produces. Panels read the recording rules where one exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, QueryVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.table import Panel as Table
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

HERE = Path(__file__).resolve().parent
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'region=~"$region", cluster=~"$cluster"'
WHERE = "{{region}}/{{cluster}}"


def _query(expr: str, legend: str, ref: str = "A", instant: bool = False) -> Dataquery:
    query = Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    return query.instant() if instant else query


P = TypeVar("P", Timeseries, Stat, Table)


def _with_queries(panel: P, queries: list[tuple[str, str]], instant: bool) -> P:
    for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(_query(expr, legend, ref, instant))
    return panel


def _timeseries(title: str, unit: str, *queries: tuple[str, str], description: str = "") -> Timeseries:
    panel = Timeseries().title(title).description(description).unit(unit).datasource(DATASOURCE)
    return _with_queries(panel, list(queries), instant=False)


def _stat(title: str, unit: str, *queries: tuple[str, str], description: str = "") -> Stat:
    panel = Stat().title(title).description(description).unit(unit).datasource(DATASOURCE).span(6)
    return _with_queries(panel, list(queries), instant=True)


def _table(title: str, expr: str, description: str = "") -> Table:
    panel = Table().title(title).description(description).datasource(DATASOURCE).span(24)
    return _with_queries(panel, [(expr, "")], instant=True)


def _dashboard(uid: str, title: str, description: str) -> Dashboard:
    def label_variable(name: str, query: str) -> QueryVariable:
        return (
            QueryVariable(name)
            .label(name)
            .datasource(DATASOURCE)
            .query(query)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )

    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["sovereign"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(label_variable("region", "label_values(sovereign_gpu_allocated, region)"))
        .with_variable(
            label_variable("cluster", 'label_values(sovereign_gpu_allocated{region=~"$region"}, cluster)')
        )
    )


def gpu_dashboard() -> Dashboard:
    return (
        _dashboard("sovereign-gpu", "Sovereign GPUs", "GPU use, allocation, GPU-hours and quota per region.")
        .with_row(Row("Utilisation"))
        .with_panel(
            _timeseries(
                "GPU utilisation by model",
                "percent",
                (f"region_cluster_model:DCGM_FI_DEV_GPU_UTIL:avg{{{SEL}}}", f"{WHERE} {{{{model}}}}"),
            )
        )
        .with_panel(
            _timeseries(
                "GPU utilisation per GPU",
                "percent",
                (f"DCGM_FI_DEV_GPU_UTIL{{{SEL}}}", "{{Hostname}} gpu{{gpu}} {{model}}"),
            )
        )
        .with_panel(
            _timeseries(
                "Framebuffer memory by model",
                "decmbytes",
                (f"region_cluster_model:DCGM_FI_DEV_FB_USED:sum{{{SEL}}}", f"used {WHERE} {{{{model}}}}"),
                (f"region_cluster_model:DCGM_FI_DEV_FB_FREE:sum{{{SEL}}}", f"free {WHERE} {{{{model}}}}"),
            )
        )
        .with_panel(
            _timeseries("Power draw", "watt", (f"region_cluster:DCGM_FI_DEV_POWER_USAGE:sum{{{SEL}}}", WHERE))
        )
        .with_row(Row("Allocation and quota"))
        .with_panel(
            _timeseries(
                "GPUs allocated, quota and capacity",
                "none",
                (f"region_cluster:sovereign_gpu_allocated:sum{{{SEL}}}", f"allocated {WHERE}"),
                (f"sum by (region, cluster) (sovereign_gpu_quota{{{SEL}}})", f"quota {WHERE}"),
                (f"sum by (region, cluster) (sovereign_gpu_capacity{{{SEL}}})", f"capacity {WHERE}"),
            )
        )
        .with_panel(
            _timeseries(
                "Share of GPU quota allocated",
                "percentunit",
                (f"region_cluster:sovereign_gpu_allocated_per_quota:ratio{{{SEL}}}", WHERE),
                description="SovereignGpuQuotaNearlyFull fires above 90 % for 15 minutes.",
            )
        )
        .with_panel(
            _timeseries(
                "GPUs allocated by model and tenant",
                "none",
                (
                    f"region_cluster_model_tenant:sovereign_gpu_allocated:sum{{{SEL}}}",
                    f"{WHERE} {{{{model}}}} {{{{tenant}}}}",
                ),
            )
        )
        .with_panel(
            _table(
                "GPU-hours in the selected range",
                "sum by (region, cluster, model, tenant) "
                f"(increase(sovereign_gpu_hours_total{{{SEL}}}[$__range]))",
            )
        )
    )


def compliance_dashboard() -> Dashboard:
    decisions = "region_cluster_point_decision_code:sovereign_policy_decisions:rate5m"
    return (
        _dashboard(
            "sovereign-compliance",
            "Sovereign compliance and policy decisions",
            "Deployment compliance, decisions by enforcement point and reason code, policy engine health.",
        )
        .with_row(Row("Compliance"))
        .with_panel(
            _stat(
                "Compliant deployments",
                "percentunit",
                (f"region_cluster:sovereign_deployment_compliant:avg{{{SEL}}}", WHERE),
            )
        )
        .with_panel(
            _stat(
                "Days until accreditation expires",
                "d",
                (
                    f"(sovereign_accreditation_expiry_timestamp_seconds{{{SEL}}} - time()) / 86400",
                    f"{WHERE} {{{{scheme}}}}",
                ),
            )
        )
        .with_panel(
            _stat("Policy engines up", "none", ("sovereign_policy_engine_up", "{{point}} {{engine}}"))
        )
        .with_panel(
            _stat(
                "Bundles refused in the selected range",
                "none",
                (
                    "sum by (point, reason) (increase(sovereign_policy_bundle_refused_total[$__range]))",
                    "{{point}} {{reason}}",
                ),
            )
        )
        .with_panel(_table("Non-compliant deployments", f"sovereign_deployment_compliant{{{SEL}}} == 0"))
        .with_row(Row("Decisions"))
        .with_panel(
            _timeseries(
                "Decisions by enforcement point",
                "reqps",
                (f"sum by (point, decision) ({decisions}{{{SEL}}})", "{{point}} {{decision}}"),
            )
        )
        .with_panel(
            _timeseries(
                "Denials by reason code",
                "reqps",
                (f'sum by (point, code) ({decisions}{{{SEL}, decision="deny"}})', "{{point}} {{code}}"),
            )
        )
    )


def serving_dashboard() -> Dashboard:
    buckets = f"region_cluster_model_le:sovereign_request_duration_seconds_bucket:rate5m{{{SEL}}}"
    return (
        _dashboard(
            "sovereign-serving", "Sovereign serving", "Requests, latency and tokens per model and tenant."
        )
        .with_row(Row("Requests"))
        .with_panel(
            _timeseries(
                "Requests by decision",
                "reqps",
                (
                    "sum by (model, decision) "
                    f"(region_cluster_model_decision:sovereign_requests:rate5m{{{SEL}}})",
                    "{{model}} {{decision}}",
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Refused requests by reason code",
                "reqps",
                (
                    "sum by (model, code) "
                    f'(rate(sovereign_requests_total{{{SEL}, decision="deny"}}[$__rate_interval]))',
                    "{{model}} {{code}}",
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Request latency",
                "s",
                (f"histogram_quantile(0.5, sum by (model, le) ({buckets}))", "p50 {{model}}"),
                (f"histogram_quantile(0.99, sum by (model, le) ({buckets}))", "p99 {{model}}"),
            )
        )
        .with_row(Row("Tokens"))
        .with_panel(
            _timeseries(
                "Tokens per second by model",
                "none",
                (f"region_cluster_model:sovereign_prompt_tokens:rate5m{{{SEL}}}", "prompt {{model}}"),
                (f"region_cluster_model:sovereign_completion_tokens:rate5m{{{SEL}}}", "completion {{model}}"),
            )
        )
        .with_panel(
            _timeseries(
                "Completion tokens per second by tenant",
                "none",
                (
                    f"sum by (tenant) (rate(sovereign_completion_tokens_total{{{SEL}}}[$__rate_interval]))",
                    "{{tenant}}",
                ),
            )
        )
    )


def render() -> dict[str, str]:
    """File name -> dashboard JSON, exactly as committed."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    built = {
        "sovereign-gpu": gpu_dashboard(),
        "sovereign-compliance": compliance_dashboard(),
        "sovereign-serving": serving_dashboard(),
    }
    return {f"{name}.json": encoder.encode(board.build()) + "\n" for name, board in built.items()}


def main() -> None:
    for name, text in render().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
