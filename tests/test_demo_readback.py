"""The demo's read-back waits for an answer that names every caller it charged, not for any answer."""

from __future__ import annotations

from typing import Any

from sovereign.demo.scenario import CALLERS, CHARGED, SAMPLE_REQUESTS
from sovereign.demo.steps.prometheus_readback import EVERY, QUERIES, answer

COST = "each caller's GPU-seconds per 1,000 tokens"


class _Answers:
    """Prometheus at a unit seam: every query gets the given rows (test_demo runs the real one)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.rows


def _row(**labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [0.0, "1"]}


def test_the_callers_charged_are_those_of_the_answered_sample_requests() -> None:
    # The EU text and US image requests are answered; the EU image request is refused and charged nothing.
    assert [(r.label, r.tenant) for r in CHARGED] == [("EU text", "demo-eu"), ("us-defense image", "demo-us")]
    assert {"demo-eu", "demo-us"} == CALLERS
    assert [r.label for r in SAMPLE_REQUESTS if r not in CHARGED] == ["EU image"]


def test_the_cost_per_caller_waits_until_every_caller_is_answered() -> None:
    assert EVERY[COST] == ("tenant", CALLERS)
    everyone = [_row(region="r", model="m", tenant=tenant) for tenant in sorted(CALLERS)]
    assert answer(_Answers(everyone), COST, QUERIES[COST]) == everyone  # type: ignore[arg-type]
    for missing in CALLERS:
        some = [row for row in everyone if row["metric"]["tenant"] != missing]
        assert answer(_Answers(some), COST, QUERIES[COST]) == []  # type: ignore[arg-type]


def test_other_read_backs_take_any_answer() -> None:
    title = "GPUs allocated by region"
    rows = [_row(region="eu-text-only")]
    assert answer(_Answers(rows), title, QUERIES[title]) == rows  # type: ignore[arg-type]
    assert answer(_Answers([]), title, QUERIES[title]) == []  # type: ignore[arg-type]
