"""`sovereign bundle build | publish`: build and sign the policy bundle (what `make bundle` runs), and publish
a candidate to a running fleet after a what-if.

`build` is the only command that signs; `publish` only verifies the candidate it installs, like every
consumer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sovereign.commands.fleet import FleetOpt
from sovereign.commands.whatif import ScreeningListOpt, show_whatif
from sovereign.policy.bundle import BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV, build_bundle, bundle_dir, folder_sources

app = typer.Typer(no_args_is_help=True, help="The signed policy bundle both policy engines evaluate.")


@app.command()
def build(
    force: Annotated[bool, typer.Option("--force", help="Rebuild and re-sign even when up to date.")] = False,
    policies: Annotated[
        Path | None, typer.Option(help="Build from this policies/ folder (default: the repository's).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write the bundle here, as a candidate for `sovereign bundle publish` "
            f"(default: the bundle every consumer reads, ${BUNDLE_DIR_ENV} or the state dir)."
        ),
    ] = None,
) -> None:
    """Build and sign the bundle from policies/ when missing or stale; print its revision and files.

    The first build creates the signing key (under the state dir) and the trust anchor consumers verify
    bundles with. On a running fleet, build a candidate with --out and publish it: publishing runs the
    what-if first.
    """
    bundle = build_bundle(folder_sources(policies) if policies else None, out, force=force)
    print(f"policy bundle revision {bundle.revision}")
    print(f"  in-process (wasm)  {bundle.wasm}")
    print(f"  OPA server (rego)  {bundle.rego}")
    print(f"  trust anchor       {bundle.verification_key}")
    print(f"consumers find these through {BUNDLE_DIR_ENV} and {TRUST_ANCHOR_ENV} (default: the state dir)")


@app.command()
def publish(
    folder: Annotated[
        Path,
        typer.Argument(
            help="The candidate bundle folder (`sovereign bundle build --policies DIR --out FOLDER`)."
        ),
    ],
    fleet: FleetOpt,
    accept_suspensions: Annotated[
        str,
        typer.Option(
            help="NAME[,NAME...]: exactly the running deployments the what-if says it would suspend, each as "
            "NAME, NAMESPACE/NAME or REGION/NAMESPACE/NAME.",
        ),
    ] = "",
    screening_list: ScreeningListOpt = None,
) -> None:
    """Verify the candidate with the trust anchor, run the what-if against the fleet, then install it where
    every OPA (--watch) and operator reads the bundle.

    Refused (exit 1, nothing installed) while it would suspend a running deployment not named in
    --accept-suspensions, leave undecided what is decided now, or a region cannot be judged; a name that
    is not one it would suspend is bad input (exit 2).
    """
    from sovereign.fleet.fleetfile import load_fleet
    from sovereign.fleet.publish import publish as publish_bundle
    from sovereign.policy.screening_source import Screening

    accepted = [name.strip() for name in accept_suspensions.split(",") if name.strip()]
    found, screening = load_fleet(fleet), Screening.enforcing(screening_list)
    installed = publish_bundle(folder, found, accepted, screening, show_whatif)
    print(f"published policy revision {installed.revision} into {bundle_dir()}")
    print("  every OPA watching it serves it now; each operator re-judges its fleet at its next drift check")
