"""The matrix as GitHub-flavoured Markdown: a table per cluster, reason codes in cells, a codes legend."""

from __future__ import annotations

import html

from sovereign.matrix.grid import Cell, ComplianceMatrix

KEY = (
    "Cells: ✅ allowed (⚑ obligations that come with it), ❌ denied with its reason codes, "
    "★ a declared deployment asks for this cell. Every code is explained under Codes, with its citations."
)


def _text(value: object) -> str:
    """Plain text safe in a table cell: GitHub renders inline HTML, and a pipe or newline ends a cell."""
    return html.escape(str(value), quote=False).replace("|", "\\|").replace("\n", " ")


def _codes(codes: tuple[str, ...]) -> str:
    return ", ".join(f"`{_text(code)}`" for code in codes)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    return [line(header), line(["---"] * len(header)), *map(line, rows), ""]


def _cell(cell: Cell, mark_declared: bool = True) -> str:
    if cell.allowed:
        text = "✅ allowed" + (f" ⚑ {_codes(cell.obligation_codes)}" if cell.obligation_codes else "")
    else:
        text = f"❌ {_codes(cell.violation_codes)}"
    return text + (f" ★ {_text(', '.join(cell.declared))}" if cell.declared and mark_declared else "")


def render_markdown(matrix: ComplianceMatrix) -> str:
    allowed = matrix.allowed_count()
    lines = [
        "# Llama compliance matrix",
        "",
        f"Policy revision `{_text(matrix.policy_revision or 'none')}` · engine `{_text(matrix.engine)}` · "
        f"as of {_text(matrix.as_of)} · {len(matrix)} decisions ({len(matrix.models)} variants x "
        f"{len(matrix.clusters)} clusters x {len(matrix.end_uses)} end uses, one batched evaluation): "
        f"{allowed} allowed, {len(matrix) - allowed} denied.",
        "",
        KEY,
        "",
        f"## Summary: allowed variants of {len(matrix.models)}",
        "",
    ]
    lines += _table(
        ["cluster", "region", *matrix.end_uses],
        [
            [
                _text(cluster.name),
                _text(cluster.spec.region),
                *(str(matrix.allowed_count(cluster.name, end_use)) for end_use in matrix.end_uses),
            ]
            for cluster in matrix.clusters
        ],
    )
    lines += ["## Declared deployments", ""]
    declared_rows = []
    for declared in matrix.deployments:
        deployment = declared.deployment
        verdict = _cell(matrix.deployment_cell(declared), mark_declared=False)
        declared_rows.append(
            [
                _text(declared.cluster.name),
                _text(deployment.name),
                _text(deployment.model),
                _text(deployment.end_use.value),
                verdict,
            ]
        )
    lines += _table(["cluster", "deployment", "model", "end use", "decision"], declared_rows)
    for cluster in matrix.clusters:
        lines += [f"## {_text(cluster.name)}", "", _text(cluster.summary), ""]
        lines += _table(
            ["variant", *matrix.end_uses],
            [[f"`{_text(model)}`", *map(_cell, matrix.row(cluster.name, model))] for model in matrix.models],
        )
    lines += ["## Codes", ""]
    lines += _table(
        ["code", "kind", "meaning", "citations"],
        [
            [
                f"`{_text(entry.code)}`",
                entry.kind,
                _text(entry.meaning),
                "<br>".join(map(_text, entry.citations)),
            ]
            for entry in matrix.legend()
        ],
    )
    return "\n".join(lines)
