"""`sovereign lock check | compile`: the hash-pinned locks in locks/ against pyproject.toml.

`check` is offline (`make lint` runs it): exit 0 when every lock agrees with pyproject.toml and with
locks/dev.txt's versions, 1 naming each disagreement. `compile` rewrites the locks (needs the package index):
`make lock`.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from sovereign.supply.lock import LOCKS, check_locks, compile_locks

app = typer.Typer(no_args_is_help=True, help="The hash-pinned locks: the one source of installed versions.")
_out = Console(soft_wrap=True, highlight=False)


@app.command()
def check() -> None:
    """Offline: every requirement of pyproject.toml locked and satisfied, nothing locked for it that it no
    longer asks for, every pin hashed, one version per package across the locks."""
    problems = check_locks()
    for problem in problems:
        _out.print(f"[bold red]FAILED[/] {escape(problem)}")
    if not problems:
        _out.print(f"locks agree with pyproject.toml: {', '.join(f'locks/{n}.txt' for n in LOCKS)}")
    raise typer.Exit(1 if problems else 0)


@app.command(name="compile")
def compile_() -> None:
    """Rewrite every lock with `uv pip compile --generate-hashes` (`make lock`); needs the package index."""
    compile_locks(progress=lambda line: _out.print(escape(line)))
