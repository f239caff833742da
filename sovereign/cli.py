"""The `sovereign` command: one Typer app, one sub-module per noun under sovereign/commands/."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from sovereign import __version__
from sovereign.commands import (
    airgap,
    audit,
    bundle,
    decide,
    demo,
    dev,
    evidence,
    exporter,
    fleet,
    images,
    lock,
    matrix,
    models,
    operator,
    report,
    request,
    serve,
    stack,
    top,
    whatif,
)
from sovereign.commands.failures import explain
from sovereign.errors import SovereignError

app = typer.Typer(
    rich_markup_mode="rich",
    no_args_is_help=True,
    help="Export-control and sovereign-deployment orchestration for Llama on Ray Serve.",
)
# One line per noun; each module owns its own Typer app or command.
app.add_typer(dev.app, name="dev")
app.add_typer(demo.app, name="demo")
app.command()(decide.decide)
app.add_typer(bundle.app, name="bundle")
app.command()(exporter.exporter)
app.command()(top.top)
app.command()(report.report)
app.add_typer(models.app, name="models")
app.command()(serve.serve)
app.command()(stack.preview)
app.command()(stack.up)
app.command()(stack.destroy)
app.command()(matrix.matrix)
app.add_typer(operator.app, name="operator")
app.add_typer(request.app, name="request")
app.add_typer(evidence.app, name="evidence")
app.add_typer(audit.app, name="audit")
app.add_typer(fleet.app, name="fleet")
app.command()(whatif.whatif)
app.add_typer(lock.app, name="lock")
app.add_typer(images.app, name="images")
app.add_typer(airgap.app, name="airgap")

_err = Console(stderr=True, soft_wrap=True)  # one error, one line: never wrapped


def _show_version(value: bool) -> None:
    if value:
        print(f"sovereign {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """sovereign: which Llama variants each sovereign cluster may host, and for which end use."""


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(root)"


def _fail(exc: SovereignError) -> None:
    _err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    sys.exit(exc.exit_code)


def main() -> None:
    try:
        # Without standalone mode click returns the exit code of typer.Exit instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except SovereignError as exc:
        _fail(exc)
    except ValidationError as exc:
        for err in exc.errors():
            _err.print(
                f"[bold red]error:[/] {escape(_field_path(err['loc']))}: {escape(err['msg'])}",
                highlight=False,
            )
        sys.exit(2)
    except typer.Abort:
        _err.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors (typer's bundled click) carry exit code 2
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        if (expected := explain(exc)) is None:
            raise
        _fail(expected)
