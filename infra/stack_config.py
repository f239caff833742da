"""A stack's configuration: the `sovereign:*` keys declared (typed, with defaults) in Pulumi.yaml.

Pulumi itself refuses a stack missing a declared key or holding one of the wrong simple type; this model
checks what Pulumi cannot (unknown keys, CIDRs, the image an in-cluster stack needs) and is the one reading
of the keys for both `sovereign up` (before Pulumi starts) and the program (under `pulumi up`).

A stack is declared in `infra/stacks/<stack>.yaml` (tracked). Pulumi's own stack file beside it,
`Pulumi.<stack>.yaml`, is written from it (`write_pulumi_stack_file`) and not tracked: on a stack's first
use Pulumi adds its passphrase check (`encryptionsalt`) there, which belongs to each engineer's passphrase,
so no Pulumi command can change a tracked file.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, ValidationError, model_validator

from sovereign.errors import BadInput
from sovereign.policy.decision_input import describe_errors

PROJECT = "sovereign"
PROJECT_FILE = "Pulumi.yaml"
NonEmpty = Annotated[str, Field(min_length=1)]


class Workloads(StrEnum):
    in_cluster = "in-cluster"  # a real cluster: the operator and OPA run as Deployments
    local = "local"  # the operator and data plane run as local processes; only objects go to the API server


class StackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kubeconfig: str
    context: str
    region: NonEmpty
    clusters: Annotated[list[NonEmpty], Field(min_length=1)]
    workloads: Workloads
    egress_cidrs: list[IPvAnyNetwork] = Field(alias="egressCidrs")
    operator_image: str = Field(alias="operatorImage")
    serving_image: str = Field(alias="servingImage")
    opa_image: NonEmpty = Field(alias="opaImage")
    kuberay_image: str = Field(alias="kuberayImage")
    webhook_ca_file: str = Field(alias="webhookCaFile")

    @model_validator(mode="after")
    def _in_cluster_needs_operator_settings(self) -> StackConfig:
        if self.workloads is Workloads.in_cluster:
            missing = [
                key
                for key, value in (
                    ("operatorImage", self.operator_image),
                    ("servingImage", self.serving_image),
                    ("webhookCaFile", self.webhook_ca_file),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"workloads: in-cluster runs the operator and its webhook: set {', '.join(missing)}"
                )
        return self

    @classmethod
    def keys(cls) -> list[str]:
        return [field.alias or name for name, field in cls.model_fields.items()]

    def cluster_files(self, project_dir: Path) -> list[Path]:
        """The clusters/*.yaml files, relative paths taken from the project folder."""
        return [_resolve(project_dir, entry) for entry in self.clusters]

    def webhook_ca(self, project_dir: Path) -> bytes | None:
        if not self.webhook_ca_file:
            return None
        path = _resolve(project_dir, self.webhook_ca_file)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BadInput(
                f"{PROJECT}:webhookCaFile: cannot read {path} ({exc.strerror}): it is the ca.crt that "
                "`sovereign operator setup --out DIR` writes into DIR (infra/README.md, A real region): run "
                "that, or point the key at the PEM of the CA that signed the operator's webhook certificate"
            ) from None


def _resolve(project_dir: Path, entry: str) -> Path:
    path = Path(entry).expanduser()
    return path if path.is_absolute() else project_dir / path


def parse(values: dict[str, Any], source: str) -> StackConfig:
    """Validate un-namespaced config values; BadInput with one line per problem, each naming its key."""
    try:
        return StackConfig.model_validate(values)
    except ValidationError as exc:
        lines = [f"{PROJECT}:{line}" for line in describe_errors(exc, "").splitlines()]
        raise BadInput(f"{source}: invalid stack configuration\n" + "\n".join(lines)) from None


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{path}: expected a mapping at the top of the {what}")
    return doc


# The keys Pulumi itself writes into its stack file (secrets provider state), kept when it is rewritten.
_PULUMI_OWN_KEYS = ("secretsprovider", "encryptedkey", "encryptionsalt")


def _stacks_dir(project_dir: Path) -> Path:
    project = _read_yaml(project_dir / PROJECT_FILE, "Pulumi project file")
    return project_dir / str(project.get("stackConfigDir", "."))


def stack_file(project_dir: Path, stack: str) -> Path:
    """The stack's declaration: what an engineer edits."""
    return _stacks_dir(project_dir) / f"{stack}.yaml"


def stacks(project_dir: Path) -> list[str]:
    return sorted(p.stem for p in _stacks_dir(project_dir).glob("*.yaml") if not p.name.startswith("Pulumi."))


def _backend_secrets(backend_url: str | None, stack: str) -> dict[str, str] | None:
    """Pulumi's own stack-file keys for `stack` as its backend holds them: none when a file backend
    (file://DIR) has no such stack, the passphrase's salt from its checkpoint; None when they cannot be
    read here (another kind of backend, another secrets provider)."""
    if not backend_url or not backend_url.startswith("file://"):
        return None
    stacks = Path(backend_url.removeprefix("file://")).expanduser() / ".pulumi" / "stacks"
    # Project-scoped layout (Pulumi 3.61 and later), then the legacy one.
    found = [p for p in (stacks / PROJECT / f"{stack}.json", stacks / f"{stack}.json") if p.is_file()]
    if not found:
        return {}
    try:
        checkpoint = json.loads(found[0].read_text())
    except (OSError, ValueError):
        return None
    provider = ((checkpoint.get("checkpoint") or {}).get("latest") or {}).get("secrets_providers") or {}
    salt = (provider.get("state") or {}).get("salt") if provider.get("type") == "passphrase" else None
    return {"encryptionsalt": salt} if salt else None


def write_pulumi_stack_file(project_dir: Path, stack: str, backend_url: str | None = None) -> Path:
    """Pulumi's stack file for `stack`: its declaration's config, and the secrets provider's state of the
    stack in the backend at `backend_url`.

    That state (the passphrase's salt) belongs to the backend's stack, not to the checkout, whose file
    every state dir it is used with shares (each with its own backend and passphrase): it is taken from the
    backend's checkpoint, and left out when the backend has no such stack (Pulumi makes one with the stack).
    A salt kept from another backend made a fresh state dir's first use fail: "incorrect passphrase"."""
    declared = _read_yaml(stack_file(project_dir, stack), "stack file")
    path = _stacks_dir(project_dir) / f"Pulumi.{stack}.yaml"
    kept = _read_yaml(path, "Pulumi stack file") if path.is_file() else {}
    own = _backend_secrets(backend_url, stack)
    if own is None:  # not readable here: what Pulumi wrote into the file stays
        own = {key: kept[key] for key in _PULUMI_OWN_KEYS if key in kept}
    doc = own | {"config": declared.get("config")}
    text = (
        f"# Written by sovereign from {stack}.yaml, which is the one to edit (this file is not tracked).\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def load(project_dir: Path, stack: str) -> StackConfig:
    """A stack's config as Pulumi would give it to the program: the stack file over Pulumi.yaml's defaults."""
    project = _read_yaml(project_dir / PROJECT_FILE, "Pulumi project file")
    path = stack_file(project_dir, stack)
    if not path.is_file():
        known = ", ".join(stacks(project_dir)) or "none"
        raise BadInput(f"no stack {stack!r}: {path} does not exist; stacks here: {known}")
    declared = project.get("config") or {}
    values = {key: spec["default"] for key, spec in declared.items() if "default" in spec}
    for key, value in (_read_yaml(path, "stack file").get("config") or {}).items():
        namespace, _, name = str(key).rpartition(":")
        if namespace != PROJECT:
            raise BadInput(
                f"{path}: config key {key}: unknown key: sovereign stacks take only {PROJECT}:* keys"
            )
        values[name] = value
    return parse(values, str(path))


def from_pulumi(config: dict[str, Any], source: str) -> StackConfig:
    """The same reading from the config Pulumi passed to the program (values of structured keys are JSON)."""
    values: dict[str, Any] = {}
    for key, raw in config.items():
        namespace, _, name = key.rpartition(":")
        if namespace != PROJECT:
            continue
        values[name] = yaml.safe_load(raw) if raw.startswith(("[", "{")) else raw
    return parse(values, source)
