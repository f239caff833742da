"""`sovereign fleet status [--fleet FILE] [--json]`: what runs in every region, as the operators recorded it.

Exit codes: 0 every region read, 1 a region could not be read (shown as unreachable, the others in full),
2 a bad fleet file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sovereign.fleet.fleetfile import FLEET_ENV

if TYPE_CHECKING:
    from sovereign.fleet.status import Gpus, RegionStatus

app = typer.Typer(no_args_is_help=True, help="The fleet: every region named in a fleet file.")

FleetOpt = Annotated[
    Path,
    typer.Option(
        "--fleet",
        envvar=FLEET_ENV,
        help="Fleet file: YAML `regions:` name -> {kubeconfig, context, prometheus} (the demo writes one).",
    ),
]


def _gpus(gpus: Gpus) -> str:
    if gpus.unavailable:
        return f"GPUs unavailable ({gpus.unavailable})"
    counts = f"{gpus.allocated:.0f} allocated, {gpus.in_use:.0f} in use, of {gpus.capacity:.0f}"
    return f"GPUs {counts} ({gpus.prometheus})"


def _show(region: RegionStatus) -> None:
    if not region.reachable:
        print(f"{region.region}: UNREACHABLE: {region.problem}")
        return
    revisions = ", ".join(region.revisions_in_force) or "none recorded"
    print(f"{region.region}: policy revision in force {revisions}; {_gpus(region.gpus)}")
    clusters = ", ".join(f"{c.name} ({c.region}, {c.enforcement})" for c in region.clusters) or "none"
    print(f"  clusters: {clusters}")
    print(f"  deployments: {len(region.deployments) or 'none'}")
    for d in region.deployments:
        codes = f" {', '.join(d.codes)}" if d.codes else ""
        print(
            f"    {d.namespace}/{d.name} on {d.cluster}: {d.model} for {d.end_use}; "
            f"{d.phase or 'not reconciled'}, {d.reason or 'not judged yet'}{codes}"
        )
    print(f"  pending ClusterRequests: {len(region.pending_requests) or 'none'}")
    for r in region.pending_requests:
        decision = f"{r.phase or 'not decided yet'} ({r.reason or '-'})"
        print(f"    {r.namespace}/{r.name}: {decision} {r.message or ''}".rstrip())
    print(f"  accreditations expiring within 30 days: {len(region.expiring_accreditations) or 'none'}")
    for e in region.expiring_accreditations:
        when = f"expired {-e.days_left} days ago" if e.days_left < 0 else f"in {e.days_left} days"
        print(f"    {e.cluster}: {e.scheme} expires {e.expires} ({when})")


@app.command()
def status(
    fleet: FleetOpt,
    json_out: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Per region: clusters, deployments and the decisions in force on them, pending ClusterRequests, the
    policy revision in force, accreditations expiring within 30 days, GPUs allocated and in use (from the
    region's Prometheus). A region that cannot be read is shown as unreachable (exit 1)."""
    from sovereign.fleet.fleetfile import load_fleet
    from sovereign.fleet.status import fleet_status
    from sovereign.policy.judgement import utc_today

    found = fleet_status(load_fleet(fleet), utc_today())
    if json_out:
        print(json.dumps(found.model_dump(mode="json"), indent=2))
    else:
        print(f"fleet {fleet}, as of {found.as_of}")
        for region in found.regions:
            _show(region)
    raise typer.Exit(1 if any(not region.reachable for region in found.regions) else 0)
