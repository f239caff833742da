"""Weights verification: config.json and safetensors headers against the declared catalogue variant.

Real-size checkpoints are written as header-only sparse files: the header declares Llama 3.1 8B or 70B
shaped tensors and the file is extended to the size the offsets need, without allocating the data.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.weights import (
    STAND_IN_MAX_PARAMETERS,
    WeightsRefused,
    inspect_weights,
    mismatches,
    verify_weights,
)
from sovereign.cli import app
from sovereign.models.tiny import STAND_IN_KEY, build_all
from sovereign.policydata import load_policy_data

# (hidden, layers, intermediate, vocab, kv_dim) of the published Llama 3.1 configs.
LLAMA_8B = (4096, 32, 14336, 128256, 1024)
LLAMA_70B = (8192, 80, 28672, 128256, 1024)


def _llama_tensors(hidden: int, layers: int, inter: int, vocab: int, kv: int) -> dict[str, list[int]]:
    tensors = {"model.embed_tokens.weight": [vocab, hidden], "lm_head.weight": [vocab, hidden]}
    tensors["model.norm.weight"] = [hidden]
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors |= {
            p + "self_attn.q_proj.weight": [hidden, hidden],
            p + "self_attn.k_proj.weight": [kv, hidden],
            p + "self_attn.v_proj.weight": [kv, hidden],
            p + "self_attn.o_proj.weight": [hidden, hidden],
            p + "mlp.gate_proj.weight": [inter, hidden],
            p + "mlp.up_proj.weight": [inter, hidden],
            p + "mlp.down_proj.weight": [hidden, inter],
            p + "input_layernorm.weight": [hidden],
            p + "post_attention_layernorm.weight": [hidden],
        }
    return tensors


def write_sparse_checkpoint(folder: Path, shape: tuple[int, ...], config_extra: dict | None = None) -> int:
    """A Llama checkpoint of real size whose tensor data is a hole; returns its parameter count."""
    folder.mkdir(parents=True)
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dims in _llama_tensors(*shape).items():
        size = 2  # bf16
        for dim in dims:
            size *= dim
        header[name] = {"dtype": "BF16", "shape": dims, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with (folder / "model.safetensors").open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    hidden, layers, inter, vocab, _ = shape
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": inter,
        "vocab_size": vocab,
        **(config_extra or {}),
    }
    (folder / "config.json").write_text(json.dumps(config))
    return offset // 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {model.name: folder for model, folder, _ in build_all(tmp_path_factory.mktemp("models"))}


@pytest.fixture(scope="module")
def catalogue():
    return load_policy_data()


def test_tiny_text_model_verifies_as_its_stand_in_and_records_every_digest(tiny, catalogue) -> None:
    folder = tiny["tiny-llama-text"]
    verified = verify_weights(folder, "llama-3.1-8b-instruct", catalogue)
    record = verified.record()
    assert record["input_modalities"] == ["text"] and record["stand_in_for"] == "llama-3.1-8b-instruct"
    assert 0 < record["parameters"] < STAND_IN_MAX_PARAMETERS
    expected = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert record["files"] == [{"name": "model.safetensors", "sha256": expected}]


def test_tiny_vision_model_verifies_as_a_multimodal_variant(tiny, catalogue) -> None:
    verified = verify_weights(tiny["tiny-mllama-vision"], "llama-3.2-11b-vision-instruct", catalogue)
    assert verified.facts.input_modalities == ["image", "text"]
    assert verified.facts.model_type == "mllama"


def test_text_only_deployment_with_mllama_weights_is_refused(tiny, catalogue) -> None:
    with pytest.raises(WeightsRefused) as refused:
        verify_weights(tiny["tiny-mllama-vision"], "llama-3.1-8b-instruct", catalogue)
    message = str(refused.value)
    assert "modality: llama-3.1-8b-instruct takes text input but the weights are mllama" in message
    assert "stand-in: the weights stand in for llama-3.2-11b-vision-instruct" in message


def test_multimodal_deployment_with_text_weights_is_refused(tiny, catalogue) -> None:
    with pytest.raises(WeightsRefused, match=r"modality: llama-3.2-11b-vision-instruct takes image\+text"):
        verify_weights(tiny["tiny-llama-text"], "llama-3.2-11b-vision-instruct", catalogue)


def test_a_tiny_model_without_the_marker_fails_the_size_check(tiny, catalogue, tmp_path: Path) -> None:
    folder = tmp_path / "unmarked"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((tiny["tiny-llama-text"] / "model.safetensors").read_bytes())
    config = json.loads((tiny["tiny-llama-text"] / "config.json").read_text())
    del config[STAND_IN_KEY]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsRefused, match=r"size: llama-3.1-8b-instruct has 8.00B parameters .* 0.00B"):
        verify_weights(folder, "llama-3.1-8b-instruct", catalogue)


def test_declared_8b_whose_tensors_add_up_to_70b_is_refused(tmp_path: Path, catalogue) -> None:
    count = write_sparse_checkpoint(tmp_path / "big", LLAMA_70B)
    assert 70.0e9 < count < 71.0e9
    facts = inspect_weights(tmp_path / "big")
    assert facts.parameters == count
    with pytest.raises(WeightsRefused, match=r"size: llama-3.1-8b-instruct has 8.00B .* weights hold 70.55B"):
        verify_weights(tmp_path / "big", "llama-3.1-8b-instruct", catalogue)


def test_the_same_70b_header_matches_a_declared_70b(tmp_path: Path, catalogue) -> None:
    write_sparse_checkpoint(tmp_path / "big", LLAMA_70B)
    variant = catalogue.model("llama-3.1-70b-instruct")
    # Within the 10 % tolerance; no digest taken: hashing a 141 GB hole is not the point here.
    assert mismatches(inspect_weights(tmp_path / "big"), variant.id, variant) == []


def test_a_real_size_checkpoint_cannot_dodge_the_size_check_with_the_marker(
    tmp_path: Path, catalogue
) -> None:
    write_sparse_checkpoint(tmp_path / "big", LLAMA_70B, {STAND_IN_KEY: "llama-3.1-8b-instruct"})
    variant = catalogue.model("llama-3.1-8b-instruct")
    problems = mismatches(inspect_weights(tmp_path / "big"), variant.id, variant)
    assert [p.split(":")[0] for p in problems] == ["size"]


def test_an_8b_header_matches_a_declared_8b(tmp_path: Path, catalogue) -> None:
    count = write_sparse_checkpoint(tmp_path / "8b", LLAMA_8B)
    assert 7.9e9 < count < 8.1e9
    variant = catalogue.model("llama-3.1-8b-instruct")
    assert mismatches(inspect_weights(tmp_path / "8b"), variant.id, variant) == []


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda f: None, "config.json is missing"),
        (lambda f: (f / "config.json").write_text("{not json"), "cannot be read as JSON"),
        (lambda f: (f / "config.json").write_text("{}"), "holds no .safetensors weights"),
        (
            lambda f: [(f / "config.json").write_text("{}"), (f / "model.safetensors").write_bytes(b"\x10")],
            "not a readable safetensors file",
        ),
    ],
)
def test_unreadable_checkpoints_are_refused(tmp_path: Path, catalogue, setup, reason: str) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    setup(folder)
    with pytest.raises(WeightsRefused, match=reason):
        verify_weights(folder, "llama-3.1-8b-instruct", catalogue)


def test_a_model_outside_the_catalogue_is_never_served(tiny, catalogue) -> None:
    with pytest.raises(WeightsRefused, match="not in the catalogue"):
        verify_weights(tiny["tiny-llama-text"], "gpt-4o", catalogue)


def test_cli_verify_exit_codes(tiny) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["models", "verify", str(tiny["tiny-llama-text"]), "-m", "llama-3.1-8b-instruct"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["model_id"] == "llama-3.1-8b-instruct"
    bad = runner.invoke(
        app, ["models", "verify", str(tiny["tiny-mllama-vision"]), "-m", "llama-3.1-8b-instruct"]
    )
    assert bad.exit_code == 1 and isinstance(bad.exception, WeightsRefused)
