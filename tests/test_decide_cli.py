"""`sovereign decide` as a user runs it: JSON decision on stdout, exit 0 allowed / 1 denied / 2 bad input
or undecided (no engine could decide)."""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic.alias_generators import to_camel

from sovereign import cli, toolchain
from sovereign.devenv.process import free_port
from sovereign.policy.bundle import BUNDLE_DIR_ENV, SignedBundle
from sovereign.policy.decision_input import DecisionInput
from sovereign.policy.screening import ALLOW_SAMPLE_ENV, MAX_AGE_ENV, SAMPLE_LIST

ROOT = toolchain.REPO_ROOT
USDEF = ROOT / "clusters" / "usdef-east-1.yaml"

ALLOWED: dict[str, Any] = {
    "cluster": {
        "name": "usdef-east-1",
        "region": "us-defense",
        "country": "US",
        "operator": {
            "name": "Lattice Federal Systems Inc.",
            "country": "US",
            "kind": "government_contractor",
            "sponsor_country": "US",
        },
        "accreditations": [{"scheme": "dod-il5", "expires": "2027-06-30"}],
    },
    "model": "llama-3.3-70b-instruct",
    "end_use": "defense",
    "as_of": "2026-06-01",
}
UNKNOWN_MODEL = {**ALLOWED, "model": "llama-9-1t"}


@pytest.fixture(autouse=True)
def _isolated(cli_state: Path) -> None:
    """Every test runs the CLI on this module's own state dir and signed bundle."""


def decide(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = ""
) -> tuple[int, Any, str]:
    """Run `sovereign decide ARGS` through the real entry point; (exit code, parsed stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sovereign", "decide", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), json.loads(out) if out.strip() else None, err


def _file(tmp_path: Path, doc: object) -> str:
    path = tmp_path / "input.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def _codes(decision: dict[str, Any]) -> list[str]:
    return [v["code"] for v in decision["violations"]]


@pytest.mark.slow
def test_allowed_exits_0_with_the_decision_and_its_revision(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    signed_bundle: SignedBundle,
) -> None:
    code, decision, _ = decide(monkeypatch, capsys, _file(tmp_path, ALLOWED))
    assert code == 0
    assert decision["allow"] is True and decision["violations"] == []
    assert decision["policy_revision"] == signed_bundle.revision
    assert decision["engine"] == "wasm"
    assert "BUILT_WITH_LLAMA" in [o["code"] for o in decision["obligations"]]


def test_denied_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, decision, _ = decide(monkeypatch, capsys, _file(tmp_path, UNKNOWN_MODEL))
    assert code == 1
    assert decision["allow"] is False and "UNKNOWN_MODEL" in _codes(decision)


def test_an_array_gives_an_array_in_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, decisions, _ = decide(monkeypatch, capsys, _file(tmp_path, [ALLOWED, UNKNOWN_MODEL, ALLOWED]))
    assert code == 1  # one denied
    assert [d["allow"] for d in decisions] == [True, False, True]
    code, decisions, _ = decide(monkeypatch, capsys, _file(tmp_path, [ALLOWED, ALLOWED]))
    assert code == 0 and len(decisions) == 2


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, decision, _ = decide(monkeypatch, capsys, "-", stdin=json.dumps(ALLOWED))
    assert code == 0 and decision["allow"] is True


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ('{"cluster": {', "malformed JSON at line 1 column 14"),
        ({k: v for k, v in ALLOWED.items() if k != "model"}, "input.model: field required"),
        ({**ALLOWED, "end_use": "marketing"}, "input.end_use: Input should be 'commercial'"),
        ({**ALLOWED, "screening": {"hits": []}}, "input.screening: unknown field"),
        ({**ALLOWED, "as_of": "01/06/2026"}, "input.as_of"),
        ({**ALLOWED, "cluster": {**ALLOWED["cluster"], "country": "usa"}}, "input.cluster.country"),
        ([ALLOWED, {**ALLOWED, "gpus": -1}], "input[1].gpus"),
        ([], "non-empty array"),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    doc: object,
    named: str,
) -> None:
    code, out, err = decide(monkeypatch, capsys, _file(tmp_path, doc))
    assert code == 2 and out is None
    assert named in " ".join(err.split())


def test_cluster_file_form(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--cluster", str(USDEF), "--model", "llama-3.3-70b-instruct", "--end-use", "defense"]
    code, decision, _ = decide(monkeypatch, capsys, *args)
    assert code == 0 and decision["allow"] is True
    code, decision, _ = decide(monkeypatch, capsys, *args[:-1], "commercial", "--model", "llama-9-1t")
    assert code == 1 and "UNKNOWN_MODEL" in _codes(decision)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--model", "llama-3.3-70b-instruct", "--end-use", "defense"], "--model, --end-use only apply with"),
        (["--cluster", "{usdef}", "--model", "m"], "--cluster needs --deployment, or --model and --end-use"),
        (["--cluster", "{usdef}", "--model", "m", "--end-use", "spying"], "input.end_use"),
        (["--cluster", "{bad}", "--model", "m", "--end-use", "defense"], "operator.clearance: unknown field"),
        (
            ["{input}", "--cluster", "{usdef}", "--model", "m", "--end-use", "defense"],
            "both FILE and --cluster",
        ),
        (["{input}", "--gpus", "4"], "--gpus only apply with --cluster"),
        ([], "give a decision input FILE"),
    ],
)
def test_cluster_form_bad_input_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: list[str],
    named: str,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        USDEF.read_text().replace("  kind: government_contractor", "  kind: company\n  clearance: top")
    )
    paths = {"usdef": str(USDEF), "bad": str(bad), "input": _file(tmp_path, ALLOWED)}
    code, out, err = decide(monkeypatch, capsys, *[arg.format(**paths) for arg in args])
    assert code == 2 and out is None
    assert named in " ".join(err.split())
    if "{bad}" in args:
        assert str(bad) in " ".join(err.split())


def test_a_screening_list_hit_denies_the_operator(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    current_screening_list: Path,
) -> None:
    listed = {**ALLOWED, "cluster": {**ALLOWED["cluster"], "operator": {**ALLOWED["cluster"]["operator"]}}}
    listed["cluster"]["operator"]["name"] = "NORTHWIND AEROSPACE INDUSTRIES CO LTD"
    code, decision, _ = decide(
        monkeypatch, capsys, _file(tmp_path, listed), "--screening-list", str(current_screening_list)
    )
    assert code == 1 and _codes(decision) == ["DENIED_PARTY"]
    assert "Northwind Aerospace Industries Co., Ltd." in decision["violations"][0]["message"]

    # the same list from the environment
    monkeypatch.setenv("SOVEREIGN_SCREENING_LIST", str(current_screening_list))
    code, decision, _ = decide(monkeypatch, capsys, _file(tmp_path, ALLOWED))
    assert code == 0 and decision["allow"] is True  # an unlisted operator passes the same list


def test_the_sample_list_screens_only_when_samples_are_allowed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    listed = {**ALLOWED, "cluster": {**ALLOWED["cluster"], "operator": {**ALLOWED["cluster"]["operator"]}}}
    listed["cluster"]["operator"]["name"] = "Northwind Aerospace Industries"
    code, out, err = decide(
        monkeypatch, capsys, _file(tmp_path, listed), "--screening-list", str(SAMPLE_LIST)
    )
    assert code == 2 and out is None
    assert "SAMPLE list" in err and f"{ALLOW_SAMPLE_ENV}=1" in " ".join(err.split())

    monkeypatch.setenv(ALLOW_SAMPLE_ENV, "1")
    code, decision, _ = decide(
        monkeypatch, capsys, _file(tmp_path, listed), "--screening-list", str(SAMPLE_LIST)
    )
    assert code == 1 and _codes(decision) == ["DENIED_PARTY"]


def test_a_stale_screening_list_exits_2_naming_its_date_and_the_setting(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    current_screening_list: Path,
) -> None:
    doc = json.loads(current_screening_list.read_text())
    doc["sources_used"][0]["source_last_updated"] = "2026-01-01T05:00:00+00:00"
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(doc))
    code, out, err = decide(monkeypatch, capsys, _file(tmp_path, ALLOWED), "--screening-list", str(stale))
    message = " ".join(err.split())
    assert code == 2 and out is None
    assert "last updated 2026-01-01" in message and "at most 7 days old" in message
    assert MAX_AGE_ENV in message and "trade.gov" in message

    # The age is measured at the decision date: the same list is current for a decision as of 2026-01-05.
    dated = {**ALLOWED, "as_of": "2026-01-05"}
    code, decision, _ = decide(monkeypatch, capsys, _file(tmp_path, dated), "--screening-list", str(stale))
    assert code == 0 and decision["allow"] is True


def test_a_malformed_screening_list_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "csl.json"
    broken.write_text(json.dumps({"total": 0, "sources_used": [], "results": {}}))
    code, out, err = decide(monkeypatch, capsys, _file(tmp_path, ALLOWED), "--screening-list", str(broken))
    assert code == 2 and out is None and "list.results" in err


def test_the_opa_server_when_sovereign_opa_url_is_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, opa_server: Any
) -> None:
    _, in_process, _ = decide(monkeypatch, capsys, _file(tmp_path, [ALLOWED, UNKNOWN_MODEL]))
    monkeypatch.setenv("SOVEREIGN_OPA_URL", opa_server.url)
    code, over_rest, _ = decide(monkeypatch, capsys, _file(tmp_path, [ALLOWED, UNKNOWN_MODEL]))
    assert code == 1
    assert [d.pop("engine") for d in over_rest] == ["opa-rest", "opa-rest"]
    assert over_rest == [{k: v for k, v in d.items() if k != "engine"} for d in in_process]


def test_an_unreachable_server_denies_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SOVEREIGN_OPA_URL", f"http://127.0.0.1:{free_port()}")
    code, decision, err = decide(monkeypatch, capsys, _file(tmp_path, ALLOWED))
    assert code == 2 and _codes(decision) == ["ENGINE_UNAVAILABLE"]
    assert "OPA server" in err


def test_a_tampered_bundle_is_refused_and_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    signed_bundle: SignedBundle,
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(signed_bundle.wasm.parent, copy)
    wasm = copy / signed_bundle.wasm.name
    wasm.write_bytes(wasm.read_bytes()[:-64] + bytes(64))  # corrupt the tail of the tarball
    monkeypatch.setenv(BUNDLE_DIR_ENV, str(copy))
    code, decision, err = decide(monkeypatch, capsys, _file(tmp_path, ALLOWED))
    assert code == 2 and _codes(decision) == ["BUNDLE_UNVERIFIED"]
    assert decision["policy_revision"] is None
    assert "sovereign bundle build --force" in " ".join(err.split())


EU_ALLOWED: dict[str, Any] = {
    "cluster": {
        "name": "eu-frankfurt-1",
        "region": "eu-text-only",
        "country": "DE",
        "operator": {"name": "Rheinwerk Cloud GmbH", "country": "DE", "kind": "company"},
        "accreditations": [],
    },
    "model": "llama-3.1-8b-instruct",
    "end_use": "commercial",
    "as_of": "2026-06-01",
}


def _patched(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """`base` with top-level keys, `cluster__key` and `operator__key` replaced."""
    doc = json.loads(json.dumps(base))
    for key, value in changes.items():
        if key.startswith("cluster__"):
            doc["cluster"][key.removeprefix("cluster__")] = value
        elif key.startswith("operator__"):
            doc["cluster"]["operator"][key.removeprefix("operator__")] = value
        else:
            doc[key] = value
    return doc


# Each reason code, reached through the CLI by changing one fact of an allowed request.
CODE_CASES = {
    "UNKNOWN_REGION": _patched(ALLOWED, cluster__region="mars-orbit"),
    "EU_MULTIMODAL_LICENCE": _patched(EU_ALLOWED, model="llama-3.2-11b-vision-instruct"),
    "REGION_MODALITY": _patched(EU_ALLOWED, model="meta-llama/Llama-4-Scout-17B-16E-Instruct"),
    "END_USE_NOT_PERMITTED": _patched(EU_ALLOWED, end_use="defense"),
    "OPERATOR_NOT_ELIGIBLE": _patched(ALLOWED, operator__kind="company"),
    "EMBARGOED_DESTINATION": _patched(ALLOWED, cluster__weights_country="IR"),
    "ACCREDITATION_MISSING": _patched(ALLOWED, cluster__accreditations=[]),
    "ACCREDITATION_EXPIRED": _patched(
        ALLOWED, cluster__accreditations=[{"scheme": "dod-il5", "expires": "2026-05-31"}]
    ),
    "DATA_RESIDENCY": _patched(ALLOWED, cluster__weights_country="GB"),
    "MAU_LICENCE_REQUIRED": _patched(ALLOWED, operator__monthly_active_users=800_000_000),
    "MAU_LICENCE_REQUIRED by month": _patched(ALLOWED, operator__mau_by_month={"2024-11": 800_000_000}),
    "EU_MULTIMODAL_LICENCE by seat": _patched(
        ALLOWED, model="llama-3.2-11b-vision-instruct", operator__principal_place_of_business="DE"
    ),
    "GPU_QUOTA_EXCEEDED": _patched(ALLOWED, cluster__gpu_quota=8, cluster__gpus_in_use=6, gpus=4),
}


@pytest.mark.parametrize("code", sorted(CODE_CASES))
def test_each_reason_code_through_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, code: str
) -> None:
    exit_code, decision, _ = decide(monkeypatch, capsys, _file(tmp_path, CODE_CASES[code]))
    code = code.split(" ")[0]
    assert exit_code == 1
    assert code in _codes(decision)
    cited = [v for v in decision["violations"] if v["code"] == code]
    # A source's URL, or the project's own rule marked as such (tests/test_citations.py).
    assert all(
        v["message"] and ("https://" in v["citation"] or v["citation"].startswith("sovereign design rule"))
        for v in cited
    )


def test_the_ai_act_obligation_through_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    exit_code, decision, _ = decide(
        monkeypatch, capsys, _file(tmp_path, _patched(EU_ALLOWED, model="llama-3.1-405b-instruct"))
    )
    assert exit_code == 0
    obligations = {o["code"]: o for o in decision["obligations"]}
    assert "Art. 51" in obligations["AI_ACT_SYSTEMIC_RISK"]["citation"]
    assert "BUILT_WITH_LLAMA" in obligations


def test_the_unconfirmed_carve_out_obligation_through_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A French contractor of the US, after the 2025 widening that no statement of Meta's confirms."""
    french = _patched(ALLOWED, operator__country="FR")
    exit_code, decision, _ = decide(monkeypatch, capsys, _file(tmp_path, french))
    assert exit_code == 0
    obligations = {o["code"]: o for o in decision["obligations"]}
    assert "secondary, unconfirmed" in obligations["NATIONAL_SECURITY_CARVE_OUT_UNCONFIRMED"]["citation"]
    exit_code, decision, _ = decide(monkeypatch, capsys, _file(tmp_path, {**french, "as_of": "2025-09-21"}))
    assert exit_code == 1 and _codes(decision) == ["END_USE_NOT_PERMITTED"]


# --- the input format: its schema, the shipped examples, both spellings ----------------------------------

EXAMPLES = sorted((ROOT / "policies" / "examples").glob("*.json"))


def test_schema_prints_the_input_json_schema(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, schema, _ = decide(monkeypatch, capsys, "--schema")
    assert code == 0
    assert schema == DecisionInput.model_json_schema()
    assert schema["required"] == ["cluster", "model", "end_use"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_shipped_example_is_decided(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], example: Path
) -> None:
    code, decision, err = decide(monkeypatch, capsys, str(example))
    assert code != 2, err
    # The name says what the policy decides: `-allowed` exits 0, `-denied` 1.
    outcome = example.stem.rpartition("-")[2]
    assert code == {"allowed": 0, "denied": 1}.get(outcome, code), decision


def test_the_readme_input_is_decided(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"cat > \S*munich\.json <<'JSON'\n(.*?)\nJSON\n", readme, re.S)
    assert shown, "README.md no longer shows the contractor's munich.json input"
    code, decision, err = decide(monkeypatch, capsys, _file(tmp_path, shown[1]))
    assert code == 1, err
    assert _codes(decision) == ["EU_MULTIMODAL_LICENCE"]


def _camel(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {to_camel(key): _camel(value) for key, value in doc.items()}
    return [_camel(item) for item in doc] if isinstance(doc, list) else doc


def test_camel_case_as_in_the_kubernetes_objects_is_the_same_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    snake = {**ALLOWED, "gpus": 4, "cluster": {**ALLOWED["cluster"], "weights_country": "US"}}
    camel = _camel(snake)
    assert {"endUse", "asOf"} <= camel.keys() and "weightsCountry" in camel["cluster"]
    assert "sponsorCountry" in camel["cluster"]["operator"]
    code, as_camel, _ = decide(monkeypatch, capsys, _file(tmp_path, camel))
    assert code == 0
    code, as_snake, _ = decide(monkeypatch, capsys, _file(tmp_path, snake))
    assert as_camel == as_snake


def test_both_spellings_of_one_field_are_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = decide(monkeypatch, capsys, _file(tmp_path, {**ALLOWED, "endUse": "research"}))
    assert code == 2 and out is None
    assert "input.endUse: unknown field" in err


# --- hints: printed beside the decision, never changing it -----------------------------------------------

TYPO = {**ALLOWED, "model": "llama-3.3-70b-instrct"}
UK_OPERATOR = {
    **ALLOWED,
    "cluster": {**ALLOWED["cluster"], "operator": {**ALLOWED["cluster"]["operator"], "country": "UK"}},
}


@pytest.mark.parametrize(
    ("doc", "hint"),
    [
        (
            TYPO,
            "hint: input.model: `llama-3.3-70b-instrct` is not in the catalogue: did you mean "
            "`llama-3.3-70b-instruct`?",
        ),
        (UK_OPERATOR, "hint: input.cluster.operator.country: `UK` is not ISO 3166-1: did you mean `GB`?"),
        ([ALLOWED, TYPO], "hint: input[1].model: `llama-3.3-70b-instrct` is not in the catalogue"),
    ],
    ids=["model", "country", "array"],
)
def test_a_hint_is_printed_beside_the_decision_and_never_changes_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    doc: object,
    hint: str,
) -> None:
    code, hinted, err = decide(monkeypatch, capsys, _file(tmp_path, doc))
    assert hint in err.splitlines()[0]
    monkeypatch.setattr("sovereign.commands.decide.hints", lambda *_: [])
    unhinted_code, unhinted, unhinted_err = decide(monkeypatch, capsys, _file(tmp_path, doc))
    assert "hint:" not in unhinted_err
    assert (code, hinted) == (unhinted_code, unhinted)
    assert code == 1  # the policy decided on what was written: the typo is still unknown, UK no country


@pytest.mark.slow
def test_no_hint_when_nothing_looks_mistyped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, _, err = decide(monkeypatch, capsys, _file(tmp_path, UNKNOWN_MODEL))  # like no catalogue name
    assert "hint:" not in err
