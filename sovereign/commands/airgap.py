"""`sovereign airgap export | verify`: carry a region's images, wheels, signed policy bundle, screening list
and checkpoint signatures across an air gap in one folder with one signed manifest.

Only `export` signs (with the audit key); `verify` checks with the exporter's public key alone. Exit codes:
0 written / verified, 1 a member fails (the first named first), 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sovereign.audit import keys
from sovereign.commands.audit import KeyOpt
from sovereign.commands.evidence import RegionOpt

app = typer.Typer(no_args_is_help=True, help="Transfers for disconnected regions: export, verify offline.")
_out = Console(soft_wrap=True, highlight=False)


@app.command()
def export(
    region: RegionOpt,
    out: Annotated[Path, typer.Option(help="The new folder to write the transfer into.")],
    stack: Annotated[
        str | None, typer.Option(help="The region's stack, infra/stacks/STACK.yaml (default: the region).")
    ] = None,
    models: Annotated[
        Path | None, typer.Option(help="A folder of signed checkpoints: each one's model.sig is carried.")
    ] = None,
    screening_list: Annotated[
        Path | None, typer.Option(help="The screening list to carry (default: $SOVEREIGN_SCREENING_LIST).")
    ] = None,
    wheels: Annotated[
        bool, typer.Option(help="Download every locked wheel (pip --require-hashes; needs the index).")
    ] = True,
    images: Annotated[
        bool, typer.Option(help="Save each image as an OCI archive (needs a container builder).")
    ] = True,
    key: Annotated[
        Path | None,
        typer.Option(help=f"The audit private key to sign with (default: ${keys.PRIVATE_KEY_ENV})."),
    ] = None,
) -> None:
    """Write REGION's transfer: image list with digests (and OCI archives where a builder exists), the locks,
    SBOMs and wheels, the signed policy bundle and trust anchors, the screening list snapshot, the signed
    checkpoints' signatures, the region's stack and clusters; one manifest of every file, signed."""
    from sovereign.airgap.export import ExportOptions, export_transfer

    options = ExportOptions(
        stack=stack or region, models=models, screening_list=screening_list, wheels=wheels, archives=images
    )
    export_transfer(
        region,
        out,
        options,
        key=keys.load_signing_key(key) if key else None,
        progress=lambda line: _out.print(escape(line)),
    )


@app.command()
def verify(
    folder: Annotated[Path, typer.Argument(help="The transfer folder.")],
    key: KeyOpt = None,
) -> None:
    """Check FOLDER offline before importing it, with the exporter's audit public key received apart from
    it: the manifest's signature, every member's size and SHA-256, nothing missing or added, the policy
    bundle's signature."""
    from sovereign.airgap.verify import refuse_anchor_inside, verify_transfer

    anchor = key or keys.public_key_path()
    refuse_anchor_inside(folder, anchor)
    report = verify_transfer(folder, keys.load_public_key(anchor))
    for problem in report.problems:
        _out.print(f"[bold red]FAILED[/] {escape(problem)}")
    if report.ok:
        facts = report.facts
        _out.print(
            f"transfer {escape(str(folder))}: verified (region {facts.get('region')}, policy revision "
            f"{facts.get('policy_revision')}, screening list of "
            f"{', '.join(str(s['last_updated']) for s in facts['screening']['sources'])})"
        )
    raise typer.Exit(0 if report.ok else 1)
