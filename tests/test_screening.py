"""Denied-party screening on a CSL file: variants and alt names match, different names do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sovereign.errors import BadInput
from sovereign.policy.screening import ScreeningList, source_code

CSL = Path(__file__).parent / "fixtures" / "screening" / "csl.json"


@pytest.fixture(scope="module")
def screening() -> ScreeningList:
    return ScreeningList.load(CSL)


@pytest.mark.parametrize(
    ("operator", "listed", "code"),
    [
        ("Northwind Aerospace Industries Co., Ltd.", "Northwind Aerospace Industries Co., Ltd.", "EL"),
        ("NORTHWIND AEROSPACE INDUSTRIES CO LTD", "Northwind Aerospace Industries Co., Ltd.", "EL"),
        # legal form left out
        ("Northwind Aerospace Industries", "Northwind Aerospace Industries Co., Ltd.", "EL"),
        ("north-wind aerospace", "Northwind Aerospace Industries Co., Ltd.", "EL"),  # alt name, punctuation
        ("Ivan Volkov", "VOLKOV, Ivan Petrovich", "SDN"),  # alt name, word order
        ("Applied Strategic Computing Institute", "Institute of Applied Strategic Computing", "MEU"),
        ("meridian dynamic, llc.", "Meridian Dynamics LLC", "DPL"),  # typo, case and punctuation
        ("Harbour Crest Trading FZE", "Harbor Crest Trading FZE", "DTC"),  # spelling variant
    ],
)
def test_variants_and_alt_names_match(
    screening: ScreeningList, operator: str, listed: str, code: str
) -> None:
    hits = screening.screen(operator)
    assert [(h["name"], h["source"]) for h in hits] == [(listed, code)]
    assert 90 <= hits[0]["score"] <= 100


def test_exact_variant_scores_100(screening: ScreeningList) -> None:
    assert screening.screen("northwind aerospace industries co ltd")[0]["score"] == 100


@pytest.mark.parametrize(
    "operator",
    [
        "Northwind Bank of Commerce",
        "Acme Research Labs",
        "Meridian Health Partners",
        "Ivan Petrov",
        "Harbor Freight",
    ],
)
def test_clearly_different_names_do_not_match(screening: ScreeningList, operator: str) -> None:
    assert screening.screen(operator) == []


def test_a_stricter_threshold_drops_near_matches(screening: ScreeningList) -> None:
    assert screening.screen("Meridian Dynamic LLC", threshold=99) == []


@pytest.mark.parametrize(
    ("title", "code"),
    [
        ("Entity List (EL) - Bureau of Industry and Security", "EL"),
        ("Military End User (MEU) List - Bureau of Industry and Security", "MEU"),
        ("Non-SDN Menu-Based Sanctions List (NS-MBS List) - Treasury Department", "MBS"),
        ("Correspondent Account or Payable-Through Account Sanctions (CAPTA) - Treasury Department", "CAP"),
        ("Some Future List - Nobody", "Some Future List - Nobody"),
    ],
)
def test_source_code_from_the_list_title(title: str, code: str) -> None:
    assert source_code(title) == code


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "list.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _fixture_doc() -> dict:
    return json.loads(CSL.read_text())


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda d: d["results"][1].pop("name"), "list.results[1].name: field required"),
        (lambda d: d["results"][0].update(alt_names="NAI"), "list.results[0].alt_names"),
        (lambda d: d.pop("sources_used"), "list.sources_used: field required"),
        (lambda d: d.update(total="5"), "list.total"),
        (lambda d: d.update(total=6), "list.total is 6 but list.results holds 5 records"),
    ],
)
def test_malformed_list_is_bad_input_naming_the_field(tmp_path: Path, mutate, named: str) -> None:
    doc = _fixture_doc()
    mutate(doc)
    with pytest.raises(BadInput) as caught:
        ScreeningList.load(_write(tmp_path, doc))
    assert named in str(caught.value)
    assert caught.value.exit_code == 2


def test_not_json_and_missing_file_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="malformed JSON at line 1 column 13"):
        ScreeningList.load(_write(tmp_path, '{"total": 1,,}'))
    with pytest.raises(BadInput, match="cannot read it"):
        ScreeningList.load(tmp_path / "absent.json")
