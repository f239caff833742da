"""policies/data: shipped facts load, broken files are refused naming file/entry/field, profiles are data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving.args import IMPORT_PATH
from sovereign import toolchain
from sovereign.errors import BadInput
from sovereign.policydata import DEFAULT_DATA_DIR, END_USES, load_policy_data, main

POLICIES = toolchain.REPO_ROOT / "policies"

# Every variant of domain-facts §2 that the issue names, by catalogue id.
REQUIRED_MODELS = {
    "llama-3.1-8b", "llama-3.1-8b-instruct", "llama-3.1-70b", "llama-3.1-70b-instruct",
    "llama-3.1-405b", "llama-3.1-405b-instruct", "llama-3.1-405b-fp8", "llama-3.1-405b-instruct-fp8",
    "llama-3.2-1b", "llama-3.2-1b-instruct", "llama-3.2-3b", "llama-3.2-3b-instruct",
    "llama-3.2-1b-instruct-spinquant_int4_eo8", "llama-3.2-1b-instruct-qlora_int4_eo8",
    "llama-3.2-3b-instruct-spinquant_int4_eo8", "llama-3.2-3b-instruct-qlora_int4_eo8",
    "llama-3.2-11b-vision", "llama-3.2-11b-vision-instruct", "llama-3.2-90b-vision",
    "llama-3.2-90b-vision-instruct", "llama-3.3-70b-instruct",
    "llama-4-scout-17b-16e", "llama-4-scout-17b-16e-instruct", "llama-4-maverick-17b-128e",
    "llama-4-maverick-17b-128e-instruct", "llama-4-maverick-17b-128e-instruct-fp8",
    "llama-guard-3-1b", "llama-guard-3-8b", "llama-guard-3-11b-vision",
    "llama-2-7b", "llama-2-7b-chat", "llama-2-13b", "llama-2-13b-chat", "llama-2-70b", "llama-2-70b-chat",
    "meta-llama-3-8b", "meta-llama-3-8b-instruct", "meta-llama-3-70b", "meta-llama-3-70b-instruct",
}  # fmt: skip

SWISS_PROFILE = """\
description: Swiss federal clusters (a user-defined profile)
operators:
  eligible:
    - kind: government_agency
      countries: [CH]
  citation: "Swiss federal ICT policy — https://example.org/ch/operators"
placement:
  countries: [CH]
  citation: "Swiss data residency — https://example.org/ch/placement"
modalities:
  input: [text]
  output: [text]
  citation: "Text only — https://example.org/ch/modalities"
end_uses:
  allowed: [public_sector, research]
  citation: "Civil uses — https://example.org/ch/end-uses"
workloads:
  images: ["registry.admin.ch/ray:"]
  citation: "Federal images only — https://example.org/ch/workloads"
"""


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEFAULT_DATA_DIR, tmp_path / "data"))


def _edit(folder: Path, name: str, change: Callable[[Any], None]) -> Path:
    path = folder / name
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return path


def _model(raw: dict[str, Any], model_id: str) -> dict[str, Any]:
    return next(entry for entry in raw["models"] if entry["id"] == model_id)


def _load_error(folder: Path) -> str:
    with pytest.raises(BadInput) as caught:
        load_policy_data(folder)
    return str(caught.value)


def test_shipped_data_loads() -> None:
    data = load_policy_data()
    assert {model.id for model in data.models} >= REQUIRED_MODELS
    assert set(data.regions) == {"us-defense", "five-eyes", "eu-text-only"}
    assert len(data.country_groups["eu_member_states"].members) == 27
    assert set(data.accreditation_schemes) == {
        "dod-il2", "dod-il4", "dod-il5", "dod-il6", "fedramp-moderate", "fedramp-high", "uk-official",
        "uk-secret", "ca-protected-b", "au-irap-protected", "nz-restricted", "secnumcloud", "bsi-c5",
    }  # fmt: skip


def test_catalogue_facts_are_what_the_model_cards_say() -> None:
    data = load_policy_data()
    scout = data.model("llama-4-scout-17b-16e-instruct")
    assert scout is not None
    assert (scout.parameters.total, scout.parameters.active) == (109_000_000_000, 17_000_000_000)
    assert scout.is_multimodal and scout.context_length == 10_000_000 and scout.licence == "llama4"
    fp8 = data.model("llama-3.1-405b-instruct-fp8")
    assert fp8 is not None and fp8.training_compute.flop == 3.8e25 and fp8.precision == "fp8"
    guard_vision = data.model("llama-guard-3-11b-vision")
    assert guard_vision is not None and guard_vision.is_multimodal and guard_vision.licence == "llama3.2"
    llama33 = data.model("llama-3.3-70b-instruct")
    assert llama33 is not None and not llama33.is_multimodal


def test_regions_encode_the_issue() -> None:
    regions = load_policy_data().regions
    assert regions["five-eyes"].placement.countries == ["AU", "CA", "GB", "NZ", "US"]
    assert regions["five-eyes"].accreditations is not None
    assert regions["five-eyes"].accreditations.by_country["GB"] == ["uk-official", "uk-secret"]
    assert regions["us-defense"].accreditations is not None
    assert regions["us-defense"].accreditations.by_country == {"US": ["dod-il5", "dod-il6"]}
    assert regions["eu-text-only"].accreditations is None
    assert regions["eu-text-only"].modalities.input == ["text"] == regions["eu-text-only"].modalities.output
    assert regions["eu-text-only"].end_uses.allowed == ["commercial", "research", "public_sector"]
    assert set(regions["us-defense"].end_uses.allowed) == set(END_USES)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b-instruct"),
        ("META-LLAMA/LLAMA-3.1-8B-INSTRUCT", "llama-3.1-8b-instruct"),
        ("meta-llama/Meta-Llama-3.1-405B-Instruct-FP8", "llama-3.1-405b-instruct-fp8"),
        ("meta-llama/Llama-3.2-1B-Instruct-SpinQuant_INT4_EO8", "llama-3.2-1b-instruct-spinquant_int4_eo8"),
        ("Llama-Guard-3-11B-Vision", "llama-guard-3-11b-vision"),
        ("meta-llama/Llama-2-7b-chat-hf", "llama-2-7b-chat"),
        ("meta-llama/Llama-2-70b-hf", "llama-2-70b"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama-3-8b-instruct"),
        ("meta-llama/Llama-3-70B", "meta-llama-3-70b"),
    ],
)
def test_hf_repo_id_resolves(requested: str, expected: str) -> None:
    model = load_policy_data().model(requested)
    assert model is not None and model.id == expected


def test_unknown_model_resolves_to_none() -> None:
    data = load_policy_data()
    assert data.model("meta-llama/Llama-9-1T") is None
    assert data.model("someone/Llama-3.1-8B-Instruct") is None


def test_opa_document_is_what_the_rego_reads() -> None:
    document = json.loads(json.dumps(load_policy_data().opa_document()))
    assert document["catalogue"]["aliases"]["meta-llama/llama-3.1-8b-instruct"] == "llama-3.1-8b-instruct"
    assert document["licences"]["llama4"]["eu_multimodal_clause"]["operator_countries"][:3] == [
        "AT",
        "BE",
        "BG",
    ]
    assert "eu_multimodal_clause" not in document["licences"]["llama3.1"]
    members = {m["id"]: m for m in document["national_security_carve_out"]["members"]}
    assert (members["us"]["countries"], members["us"]["since"]) == (["US"], "2024-11-04")
    assert members["five-eyes-partners"]["countries"] == ["AU", "CA", "GB", "NZ"]
    assert members["allies-2025"]["confidence"] == "unconfirmed"
    months = {family: entry["mau_clause"]["deciding_month"] for family, entry in document["licences"].items()}
    assert months == {
        "llama2": "2023-06", "llama3": "2024-03", "llama3.1": "2024-06",
        "llama3.2": "2024-08", "llama3.3": "2024-11", "llama4": "2025-03",
    }  # fmt: skip
    assert document["ai_act"]["systemic_risk"]["applies_from"] == "2025-08-02"
    assert document["ai_act"]["systemic_risk"]["transition"]["comply_by"] == "2027-08-02"
    assert document["countries"]["embargoed"]["members"] == ["BY", "CU", "IR", "KP", "RU", "SY"]
    assert document["ai_act"]["systemic_risk"]["threshold_flop"] == 1e25
    weights_check = document["catalogue"]["weights_check"]
    assert weights_check["parameter_tolerance"]["percent"] == 10
    assert weights_check["stand_in_max_parameters"]["count"] == 100_000_000
    assert weights_check["parameter_tolerance"]["why"] and weights_check["stand_in_max_parameters"]["why"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda raw: _model(raw, "llama-3.1-8b").update(context_length="128k"),
            "catalogue.yaml: model 'llama-3.1-8b': context_length: Input should be a valid integer",
        ),
        (
            lambda raw: _model(raw, "llama-3.2-3b").update(colour="blue"),
            "catalogue.yaml: model 'llama-3.2-3b': colour: Extra inputs are not permitted",
        ),
        (
            lambda raw: _model(raw, "llama-guard-3-8b").pop("hf_repo"),
            "catalogue.yaml: model 'llama-guard-3-8b': hf_repo: Field required",
        ),
        (
            lambda raw: _model(raw, "llama-3.3-70b-instruct")["modalities"].update(input=["text", "smell"]),
            "model 'llama-3.3-70b-instruct': modalities.input.1: Input should be 'text' or 'image'",
        ),
        (
            lambda raw: _model(raw, "llama-4-scout-17b-16e").update(licence="llama5"),
            "catalogue.yaml: model 'llama-4-scout-17b-16e': licence: unknown licence family 'llama5'",
        ),
        (
            lambda raw: _model(raw, "llama-3.2-1b").update(id="Llama-3.2-1B"),
            "model 'Llama-3.2-1B': (entry): id must be the HF repo name lower-cased: 'llama-3.2-1b'",
        ),
        (
            lambda raw: raw["models"].append(dict(_model(raw, "llama-3.2-1b"))),
            "catalogue.yaml: models: model 'llama-3.2-1b' is defined twice",
        ),
        (
            lambda raw: raw.pop("weights_check"),
            "catalogue.yaml: weights_check: Field required",
        ),
        (
            lambda raw: raw["weights_check"]["parameter_tolerance"].update(percent=0),
            "catalogue.yaml: weights_check.parameter_tolerance.percent: Input should be greater than 0",
        ),
        (
            lambda raw: raw["weights_check"]["stand_in_max_parameters"].update(count=2_000_000_000),
            "catalogue.yaml: weights_check: stand_in_max_parameters.count (2000000000) must be below the "
            "smallest size accepted for a variant (1010700000, model 'llama-guard-3-1b-int4')",
        ),
    ],
)
def test_broken_catalogue_entry_names_file_entry_and_field(
    data_copy: Path, change: Callable[[Any], None], expected: str
) -> None:
    _edit(data_copy, "catalogue.yaml", change)
    assert expected in _load_error(data_copy)


def test_broken_region_profile_names_file_region_and_field(data_copy: Path) -> None:
    def change(raw: dict[str, Any]) -> None:
        raw["placement"]["countries"] = ["US", "usa"]
        raw["accreditations"]["by_country"]["US"] = ["dod-il7"]
        raw["end_uses"]["allowed"].append("espionage")

    _edit(data_copy / "regions", "us-defense.yaml", change)
    message = _load_error(data_copy)
    prefix = f"{data_copy / 'regions' / 'us-defense.yaml'}: region 'us-defense': "
    assert prefix + "placement.countries: 'usa' is neither an ISO 3166-1 alpha-2 code" in message
    assert prefix + "accreditations.by_country.US.0: unknown accreditation scheme 'dod-il7'" in message
    assert prefix + "end_uses.allowed.6: Input should be 'commercial'" in message


def test_unquoted_norway_is_explained(data_copy: Path) -> None:
    path = data_copy / "regions" / "nordic.yaml"
    path.write_text(SWISS_PROFILE.replace("countries: [CH]", "countries: [SE, NO]"))
    message = _load_error(data_copy)
    assert "region 'nordic': placement.countries.1: got a boolean: quote country codes" in message


def test_citation_must_name_source_and_url(data_copy: Path) -> None:
    _edit(data_copy, "ai_act.yaml", lambda raw: raw["systemic_risk"].update(citation="Art. 51"))
    assert "ai_act.yaml: systemic_risk.citation: a citation is 'Source name — https://url'" in _load_error(
        data_copy
    )


def test_missing_file_is_named_relative_to_the_repo() -> None:
    with pytest.raises(BadInput, match=r"^policies/no-such-data/countries\.yaml: file is missing"):
        load_policy_data(POLICIES / "no-such-data")


def test_every_error_is_reported_at_once(data_copy: Path) -> None:
    _edit(data_copy, "catalogue.yaml", lambda raw: _model(raw, "llama-3.1-70b").update(context_length=-1))
    (data_copy / "screening.yaml").write_text("citation: [unclosed\n")
    message = _load_error(data_copy)
    assert "model 'llama-3.1-70b': context_length: Input should be greater than 0" in message
    assert "screening.yaml: not valid YAML" in message


def test_user_defined_profile_loads_like_the_shipped_ones(data_copy: Path) -> None:
    (data_copy / "regions" / "ch-federal.yaml").write_text(SWISS_PROFILE)
    data = load_policy_data(data_copy)
    assert set(data.regions) == {"ch-federal", "eu-text-only", "five-eyes", "us-defense"}
    assert data.opa_document()["regions"]["ch-federal"]["end_uses"]["allowed"] == [
        "public_sector",
        "research",
    ]


def test_user_defined_profile_decides_through_real_opa(data_copy: Path, tmp_path: Path) -> None:
    (data_copy / "regions" / "ch-federal.yaml").write_text(SWISS_PROFILE)
    compiled = tmp_path / "bundle" / "data.json"
    assert main(["--data", str(data_copy), "--out", str(compiled)]) == 0
    request = {
        "cluster": {
            "name": "bern-1",
            "region": "ch-federal",
            "country": "CH",
            "operator": {"name": "Bundesamt", "country": "CH", "kind": "government_agency"},
            "accreditations": [],
        },
        "model": "meta-llama/Llama-3.3-70B-Instruct",
        "end_use": "public_sector",
        "as_of": "2025-06-01",
    }

    def decide(request: dict[str, Any]) -> dict[str, Any]:
        done = subprocess.run(
            [
                str(toolchain.binary("opa")), "eval", "--format=json", "--stdin-input",
                "--data", str(POLICIES / "sovereign"), "--ignore", "*_test.rego", "--data", str(compiled),
                "data.sovereign.decision.result",
            ],
            input=json.dumps(request), capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(done.stdout)["result"][0]["expressions"][0]["value"]

    assert decide(request)["allow"] is True
    denied = decide({**request, "end_use": "commercial", "model": "llama-3.2-11b-vision"})
    assert denied["allow"] is False
    assert [(v["code"], v["citation"]) for v in denied["violations"]] == [
        ("END_USE_NOT_PERMITTED", "Civil uses — https://example.org/ch/end-uses"),
        ("REGION_MODALITY", "Text only — https://example.org/ch/modalities"),
    ]


def test_compile_cli_refuses_bad_data_with_exit_2(
    data_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(data_copy, "countries.yaml", lambda raw: raw["groups"][0]["members"].append("Germany"))
    out = tmp_path / "data.json"
    assert main(["--data", str(data_copy), "--out", str(out)]) == 2
    assert not out.exists()
    assert (
        "country group 'eu_member_states': members.27: String should match pattern" in capsys.readouterr().err
    )


def test_codes_table_matches_rego_and_readme() -> None:
    codes = set(load_policy_data().codes)
    emitted = {
        match
        for path in (POLICIES / "sovereign").rglob("*.rego")
        if not path.name.endswith("_test.rego")
        for match in re.findall(r'lib\.item\("([A-Z_]+)"', path.read_text())
    }
    assert emitted == codes
    readme_codes = set(re.findall(r"^\| `([A-Z_]+)` \|", (POLICIES / "README.md").read_text(), re.MULTILINE))
    assert readme_codes == codes


def test_every_shipped_region_allows_the_projects_serving_builder_only() -> None:
    """The policy's default builder (workloads.import_paths) is the one the operator's RayServices name."""
    assert {name: r.workloads.import_paths for name, r in load_policy_data().regions.items()} == {
        name: [IMPORT_PATH] for name in load_policy_data().regions
    }
