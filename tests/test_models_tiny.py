"""`sovereign models build`: tiny checkpoints built offline, idempotently, loadable like real ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovereign.cli import app
from sovereign.models.tiny import STAND_IN_KEY, TINY_MODELS, build_all


@pytest.fixture(scope="module")
def built(tiny_models: dict[str, Path]) -> dict[str, Path]:
    return tiny_models


@pytest.mark.slow
def test_layout_is_a_real_checkpoint_with_a_stand_in_marker(built: dict[str, Path]) -> None:
    for model in TINY_MODELS:
        folder = built[model.name]
        names = {path.name for path in folder.iterdir()}
        assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= names
        assert "chat_template.jinja" in names
        config = json.loads((folder / "config.json").read_text())
        assert config[STAND_IN_KEY] == model.stands_in_for
    vision = json.loads((built["tiny-mllama-vision"] / "config.json").read_text())
    assert vision["architectures"] == ["MllamaForConditionalGeneration"] and "vision_config" in vision
    text = json.loads((built["tiny-llama-text"] / "config.json").read_text())
    assert text["architectures"] == ["LlamaForCausalLM"] and "vision_config" not in text
    assert text["vocab_size"] <= 512 and text["hidden_size"] <= 64 and text["num_hidden_layers"] == 2


def test_build_is_idempotent(built: dict[str, Path]) -> None:
    root = built["tiny-llama-text"].parent
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    again = build_all(root)
    assert [was_built for _, _, was_built in again] == [False, False]
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


@pytest.mark.slow
def test_a_stale_recipe_is_rebuilt(tmp_path: Path) -> None:
    (folder, was_built), *_ = [(f, b) for _, f, b in build_all(tmp_path)]
    assert was_built
    (folder / ".sovereign-model.json").write_text('{"recipe": 0}')
    rebuilt = {model.name: was for model, _, was in build_all(tmp_path)}
    assert rebuilt == {"tiny-llama-text": True, "tiny-mllama-vision": False}


def test_text_model_generates_real_tokens_through_its_chat_template(built: dict[str, Path]) -> None:
    # transformers (and torch) imported in the two tests that run a model: both test-fast workers collect
    # this module and would pay their ~5 s import, only one runs these.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = built["tiny-llama-text"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>")
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    output = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new = output[0][inputs["input_ids"].shape[1] :]
    assert 1 <= len(new) <= 6 and all(0 <= int(t) < 512 for t in new)


def test_vision_model_takes_an_image(built: dict[str, Path]) -> None:
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = built["tiny-mllama-vision"]
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert "<|image|>" in text
    inputs = processor(images=[Image.new("RGB", (40, 30), (200, 10, 10))], text=text, return_tensors="pt")
    assert inputs["pixel_values"].shape[-2:] == torch.Size([28, 28])
    output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.slow  # builds the checkpoints with torch
def test_cli_build_prints_the_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["models", "build", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"models folder: {tmp_path}" in result.output
    assert "tiny-llama-text      built" in result.output
    again = CliRunner().invoke(app, ["models", "build", "--dir", str(tmp_path)])
    assert "tiny-llama-text      up to date" in again.output
