"""Every command's --help is Typer's, in one style: a usage line, the description, boxed options."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sovereign import cli


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    # Typer bundles its own click: a group is known by its subcommands, not by click's class.
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path


COMMANDS = sorted(_commands(typer.main.get_command(cli.app)))


def test_every_noun_is_listed() -> None:
    assert ("exporter",) in COMMANDS and ("decide",) in COMMANDS and ("dev", "env") in COMMANDS


@pytest.mark.slow
@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_is_in_the_cli_s_style(path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    done = CliRunner().invoke(cli.app, [*path, "--help"])
    assert done.exit_code == 0, done.output
    assert done.output.lstrip().startswith("Usage:")
    assert "╭─ Options" in done.output
