"""`sovereign bundle build`: build and sign the policy bundle (what `make bundle` runs).

The only command that signs: every consumer only reads the built bundle and verifies it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sovereign.policy.bundle import BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV, build_bundle

app = typer.Typer(no_args_is_help=True, help="The signed policy bundle both policy engines evaluate.")


@app.command()
def build(
    force: Annotated[bool, typer.Option("--force", help="Rebuild and re-sign even when up to date.")] = False,
) -> None:
    """Build and sign the bundle from policies/ when missing or stale; print its revision and files.

    The first build creates the signing key (under the state dir) and the trust anchor consumers verify
    bundles with.
    """
    bundle = build_bundle(force=force)
    print(f"policy bundle revision {bundle.revision}")
    print(f"  in-process (wasm)  {bundle.wasm}")
    print(f"  OPA server (rego)  {bundle.rego}")
    print(f"  trust anchor       {bundle.verification_key}")
    print(f"consumers find these through {BUNDLE_DIR_ENV} and {TRUST_ANCHOR_ENV} (default: the state dir)")
