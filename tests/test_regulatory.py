"""The rules say what the licences and the law say (issue 13, findings 1-6), through `sovereign decide`.

Two kinds of test: `sovereign decide` cases, one group per finding, run in-process like test_decide_cli; and
properties on the signed bundle, that a decision does not move when only facts that do not decide change.
"""

from __future__ import annotations

import io
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_citations import problems
from test_decide_cli import ALLOWED as US_CONTRACTOR
from test_decide_cli import EU_ALLOWED as EU_COMPANY

from sovereign import cli
from sovereign import vocabulary as k8s
from sovereign.devenv.controlplane import ControlPlane
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import ClusterSpec
from sovereign.policy.wasm_engine import WasmEngine
from sovereign.policydata import load_policy_data

DATA = load_policy_data()

VISION = "llama-3.2-11b-vision-instruct"


def _patched(base: dict[str, Any], operator: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """A copy of `base` with top-level keys replaced, then operator fields."""
    doc = json.loads(json.dumps({**base, **changes}))
    doc["cluster"]["operator"].update(operator or {})
    return doc


@pytest.fixture
def decide(
    cli_state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Any:
    """`sovereign decide FILE` through the real entry point: (exit code, decision)."""

    def run(doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        path = tmp_path / "input.json"
        path.write_text(json.dumps(doc))
        monkeypatch.setattr(sys, "argv", ["sovereign", "decide", str(path)])
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        with pytest.raises(SystemExit) as exited:
            cli.main()
        out, _ = capsys.readouterr()
        decision = json.loads(out)
        for note in [*decision["violations"], *decision["obligations"]]:
            assert problems(note["citation"]) == [], note  # finding 6, on every decision below
        return int(exited.value.code or 0), decision

    return run


def _codes(decision: dict[str, Any]) -> list[str]:
    return [v["code"] for v in decision["violations"]]


def _only(decision: dict[str, Any], code: str) -> dict[str, Any]:
    [found] = [n for n in [*decision["violations"], *decision["obligations"]] if n["code"] == code]
    return found


# --- 1. the EU multimodal clause follows the licensee ------------------------------------------------


@pytest.mark.slow
def test_1_a_us_company_run_from_munich_is_refused_a_vision_model(decide: Any) -> None:
    code, decision = decide(
        _patched(US_CONTRACTOR, {"principal_place_of_business": "DE"}, model=VISION, end_use="research")
    )
    assert code == 1 and _codes(decision) == ["EU_MULTIMODAL_LICENCE"]
    violation = _only(decision, "EU_MULTIMODAL_LICENCE")
    assert "a company with a principal place of business in, the EU" in violation["message"]
    assert "principal place of business DE" in violation["message"]
    assert "read as a company with its principal place of business in <DE>" in violation["message"]
    assert "models/llama3_2/USE_POLICY.md" in violation["citation"]


def test_1_a_german_company_run_from_the_us_is_not(decide: Any) -> None:
    run_from_the_us = {"country": "DE", "principal_place_of_business": "US"}
    doc = _patched(US_CONTRACTOR, run_from_the_us, model=VISION, end_use="research")
    code, decision = decide(doc)
    assert code == 0 and _codes(decision) == []


def test_1_an_individual_is_where_they_are_domiciled(decide: Any) -> None:
    doc = _patched(EU_COMPANY, {"kind": "individual", "country": "IT", "principal_place_of_business": "US"})
    code, decision = decide({**doc, "model": "llama-4-scout-17b-16e-instruct"})
    assert code == 1
    assert "an individual domiciled in <IT>" in _only(decision, "EU_MULTIMODAL_LICENCE")["message"]


def test_1_region_modality_cites_the_region_profile_not_the_clause(decide: Any) -> None:
    code, decision = decide(_patched(EU_COMPANY, model=VISION))
    assert code == 1 and _codes(decision) == ["EU_MULTIMODAL_LICENCE", "REGION_MODALITY"]
    region = _only(decision, "REGION_MODALITY")["citation"]
    assert region.startswith("sovereign design rule, region profile eu-text-only")
    assert region.endswith("policies/data/regions/eu-text-only.yaml")
    assert "Acceptable Use Policy" not in region


# --- 2. the 700M test counts the month before each release --------------------------------------------


def test_2_the_month_before_the_release_decides(decide: Any) -> None:
    code, decision = decide(_patched(EU_COMPANY, {"mau_by_month": {"2024-06": 750_000_000}}))
    assert code == 1 and _codes(decision) == ["MAU_LICENCE_REQUIRED"]
    message = _only(decision, "MAU_LICENCE_REQUIRED")["message"]
    assert "750000000 monthly active users (licensee and affiliates) for 2024-06" in message
    assert "release on 2024-07-23" in message


def test_2_todays_figure_does_not_when_that_months_is_known(decide: Any) -> None:
    operator = {
        "mau_by_month": {"2024-06": 650_000_000, "2026-05": 2_000_000_000},
        "monthly_active_users": 2_000_000_000,
    }
    code, decision = decide(_patched(EU_COMPANY, operator))
    assert code == 0 and _codes(decision) == []


def test_2_without_that_month_the_current_figure_stands_in_and_the_month_is_named(decide: Any) -> None:
    operator = {"mau_by_month": {"2026-05": 1}, "monthly_active_users": 800_000_000}
    code, decision = decide(_patched(EU_COMPANY, operator))
    assert code == 1
    message = _only(decision, "MAU_LICENCE_REQUIRED")["message"]
    assert "no mau_by_month figure for 2024-06" in message and "stands in for it (conservative)" in message
    code, _ = decide(_patched(EU_COMPANY, {**operator, "llama_licence_grant": True}))
    assert code == 0


def test_2_each_family_has_its_own_month(decide: Any) -> None:
    march_2025 = {"mau_by_month": {"2025-03": 800_000_000}}
    code, decision = decide(_patched(US_CONTRACTOR, march_2025, model="llama-4-scout-17b-16e-instruct"))
    assert code == 1 and _codes(decision) == ["MAU_LICENCE_REQUIRED"]
    assert "models/llama4/LICENSE" in _only(decision, "MAU_LICENCE_REQUIRED")["citation"]
    code, _ = decide(_patched(US_CONTRACTOR, march_2025, model="llama-3.3-70b-instruct"))
    assert code == 0


# --- 3. the AI Act: dates and roles ---------------------------------------------------------------------


def test_3_no_ai_act_obligation_before_2_august_2025(decide: Any) -> None:
    code, decision = decide(_patched(EU_COMPANY, model="llama-3.1-405b-instruct", as_of="2025-08-01"))
    assert code == 0 and "AI_ACT_SYSTEMIC_RISK" not in [o["code"] for o in decision["obligations"]]


def test_3_from_then_an_advisory_worded_for_the_deployer(decide: Any) -> None:
    code, decision = decide(_patched(EU_COMPANY, model="llama-3.1-405b-instruct", as_of="2025-08-02"))
    assert code == 0  # an obligation, never a deny
    obligation = _only(decision, "AI_ACT_SYSTEMIC_RISK")
    message = obligation["message"]
    assert "fall on the model's provider, not on this deployer" in message
    assert "placed on the market on 2024-07-23, before 2025-08-02" in message
    assert "until 2027-08-02 (Art. 111(3))" in message
    assert "only if it modifies the model with more than one third" in message
    assert "Art. 51(2)" in obligation["citation"] and "eur-lex.europa.eu" in obligation["citation"]


# --- 4. the national-security carve-out is dated ------------------------------------------------------


def test_4_no_defense_use_before_the_carve_out(decide: Any) -> None:
    code, decision = decide(_patched(US_CONTRACTOR, as_of="2024-11-03"))
    assert code == 1 and _codes(decision) == ["END_USE_NOT_PERMITTED"]
    violation = _only(decision, "END_USE_NOT_PERMITTED")
    assert (
        "on <2024-11-03> covers nobody (its first membership dates from 2024-11-04)" in violation["message"]
    )
    assert "Acceptable Use Policy" in violation["citation"]
    code, _ = decide(_patched(US_CONTRACTOR, as_of="2024-11-04"))
    assert code == 0


def test_4_the_2025_widening_applies_from_its_date_and_says_it_is_unconfirmed(decide: Any) -> None:
    french = {"country": "FR", "name": "Société Aéro Défense SA"}
    code, decision = decide(_patched(US_CONTRACTOR, french, as_of="2025-09-21"))
    assert code == 1 and _codes(decision) == ["END_USE_NOT_PERMITTED"]
    code, decision = decide(_patched(US_CONTRACTOR, french, as_of="2026-06-01"))
    assert code == 0
    obligation = _only(decision, "NATIONAL_SECURITY_CARVE_OUT_UNCONFIRMED")
    assert "only through membership <allies-2025> (since 2025-09-22)" in obligation["message"]
    assert "secondary, unconfirmed" in obligation["citation"]


def test_4_a_us_contractor_needs_no_unconfirmed_membership(decide: Any) -> None:
    code, decision = decide(US_CONTRACTOR)
    assert code == 0
    assert "NATIONAL_SECURITY_CARVE_OUT_UNCONFIRMED" not in [o["code"] for o in decision["obligations"]]


# --- 5. Llama 2 and Llama 3 are known, with their own licences ------------------------------------------


@pytest.mark.parametrize(
    ("model", "attribution"),
    [
        ("meta-llama/Llama-2-7b-chat-hf", "with its Notice file"),
        ("meta-llama/Llama-2-70b-hf", "with its Notice file"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", 'display "Built with Meta Llama 3"'),
        ("meta-llama/Meta-Llama-3-70B", 'display "Built with Meta Llama 3"'),
    ],
)
def test_5_llama_2_and_3_are_catalogued_with_their_licences(
    decide: Any, model: str, attribution: str
) -> None:
    for base in (EU_COMPANY, US_CONTRACTOR):
        code, decision = decide(_patched(base, model=model))
        assert code == 0 and _codes(decision) == []
        assert attribution in _only(decision, "BUILT_WITH_LLAMA")["message"]


def test_5_llama_2_has_its_own_700m_clause(decide: Any) -> None:
    doc = _patched(EU_COMPANY, {"mau_by_month": {"2023-06": 701_000_000}}, model="llama-2-13b-chat")
    code, decision = decide(doc)
    assert code == 1
    violation = _only(decision, "MAU_LICENCE_REQUIRED")
    assert "release on 2023-07-18" in violation["message"]
    assert "models/llama2/LICENSE" in violation["citation"]


# --- 6. citations: primary sources, and the project's own rules marked as such ------------------------


def test_6_unknown_region_cites_the_fail_closed_rule(decide: Any) -> None:
    code, decision = decide(
        _patched(US_CONTRACTOR, cluster={**US_CONTRACTOR["cluster"], "region": "mars-orbit"})
    )
    assert code == 1
    citation = _only(decision, "UNKNOWN_REGION")["citation"]
    assert citation.startswith("sovereign design rule (fail closed)") and "§1(b)(iv)" not in citation


def test_6_the_licence_and_law_citations_are_primary(decide: Any) -> None:
    _, decision = decide(_patched(US_CONTRACTOR, {"kind": "company"}, model=VISION, as_of="2026-06-01"))
    _, eu = decide(_patched(EU_COMPANY, model="llama-3.1-405b-instruct", end_use="defense"))
    cited = {n["citation"] for d in (decision, eu) for n in [*d["violations"], *d["obligations"]]}
    for mirror in ("airevolution", "ai-act-law", "mobileworldlive", "govregs"):
        assert all(mirror not in c for c in cited)
    assert any("github.com/meta-llama/llama-models/blob/" in c and "USE_POLICY.md" in c for c in cited)
    assert any("about.fb.com" in c or "eur-lex.europa.eu" in c for c in cited)


# --- properties: facts that do not decide do not move the decision -------------------------------------


@pytest.fixture(scope="module")
def wasm(signed_bundle: SignedBundle) -> WasmEngine:
    return WasmEngine(signed_bundle.wasm, signed_bundle.verification_key)


def _decision(engine: WasmEngine, doc: dict[str, Any]) -> dict[str, Any]:
    decided = engine.decide({**doc, "screening": {"performed": True, "hits": []}})
    return {key: value for key, value in decided.items() if key != "engine"}


FAR = [{"scheme": "dod-il5", "expires": "2099-12-31"}]
BASES = [
    _patched(US_CONTRACTOR, cluster={**US_CONTRACTOR["cluster"], "accreditations": FAR}),
    _patched(US_CONTRACTOR, {"country": "FR"}, cluster={**US_CONTRACTOR["cluster"], "accreditations": FAR}),
    _patched(US_CONTRACTOR, {"kind": "company"}, cluster={**US_CONTRACTOR["cluster"], "accreditations": FAR}),
    _patched(EU_COMPANY, model="llama-3.1-405b-instruct", end_use="research"),
    _patched(EU_COMPANY, {"kind": "research_institution", "country": "FR"}),
]
MODELS = sorted(model.id for model in DATA.models)
COUNTRIES = ["US", "GB", "DE", "FR", "IE", "NL", "NO", "CH", "JP", "KR", "BR", "IN"]
MONTHS = st.builds(lambda y, m: f"{y:04d}-{m:02d}", st.integers(2022, 2027), st.integers(1, 12))
USERS = st.integers(0, 2_000_000_000)
END_USES = ["commercial", "research", "defense", "intelligence"]


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    doc = _patched(draw(st.sampled_from(BASES)), model=draw(st.sampled_from(MODELS)))
    doc["end_use"] = draw(st.sampled_from(END_USES))
    if draw(st.booleans()):
        doc["cluster"]["operator"]["monthly_active_users"] = draw(USERS)
    return doc


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
def test_mau_for_months_other_than_the_deciding_one_changes_nothing(wasm: WasmEngine) -> None:
    @SETTINGS
    @given(requests(), st.one_of(st.none(), USERS), st.dictionaries(MONTHS, USERS, max_size=6))
    def same(doc: dict[str, Any], deciding: int | None, others: dict[str, int]) -> None:
        model = DATA.model(doc["model"])
        assert model is not None
        month = DATA.licences[model.licence].deciding_month
        known = {} if deciding is None else {month: deciding}
        before = _patched(doc, {"mau_by_month": known})
        after = _patched(doc, {"mau_by_month": {**{m: n for m, n in others.items() if m != month}, **known}})
        assert _decision(wasm, before) == _decision(wasm, after)

    same()


@pytest.mark.slow
def test_a_principal_place_of_business_does_not_move_an_individual(wasm: WasmEngine) -> None:
    @SETTINGS
    @given(requests(), st.sampled_from(COUNTRIES), st.sampled_from(COUNTRIES))
    def same(doc: dict[str, Any], domicile: str, seat: str) -> None:
        individual = _patched(doc, {"kind": "individual", "country": domicile})
        with_seat = _patched(individual, {"principal_place_of_business": seat})
        assert _decision(wasm, individual) == _decision(wasm, with_seat)

    same()


def test_a_principal_place_of_business_equal_to_the_country_changes_nothing(wasm: WasmEngine) -> None:
    @SETTINGS
    @given(requests())
    def same(doc: dict[str, Any]) -> None:
        seated = _patched(doc, {"principal_place_of_business": doc["cluster"]["operator"]["country"]})
        assert _decision(wasm, doc) == _decision(wasm, seated)

    same()


# Every day on which a dated fact changes: carve-out memberships and the AI Act's Chapter V.
BOUNDARIES = sorted(
    {member.since for member in DATA.national_security_carve_out.members}
    | {DATA.ai_act.systemic_risk.applies_from}
)
PERIODS = list(
    zip(
        [date(2023, 1, 1), *BOUNDARIES],
        [*(b - timedelta(days=1) for b in BOUNDARIES), date(2028, 12, 31)],
        strict=True,
    )
)


def _masked(decision: dict[str, Any], as_of: str) -> dict[str, Any]:
    """The decision with its own date taken out of the messages (they name the day they judge)."""
    return json.loads(json.dumps(decision).replace(f"<{as_of}>", "<as_of>"))


def test_as_of_within_one_period_of_the_dated_facts_changes_nothing(wasm: WasmEngine) -> None:
    assert len(PERIODS) == 4  # before the carve-out, to Chapter V, to the 2025 widening, after

    @SETTINGS
    @given(requests(), st.sampled_from(PERIODS), st.data())
    def same(doc: dict[str, Any], period: tuple[date, date], data: st.DataObject) -> None:
        first, second = (data.draw(st.dates(*period)).isoformat() for _ in range(2))
        one, other = _patched(doc, as_of=first), _patched(doc, as_of=second)
        assert _masked(_decision(wasm, one), first) == _masked(_decision(wasm, other), second)

    same()


def test_the_periods_do_change_decisions(wasm: WasmEngine) -> None:
    """The property above is not vacuous: across a boundary the same request is judged differently."""
    french = BASES[1]
    judged = [_decision(wasm, _patched(french, as_of=start.isoformat()))["allow"] for start, _ in PERIODS]
    assert judged == [False, False, False, True]


# --- the operator facts reach the policy from Kubernetes objects too ------------------------------------


def test_a_cluster_file_carries_the_new_facts_to_the_policy_input() -> None:
    spec = ClusterSpec.model_validate(
        {
            **{k: v for k, v in US_CONTRACTOR["cluster"].items() if k != "operator"},
            "operator": {
                **US_CONTRACTOR["cluster"]["operator"],
                "principal_place_of_business": "DE",
                "mau_by_month": {"2024-08": 12_000_000},
            },
        }
    )
    cluster = subjects.sovereign_cluster(spec)
    assert cluster["spec"]["operator"]["principalPlaceOfBusiness"] == "DE"
    assert cluster["spec"]["operator"]["mauByMonth"] == {"2024-08": 12_000_000}
    facts = subjects.facts_of(spec)
    assert facts.operator.principal_place_of_business == "DE"
    assert facts.operator.mau_by_month == {"2024-08": 12_000_000}
    request = {
        "metadata": {"name": "munich", "namespace": "contractors"},
        "spec": {
            "organisation": {
                "name": "X",
                "country": "US",
                "kind": "company",
                "principalPlaceOfBusiness": "DE",
            }
        },
    }
    proposed, _ = subjects.request_proposal(request)
    assert proposed["spec"]["operator"]["principalPlaceOfBusiness"] == "DE"


@pytest.mark.controlplane
def test_the_crds_keep_the_new_operator_facts_and_refuse_unreadable_ones(controlplane: ControlPlane) -> None:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from kubernetes.dynamic import DynamicClient

    from operators.manifests import CRD_FILES

    api = config.new_client_from_config(config_file=str(controlplane.kubeconfig))
    dynamic = DynamicClient(api)
    for path in CRD_FILES:
        doc = yaml.safe_load(path.read_text())
        resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        dynamic.server_side_apply(resource, body=doc, field_manager="test-regulatory", force_conflicts=True)
    extensions = client.ApiextensionsV1Api(api)
    for _ in range(100):
        established = [
            c.status.conditions or []
            for c in extensions.list_custom_resource_definition().items
            if c.spec.group == "sovereign.dev"
        ]
        if established and all(
            any(x.type == "Established" and x.status == "True" for x in c) for c in established
        ):
            break
        time.sleep(0.1)
    objects = client.CustomObjectsApi(api)
    operator = {**US_CONTRACTOR["cluster"]["operator"], "principal_place_of_business": "DE"}
    spec = ClusterSpec.model_validate(
        {"name": "regulatory-probe", "region": "us-defense", "country": "US", "enforcement": "dryrun",
         "operator": {**operator, "mau_by_month": {"2024-08": 5}}}
    )  # fmt: skip
    body = subjects.sovereign_cluster(spec)
    group, version = k8s.API_VERSION.split("/")
    created = objects.create_cluster_custom_object(group, version, "sovereignclusters", body)
    assert subjects.cluster_facts(created).operator.principal_place_of_business == "DE"
    assert subjects.cluster_facts(created).operator.mau_by_month == {"2024-08": 5}

    body["metadata"]["name"] = "regulatory-probe-bad"
    body["spec"]["operator"]["mauByMonth"] = {"August 2024": 5}
    with pytest.raises(ApiException) as refused:
        objects.create_cluster_custom_object(group, version, "sovereignclusters", body)
    assert refused.value.status == 422 and "keys are calendar months YYYY-MM" in refused.value.body
