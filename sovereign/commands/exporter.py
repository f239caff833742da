"""`sovereign exporter`: runs the exporter with its own argument parser (sovereign/exporter/entry.py),
which must also work without Typer on a bare GPU node; every argument is passed through to it."""

from __future__ import annotations

from typing import Any

import typer

from sovereign.exporter.entry import run

COMMAND_SETTINGS: dict[str, Any] = {
    "context_settings": {"allow_extra_args": True, "ignore_unknown_options": True},
    "add_help_option": False,
}


def exporter(ctx: typer.Context) -> None:
    """Serve GPU, allocation and source-health metrics (all options: sovereign exporter --help)."""
    raise typer.Exit(run(ctx.args))
