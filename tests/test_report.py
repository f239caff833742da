"""`sovereign report` without a Prometheus: bad input, an unreachable server, and what the page holds for
a given window of data, escaped. The report on a real Prometheus, with real data: test_monitoring_e2e.py."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from sovereign.cli import main
from sovereign.devenv.process import free_port
from sovereign.errors import BadInput
from sovereign.report.data import ChargebackRow, FiredAlert, RegionUse, Report, Window
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


def test_a_chargeback_row_costs_per_1000_tokens() -> None:
    row = ChargebackRow("eu", "c", "m", "acme", tokens=4000, gpu_seconds=90, joules=2200)
    assert (row.gpu_seconds_per_1k, row.joules_per_1k) == (22.5, 550)
    assert ChargebackRow("eu", "c", "m", "idle").joules_per_1k is None  # no tokens, no rate


def test_the_page_is_self_contained_and_escapes_every_name() -> None:
    series = [(NOW - 600 + 10 * i, float(i % 3)) for i in range(60)]
    hostile = '<script>alert("x")</script>'
    report = Report(
        "http://prometheus:9090",
        Window(NOW, 600),
        [RegionUse("eu-text-only", series, series[::2], 1.5)],
        [(hostile, 1.5)],
        [ChargebackRow("eu-text-only", "eu-1", "m", hostile, 1000, 50, 200)],
        {"eu-text-only": [(t, 1.0) for t, _ in series]},
        [{"namespace": "a", "deployment": hostile}],
        [FiredAlert("SovereignPolicyEngineDown", "critical", "platform", {"point": "serving"}, 30)],
    )
    started = time.monotonic()
    page = render_html(report)
    assert time.monotonic() - started < 30
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<svg") == 4 and "<?xml" not in page
    assert "src=" not in page and "<link" not in page  # nothing fetched: plots and styles are inline
    assert "22.5" not in page and "50.0" in page and "200.0" in page  # GPU-s and J of the row, as given
