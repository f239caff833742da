"""Denied-party screening against a trade.gov Consolidated Screening List (CSL) file.

The file is the CSL search envelope (`total`, `sources_used[]`, `results[]`). A list is used only when it
holds records and every source in it is current at the decision date: `source_last_updated` no older than
`max_age` (7 days unless SOVEREIGN_SCREENING_MAX_AGE_DAYS says otherwise). A list marked as a sample
(`"sample": true`, like the one shipped in samples/) is refused unless local development allows samples
(SOVEREIGN_SCREENING_ALLOW_SAMPLE=1); then its date is not checked, since a shipped sample is always old.

Names are normalised before matching, so a listed party cannot pass by spelling its name another way:
Unicode compatibility forms (fullwidth, mathematical letters) folded, invisible characters dropped,
look-alike letters from other scripts (Greek Eta, Cyrillic a, Cherokee...) mapped to the Latin letters they
imitate, the rest transliterated to ASCII, legal forms (Co., Ltd., GmbH, OOO, 有限公司...) dropped from
either end, hyphens and spacing folded. Each name is then scored with rapidfuzz against every listed name
and alt name, in any word order and regardless of spacing. A hit is a fact handed to the policy; what a hit
means is decided in Rego.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from cleanco import prepare_default_terms
from confusable_homoglyphs import confusables
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from rapidfuzz import fuzz, process
from unidecode import unidecode

from sovereign.errors import BadInput
from sovereign.policy.decision_input import describe_errors

# Scores are 0-100 on normalised names: 100 for homoglyph, case, punctuation, spacing, word-order and
# legal-form variants, low 90s for a one-letter typo in a long name, well under 90 for a different company
# that shares a word (tests/test_screening.py measures both sides of this line).
MATCH_THRESHOLD = 90.0

# The settings, as parameters of `ScreeningList.load`/`Screening` or, when those are left out, from the
# environment (the operator, the data plane and the CLI all read the same names).
MAX_AGE_ENV = "SOVEREIGN_SCREENING_MAX_AGE_DAYS"
ALLOW_SAMPLE_ENV = "SOVEREIGN_SCREENING_ALLOW_SAMPLE"
DEFAULT_MAX_AGE = timedelta(days=7)
# A dated sample of the CSL format with fictional parties, for local development only (see its `note`).
SAMPLE_LIST = Path(__file__).parent / "samples" / "csl-sample.json"
CSL_DOWNLOAD = (
    "download the current Consolidated Screening List (JSON) from trade.gov: "
    "https://www.trade.gov/consolidated-screening-list "
    "(https://data.trade.gov/downloadable_consolidated_screening_list/v1/consolidated.json)"
)

# The CSL `source` field is the list's full title with its code in parentheses,
# e.g. "Entity List (EL) - Bureau of Industry and Security".
_CODE_IN_TITLE = re.compile(r"\(([^)]*)\)")
_KNOWN_CODES = {"DPL", "EL", "MEU", "UVL", "ISN", "DTC", "SDN", "FSE", "SSI", "CAP", "CMIC", "MBS", "PLC"}
_CODE_ALIASES = {"CAPTA": "CAP"}


class ScreeningListRefused(BadInput):
    """A well-formed list that must not be screened against: empty, undated, stale, or a sample that
    this process was not told to accept. The message names the file, what is wrong and the fix."""


class StaleScreeningList(ScreeningListRefused):
    """A source in the list was last updated longer before the decision date than the age limit allows."""

    def __init__(self, message: str, *, source: str, last_updated: date, as_of: date, max_age: timedelta):
        super().__init__(message)
        self.source = source
        self.last_updated = last_updated
        self.as_of = as_of
        self.max_age = max_age


# --- name normalisation --------------------------------------------------------------------------------

# Chinese, Japanese and Korean legal forms. cleanco's term data (used for everything else) is Latin and
# Cyrillic only, and after transliteration these would become ordinary-looking words ("You Xian Gong Si"),
# so they are dropped from the name's ends before transliterating. Longest first.
_CJK_LEGAL_FORMS = (
    "股份有限公司", "有限责任公司", "有限責任公司", "有限公司", "株式会社", "合同会社", "有限会社",
    "주식회사", "유한회사", "公司",
)  # fmt: skip
# Legal forms frequent on the CSL that cleanco's term data (2.3) lacks: Russian and CIS joint-stock and
# limited-liability forms, spelled out as the SDN list spells them, and UAE free-zone and Gulf forms.
_MORE_LEGAL_FORMS = (
    "jsc", "pjsc", "ojsc", "cjsc", "ao", "pao", "joint stock company", "public joint stock company",
    "open joint stock company", "closed joint stock company", "limited liability company",
    "fze", "fzco", "fzc", "fz llc", "fzllc", "wll", "tbk",
)  # fmt: skip
# Punctuation inside a word that can be left out as well as spaced: "Hua-wei", "N.A.I.", "O'Brien".
_JOINERS = re.compile(r"(?<=[A-Za-z0-9])[-'._](?=[A-Za-z0-9])")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


@cache
def _legal_forms() -> tuple[frozenset[tuple[str, ...]], int]:
    """cleanco's legal-form terms (GmbH, Co., Ltd., S.A. de C.V., OOO...) as token tuples, and the longest.

    cleanco's own `basename` strips each term once in a fixed order, so "Co., Ltd." keeps its "Co."; the
    terms are matched here against the name's ends until none is left."""
    spelled = [" ".join(parts) for _, parts in prepare_default_terms()] + list(_MORE_LEGAL_FORMS)
    terms = {tuple(token for token in _NOT_ALNUM.split(term) if token) for term in spelled}
    terms.discard(())
    return frozenset(terms), max(len(term) for term in terms)


@cache
def _latin_lookalike(char: str) -> str:
    """The Latin letter a letter of another script imitates (Greek capital Eta -> 'H', Cyrillic small a ->
    'a'), from the Unicode confusables data; the letter itself when it imitates none."""
    found = confusables.is_confusable(char, greedy=True, preferred_aliases=["latin"])
    for homoglyph in found[0]["homoglyphs"] if found else []:
        glyph = homoglyph["c"]
        if len(glyph) == 1 and glyph.isascii() and glyph.isalpha():
            # confusables.txt files every vertical stroke under 'l'; a capital stroke (Greek Iota,
            # Cyrillic Palochka) in a name stands for 'I'.
            return "I" if glyph == "l" and char.isupper() else glyph
    return char


def _strip_cjk_legal_forms(name: str) -> str:
    name = name.strip()
    changed = True
    while changed:
        changed = False
        for form in _CJK_LEGAL_FORMS:
            if name.endswith(form) and len(name) > len(form):
                name, changed = name[: -len(form)].strip(), True
            elif name.startswith(form) and len(name) > len(form):
                name, changed = name[len(form) :].strip(), True
    return name


def _strip_legal_forms(tokens: list[str]) -> list[str]:
    """`tokens` less legal forms at either end, longest first, while a word of the name is left."""
    terms, longest = _legal_forms()
    changed = True
    while changed:
        changed = False
        for size in range(min(longest, len(tokens) - 1), 0, -1):
            if tuple(tokens[-size:]) in terms:
                tokens, changed = tokens[:-size], True
                break
            if tuple(tokens[:size]) in terms:
                tokens, changed = tokens[size:], True
                break
    return tokens


def _join_single_letters(tokens: list[str]) -> list[str]:
    """Runs of one-character tokens as one word: "H u a w e i" and "N A I" are "huawei" and "nai"."""
    joined: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1:
            run.append(token)
            continue
        if run:
            joined.append("".join(run) if len(run) > 1 else run[0])
            run = []
        if token:
            joined.append(token)
    return joined


@dataclass(frozen=True)
class FoldedName:
    """One normalised spelling of a name: its words sorted (word order folded) and run together (spacing
    and hyphenation folded)."""

    words: str
    compact: str


def fold(name: str) -> set[FoldedName]:
    """The normalised spellings of `name` that screening compares (usually one, at most four).

    Two readings of the script (letters that imitate Latin ones mapped to them, or every letter
    transliterated: "VEKTOR" written in Cyrillic is both "BEKTOP" and "VEKTOR"), each with in-word punctuation
    spaced and left out ("hua wei", "huawei")."""
    text = unicodedata.normalize("NFKC", name)
    # Invisible format characters (zero-width space and joiner, soft hyphen, bidi controls) split nothing.
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    text = _strip_cjk_legal_forms(text)
    lookalikes = "".join(
        _latin_lookalike(char) if not char.isascii() and char.isalpha() else char for char in text
    )
    spellings: set[FoldedName] = set()
    for script in {unidecode(lookalikes), unidecode(text)}:
        for punctuation in {script, _JOINERS.sub("", script)}:
            tokens = [token for token in _NOT_ALNUM.split(punctuation.lower()) if token]
            tokens = _strip_legal_forms(_join_single_letters(tokens))
            if tokens:
                spellings.add(FoldedName(" ".join(sorted(tokens)), "".join(tokens)))
    return spellings


# --- the list ------------------------------------------------------------------------------------------


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
    # Not CSL fields: the shipped sample says what it is (trade.gov files have neither).
    sample: StrictBool = False
    note: str | None = None


def source_code(title: str) -> str:
    """The short list code (EL, SDN, ...) of a CSL `source` title; the title itself when it has none."""
    for group in _CODE_IN_TITLE.findall(title):
        for token in re.split(r"[^A-Za-z0-9]+", group):
            code = _CODE_ALIASES.get(token.upper(), token.upper())
            if code in _KNOWN_CODES:
                return code
    return title.strip()


def _updated_on(value: str) -> date:
    """The UTC date of a `source_last_updated` value ("2026-11-01T05:00:00-05:00" or "2026-11-01")."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.date()


def max_age_from_env() -> timedelta:
    raw = os.environ.get(MAX_AGE_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_AGE
    try:
        days = int(raw)
    except ValueError:
        days = -1
    if days < 0:
        raise BadInput(f"{MAX_AGE_ENV}={raw!r}: give the most days a screening list may age, e.g. 7")
    return timedelta(days=days)


def allow_sample_from_env() -> bool:
    raw = os.environ.get(ALLOW_SAMPLE_ENV, "").strip().lower()
    if raw in {"", "0", "false", "no", "off"}:
        return False
    if raw in {"1", "true", "yes", "on"}:
        return True
    raise BadInput(
        f"{ALLOW_SAMPLE_ENV}={raw!r}: set it to 1 to accept a sample list (local development only)"
    )


@dataclass(frozen=True)
class ScreeningList:
    records: list[_CslRecord]
    path: Path | None = None
    # (source title, source_last_updated as given) for each entry of `sources_used`.
    sources: list[tuple[str, str | None]] = field(default_factory=list)
    sample: bool = False

    @classmethod
    def read(cls, path: Path) -> ScreeningList:
        """The list at `path`, checked for form and emptiness but not for age: `check_current` does that."""
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
        if not envelope.results:
            # An empty list would clear everyone: it is a failed download or a search with no results.
            raise ScreeningListRefused(
                f"--screening-list {path}: the list holds no records, so it would clear every party; "
                f"{CSL_DOWNLOAD}"
            )
        for index, source in enumerate(envelope.sources_used):
            if source.source_last_updated is None:
                continue
            try:
                _updated_on(source.source_last_updated)
            except ValueError:
                raise BadInput(
                    f"--screening-list {path}: list.sources_used[{index}].source_last_updated "
                    f"{source.source_last_updated!r} is not an ISO date or date-time"
                ) from None
        return cls(
            envelope.results,
            path,
            [(source.source, source.source_last_updated) for source in envelope.sources_used],
            envelope.sample,
        )

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        as_of: date | None = None,
        max_age: timedelta | None = None,
        allow_sample: bool | None = None,
    ) -> ScreeningList:
        """The list at `path`, refused (ScreeningListRefused, a BadInput) unless it is current at `as_of`.

        `as_of` is the decision date (default today, UTC: the `Judge`'s default); `max_age` defaults to
        $SOVEREIGN_SCREENING_MAX_AGE_DAYS days, else 7; `allow_sample` to $SOVEREIGN_SCREENING_ALLOW_SAMPLE.
        """
        screening = cls.read(path)
        screening.check_current(as_of, max_age=max_age, allow_sample=allow_sample)
        return screening

    @property
    def last_updated(self) -> date | None:
        """The date of the list's oldest source (what its age is), None when a source is undated."""
        dates = [_updated_on(updated) for _, updated in self.sources if updated is not None]
        if not dates or len(dates) < len(self.sources):
            return None
        return min(dates)

    def check_current(
        self, as_of: date | None = None, *, max_age: timedelta | None = None, allow_sample: bool | None = None
    ) -> None:
        """Raise ScreeningListRefused unless this list may screen decisions made on `as_of` (default today,
        UTC). A long-running process calls this again as its decision date moves on. A decision dated
        after today (a rehearsal of an expiry) is measured from today: no later list can exist yet."""
        today = datetime.now(UTC).date()
        as_of = min(as_of or today, today)
        max_age = max_age_from_env() if max_age is None else max_age
        allow_sample = allow_sample_from_env() if allow_sample is None else allow_sample
        where = f"--screening-list {self.path}" if self.path else "the screening list"
        if self.sample:
            if allow_sample:
                return  # local development, by explicit choice: a shipped sample's date is always old
            raise ScreeningListRefused(
                f"{where}: this is a SAMPLE list of fictional parties, accepted only for local development "
                f"with {ALLOW_SAMPLE_ENV}=1; in production {CSL_DOWNLOAD}"
            )
        if not self.sources:
            raise ScreeningListRefused(
                f"{where}: list.sources_used is empty, so nothing says how current the list is; "
                f"{CSL_DOWNLOAD}"
            )
        for title, updated in self.sources:
            if updated is None:
                raise ScreeningListRefused(
                    f"{where}: source <{title}> has no source_last_updated, so nothing says how current "
                    f"it is; {CSL_DOWNLOAD}"
                )
        # The list is as old as its oldest source: that one is named.
        updated_on, title = min((_updated_on(updated), title) for title, updated in self.sources if updated)
        age = as_of - updated_on
        if age > max_age:
            raise StaleScreeningList(
                f"{where}: source <{title}> was last updated {updated_on.isoformat()}, {age.days} days "
                f"before the decision date {as_of.isoformat()}; a list may be at most {max_age.days} "
                f"days old ({MAX_AGE_ENV}); {CSL_DOWNLOAD}",
                source=title,
                last_updated=updated_on,
                as_of=as_of,
                max_age=max_age,
            )

    @cached_property
    def _spellings(self) -> tuple[list[int], list[str], list[str]]:
        """Every normalised spelling of every listed name and alt name, with the index of its record."""
        owners: list[int] = []
        words: list[str] = []
        compact: list[str] = []
        for index, record in enumerate(self.records):
            for listed in _distinct([record.name, *(record.alt_names or [])]):
                for spelling in fold(listed):
                    owners.append(index)
                    words.append(spelling.words)
                    compact.append(spelling.compact)
        return owners, words, compact

    def screen(self, name: str, threshold: float = MATCH_THRESHOLD) -> list[dict[str, Any]]:
        """Hits for `name`, best first: one per listed record, scored by its best-matching name (0-100)."""
        owners, words, compact = self._spellings
        best: dict[int, float] = {}
        for spelling in fold(name):
            for query, choices in ((spelling.words, words), (spelling.compact, compact)):
                for _, value, position in process.extract(
                    query, choices, scorer=fuzz.ratio, score_cutoff=threshold, limit=None
                ):
                    best[owners[position]] = max(value, best.get(owners[position], 0.0))
        return [
            {
                "name": self.records[index].name,
                "source": source_code(self.records[index].source),
                "score": round(value),
            }
            for index, value in sorted(best.items(), key=lambda item: (-item[1], item[0]))
        ]


def _distinct(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
