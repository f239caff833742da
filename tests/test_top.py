"""`sovereign top` when Prometheus is not there or not Prometheus, and how a snapshot renders.
(Rendering from a real Prometheus with real series is in tests/test_monitoring_e2e.py.)"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rich.console import Console

from sovereign.cli import main
from sovereign.commands.top import render
from sovereign.devenv.process import free_port


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def top(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Run:
    """`sovereign top --once ARGS` through the CLI's real entry point (exit codes, error lines)."""
    monkeypatch.setattr(sys, "argv", ["sovereign", "top", "--once", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return Run(int(exited.value.code or 0), out.out, out.err)


def test_unreachable_prometheus_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = top(capsys, monkeypatch, "--prometheus", url)
    assert done.code == 2
    assert done.stderr.strip().splitlines() == [
        f"error: Prometheus at {url} is unreachable (ConnectionError): start it or fix --prometheus"
    ]
    assert done.stdout == ""


def test_a_url_without_scheme_is_bad_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    done = top(capsys, monkeypatch, "--prometheus", "prometheus.local:9090")
    assert done.code == 2
    assert "--prometheus prometheus.local:9090: not an http(s) URL" in done.stderr


@pytest.fixture
def not_prometheus() -> Iterator[str]:
    class Html(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.slow
def test_something_else_at_the_url_exits_1_saying_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, not_prometheus: str
) -> None:
    done = top(capsys, monkeypatch, "--prometheus", not_prometheus)
    assert done.code == 1
    assert done.stderr.strip() == f"error: {not_prometheus} answered HTTP 200 without JSON: is it Prometheus?"


def _text(rows: dict, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(render(rows, "http://p"))
    return console.export_text()


def _cells(text: str, cluster: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"  {cluster} "))
    return line.replace("no data", "no-data").split()[1:]


def test_render_marks_over_quota_and_non_compliant_and_says_no_data_where_it_has_none() -> None:
    eu = {"allocated": 9, "quota": 8, "capacity": 16, "util": 42.25, "busy": 2, "gpu_hours": 3.5}
    rows = {
        ("eu-text-only", "eu-frankfurt-1"): {**eu, "deployments": 3, "noncompliant": 1},
        ("us-defense", "usdef-east-1"): {"allocated": 1},
    }
    text = _text(rows)
    assert _cells(text, "eu-frankfurt-1") == ["9", "8", "16", "42.2", "2", "3.50", "1", "of", "3"]
    assert _cells(text, "usdef-east-1") == ["1"] + ["no-data"] * 6
    assert "-" not in _cells(text, "usdef-east-1")
    console = Console(width=200, record=True, color_system="truecolor", force_terminal=True)
    console.print(render(rows, "http://p"))
    eu_line = next(line for line in console.export_text(styles=True).splitlines() if "frankfurt" in line)
    assert "\x1b[1;31m9" in eu_line  # over quota: bold red
    assert "\x1b[1;31m1 of 3" in eu_line  # a non-compliant deployment: bold red


def test_render_fits_80_columns_without_cutting_a_name() -> None:
    busy = {"allocated": 1200, "quota": 64, "capacity": 1024, "util": 100, "busy": 1000}
    rows = {
        ("eu-text-only", "eu-rotterdam-1"): {**busy, "gpu_hours": 12345.5, "deployments": 120},
        ("five-eyes", "fvey-london-1"): {"allocated": 2},
        ("us-defense", "usdef-east-1"): {},
    }
    text = _text(rows, width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    lines = [line.strip() for line in text.splitlines()]
    assert {"eu-text-only", "five-eyes", "us-defense"} <= set(lines)  # each region on a line of its own
    assert _cells(text, "eu-rotterdam-1")[-4:] == ["12345.50", "0", "of", "120"]


def test_render_says_when_there_is_nothing_yet() -> None:
    assert "no sovereign series in this Prometheus yet" in _text({})
