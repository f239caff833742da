"""The dev Prometheus is the real server: it scrapes what it is told to and answers PromQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sovereign.devenv.process import free_port
from sovereign.devenv.prometheus import PrometheusConfig, PrometheusServer, ScrapeJob


def _wait_for(server: PrometheusServer, expr: str, timeout: float = 30.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := server.query(expr):
            return result
        time.sleep(0.5)
    raise AssertionError(f"{expr} returned nothing within {timeout} s")


@pytest.mark.slow
def test_prometheus_scrapes_its_targets_and_reloads_new_ones(tmp_path: Path) -> None:
    server = PrometheusServer(PrometheusConfig(state_dir=tmp_path, rule_files=[]))
    server.start()
    try:
        server.add_jobs(ScrapeJob("self", [f"127.0.0.1:{server.port}"]))
        result = _wait_for(server, 'up{job="self"} == 1')
        assert result[0]["metric"]["instance"] == f"127.0.0.1:{server.port}"
        assert server.query('up{job="absent"}') == []
        # A target nobody listens on is named with what its scrape answered; a healthy one is not named.
        closed = f"127.0.0.1:{free_port()}"
        server.add_jobs(ScrapeJob("closed", [closed]))
        _wait_for(server, 'up{job="closed"} == 0')
        [(target, error)] = server.scrape_errors().items()
        assert target == f"closed {closed}"
        assert "connection refused" in error, error
    finally:
        server.stop()
    assert server.process is not None and server.process.exited() is not None
