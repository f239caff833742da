"""What a checkpoint on disk is, read without loading a tensor: the facts the policy judges (`input.weights`).

`config.json` (model_type, architectures, vision_config) gives the input modalities, the safetensors
headers give every tensor's shape, hence the parameter count, and a tiny test checkpoint names the variant
it stands in for (`sovereign_stand_in_for`). When the deployment names a signer, the OpenSSF model signature
over every file (sovereign.models.signing) is a fact too (`signature`). Both the operator's admission (on
its read-only mount of the model store) and the serving replica (before loading) gather these same facts,
so both judge the same thing; the Rego rules `weights_match` and `weights_signature` decide.

Parameter counts are tensor element counts, so packed int4 checkpoints (several weights per stored
element) would read small: such variants are not supported here yet.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open

from sovereign.errors import SovereignError
from sovereign.models.signing import verify_checkpoint

# The catalogue variant a stand-in checkpoint's config.json names (`sovereign models build` writes it). Kept
# here, not beside the builder: the operator reads checkpoints with the base dependencies alone, and the
# builder imports the serving extra's tokenizers and transformers.
STAND_IN_KEY = "sovereign_stand_in_for"


class CheckpointUnreadable(SovereignError):
    """The folder is not a checkpoint whose facts can be read: there is nothing to judge."""


_MULTIMODAL_TYPES = {"mllama", "llama4", "llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "idefics3"}


@dataclass(frozen=True)
class WeightsFacts:
    folder: Path
    model_type: str
    architectures: list[str]
    input_modalities: list[str]
    parameters: int
    files: list[Path]
    stand_in_for: str | None


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointUnreadable(
            f"{path} is missing: model_source must be a Hugging Face checkpoint folder"
        ) from None
    except (OSError, ValueError) as exc:
        raise CheckpointUnreadable(f"{path} cannot be read as JSON: {exc}") from None
    if not isinstance(config, dict):
        raise CheckpointUnreadable(f"{path} must hold a JSON object")
    return config


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        files = sorted({folder / name for name in weight_map.values()})
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointUnreadable(f"{folder} holds no .safetensors weights (other formats are not served)")
    if missing := [path.name for path in files if not path.is_file()]:
        raise CheckpointUnreadable(f"{folder}: the shard index names missing files: {', '.join(missing)}")
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
            raise CheckpointUnreadable(f"{path}: not a readable safetensors file: {exc}") from None
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
    if not folder.is_dir():
        raise CheckpointUnreadable(f"{folder} is not a folder")
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


def checkpoint_fact(folder: Path, signer: str | None) -> dict[str, Any]:
    """`input.weights` for `folder`: its header facts and, when the deployment names a signer, whether that
    signer's signature covers every file (which hashes them all)."""
    fact = weights_fact(inspect_weights(folder))
    if signer is not None:
        fact["signature"] = verify_checkpoint(folder, signer).fact()
    return fact
