"""Denied-party screening against a trade.gov Consolidated Screening List (CSL) file.

The file is the CSL search envelope (`total`, `sources_used[]`, `results[]`). Names are matched with
rapidfuzz on case- and punctuation-folded tokens in any order, against each record's name and its
alt_names. A hit is a fact handed to the policy; what a hit means is decided in Rego.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from rapidfuzz import fuzz, process, utils

from sovereign.errors import BadInput
from sovereign.policy.decision_input import describe_errors

# token_sort_ratio on folded names: 100 for case, punctuation, word-order and legal-form variants, low 90s
# for a one-letter typo in a long name, well under 90 for a different company that shares a word.
MATCH_THRESHOLD = 90.0

# The CSL `source` field is the list's full title with its code in parentheses,
# e.g. "Entity List (EL) - Bureau of Industry and Security".
_CODE_IN_TITLE = re.compile(r"\(([^)]*)\)")
_KNOWN_CODES = {"DPL", "EL", "MEU", "UVL", "ISN", "DTC", "SDN", "FSE", "SSI", "CAP", "CMIC", "MBS", "PLC"}
_CODE_ALIASES = {"CAPTA": "CAP"}
# Legal-form words say nothing about who a party is: "Huawei Technologies" is "Huawei Technologies Co., Ltd.".
_LEGAL_FORMS = {
    "co", "company", "corp", "corporation", "inc", "incorporated", "llc", "ltd", "limited", "plc",
    "gmbh", "ag", "sa", "sarl", "srl", "bv", "nv", "oy", "ab", "as", "pte", "pty", "jsc", "ooo", "pjsc",
}  # fmt: skip


def _fold(name: str) -> str:
    words = utils.default_process(name).split()
    return " ".join(word for word in words if word not in _LEGAL_FORMS) or " ".join(words)


class _CslRecord(BaseModel):
    # The real records carry many more fields (addresses, ids, programs...): kept, not needed here.
    model_config = ConfigDict(extra="allow")
    source: str = Field(min_length=1)
    name: str = Field(min_length=1)
    alt_names: list[str] | None = None


class _CslSource(BaseModel):
    model_config = ConfigDict(extra="allow")
    source: str = Field(min_length=1)
    source_last_updated: str | None = None
    import_rate: str | None = None


class _CslEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")
    total: StrictInt = Field(ge=0)
    sources_used: list[_CslSource]
    results: list[_CslRecord]


def source_code(title: str) -> str:
    """The short list code (EL, SDN, ...) of a CSL `source` title; the title itself when it has none."""
    for group in _CODE_IN_TITLE.findall(title):
        for token in re.split(r"[^A-Za-z0-9]+", group):
            code = _CODE_ALIASES.get(token.upper(), token.upper())
            if code in _KNOWN_CODES:
                return code
    return title.strip()


@dataclass(frozen=True)
class ScreeningList:
    records: list[_CslRecord]

    @classmethod
    def load(cls, path: Path) -> ScreeningList:
        try:
            doc = json.loads(path.read_text())
        except OSError as exc:
            raise BadInput(f"--screening-list {path}: cannot read it ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise BadInput(
                f"--screening-list {path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        try:
            envelope = _CslEnvelope.model_validate(doc)
        except ValidationError as exc:
            raise BadInput(
                f"--screening-list {path}: not a Consolidated Screening List file\n"
                + describe_errors(exc, "list")
            ) from None
        if envelope.total != len(envelope.results):
            # A search page holds fewer results than `total`: screening against part of a list is unsafe.
            raise BadInput(
                f"--screening-list {path}: list.total is {envelope.total} but list.results holds "
                f"{len(envelope.results)} records: use the complete list, not one page of a search"
            )
        return cls(envelope.results)

    @cached_property
    def _names(self) -> tuple[list[int], list[str]]:
        """Every listed name and alt name, with the index of the record it belongs to."""
        pairs = [
            (index, listed)
            for index, record in enumerate(self.records)
            for listed in [record.name, *(record.alt_names or [])]
        ]
        return [index for index, _ in pairs], [listed for _, listed in pairs]

    def screen(self, name: str, threshold: float = MATCH_THRESHOLD) -> list[dict[str, Any]]:
        """Hits for `name`, best first: one per listed record, scored by its best-matching name (0-100)."""
        owners, names = self._names
        matches = process.extract(
            name,
            names,
            scorer=fuzz.token_sort_ratio,
            processor=_fold,
            score_cutoff=threshold,
            limit=None,
        )
        best: dict[int, float] = {}
        for _, score, position in matches:
            best[owners[position]] = max(score, best.get(owners[position], 0.0))
        return [
            {
                "name": self.records[index].name,
                "source": source_code(self.records[index].source),
                "score": round(score),
            }
            for index, score in sorted(best.items(), key=lambda item: (-item[1], item[0]))
        ]


def screen_of(path: Path | None) -> Callable[[str], list[dict[str, Any]]] | None:
    """The screening function a `Judge` takes: the list at `path`, or None when none is configured (the
    policy input then says screening was not performed)."""
    return ScreeningList.load(path).screen if path is not None else None
