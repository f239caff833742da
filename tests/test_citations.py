"""Every citation in policies/data is a primary source where one exists, or says plainly what it is.

Auditors act on the citations a decision carries, so a citation must be an https URL on the publisher's own
site (Meta's licence files and posts, eCFR, EUR-Lex, the agencies), never a mirror or a summary of it; a
source that could not be confirmed says "secondary" in its text; the project's own rules say "sovereign
design rule" and name the file in this repository that states them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from sovereign import toolchain
from sovereign.policydata import DEFAULT_DATA_DIR, DESIGN_CITATION

ROOT = toolchain.REPO_ROOT

# Copies, mirrors and summaries of a primary text that exists: cite the primary instead.
MIRRORS = {
    "airevolution.cc": "a copy of Meta's 4 Nov 2024 post: cite about.fb.com",
    "nvidiadaily.com": "a copy of Meta's 4 Nov 2024 post: cite about.fb.com",
    "mobileworldlive.com": "press: cite Meta's own post",
    "tech.co": "press: cite Meta's own post",
    "diarytimes.com": "press: cite Meta's own post",
    "neuron.expert": "press: cite Meta's own post",
    "govregs.com": "a copy of 15 CFR: cite eCFR",
    "ppbe.servicedesigncollective.com": "a copy of the DoD Cloud Computing SRG: cite DISA",
    "ai-act-law.eu": "a copy of the AI Act: cite EUR-Lex",
    "artificialintelligenceact.eu": "a copy of the AI Act: cite EUR-Lex",
    "overview.legal": "a copy of the AI Act: cite EUR-Lex",
    "legalviz.eu": "a copy of the AI Act: cite EUR-Lex",
    "complianceforge-ai.com": "a summary of the AI Act: cite EUR-Lex",
    "learn.microsoft.com": "a vendor summary: cite the scheme's owner",
    "learn.microsoft.com.": "a vendor summary: cite the scheme's owner",
    "cybernion.com.au": "a summary of IRAP: cite ASD",
    "betterineurope.eu": "a glossary: cite ANSSI",
    "www.ibm.com": "a vendor announcement: cite BSI",
    "www.dechert.com": "a law-firm note: cite 22 CFR on eCFR",
    "aiportalx.com": "an estimate: cite the model card",
}
# Press that may carry a fact no primary source was found for: only in a citation that says so.
SECONDARY = {"www.techbuzz.ai", "btw.media", "marketalert.com", "www.bloomberg.com", "www.reuters.com"}
# A GitHub file is a primary source only in its publisher's own repositories (not, say, another project's
# README): Meta's licences and model cards, and OpenSSF's model signing specification.
PRIMARY_GITHUB_OWNERS = {"meta-llama", "ossf"}

CITATION_KEYS = {"citation", "citations", "source", "sources"}


def _strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key path, text) of every citation-bearing string: under a citation key, a *_url key, or any string
    that carries an em-dash citation."""
    if isinstance(node, dict):
        for child_key, value in node.items():
            yield from _strings(value, f"{key}.{child_key}" if key else str(child_key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{key}[{index}]")
    elif isinstance(node, str):
        leaf = re.sub(r"\[\d+\]$", "", key).rsplit(".", 1)[-1]
        if leaf in CITATION_KEYS or leaf.endswith("_url") or " — http" in node:
            yield key, node


def _data_citations() -> list[tuple[str, str]]:
    found = []
    for path in sorted(DEFAULT_DATA_DIR.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        found += [(f"{path.relative_to(DEFAULT_DATA_DIR)}: {key}", text) for key, text in _strings(doc)]
    return found


def problems(text: str) -> list[str]:
    """Why `text` is not an acceptable citation; [] when it is."""
    if design := DESIGN_CITATION.fullmatch(text):
        target = ROOT / design.group("path")
        return [] if target.is_file() else [f"design citation names {design.group('path')}, not a file here"]
    if text.startswith("sovereign design rule"):
        return ["a design citation ends with ' — path/in/this/repository'"]
    if "http://" in text:
        return ["not https"]
    urls = re.findall(r"https://\S+", text)
    if not urls:
        return ["no https URL (and not marked as a sovereign design rule)"]
    found = []
    for url in urls:
        parsed = urlparse(url)
        host = parsed.netloc.lower()
        if host in MIRRORS:
            found.append(f"{host} is {MIRRORS[host]}")
        if host in SECONDARY and "secondary" not in text:
            found.append(f"{host} is a secondary source: say so in the citation ('secondary, unconfirmed')")
        if host == "github.com":
            owner = parsed.path.strip("/").split("/")[0]
            if owner not in PRIMARY_GITHUB_OWNERS:
                found.append(f"github.com/{owner} is not the publisher's own repository")
            if parsed.path.lower().endswith("/readme.md"):
                found.append("a project README is not a source")
    return found


CITATIONS = _data_citations()


def test_the_data_has_citations_to_check() -> None:
    # The walk must reach every file's citations, or this module would pass on nothing.
    files = {where.split(":")[0].split("/")[0] for where, _ in CITATIONS}
    assert {"licences.yaml", "codes.yaml", "catalogue.yaml", "ai_act.yaml", "regions"} <= files
    assert len(CITATIONS) > 100


@pytest.mark.parametrize(("where", "text"), CITATIONS, ids=[where for where, _ in CITATIONS])
def test_every_citation_is_primary_or_says_what_it_is(where: str, text: str) -> None:
    assert problems(text) == [], f"{where}: {text}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (
            "Meta (4 Nov 2024) — https://airevolution.cc/open-source-ai-can-help-america-lead-in-ai-and-strengthen-global-security",
            "airevolution.cc is a copy",
        ),
        ("Meta spokesperson — https://mobileworldlive.com/?p=418688", "mobileworldlive.com is press"),
        ("Entity List — https://govregs.com/regulations/title15_chapterVII_part744", "govregs.com"),
        ("DoD SRG — https://ppbe.servicedesigncollective.com/appendices/appendix_c.html", "ppbe."),
        ("AI Act Art. 51 — https://ai-act-law.eu/article/51/", "ai-act-law.eu"),
        ("Country groups — https://github.com/ManageIQ/manageiq/blob/master/README.md", "project README"),
        ("Llama 3.2 licence — http://github.com/meta-llama/llama-models", "not https"),
        ("Llama 3.2 licence §2", "no https URL"),
        ("Widening — https://www.techbuzz.ai/articles/x", "say so in the citation"),
        ("sovereign design rule: fail closed — policies/no-such-file.md", "not a file here"),
        ("sovereign design rule: fail closed", "ends with ' — path"),
    ],
)
def test_the_check_refuses_mirrors_and_unmarked_sources(text: str, why: str) -> None:
    assert any(why in problem for problem in problems(text)), problems(text)


@pytest.mark.parametrize(
    "text",
    [
        "Llama 3.2 Community License §2 — https://github.com/meta-llama/llama-models/blob/a9c89c471f793423afd4cc3ca8671d6e56fe64cb/models/llama3_2/LICENSE",
        "Regulation (EU) 2024/1689 Art. 51(2) — https://eur-lex.europa.eu/eli/reg/2024/1689/oj",
        "Widening (secondary, unconfirmed) — https://www.techbuzz.ai/articles/x",
        "sovereign design rule (fail closed): unknown region — policies/README.md#region-profiles-are-data",
    ],
)
def test_the_check_accepts_primary_secondary_marked_and_design_citations(text: str) -> None:
    assert problems(text) == []


def test_design_citations_are_only_where_no_source_exists() -> None:
    """The codes the issue names cite the project's own rule; the licence and law codes never do."""
    raw = yaml.safe_load((DEFAULT_DATA_DIR / "codes.yaml").read_text())
    codes = {entry["code"]: entry["citation"] for entry in raw["codes"]}
    for code in ("UNKNOWN_REGION", "INVALID_INPUT", "REGION_MODALITY"):
        assert codes[code].startswith("sovereign design rule"), code
    for code in ("EU_MULTIMODAL_LICENCE", "MAU_LICENCE_REQUIRED", "BUILT_WITH_LLAMA", "AI_ACT_SYSTEMIC_RISK"):
        assert codes[code].split(" — ")[-1].startswith("https://"), code
    eu = yaml.safe_load((DEFAULT_DATA_DIR / "regions" / "eu-text-only.yaml").read_text())
    assert eu["modalities"]["citation"].startswith("sovereign design rule, region profile eu-text-only")
    assert "Acceptable Use Policy" not in eu["modalities"]["citation"]


def test_every_departure_from_a_source_says_why() -> None:
    licences = yaml.safe_load((DEFAULT_DATA_DIR / "licences.yaml").read_text())
    for family in licences["families"]:
        assert family["mau_clause"]["reading"], family["id"]
        if "eu_multimodal_clause" in family:
            assert "principal_place_of_business" in family["eu_multimodal_clause"]["reading"], family["id"]
    carve_out = licences["national_security_carve_out"]
    assert "Conservative" in carve_out["reading"]
    for member in carve_out["members"]:
        if member["confidence"] != "primary":
            assert member.get("notes"), member["id"]
        if member["confidence"] == "unconfirmed":
            assert "secondary, unconfirmed" in member["source"], member["id"]
    ai_act = yaml.safe_load((DEFAULT_DATA_DIR / "ai_act.yaml").read_text())
    assert "Conservative" in ai_act["systemic_risk"]["reading"]
