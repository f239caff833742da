"""benchmarks/load_bench.py's verdicts, on a made-up faults run: what fails the benchmark must be right.

The benchmark itself (a local Ray, OPA, hundreds of clients) is no timed test; its must-holds are pure
functions of the answers, the fault timeline and the decision log, checked here in well under a second.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from types import ModuleType
from typing import Any

import pytest

from sovereign import toolchain

T0 = 1_000_000.0


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(toolchain.REPO_ROOT / "benchmarks"))
    import load_bench

    yield load_bench
    sys.modules.pop("load_bench", None)


@pytest.mark.slow
def test_fault_verdicts_flag_what_breaks_a_must_hold_and_nothing_else(bench: Any) -> None:
    Kind, Outcome, Answer = bench.Kind, bench.Outcome, bench.Answer
    served, refused, closed = Outcome.SERVED, Outcome.REFUSED, Outcome.FAIL_CLOSED
    timeline = bench.Timeline(
        T0,
        {
            "OPA killed": (T0 + 10, T0 + 10),
            "OPA restarted": (T0 + 20, T0 + 21),
            "replica killed": (T0 + 30, T0 + 30),
        },
    )
    answers = [
        Answer(Kind.TEXT, T0 + 1, T0 + 2, served, 200, "ok", "a"),
        Answer(Kind.IMAGE, T0 + 1, T0 + 2, refused, 403, "REGION_MODALITY", "b"),
        # Judged just before the kill, its generation finished after: rightly served.
        Answer(Kind.STREAM, T0 + 9, T0 + 12, served, 200, "ok", "c"),
        Answer(Kind.TEXT, T0 + 10, T0 + 10.3, closed, 503, "ENGINE_UNAVAILABLE", "d"),
        # Sent during the outage, queued in Serve, judged after the restart: rightly served.
        Answer(Kind.TEXT, T0 + 19, T0 + 22, served, 200, "ok", "e"),
        # In flight on the replica when it was killed: the fault's error, not the gateway's.
        Answer(Kind.TEXT, T0 + 29, T0 + 31, Outcome.ERROR, 500, "http_500"),
        Answer(Kind.TEXT, T0 + 32, T0 + 40, served, 200, "ok", "f"),
    ]
    judged = {"a": 1.5, "c": 9.5, "e": 21.5, "f": 39.0}

    def logged(at: dict[str, float]) -> dict[str, Any]:
        return {rid: bench.Logged(T0 + t, "allowed", "serving-1") for rid, t in at.items()}

    records = logged(judged)
    assert [c.name for c in bench.checks(answers, timeline, records) if not c.met] == []

    def broken(extra: list[Any], judged_too: dict[str, float] | None = None) -> list[str]:
        found = bench.checks(answers + extra, timeline, records | logged(judged_too or {}))
        return [c.name for c in found if not c.met]

    down = "no 200 while OPA is down"
    assert broken([Answer(Kind.TEXT, T0 + 5, T0 + 18, served, 200, "ok", "g")], {"g": 15.0}) == [down]
    assert broken([Answer(Kind.TEXT, T0 + 12, T0 + 13, served, 200, "ok", "h")], {"h": 5.0}) == [down]
    guarded = "every 200 from the guard"
    assert broken([Answer(Kind.TEXT, T0 + 2, T0 + 3, served, 200, "ok", "unlogged")]) == [guarded]
    assert broken([Answer(Kind.TEXT, T0 + 2, T0 + 3, Outcome.UNGUARDED, 200, "ok")]) == [guarded]
    image = replace(answers[0], kind=Kind.IMAGE)
    assert broken([image], {"a": 1.5}) == ["no image request served"]
    errors = "no error that is not a policy answer (but for requests in flight on the killed replica)"
    assert broken([Answer(Kind.TEXT, T0 + 41, T0 + 42, Outcome.ERROR, None, "timeout")]) == [errors]
    assert broken([Answer(Kind.TEXT, T0 + 30.5, T0 + 31, Outcome.ERROR, 500, "http_500")]) == [errors]
    slow = [a for a in answers if a.outcome is not closed] + [replace(answers[3], done=T0 + 11.5)]
    assert [c.name for c in bench.checks(slow, timeline, records) if not c.met] == [
        "503 within 1 s of OPA's kill"
    ]

    # What the guard said is told from what Serve or the network said by the guard's request id and codes.
    assert bench.classify(503, "id", {"code": "ENGINE_UNAVAILABLE", "codes": []}) == (
        closed,
        "ENGINE_UNAVAILABLE",
    )
    assert bench.classify(503, None, {"code": "x"})[0] is Outcome.ERROR
    assert bench.classify(500, "id", {"code": "x", "codes": []})[0] is Outcome.ERROR
    assert bench.classify(200, None, None)[0] is Outcome.UNGUARDED
