"""`sovereign preview|up|destroy STACK`: a region's Pulumi stack, through the Automation API.

The same program as `pulumi up -s STACK` (infra/program.py), run inline with the pinned Pulumi CLI and a
local file backend under the user's state folder; the policy pack (infra/policy_pack) always applies.
Exit 0 done, 1 refused by the policy or failed, 2 bad input (nothing created).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from infra import stack_config
from infra.region_plan import connect_stack, plan
from sovereign import toolchain
from sovereign.audit.keys import load_signing_key
from sovereign.commands.failures import webhook_unreachable
from sovereign.errors import NotRunning, SovereignError
from sovereign.policy.bundle import configured_bundle
from sovereign.policy.screening_source import Screening

if TYPE_CHECKING:
    from infra.workspace import Action

StackArg = Annotated[str, typer.Argument(help="Stack: local, us-defense, five-eyes or eu-text-only.")]
ProjectDir = Annotated[
    Path,
    typer.Option(
        "--project-dir",
        help="Folder holding Pulumi.yaml (its stack files under infra/stacks/).",
        file_okay=False,
        exists=True,
    ),
]


def _echo(line: str) -> None:
    print(line, flush=True)


def _run(action: Action, stack: str, project_dir: Path) -> None:
    # Imported here, not with the module: the Pulumi program behind them (the operator's admission code,
    # kopf, the Automation API) takes about a second to import, which every other command would pay.
    from pulumi import automation as auto

    from infra import workspace

    project_dir = project_dir.resolve()
    config = stack_config.load(project_dir, stack)
    if action == "destroy":  # cluster files may be broken or gone: only the API server matters
        connect_stack(config)
    else:
        plan(config, project_dir)
        configured_bundle()  # the program ships the built bundle: a missing one is reported before Pulumi
        Screening.enforcing()  # and the policy pack screens: no list is reported here, naming the setting
        load_signing_key()  # and records each judgement in the decision log: so is a missing audit key
    report = workspace.PolicyReport()
    steps: list[Action] = ["preview", "up"] if action == "up" else [action]
    for step in steps:  # up previews first, as `pulumi up` does: a refused stack creates nothing
        try:
            workspace.run(step, project_dir, stack, _echo, report)
        except auto.CommandError as exc:
            if report.mandatory:
                refused = "\n".join(f"  {line}" for line in report.mandatory)
                raise SovereignError(f"stack {stack}: {step} refused by the policy:\n{refused}") from None
            said = workspace.failure(exc)
            if webhook := webhook_unreachable(said):
                raise NotRunning(f"stack {stack}: pulumi {step} failed: {webhook}") from None
            raise SovereignError(f"stack {stack}: pulumi {step} failed:\n{said}") from None


def preview(stack: StackArg, project_dir: ProjectDir = toolchain.REPO_ROOT) -> None:
    """Show what `up` would change, with the policy pack judging every LlamaDeployment."""
    _run("preview", stack, project_dir)


def up(stack: StackArg, project_dir: ProjectDir = toolchain.REPO_ROOT) -> None:
    """Bring the region's stack up: preview with the policy pack, then apply."""
    _run("up", stack, project_dir)


def destroy(stack: StackArg, project_dir: ProjectDir = toolchain.REPO_ROOT) -> None:
    """Delete every object of the stack from its cluster."""
    _run("destroy", stack, project_dir)
