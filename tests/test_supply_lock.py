"""The hash-pinned locks (locks/*.txt) against pyproject.toml, offline: the committed ones agree, and each
way they can drift apart is named, on a copy of the repository's pyproject.toml and locks."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from typer.testing import CliRunner

from sovereign import cli, toolchain
from sovereign.supply.lock import LOCKS, check_locks, read_lock, requirements

ROOT = toolchain.REPO_ROOT


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "locks", tmp_path / "locks")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_the_committed_locks_agree_with_pyproject() -> None:
    assert check_locks() == []
    done = CliRunner().invoke(cli.app, ["lock", "check"])
    assert done.exit_code == 0, done.output
    assert "locks agree with pyproject.toml" in done.output


def test_every_lock_pins_every_requirement_of_its_extras_with_hashes() -> None:
    for spec in LOCKS.values():
        pins = read_lock(spec.path(ROOT))
        for requirement in requirements(ROOT / "pyproject.toml", spec.extras):
            pin = pins[requirement.name.lower().replace("_", "-")]
            assert requirement.specifier.contains(pin.version, prereleases=True), (spec.name, requirement)
        assert all(pin.hashes and all(h.startswith("sha256:") for h in pin.hashes) for pin in pins.values())
    # The images install subsets of what developers and CI run, at the same versions.
    dev, serving, operator = (read_lock(LOCKS[n].path(ROOT)) for n in ("dev", "serving", "operator"))
    assert set(operator) < set(serving) < set(dev)
    assert all(dev[name].version == pin.version for name, pin in serving.items())
    assert "torch" in serving and "torch" not in operator and "pytest" not in serving


def test_a_requirement_the_locked_version_does_not_satisfy_is_named(repo: Path) -> None:
    _edit(repo / "pyproject.toml", '"rich>=15,<16"', '"rich>=16,<17"')
    problems = check_locks(repo)
    assert problems and all("rich==" in p and "rich<17,>=16" in p for p in problems)
    assert {p.split(":")[0] for p in problems} == {f"locks/{n}.txt" for n in LOCKS}


def test_a_new_requirement_not_locked_is_named(repo: Path) -> None:
    _edit(repo / "pyproject.toml", '  "pytest>=9.2,<10",', '  "pytest>=9.2,<10",\n  "left-pad>=1",')
    assert check_locks(repo) == [
        f"locks/{name}.txt: left-pad>=1 (pyproject.toml) is not locked: run `make lock`"
        for name, spec in LOCKS.items()
        if "dev" in spec.extras
    ]


def test_a_requirement_dropped_from_pyproject_but_still_locked_is_named(repo: Path) -> None:
    _edit(repo / "pyproject.toml", '  "cleanco>=2.3,<3",\n', "")
    problems = check_locks(repo)
    assert len(problems) == len(LOCKS)
    assert all("cleanco is locked for pyproject.toml, which no longer asks for it" in p for p in problems)


def test_a_pin_without_hashes_is_named(repo: Path) -> None:
    lock = repo / "locks" / "operator.txt"
    text = lock.read_text()
    block = re.search(r"^rich==\S+ \\\n(?:    --hash=\S+(?: \\)?\n)+", text, re.MULTILINE)
    assert block is not None
    lock.write_text(text.replace(block[0], block[0].split(" \\")[0] + "\n"))
    problems = check_locks(repo)
    assert len(problems) == 1 and "locks/operator.txt: rich==" in problems[0] and "has no hash" in problems[0]


def test_a_version_differing_from_the_dev_lock_is_named(repo: Path) -> None:
    pin = read_lock(repo / "locks" / "serving.txt")["pyyaml"]
    _edit(repo / "locks" / "serving.txt", f"pyyaml=={pin.version} ", "pyyaml==6.0.3.post9 ")
    assert Requirement("pyyaml>=6.0.3,<7").specifier.contains("6.0.3.post9")
    assert check_locks(repo) == [
        f"locks/serving.txt: pyyaml==6.0.3.post9, but locks/dev.txt has {pin.version}: run `make lock`"
    ]
