"""What `sovereign decide` advises beside a decision: catalogue names a model name is a slip of, ISO codes
for country codes ISO 3166-1 does not assign. Advice only: none of it reaches the policy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sovereign.policy.decision_input import DecisionInput
from sovereign.policy.hints import hints
from sovereign.policydata import PolicyData, load_policy_data

INPUT: dict[str, Any] = {
    "cluster": {
        "name": "whitehall-1",
        "region": "five-eyes",
        "country": "GB",
        "operator": {"name": "Albion Analytics Ltd", "country": "GB", "kind": "company"},
    },
    "model": "llama-3.1-8b-instruct",
    "end_use": "public_sector",
}


@pytest.fixture(scope="module")
def data() -> PolicyData:
    return load_policy_data()


def _hints(data: PolicyData, **changes: Any) -> list[str]:
    doc = json.loads(json.dumps(INPUT))
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = doc
        for key in parents:
            node = node[key]
        node[leaf] = value
    return hints(DecisionInput.model_validate(doc), data)


def test_a_correct_input_gets_no_hint(data: PolicyData) -> None:
    assert _hints(data) == []
    assert _hints(data, model="meta-llama/Llama-3.1-8B-Instruct") == []  # an HF repo id is a catalogue name


@pytest.mark.parametrize(
    ("model", "meant"),
    [
        ("llama-3.1-8b-instrut", "`llama-3.1-8b-instruct`"),
        ("meta-llama/Llama-3.1-8B-Instrut", "`llama-3.1-8b-instruct`"),
        ("llama-3.2-70b-instruct", "`llama-3.1-70b-instruct` or `llama-3.3-70b-instruct`"),  # as near both
    ],
)
def test_a_model_name_slip_names_the_catalogue_ids_it_is_nearest(
    data: PolicyData, model: str, meant: str
) -> None:
    assert _hints(data, model=model) == [f"model: `{model}` is not in the catalogue: did you mean {meant}?"]


def test_a_name_like_no_catalogue_name_gets_no_guess(data: PolicyData) -> None:
    assert _hints(data, model="llama-9-1t") == []


@pytest.mark.parametrize(
    ("field", "code", "iso"),
    [
        ("cluster__country", "UK", "GB"),
        ("cluster__operator__country", "UK", "GB"),
        ("cluster__operator__principal_place_of_business", "EL", "GR"),
    ],
)
def test_a_country_code_iso_does_not_assign_names_the_iso_code(
    data: PolicyData, field: str, code: str, iso: str
) -> None:
    shown = field.replace("__", ".")
    assert _hints(data, **{field: code}) == [f"{shown}: `{code}` is not ISO 3166-1: did you mean `{iso}`?"]


def test_the_advice_is_no_policy_fact(data: PolicyData) -> None:
    assert "UK" in data.not_iso
    assert "not_iso" not in json.dumps(data.opa_document())
