"""Gather the facts of the weights on disk, have the policy judge them, before serving them.

Facts come from the checkpoint alone, without loading a tensor: `config.json` (model_type, architectures,
vision_config) gives the input modalities, the safetensors headers give every tensor's shape, hence the
parameter count, and a tiny test checkpoint names the variant it stands in for (`sovereign_stand_in_for`).
They go into the decision input as `weights`; the Rego rule `weights_match` decides whether they are the
declared catalogue variant (strict modality, size within the catalogue's tolerance, the stand-in waiver)
and refuses with WEIGHTS_MISMATCH and the variant's own citation. When the deployment names a signer, the
OpenSSF model signature over every file (sovereign.models.signing) is a fact too (`weights.signature`),
and the rule `weights_signature` refuses what that signer did not sign (WEIGHTS_SIGNATURE_INVALID). A
checkpoint that cannot even be read is refused here, before any judgement: there are no facts to judge.

Parameter counts are tensor element counts, so packed int4 checkpoints (several weights per stored
element) would read small: such variants are not supported here yet.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open

from sovereign.errors import SovereignError
from sovereign.models.signing import verify_checkpoint
from sovereign.models.tiny import STAND_IN_KEY
from sovereign.policy.decision_input import DecisionInput
from sovereign.policy.judgement import Judge
from sovereign.policydata import load_policy_data

_MULTIMODAL_TYPES = {"mllama", "llama4", "llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "idefics3"}


class WeightsRefused(SovereignError):
    """The weights on disk are not the declared variant: the server must not start."""


@dataclass(frozen=True)
class WeightsFacts:
    folder: Path
    model_type: str
    architectures: list[str]
    input_modalities: list[str]
    parameters: int
    files: list[Path]
    stand_in_for: str | None


@dataclass(frozen=True)
class VerifiedWeights:
    model_id: str
    facts: WeightsFacts
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> digest

    def record(self) -> dict[str, Any]:
        """What the deployment logs and reports: the declared variant and the digest of every file."""
        return {
            "model_id": self.model_id,
            "source": str(self.facts.folder),
            "model_type": self.facts.model_type,
            "input_modalities": self.facts.input_modalities,
            "parameters": self.facts.parameters,
            "stand_in_for": self.facts.stand_in_for,
            "files": [{"name": name, "sha256": digest} for name, digest in sorted(self.sha256.items())],
        }


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsRefused(
            f"{path} is missing: model_source must be a Hugging Face checkpoint folder"
        ) from None
    except (OSError, ValueError) as exc:
        raise WeightsRefused(f"{path} cannot be read as JSON: {exc}") from None
    if not isinstance(config, dict):
        raise WeightsRefused(f"{path} must hold a JSON object")
    return config


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        files = sorted({folder / name for name in weight_map.values()})
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise WeightsRefused(f"{folder} holds no .safetensors weights (other formats are not served)")
    if missing := [path.name for path in files if not path.is_file()]:
        raise WeightsRefused(f"{folder}: the shard index names missing files: {', '.join(missing)}")
    return files


def _count_parameters(files: list[Path]) -> int:
    total = 0
    for path in files:
        try:
            # numpy framework: the header is parsed and the file mapped, no tensor is read or allocated.
            with safe_open(path, framework="numpy") as reader:
                names = reader.keys()
                total += sum(math.prod(reader.get_slice(name).get_shape()) for name in names)
        except Exception as exc:  # a corrupt header must refuse the weights, whatever the parser raised
            raise WeightsRefused(f"{path}: not a readable safetensors file: {exc}") from None
    return total


def input_modalities(config: dict[str, Any]) -> list[str]:
    """Input modalities the checkpoint's architecture takes, from its config.json alone."""
    architectures = config.get("architectures") or []
    multimodal = (
        "vision_config" in config
        or config.get("model_type") in _MULTIMODAL_TYPES
        or any(str(name).endswith("ForConditionalGeneration") for name in architectures)
    )
    return ["image", "text"] if multimodal else ["text"]


def inspect_weights(folder: Path) -> WeightsFacts:
    config = _read_config(folder)
    files = _weight_files(folder)
    stand_in = config.get(STAND_IN_KEY)
    return WeightsFacts(
        folder=folder,
        model_type=str(config.get("model_type", "")),
        architectures=[str(name) for name in config.get("architectures") or []],
        input_modalities=input_modalities(config),
        parameters=_count_parameters(files),
        files=files,
        stand_in_for=str(stand_in) if stand_in is not None else None,
    )


def weights_fact(facts: WeightsFacts) -> dict[str, Any]:
    """The checkpoint as the policy sees it (`input.weights`): the policy decides whether it is the
    declared variant (WEIGHTS_MISMATCH), never this module."""
    fact: dict[str, Any] = {"input_modalities": facts.input_modalities, "parameters": facts.parameters}
    if facts.stand_in_for is not None:
        fact["stand_in_for"] = facts.stand_in_for
    return fact


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_weights(folder: Path, judge: Judge, judged: DecisionInput) -> VerifiedWeights:
    """The verified record of `folder` as the deployment `judged` declares it, or WeightsRefused with the
    policy's every reason (code, message, citation).

    The cheap header facts are judged first: a mismatched 140 GB checkpoint is refused in milliseconds.
    Then, when the deployment names a signer, its signature over every file is verified (hashing them all)
    and the whole is judged again with that fact; digests are taken last.
    """
    if not folder.is_dir():
        raise WeightsRefused(f"model_source {folder} is not a folder")
    facts = inspect_weights(folder)
    # The header facts alone (the signature not gathered yet: no signer expected in this first judgement).
    judgement = judge.judge(judged.model_copy(update={"weights_signer": None}), weights=weights_fact(facts))
    if judgement.allowed and judged.weights_signer is not None:
        signature = verify_checkpoint(folder, judged.weights_signer).fact()
        judgement = judge.judge(judged, weights={**weights_fact(facts), "signature": signature})
    if not judgement.allowed:
        reasons = [
            f"  - {v.get('code')}: {v.get('message')} [{v.get('citation')}]" for v in judgement.violations
        ]
        raise WeightsRefused(f"refusing to serve {folder} as {judged.model}:\n" + "\n".join(reasons))
    variant = load_policy_data().model(judged.model)
    model_id = variant.id if variant else judged.model
    return VerifiedWeights(model_id, facts, {path.name: _sha256(path) for path in facts.files})
