"""`sovereign report` without a Prometheus: bad input, an unreachable server, and what the page holds for
a given window of data, escaped. The report on a real Prometheus, with real data: test_monitoring_e2e.py."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from report_page import FIGURES, ReportPage

from sovereign.cli import main
from sovereign.devenv.process import free_port
from sovereign.errors import BadInput
from sovereign.report.data import ChargebackRow, FiredAlert, RegionUse, Report, Window, chargeback
from sovereign.report.page import render_html
from sovereign.report.prometheus_api import parse_duration

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("24h", 86400), ("7d", 604800)])
def test_a_window_is_a_prometheus_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "1.5h", "0h", "-1h", "24x", "1h30m"])
def test_anything_else_is_refused_naming_the_form(text: str) -> None:
    with pytest.raises(BadInput, match="whole number and one unit"):
        parse_duration(text)


def test_an_unreachable_prometheus_exits_2_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(
        sys, "argv", ["sovereign", "report", "--prometheus", url, "--out", str(tmp_path / "r.html")]
    )
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: Prometheus at {url} is unreachable (ConnectionError): start it or fix --prometheus"
    )
    assert not (tmp_path / "r.html").exists()


class _Recorded:
    """A Prometheus holding the chargeback rules' answers at given instants (nothing else)."""

    url = "http://prometheus:9090"

    def __init__(self, answers: dict[tuple[str, float], list[tuple[dict[str, str], float]]]) -> None:
        self.answers = answers

    def instant(self, expr: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        return self.answers.get((expr, at or NOW), [])


def test_a_callers_rate_per_1000_tokens_is_the_rules_weighted_by_its_tokens_of_each_hour() -> None:
    caller = {"region": "eu", "cluster": "c", "model": "m", "tenant": "acme"}
    rule = "region_cluster_model_tenant:{}"
    last, first = NOW, NOW - 3600
    answers = {
        (rule.format("sovereign_tokens:increase1h"), last): [(caller, 1000.0)],
        (rule.format("sovereign_tokens:increase1h"), first): [(caller, 3000.0)],
        (rule.format("sovereign_gpu_seconds:attributed1h"), last): [(caller, 10.0)],
        (rule.format("sovereign_gpu_seconds:attributed1h"), first): [(caller, 120.0)],
        (rule.format("sovereign_gpu_seconds_per_1k_tokens:ratio1h"), last): [(caller, 10.0)],
        (rule.format("sovereign_gpu_seconds_per_1k_tokens:ratio1h"), first): [(caller, 40.0)],
    }
    (row,) = chargeback(_Recorded(answers), Window(NOW, 7200))  # type: ignore[arg-type]
    assert (row.tokens, row.gpu_seconds) == (4000, 130)
    assert row.gpu_seconds_per_1k == (10 * 1000 + 40 * 3000) / 4000  # 32.5, read off the rules
    assert row.joules_per_1k is None  # no hour recorded a rate: none is made up


def _report() -> Report:
    series = [(NOW - 600 + 10 * i, float(i % 3)) for i in range(60)]
    hostile = '<script>alert("x")</script>'
    return Report(
        "http://prometheus:9090",
        Window(NOW, 600),
        [RegionUse("eu-text-only", series, series[::2], 1.5)],
        [(hostile, 1.5)],
        [(hostile, 50)],
        [ChargebackRow("eu-text-only", "eu-1", "m", hostile, 1000, 50, 200, 50, 200)],
        {"eu-text-only": [(t, 1.0) for t, _ in series]},
        [{"namespace": "a", "deployment": hostile}],
        [
            FiredAlert("SovereignPolicyEngineDown", "critical", "platform", {"point": "serving"}, 30),
            FiredAlert("SovereignPolicyEngineDown", "critical", "platform", {"point": "admission"}, 15),
        ],
        evaluation_s=15,
    )


@pytest.mark.slow
def test_the_page_is_self_contained_and_escapes_every_name() -> None:
    started = time.monotonic()
    page = render_html(_report())
    assert time.monotonic() - started < 30
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<svg") == 5 and "<?xml" not in page
    assert "src=" not in page and "<link" not in page  # nothing fetched: plots and styles are inline
    assert "50.0" in page and "200.0" in page  # GPU-s and J of the row, as given


@pytest.mark.slow
def test_each_figure_carries_the_queries_it_drew_and_their_values() -> None:
    report = _report()
    page = ReportPage(render_html(report))
    assert list(page.svgs_in.items()) == [(figure, 1) for figure in FIGURES]  # one plot each, in order
    allocation = page.plotted("plot-allocation", "sum by (region) (sovereign_gpu_allocated)")
    assert allocation["step"] == report.window.step
    assert allocation["values"] == {"eu-text-only": [list(p) for p in report.regions[0].allocated]}
    hours = page.plotted("plot-allocation", "sum by (region) (increase(sovereign_gpu_hours_total[600s]))")
    assert hours == {"query": hours["query"], "by": ["region"], "at": [NOW], "values": {"eu-text-only": 1.5}}
    hostile = '<script>alert("x")</script>'  # unescaped again by the parser: carried as given
    owners = page.plotted("plot-tenants", "sum by (tenant) (increase(sovereign_gpu_hours_total[600s]))")
    assert owners["values"] == {hostile: 1.5}
    callers = page.plotted(
        "plot-tenants", "sum by (tenant) (region_cluster_model_tenant:sovereign_gpu_seconds:attributed1h)"
    )
    assert callers["values"] == {hostile: 50} and callers["at"] == [NOW]
    cost = page.plotted(
        "plot-cost", "region_cluster_model_tenant:sovereign_gpu_seconds_per_1k_tokens:ratio1h"
    )
    assert cost["by"] == ["region", "cluster", "model", "tenant"]
    assert cost["values"] == {f"eu-text-only / eu-1 / m / {hostile}": 50}
    compliance = page.plotted("plot-compliance", "avg by (region) (sovereign_deployment_compliant)")
    assert {v for _, v in compliance["values"]["eu-text-only"]} == {1.0}
    alerts = page.plotted(
        "plot-alerts", 'sum by (alertname) (count_over_time(ALERTS{alertstate="firing"}[600s])) * 15'
    )
    assert alerts["values"] == {"SovereignPolicyEngineDown": 45}  # both instances together
