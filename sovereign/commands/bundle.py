"""`sovereign bundle build`: build and sign the policy bundle (what `make bundle` runs)."""

from __future__ import annotations

from typing import Annotated

import typer

from sovereign.policy.bundle import ensure_bundle

app = typer.Typer(no_args_is_help=True, help="The signed policy bundle both policy engines evaluate.")


@app.command()
def build(
    force: Annotated[bool, typer.Option("--force", help="Rebuild and re-sign even when up to date.")] = False,
) -> None:
    """Build and sign the bundle from policies/ when missing or stale; print its revision and files."""
    bundle = ensure_bundle(force=force)
    print(f"policy bundle revision {bundle.revision}")
    print(f"  in-process (wasm)  {bundle.wasm}")
    print(f"  OPA server (rego)  {bundle.rego}")
    print(f"  verification key   {bundle.verification_key}")
