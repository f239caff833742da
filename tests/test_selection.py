"""The -m selection that skips importing whole modules (selection.py): a module is left out exactly when no
test it could hold would be selected."""

from __future__ import annotations

from pathlib import Path

import pytest
from selection import deselected_whole, module_marks

FAST = "not controlplane and not slow"


def _module(tmp_path: Path, header: str) -> Path:
    path = tmp_path / "test_sample.py"
    path.write_text(f"import pytest\n\n{header}\n\n\ndef test_one() -> None:\n    pass\n")
    return path


@pytest.mark.parametrize(
    ("header", "marks"),
    [
        ("pytestmark = pytest.mark.slow", {"slow"}),
        ("pytestmark = [pytest.mark.controlplane, pytest.mark.slow]", {"controlplane", "slow"}),
        ("pytestmark = (pytest.mark.timeout(900), pytest.mark.slow)", {"timeout", "slow"}),
        ("pytestmark = [pytest.mark.timeout(900)]", {"timeout"}),
        ("LIMIT = 3", set()),
    ],
)
def test_the_module_marks_are_read_from_the_source(tmp_path: Path, header: str, marks: set[str]) -> None:
    assert module_marks(_module(tmp_path, header)) == marks


@pytest.mark.parametrize(
    ("header", "expression", "deselected"),
    [
        ("pytestmark = pytest.mark.slow", FAST, True),
        ("pytestmark = [pytest.mark.controlplane]", FAST, True),
        ("pytestmark = pytest.mark.slow", "slow", False),
        # Its tests may add `slow` themselves: only a module-level mark decides.
        ("pytestmark = pytest.mark.timeout(900)", FAST, False),
        ("pytestmark = pytest.mark.timeout(900)", "slow", False),
        ("LIMIT = 3", "slow", False),
        ("pytestmark = pytest.mark.controlplane", "slow and not controlplane", True),
        ("pytestmark = pytest.mark.controlplane", "not slow or controlplane", False),
        # A mark that only its tests could hold may select one: kept.
        ("pytestmark = pytest.mark.slow", "not slow or serving", False),
    ],
)
def test_a_module_is_left_out_only_when_every_test_it_could_hold_is_deselected(
    tmp_path: Path, header: str, expression: str, deselected: bool
) -> None:
    assert deselected_whole(_module(tmp_path, header), expression) is deselected


def test_the_fast_selection_leaves_out_exactly_the_whole_slow_or_control_plane_modules() -> None:
    """Over this repository's own tests: the modules test-fast does not import are those marked slow or
    controlplane as a whole, and no other."""
    tests = Path(__file__).parent
    left_out = {path.name for path in tests.glob("test_*.py") if deselected_whole(path, FAST)}
    whole = {path.name for path in tests.glob("test_*.py") if module_marks(path) & {"slow", "controlplane"}}
    assert left_out == whole and "test_serving_app.py" in left_out and "test_selection.py" not in left_out
