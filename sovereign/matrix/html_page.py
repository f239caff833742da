"""The matrix as one self-contained HTML page (inline CSS, no external assets), rendered with Jinja2.

Autoescaping is on for every value: cluster files and policy messages carry user-supplied names.
"""

from __future__ import annotations

import re

from jinja2 import Environment, PackageLoader, StrictUndefined

from sovereign.matrix.grid import ComplianceMatrix

# A citation is "Source — https://url" (policies/README.md); only an http(s) URL becomes a link.
_CITATION = re.compile(r"(?P<source>.+) — (?P<url>https?://\S+)")

_templates = Environment(
    loader=PackageLoader("sovereign.matrix", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def split_citation(citation: str) -> tuple[str, str | None]:
    """(source, url), or (citation, None) when it carries no http(s) URL."""
    if match := _CITATION.fullmatch(citation):
        return match["source"], match["url"]
    return citation, None


def render_html(matrix: ComplianceMatrix) -> str:
    return _templates.get_template("matrix.html.j2").render(
        m=matrix, allowed=matrix.allowed_count(), legend=matrix.legend(), split_citation=split_citation
    )
