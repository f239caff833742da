"""Which test modules a -m expression deselects whole, read from their source: such a module need not be
imported at all (conftest's pytest_ignore_collect)."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

from _pytest.mark.expression import Expression


def deselected_whole(path: Path, expression: str) -> bool:
    """Whether `expression` deselects every test of the module at `path`: its tests hold the module's own
    marks (`pytestmark`) plus any others, so it is deselected only if every such set of marks is."""
    marks = module_marks(path)
    if not marks:
        return False
    compiled = Expression.compile(expression)
    # The names, read from the text: evaluating it would short-circuit past some of them.
    named = set(re.findall(r"[\w:+\-.\[\]\\/]+", expression)) - {"and", "or", "not"}
    others = sorted(named - marks)
    for chosen in itertools.product((False, True), repeat=len(others)):
        held = marks | {name for name, on in zip(others, chosen, strict=True) if on}
        if compiled.evaluate(held.__contains__):
            return False
    return True


def module_marks(path: Path) -> set[str]:
    """The mark names of a module's `pytestmark = pytest.mark.x` or `[pytest.mark.x, ...]`."""
    source = path.read_text()
    if "pytestmark" not in source:  # most modules: no parse
        return set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytestmark" for target in node.targets
        ):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            return {name for value in values if (name := _mark_name(value))}
    return set()


def _mark_name(node: ast.expr) -> str | None:
    node = node.func if isinstance(node, ast.Call) else node  # pytest.mark.timeout(900)
    if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "pytest.mark":
        return node.attr
    return None
