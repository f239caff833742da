"""`sovereign whatif --bundle FOLDER | --policies FOLDER [--fleet FILE] [--json]`: what a new policy would
change across the fleet, before any OPA serves it.

Exit codes: 0 publishing it would be accepted as is, 1 it would be refused (it would suspend a running
deployment, leave undecided what is decided now, or a region could not be judged), 2 bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sovereign.commands.fleet import FleetOpt
from sovereign.policy.screening_source import SCREENING_LIST_ENV

if TYPE_CHECKING:
    from operators.sovereign_operator.whatif import Outcome, Rejudged
    from sovereign.fleet.whatif import FleetWhatIf

ScreeningListOpt = Annotated[
    Path | None,
    typer.Option(
        envvar=SCREENING_LIST_ENV,
        help="Denied-party list (trade.gov CSL JSON) to screen with, as the operators do; "
        "default: the sample `sovereign dev up` installs.",
    ),
]


def _outcome(outcome: Outcome) -> str:
    codes = f" {', '.join(outcome.codes)}" if outcome.codes else ""
    return f"{outcome.verdict.value}{codes}"


def _line(rejudged: Rejudged) -> str:
    from operators.sovereign_operator.whatif import Change, Outcome

    subject, before, after = rejudged.subject, Outcome.of(rejudged.current), Outcome.of(rejudged.new)
    what = f"{subject.kind} {subject.namespace}/{subject.name} on {subject.cluster} ({subject.mode.value})"
    if rejudged.change is Change.OBLIGATIONS_CHANGED:
        added = sorted(set(after.obligations) - set(before.obligations))
        removed = sorted(set(before.obligations) - set(after.obligations))
        detail = " ".join([*(f"+{code}" for code in added), *(f"-{code}" for code in removed)])
    else:
        detail = f"{_outcome(before)} -> {_outcome(after)}"
    effect = "; would be SUSPENDED" if rejudged.would_suspend else ""
    return f"  {rejudged.change.value}: {what}: {detail}{effect}"


def show_whatif(result: FleetWhatIf) -> None:
    """The what-if as lines: every change with its codes, the unchanged counted, the suspensions last."""
    from operators.sovereign_operator.whatif import Change

    print(f"what-if: policy revision {result.current_revision or '(none)'} in force -> {result.new_revision}")
    for region in result.regions:
        if region.problem is not None:
            print(f"{region.region}: NOT JUDGED: {region.problem}")
            continue
        changed = [r for r in region.rejudged if r.change is not Change.UNCHANGED]
        judged_with = ", ".join(region.in_force) or "none recorded"
        print(
            f"{region.region}: {len(changed)} changed, {len(region.rejudged) - len(changed)} unchanged "
            f"(its operator's statuses name revision {judged_with})"
        )
        for rejudged in changed:
            print(_line(rejudged))
    suspended = [region.ident(r) for region, r in result.suspensions()]
    print(f"would suspend: {', '.join(suspended) or 'nothing'}")


def whatif(
    fleet: FleetOpt,
    bundle: Annotated[
        Path | None,
        typer.Option(
            help="The new policy as a signed candidate bundle folder "
            "(`sovereign bundle build --policies DIR --out FOLDER`), verified with the trust anchor."
        ),
    ] = None,
    policies: Annotated[
        Path | None,
        typer.Option(
            help="The new policy as a policies/ folder: built for this what-if only, never published."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the what-if as JSON.")] = False,
    screening_list: ScreeningListOpt = None,
) -> None:
    """Judge every LlamaDeployment, RayService made directly and pending ClusterRequest of the fleet under
    the policy in force and the new one (one batch per region each) and show what would change: newly
    denied, newly allowed, violations or obligations changed, undecided; and which running deployments a
    drift pass would suspend."""
    from sovereign.fleet.fleetfile import load_fleet
    from sovereign.fleet.publish import PublishRefused, check_publishable
    from sovereign.fleet.whatif import candidate_engine, live_engine, whatif_fleet
    from sovereign.policy.screening_source import Screening

    found = load_fleet(fleet)
    screening = Screening.enforcing(screening_list)
    current = live_engine()
    try:
        with candidate_engine(bundle, policies) as new:
            result = whatif_fleet(found, current, new, screening)
    finally:
        current.close()
    try:
        check_publishable(result, [])
        refusal = None
    except PublishRefused as exc:
        refusal = str(exc)
    if json_out:
        print(json.dumps({**result.as_json(), "publishable": refusal is None, "refusal": refusal}, indent=2))
    else:
        show_whatif(result)
        if refusal:
            print(f"sovereign bundle publish: {refusal}")
    raise typer.Exit(0 if refusal is None else 1)
