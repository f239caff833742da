"""Build the tiny random checkpoints (`sovereign models build`): no download, idempotent, atomic.

Each is saved with `save_pretrained` (config.json, generation_config.json, model.safetensors, tokenizer and
chat template, and for the vision model the image processor), i.e. in the layout of a real Hugging Face
checkpoint, so serving loads it through the same code as a real one. Each config.json carries
`sovereign_stand_in_for`: the catalogue variant it stands in for (see serving/weights.py for the rule).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sovereign.models.checkpoint import STAND_IN_KEY
from sovereign.models.signing import DEV_SIGNER, sign_checkpoint, verify_checkpoint
from sovereign.models.tokenizer import IMAGE, train_tokenizer

# Bump when a recipe changes: a cached model built from an older recipe is rebuilt.
RECIPE_VERSION = 1
_MARKER = ".sovereign-model.json"
_VOCAB = 512
_SEED = 1234


@dataclass(frozen=True)
class TinyModel:
    name: str
    stands_in_for: str  # catalogue id
    description: str
    build: Callable[[Path], None]


def models_dir() -> Path:
    """Where built models live: $SOVEREIGN_MODELS_DIR, else the per-user cache."""
    if explicit := os.environ.get("SOVEREIGN_MODELS_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sovereign" / "models"


def _build_text(folder: Path) -> None:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer(_VOCAB)
    config = LlamaConfig(
        vocab_size=_VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(_SEED)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _build_vision(folder: Path) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        MllamaConfig,
        MllamaForConditionalGeneration,
        MllamaProcessor,
    )
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    tokenizer = train_tokenizer(_VOCAB)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE)
    text_config = {
        "vocab_size": _VOCAB,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "cross_attention_layers": [1],
        "max_position_embeddings": 512,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision_config = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_global_layers": 1,
        "attention_heads": 2,
        "image_size": 28,
        "patch_size": 14,
        "max_num_tiles": 1,
        "supported_aspect_ratios": [[1, 1]],
        "intermediate_layers_indices": [0],
        "vision_output_dim": 64,  # hidden_size x (1 + len(intermediate_layers_indices))
    }
    config = MllamaConfig(
        text_config=text_config, vision_config=vision_config, image_token_index=image_token_id
    )
    torch.manual_seed(_SEED)
    model = MllamaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    image_processor = MllamaImageProcessorPil(size={"height": 28, "width": 28}, max_image_tiles=1)
    processor = MllamaProcessor(image_processor, tokenizer, chat_template=tokenizer.chat_template)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


TINY_MODELS = (
    TinyModel(
        name="tiny-llama-text",
        stands_in_for="llama-3.1-8b-instruct",
        description="LlamaForCausalLM, 2 layers, hidden 64, vocab 512",
        build=_build_text,
    ),
    TinyModel(
        name="tiny-mllama-vision",
        stands_in_for="llama-3.2-11b-vision-instruct",
        description="MllamaForConditionalGeneration, text 2 layers + vision 2 layers, 28 px tiles",
        build=_build_vision,
    ),
)


def _is_current(folder: Path) -> bool:
    try:
        marker = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("recipe") == RECIPE_VERSION


def _mark_stand_in(folder: Path, stands_in_for: str) -> None:
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config[STAND_IN_KEY] = stands_in_for
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def build_model(model: TinyModel, root: Path) -> tuple[Path, bool]:
    """Build one model under root unless a current build is there; returns (folder, built_now)."""
    target = root / model.name
    if _is_current(target):
        return target, False
    root.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: a crash never leaves a half-written model that looks complete.
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=root))
    staging.chmod(0o755)  # mkdtemp makes it private; a model folder is read by the serving processes
    try:
        model.build(staging)
        _mark_stand_in(staging, model.stands_in_for)
        (staging / _MARKER).write_text(json.dumps({"recipe": RECIPE_VERSION, "name": model.name}) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, True


def build_all(root: Path | None = None) -> list[tuple[TinyModel, Path, bool]]:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a build is quick and its output is the folder list
    root = root or models_dir()
    built = [(model, *build_model(model, root)) for model in TINY_MODELS]
    for _, folder, _ in built:
        # Signed as the dev signer of this state dir (a cache shared across state dirs is signed again).
        if not verify_checkpoint(folder, DEV_SIGNER).verified:
            sign_checkpoint(folder, DEV_SIGNER)
    return built
