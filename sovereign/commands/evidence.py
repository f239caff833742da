"""`sovereign evidence export | verify`: one signed archive per region that an auditor checks offline.

Exit codes: 0 written / verified (an unsealed log tail is a warning), 1 a member or record fails (named),
2 bad input (no log, no key, no bundle, an unknown region).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sovereign import toolchain
from sovereign.audit import keys
from sovereign.commands.audit import utc_time
from sovereign.errors import BadInput
from sovereign.policy.bundle import TRUST_ANCHOR_ENV, trust_anchor_path

app = typer.Typer(no_args_is_help=True, help="Evidence packs: a region's decisions, signed, checked offline.")
_out = Console(soft_wrap=True, highlight=False)
RegionOpt = Annotated[str, typer.Option(help="The region: us-defense, five-eyes or eu-text-only.")]


@app.command()
def export(
    region: RegionOpt,
    out: Annotated[Path, typer.Option(help="Where to write the pack (.tar.gz).")],
    since: Annotated[
        str | None, typer.Option(help="Decisions from this UTC time on (ISO date or time).")
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            envvar="KUBECONFIG",
            exists=True,
            dir_okay=False,
            help="The region's API server (default: $KUBECONFIG).",
        ),
    ] = None,
    clusters: Annotated[
        Path, typer.Option(help="Cluster files the compliance matrix is computed from (the region's).")
    ] = toolchain.REPO_ROOT / "clusters",
    log: Annotated[
        Path | None, typer.Option(help="The decision log folder (default: the state dir's audit/).")
    ] = None,
    weights_mount: Annotated[
        list[str] | None,
        typer.Option(
            help="POD_PATH=LOCAL_PATH, as the operator's: where the deployed checkpoints are readable here, "
            "so their signatures (model.sig) and signers' public keys are packed. Repeatable."
        ),
    ] = None,
) -> None:
    """Write REGION's evidence pack: log segments and signed heads, the signed bundle of every revision
    a record names, the latest decision per subject, weights digests and signatures, accreditations, the
    compliance matrix and an ML-BOM, with a manifest of every member's digest signed by the audit key."""
    from operators.sovereign_operator.weights_mounts import WeightsMounts
    from sovereign.evidence.export import export_pack  # Kubernetes and the matrix: only when exporting

    if kubeconfig is None:
        raise BadInput(
            "--kubeconfig: the region's API server is needed for its live state (or set $KUBECONFIG)"
        )
    if out.exists() and out.is_dir():
        raise BadInput(
            f"--out {out} is a folder: name the pack's file, e.g. {out / (region + '.evidence.tar.gz')}"
        )
    export_pack(
        region,
        out,
        kubeconfig=kubeconfig,
        clusters_dir=clusters,
        log_dir=log,
        since=utc_time(since, "--since"),
        weights_mounts=WeightsMounts.parse(weights_mount or []),
        progress=lambda line: _out.print(escape(line)),
    )


@app.command()
def verify(
    pack: Annotated[Path, typer.Argument(help="The evidence pack (.tar.gz).")],
    audit_key: Annotated[
        Path | None,
        typer.Option(
            help=f"The audit PEM public key (default: ${keys.PUBLIC_KEY_ENV}, else the state dir's)."
        ),
    ] = None,
    policy_key: Annotated[
        Path | None,
        typer.Option(
            help=f"The policy bundle's PEM public key (default: ${TRUST_ANCHOR_ENV}, else the state dir's)."
        ),
    ] = None,
) -> None:
    """Check PACK with the public keys alone: the manifest's signature, every member's digest, every log
    segment (inclusion and consistency), each policy bundle's signature (one for every record's revision),
    each checkpoint signature with its signer's key, each decision against its record."""
    from sovereign.evidence.verify import verify_pack

    if not pack.is_file():
        raise BadInput(f"{pack}: no such evidence pack (sovereign evidence export writes one)")
    report = verify_pack(pack, keys.load_public_key(audit_key), policy_key or trust_anchor_path())
    for warning in report.warnings:
        _out.print(f"[yellow]warning:[/] {escape(warning)}")
    for problem in report.problems:
        _out.print(f"[bold red]FAILED[/] {escape(problem)}")
    if report.ok:
        facts = report.facts
        _out.print(
            f"evidence pack {escape(str(pack))}: verified (region {facts.get('region')}, "
            f"{facts.get('records')} records, policy revision {facts.get('policy_revision')})"
        )
    raise typer.Exit(0 if report.ok else 1)
