"""Imports flow one way (policy core <- enforcement points <- CLI and demo), enforced by import-linter's
layers contract in pyproject.toml, which `make lint` runs. These tests keep the contract honest: it holds
on the tree, it covers every package, and it fails when a lower layer imports a higher one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sovereign import toolchain

ROOT = toolchain.REPO_ROOT
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("sovereign", "operators", "serving", "infra")


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == "layers"]
    return [[name.strip() for name in line.split(":")] for line in contract["layers"]]


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_package_of_sovereign_is_in_one_layer() -> None:
    named = [name for layer in _layers() for name in layer]
    assert len(named) == len(set(named))
    members = {
        f"sovereign.{path.stem}"
        for path in (ROOT / "sovereign").iterdir()
        if path.name != "__init__.py" and (path.suffix == ".py" or (path / "__init__.py").is_file())
    }
    assert members <= set(named), f"not in any layer: {sorted(members - set(named))}"
    assert {"operators", "serving", "infra"} <= set(_layers()[1])


def test_the_layer_contract_holds() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "higher"),
    [
        ("sovereign/policy/engine.py", "sovereign.commands.decide"),  # core -> CLI
        ("sovereign/policy/judgement.py", "operators.sovereign_operator.facts"),  # core -> enforcement
        ("serving/guard.py", "sovereign.demo"),  # enforcement -> demo
    ],
)
def test_a_lower_layer_importing_a_higher_one_fails(tmp_path: Path, module: str, higher: str) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    # A lazy import inside a function is still an import: the contract must catch that form too.
    target.write_text(target.read_text() + f"\n\ndef _breach() -> None:\n    import {higher}  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and higher.split(".")[0] in result.stdout


def test_no_production_module_reads_the_tests_folder() -> None:
    """Production code runs where tests/ is not shipped: data it needs lives in its own package."""
    reads = re.compile(r"""["']tests["']|["']tests/""")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if reads.search(line.split("#", 1)[0])
    ]
    assert offenders == []
