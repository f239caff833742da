"""The committed dashboards are exactly what the generator produces. (That every PromQL expression in
them returns data from a real Prometheus is tests/test_monitoring_e2e.py's job.)"""

from __future__ import annotations

import json

from infra.monitoring.dashboards import dashboards
from infra.monitoring.dashboards.generate import render


def test_committed_json_is_what_the_generator_produces() -> None:
    generated = render()
    committed = dashboards()
    assert (
        sorted(committed)
        == sorted(generated)
        == [
            "sovereign-compliance.json",
            "sovereign-gpu.json",
            "sovereign-serving.json",
        ]
    )
    for name, text in generated.items():
        assert committed[name] == text, (
            f"{name} is out of date: run 'python -m infra.monitoring.dashboards.generate' and commit it"
        )


def test_every_panel_queries_the_prometheus_datasource_variable() -> None:
    for name, text in dashboards().items():
        board = json.loads(text)
        assert board["uid"] == name.removesuffix(".json")
        panels = [panel for panel in board["panels"] if panel["type"] != "row"]
        assert panels, name
        for panel in panels:
            refs = [target["refId"] for target in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), f"{name}: {panel['title']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert all(target["expr"] for target in panel["targets"])
