"""Where screening gets its list, and what an enforcement point does without a current one: the facts it
hands the real policy (SCREENING_UNAVAILABLE, undecided), the list re-read when replaced, startup refused
without one, and `sovereign decide` still deciding (with the notice) where screening is not required."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from serving.args import PolicyContext
from serving.guard import RequestGuard
from sovereign import toolchain
from sovereign.errors import BadInput
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import load_cluster
from sovereign.policy.decision_input import DecisionInput
from sovereign.policy.judgement import SCREENING_UNAVAILABLE, Action, Judge, Mode, Verdict
from sovereign.policy.screening import ALLOW_SAMPLE_ENV, SAMPLE_LIST
from sovereign.policy.screening_source import (
    SCREENING_LIST_ENV,
    Screening,
    configured_list,
    dev_sample_path,
    install_dev_sample,
)
from sovereign.policy.wasm_engine import WasmEngine

USDEF = load_cluster(toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml")
TODAY = datetime.now(UTC).date()


def listed(path: Path, updated: date, *, sample: bool = False) -> Path:
    """The shipped sample's parties at `path`, every source last updated on `updated`."""
    doc = json.loads(SAMPLE_LIST.read_text())
    if not sample:
        doc.pop("sample"), doc.pop("note")
    for source in doc["sources_used"]:
        source["source_last_updated"] = updated.isoformat()
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def no_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A state dir of its own where `sovereign dev up` never ran, and no list in the environment."""
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv(SCREENING_LIST_ENV, raising=False)
    monkeypatch.delenv(ALLOW_SAMPLE_ENV, raising=False)
    return tmp_path


@pytest.fixture
def judge_with(signed_bundle: SignedBundle) -> Any:
    engine = WasmEngine(signed_bundle.wasm, signed_bundle.verification_key)

    def make(screening: Screening) -> Judge:
        return Judge(engine, screening)

    return make


def usdef_input(as_of: date = TODAY) -> DecisionInput:
    return subjects.deployment_input(
        subjects.sovereign_cluster(USDEF), subjects.llama_deployment(USDEF, USDEF.deployments[0], USDEF.name)
    ).model_copy(update={"as_of": as_of})


# --- the setting ------------------------------------------------------------------------------------------
def test_an_enforcement_point_without_any_list_is_refused_naming_the_setting(no_setting: Path) -> None:
    with pytest.raises(BadInput) as refused:
        Screening.enforcing()
    message = str(refused.value)
    assert "$SOVEREIGN_SCREENING_LIST (or --screening-list)" in message
    assert "trade.gov" in message and "sovereign dev up" in message
    assert configured_list(enforcing=False).path is None  # decide and the matrix go on without one


def test_the_setting_is_the_option_then_the_environment_then_the_dev_sample(
    no_setting: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = install_dev_sample()
    assert sample == dev_sample_path() and json.loads(sample.read_text())["sample"] is True
    chosen = configured_list(enforcing=True)
    assert (chosen.path, chosen.allow_sample) == (sample, True)
    assert configured_list(enforcing=False).path is None  # the dev sample is for enforcement points only

    named = listed(no_setting / "named.json", TODAY)
    monkeypatch.setenv(SCREENING_LIST_ENV, str(named))
    assert configured_list(enforcing=True).path == named
    assert configured_list(enforcing=False).path == named
    explicit = listed(no_setting / "explicit.json", TODAY)
    assert configured_list(explicit, enforcing=True).path == explicit
    with pytest.raises(BadInput, match=r"missing\.json: no such file"):
        configured_list(no_setting / "missing.json", enforcing=True)


def test_the_dev_sample_is_dated_when_installed_and_screens(no_setting: Path) -> None:
    when = datetime(2026, 11, 29, 8, 30, tzinfo=UTC)
    doc = json.loads(install_dev_sample(when).read_text())
    assert {s["source_last_updated"] for s in doc["sources_used"]} == {when.isoformat()}
    assert "SAMPLE" in doc["note"] and when.isoformat() in doc["note"]
    facts = Screening.enforcing()("Northwind Aerospace", TODAY)
    assert facts["performed"] is True and facts["hits"][0]["source"] == "EL"


# --- facts at an enforcement point ------------------------------------------------------------------------
@pytest.mark.slow
def test_required_screening_without_a_current_list_says_why_and_is_undecided_in_every_mode(
    tmp_path: Path, judge_with: Any
) -> None:
    stale = listed(tmp_path / "csl.json", TODAY - timedelta(days=9))
    screening = Screening(stale, required=True)
    facts = screening("Lattice Federal Systems Inc.", TODAY)
    assert facts["performed"] is False and facts["required"] is True
    assert "9 days" in facts["problem"] and "trade.gov" in facts["problem"]

    judgement = judge_with(screening).judge(usdef_input())
    assert judgement.verdict is Verdict.UNDECIDED and judgement.codes == [SCREENING_UNAVAILABLE]
    assert "9 days" in judgement.message and "nothing is decided" in judgement.message
    assert judgement.violations[0]["citation"].startswith("15 CFR Part 732")
    assert {judgement.action(mode) for mode in Mode} == {Action.HOLD}


@pytest.mark.slow
def test_no_list_at_all_is_undecided_with_how_to_get_one(no_setting: Path, judge_with: Any) -> None:
    judgement = judge_with(Screening.enforcing(refuse_to_start=False)).judge(usdef_input())
    assert judgement.verdict is Verdict.UNDECIDED and judgement.codes == [SCREENING_UNAVAILABLE]
    assert "SOVEREIGN_SCREENING_LIST" in judgement.message and "sovereign dev up" in judgement.message


@pytest.mark.slow
def test_a_replaced_list_is_read_again_without_a_restart(tmp_path: Path, judge_with: Any) -> None:
    path = listed(tmp_path / "csl.json", TODAY - timedelta(days=30))
    judge = judge_with(Screening(path, required=True))
    assert judge.judge(usdef_input()).verdict is Verdict.UNDECIDED

    listed(tmp_path / "fresh.json", TODAY).replace(path)  # the nightly refresh
    assert judge.judge(usdef_input()).verdict is Verdict.ALLOWED

    path.write_text("{not json")  # a broken download fails closed, it never screens nobody
    judgement = judge.judge(usdef_input())
    assert judgement.codes == [SCREENING_UNAVAILABLE] and "malformed JSON" in judgement.message


@pytest.mark.slow
def test_a_list_ages_with_the_decision_date_but_not_past_today(tmp_path: Path, judge_with: Any) -> None:
    judge = judge_with(Screening(listed(tmp_path / "csl.json", TODAY - timedelta(days=5)), required=True))
    assert judge.judge(usdef_input()).verdict is Verdict.ALLOWED
    # Rehearsing next month's decision: no newer list can exist yet, so today's currency stands.
    assert judge.judge(usdef_input(TODAY + timedelta(days=30))).verdict is Verdict.ALLOWED
    stale = judge_with(Screening(listed(tmp_path / "old.json", TODAY - timedelta(days=8)), required=True))
    assert stale.judge(usdef_input(TODAY + timedelta(days=30))).codes == [SCREENING_UNAVAILABLE]
    assert stale.judge(usdef_input(TODAY - timedelta(days=2))).verdict is Verdict.ALLOWED  # 6 days then


def test_where_screening_is_not_required_no_list_decides_with_the_notice(judge_with: Any) -> None:
    judgement = judge_with(Screening(None, required=False)).judge(usdef_input())
    assert judgement.verdict is Verdict.ALLOWED
    assert "SCREENING_NOT_PERFORMED_NOTICE" in {o["code"] for o in judgement.obligations}


@pytest.mark.slow
def test_the_guard_answers_503_with_the_code_while_its_list_is_stale(
    tmp_path: Path, signed_bundle: SignedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOVEREIGN_OPA_URL", raising=False)
    path = listed(tmp_path / "csl.json", TODAY - timedelta(days=8))
    guard = RequestGuard(
        PolicyContext(cluster=subjects.facts_of(USDEF), end_use="defense", screening_list=path),
        ["llama-3.1-8b-instruct"],
    )
    body = {"model": "llama-3.1-8b-instruct", "messages": [{"role": "user", "content": "hello"}]}
    answer = guard.check(body, "llama-3.1-8b-instruct", "army")
    assert answer.status == 503 and answer.codes == [SCREENING_UNAVAILABLE]
    listed(tmp_path / "fresh.json", TODAY).replace(path)
    assert guard.check(body, "llama-3.1-8b-instruct", "army").status == 200


# --- startup, as the user runs it -------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [["operator", "run"], ["serve", "--watch"]],
    ids=["operator-run", "serve-watch"],
)
def test_a_production_process_without_a_list_refuses_to_start_naming_the_setting(
    no_setting: Path, command: list[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (SCREENING_LIST_ENV, ALLOW_SAMPLE_ENV)}
    done = subprocess.run(
        [sys.executable, "-m", "sovereign", *command],
        capture_output=True,
        text=True,
        env={**env, "SOVEREIGN_STATE_DIR": str(no_setting / "state"), "KUBECONFIG": "/nonexistent"},
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "SOVEREIGN_SCREENING_LIST" in done.stderr and "screen nobody" in done.stderr
    assert "Traceback" not in done.stderr
