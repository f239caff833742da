"""`sovereign matrix`: the compliance matrix of every variant x cluster x end use, as Markdown and HTML."""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError

from sovereign import toolchain
from sovereign.errors import BadInput, SovereignError
from sovereign.matrix.grid import compute_matrix, load_clusters
from sovereign.matrix.html_page import render_html
from sovereign.matrix.markdown import render_markdown
from sovereign.policy.decision_input import IsoDate
from sovereign.policy.engine import engine_from_env
from sovereign.policy.judgement import Judge
from sovereign.policy.screening_source import SCREENING_LIST_ENV, Screening
from sovereign.policydata import load_policy_data
from sovereign.state_dir import state_root


class Format(StrEnum):
    md = "md"
    html = "html"
    both = "both"


def _as_of(value: str | None) -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return TypeAdapter(IsoDate).validate_python(value)
    except ValidationError:
        raise BadInput(f"--as-of {value!r}: expected a date written YYYY-MM-DD, e.g. 2026-06-01") from None


def _write_all(out: Path, pages: dict[str, str]) -> list[Path]:
    """Write every page or none: each goes to a hidden temporary file first, renamed into place at the end."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(
            f"--out {out}: cannot create the folder ({exc.strerror}): give a writable folder"
        ) from None
    staged = [(out / f".{name}.partial", out / name, text) for name, text in pages.items()]
    try:
        for partial, _, text in staged:
            partial.write_text(text, encoding="utf-8")
    except OSError as exc:
        for partial, _, _ in staged:
            partial.unlink(missing_ok=True)
        raise SovereignError(f"--out {out}: cannot write the matrix ({exc.strerror})") from None
    for partial, final, _ in staged:
        os.replace(partial, final)
    return [final for _, final, _ in staged]


def matrix(
    clusters: Annotated[
        Path, typer.Option("--clusters", help="Folder of cluster declarations (*.yaml).")
    ] = toolchain.REPO_ROOT / "clusters",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder to write matrix.md / matrix.html into (default: STATE_DIR/matrix)."
        ),
    ] = None,
    page_format: Annotated[Format, typer.Option("--format", help="Which pages to write.")] = Format.both,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Decide as of YYYY-MM-DD (default today, UTC).")
    ] = None,
    screening_list: Annotated[
        Path | None,
        typer.Option(
            envvar=SCREENING_LIST_ENV,
            help="Denied-party list (trade.gov CSL JSON) to screen operators, as `sovereign decide` does.",
        ),
    ] = None,
) -> None:
    """Compliance matrix: every catalogue variant x every cluster in --clusters x every end use.

    All cells come from ONE batched policy evaluation. Prints the paths of the pages written.

    Exit 0 (denials are data), 1 when the policy engine could not decide, 2 for bad input.

    Asks the OPA server at $SOVEREIGN_OPA_URL when set, else evaluates the signed bundle in-process.
    """
    when = _as_of(as_of)
    declared = load_clusters(clusters)
    data = load_policy_data()
    result = compute_matrix(
        declared, Judge(engine_from_env(), Screening.advisory(screening_list, when)), data, when
    )

    pages: dict[str, str] = {}
    if page_format in (Format.md, Format.both):
        pages["matrix.md"] = render_markdown(result)
    if page_format in (Format.html, Format.both):
        pages["matrix.html"] = render_html(result)
    # Never the folder the user stands in: a default there would litter every checkout they run it from.
    for path in _write_all(out or state_root() / "matrix", pages):
        print(path)

    allowed = result.allowed_count()
    print(
        f"{len(result)} decisions in {result.elapsed_ms:.0f} ms via {result.engine} "
        f"(policy revision {result.policy_revision or 'none'}, as of {result.as_of}): "
        f"{allowed} allowed, {len(result) - allowed} denied",
        file=sys.stderr,
    )
    if failures := result.engine_failures():
        first = failures[0].decision["violations"][0]
        raise SovereignError(
            f"the policy engine could not decide {len(failures)} of {len(result)} cells, so the matrix shows "
            f"them denied: {first['code']}: {first['message']}"
        )
