"""`sovereign demo [--check]` and `sovereign demo down`: three sovereign regions, end to end."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console

from sovereign.devenv.state import state_root
from sovereign.policy.bundle import BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV

app = typer.Typer(help="Bring up three sovereign regions end to end on real parts (see README).")
_out = Console(soft_wrap=True, width=max(Console().width, 140))


def _isolate() -> None:
    # The demo keeps its control planes, bundle and Pulumi state apart from the user's own.
    if not os.environ.get("SOVEREIGN_DEMO"):
        os.environ["SOVEREIGN_STATE_DIR"] = str(state_root() / "demo-state")
        for name in (BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV):  # its bundle and trust anchor default in there
            os.environ.pop(name, None)
        os.environ["SOVEREIGN_DEMO"] = "1"
        os.environ["PULUMI_HOME"] = str(state_root() / "pulumi-home")


@app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Run non-interactively, assert each outcome, stop everything.")
    ] = False,
) -> None:
    """Run the demo; it stays up (endpoints printed) until Ctrl-C or `sovereign demo down`."""
    if ctx.invoked_subcommand is not None:
        return
    _isolate()
    from sovereign.demo.runner import run

    if not run(_out, stay_up=not check):
        raise typer.Exit(1)


@app.command()
def down() -> None:
    """Stop a running demo and everything it started; no process is left behind."""
    _isolate()
    from sovereign.demo.shutdown import down as stop_all

    killed = stop_all(progress=_out.print)
    _out.print("demo stopped" + (f"; killed leftover PIDs {killed}" if killed else ""))
