"""Run the stack's program through Pulumi's Automation API: inline program, the pinned CLI, local state.

State goes to a file backend under the user's state folder (`$PULUMI_BACKEND_URL` wins), secrets are
sealed with a passphrase kept there too (`$PULUMI_CONFIG_PASSPHRASE[_FILE]` win). The stand-in plugins in
tools/pulumi-plugins/ go first on the CLI's PATH: they run dynamic providers and the policy pack with this
Python (see the README there for why they exist).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pulumi import automation as auto

from infra.program import sovereign_program
from infra.stack_config import PROJECT, write_pulumi_stack_file
from sovereign import toolchain
from sovereign.devenv.state import state_root

Action = Literal["preview", "up", "destroy"]
PLUGINS_DIR = toolchain.REPO_ROOT / "tools" / "pulumi-plugins"
POLICY_PACK = Path(__file__).resolve().parent / "policy_pack"


def pulumi_dir() -> Path:
    return state_root() / "pulumi"


def _passphrase_file() -> Path:
    path = pulumi_dir() / "passphrase"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path


def backend_url() -> str:
    """Where stacks live: $PULUMI_BACKEND_URL, else a file backend in the state dir (made here)."""
    if explicit := os.environ.get("PULUMI_BACKEND_URL"):
        return explicit
    state = pulumi_dir() / "state"
    state.mkdir(parents=True, exist_ok=True)
    return f"file://{state}"


def pulumi_env() -> dict[str, str]:
    """What the CLI needs besides our environment: backend, passphrase, stand-in plugins, no phoning home."""
    env = {
        "PATH": f"{PLUGINS_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        "SOVEREIGN_PYTHON": sys.executable,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    if "PULUMI_BACKEND_URL" not in os.environ:
        env["PULUMI_BACKEND_URL"] = backend_url()
    if not {"PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"} & os.environ.keys():
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(_passphrase_file())
    return env


@dataclass
class PolicyReport:
    """The policy pack's mandatory violations, gathered from the engine events while the output streams."""

    mandatory: list[str] = field(default_factory=list)

    def on_event(self, event: auto.events.EngineEvent) -> None:
        policy = event.policy_event
        if policy is None or policy.enforcement_level != "mandatory":
            return
        where = policy.resource_urn.rpartition("::")[2] if policy.resource_urn else "stack"
        # The message is the policy's description, then what it found.
        found = policy.message.strip().splitlines()[1:] or [policy.message.strip()]
        self.mandatory.append(f"{where}: " + "\n    ".join(found))


def select_stack(project_dir: Path, stack: str) -> auto.Stack:
    write_pulumi_stack_file(project_dir, stack, backend_url())  # the declaration as it is now
    pulumi = toolchain.binary("pulumi")
    return auto.create_or_select_stack(
        stack_name=stack,
        project_name=PROJECT,
        program=lambda: sovereign_program(project_dir),
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(project_dir),
            env_vars=pulumi_env(),
            secrets_provider="passphrase",
            pulumi_command=auto.PulumiCommand(str(pulumi.parent.parent)),
        ),
    )


def failure(exc: auto.CommandError) -> str:
    """What the CLI wrote to stderr (the SDK keeps it only in the error's text), e.g. the program's error."""
    return str(exc).partition("\n stderr: ")[2].strip() or str(exc).strip()


def run(
    action: Action,
    project_dir: Path,
    stack: str,
    on_output: Callable[[str], None],
    report: PolicyReport,
) -> auto.UpResult | auto.PreviewResult | auto.DestroyResult:
    """One Pulumi operation, its output streamed, the policy pack applied; auto.CommandError on failure."""
    selected = select_stack(project_dir, stack)
    packs = [str(POLICY_PACK)]
    if action == "preview":
        return selected.preview(on_output=on_output, on_event=report.on_event, policy_packs=packs)
    if action == "up":
        return selected.up(on_output=on_output, on_event=report.on_event, policy_packs=packs)
    return selected.destroy(on_output=on_output, on_event=report.on_event)
