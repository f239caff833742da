"""Check the weights on disk against the catalogue variant a deployment declares, before serving them.

Facts come from the checkpoint alone, without loading a tensor: `config.json` (model_type, architectures,
vision_config) gives the input modalities, the safetensors headers give every tensor's shape, hence the
parameter count. The rule:

- modality is checked strictly: the checkpoint's input modalities must equal the variant's catalogue
  input modalities (a text-only deployment whose weights are Mllama is refused, and the reverse);
- size: the parameter count must be within PARAMETER_TOLERANCE (10 %) of the variant's catalogue total;
- a tiny test checkpoint names the variant it stands in for in config.json (`sovereign_stand_in_for`).
  Its size check is waived only when that name equals the declared variant AND the checkpoint has fewer
  than STAND_IN_MAX_PARAMETERS parameters, far below any real Llama, so a real-size checkpoint cannot
  dodge the size check by carrying the marker. Its modality is still checked strictly.

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
from sovereign.models.tiny import STAND_IN_KEY
from sovereign.policydata import ModelVariant, PolicyData, load_policy_data

PARAMETER_TOLERANCE = 0.10
STAND_IN_MAX_PARAMETERS = 100_000_000
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


def mismatches(facts: WeightsFacts, model_id: str, variant: ModelVariant) -> list[str]:
    """Every way the checkpoint contradicts the declared variant; empty when it matches."""
    problems = []
    declared_modalities = sorted(variant.modalities.input)
    if facts.input_modalities != declared_modalities:
        problems.append(
            f"modality: {model_id} takes {'+'.join(declared_modalities)} input but the weights are "
            f"{facts.model_type or 'unknown'} ({', '.join(facts.architectures) or 'no architectures'}), "
            f"which take {'+'.join(facts.input_modalities)}"
        )
    if facts.stand_in_for is not None and facts.stand_in_for != model_id:
        problems.append(
            f"stand-in: the weights stand in for {facts.stand_in_for}, not for the declared {model_id}"
        )
    is_stand_in = facts.stand_in_for == model_id and facts.parameters < STAND_IN_MAX_PARAMETERS
    declared = variant.parameters.total
    if not is_stand_in and abs(facts.parameters - declared) > PARAMETER_TOLERANCE * declared:
        problems.append(
            f"size: {model_id} has {declared / 1e9:.2f}B parameters in the catalogue but the weights hold "
            f"{facts.parameters / 1e9:.2f}B (tolerance {PARAMETER_TOLERANCE:.0%})"
        )
    return problems


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_weights(folder: Path, model_id: str, policy_data: PolicyData | None = None) -> VerifiedWeights:
    """The verified record of `folder` as `model_id`, or WeightsRefused with every reason.

    Digests are taken only after the cheap header checks pass: a mismatched 140 GB checkpoint is refused
    in milliseconds.
    """
    variant = (policy_data or load_policy_data()).model(model_id)
    if variant is None:
        raise WeightsRefused(f"model {model_id} is not in the catalogue: unknown models are never served")
    if not folder.is_dir():
        raise WeightsRefused(f"model_source {folder} is not a folder")
    facts = inspect_weights(folder)
    if problems := mismatches(facts, variant.id, variant):
        raise WeightsRefused(
            f"refusing to serve {folder} as {variant.id}:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return VerifiedWeights(variant.id, facts, {path.name: _sha256(path) for path in facts.files})
