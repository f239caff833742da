"""Weights verification: config.json and safetensors headers against the declared catalogue variant.

Real-size checkpoints are written as header-only sparse files: the header declares Llama 3.1 8B or 70B
shaped tensors and the file is extended to the size the offsets need, without allocating the data.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from serving.weights import WeightsRefused, verify_weights
from sovereign import toolchain
from sovereign import vocabulary as k8s
from sovereign.cli import app
from sovereign.models.checkpoint import inspect_weights, weights_fact
from sovereign.models.signing import DEV_SIGNER, SIGNATURE_FILE, sign_checkpoint, verify_checkpoint
from sovereign.models.tiny import STAND_IN_KEY
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import load_cluster
from sovereign.policy.decision_input import DecisionInput
from sovereign.policy.judgement import Judge, Judgement, Verdict
from sovereign.policy.wasm_engine import WasmEngine

USDEF = toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml"

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
def tiny(tiny_models: dict[str, Path]) -> dict[str, Path]:
    return tiny_models


@pytest.fixture(scope="module")
def judge(signed_bundle: SignedBundle) -> Judge:
    return Judge(WasmEngine(signed_bundle.wasm, signed_bundle.verification_key))


def declared(model: str) -> DecisionInput:
    """A deployment of `model` the policy otherwise allows: only the weights can make it a refusal."""
    return subjects.model_input(subjects.sovereign_cluster(load_cluster(USDEF)), model, "defense")


@pytest.mark.slow
def test_tiny_text_model_verifies_as_its_stand_in_and_records_every_digest(tiny, judge) -> None:
    folder = tiny["tiny-llama-text"]
    verified = verify_weights(folder, judge, declared("llama-3.1-8b-instruct"))
    record = verified.record()
    assert record["input_modalities"] == ["text"] and record["stand_in_for"] == "llama-3.1-8b-instruct"
    assert 0 < record["parameters"] < 100_000_000  # the catalogue's stand-in limit
    expected = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert record["files"] == [{"name": "model.safetensors", "sha256": expected}]


def test_tiny_vision_model_verifies_as_a_multimodal_variant(tiny, judge) -> None:
    verified = verify_weights(tiny["tiny-mllama-vision"], judge, declared("llama-3.2-11b-vision-instruct"))
    assert verified.facts.input_modalities == ["image", "text"]
    assert verified.facts.model_type == "mllama"


@pytest.mark.slow
def test_text_only_deployment_with_mllama_weights_is_refused(tiny, judge) -> None:
    with pytest.raises(WeightsRefused) as refused:
        verify_weights(tiny["tiny-mllama-vision"], judge, declared("llama-3.1-8b-instruct"))
    message = str(refused.value)
    assert "WEIGHTS_MISMATCH" in message and "llama-3.1-8b-instruct" in message and "image" in message
    assert "llama-3.2-11b-vision-instruct" in message  # the stand-in names another variant


def test_multimodal_deployment_with_text_weights_is_refused(tiny, judge) -> None:
    with pytest.raises(WeightsRefused, match=r"WEIGHTS_MISMATCH: .*llama-3.2-11b-vision-instruct"):
        verify_weights(tiny["tiny-llama-text"], judge, declared("llama-3.2-11b-vision-instruct"))


def test_a_tiny_model_without_the_marker_fails_the_size_check(tiny, judge, tmp_path: Path) -> None:
    folder = tmp_path / "unmarked"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((tiny["tiny-llama-text"] / "model.safetensors").read_bytes())
    config = json.loads((tiny["tiny-llama-text"] / "config.json").read_text())
    del config[STAND_IN_KEY]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsRefused, match=r"WEIGHTS_MISMATCH: .*llama-3.1-8b-instruct.*parameters"):
        verify_weights(folder, judge, declared("llama-3.1-8b-instruct"))


def test_declared_8b_whose_tensors_add_up_to_70b_is_refused(tmp_path: Path, judge) -> None:
    count = write_sparse_checkpoint(tmp_path / "big", LLAMA_70B)
    assert 70.0e9 < count < 71.0e9
    facts = inspect_weights(tmp_path / "big")
    assert facts.parameters == count
    with pytest.raises(WeightsRefused, match=r"WEIGHTS_MISMATCH: .*<70553706496> parameters"):
        verify_weights(tmp_path / "big", judge, declared("llama-3.1-8b-instruct"))


def test_the_same_70b_header_matches_a_declared_70b(tmp_path: Path, judge) -> None:
    write_sparse_checkpoint(tmp_path / "big", LLAMA_70B)
    # Within the 10 % tolerance; judged on the facts alone: hashing a 141 GB hole is not the point here.
    fact = weights_fact(inspect_weights(tmp_path / "big"))
    assert judge.judge(declared("llama-3.1-70b-instruct"), weights=fact).allowed


def test_a_real_size_checkpoint_cannot_dodge_the_size_check_with_the_marker(tmp_path: Path, judge) -> None:
    write_sparse_checkpoint(tmp_path / "big", LLAMA_70B, {STAND_IN_KEY: "llama-3.1-8b-instruct"})
    judgement = judge.judge(
        declared("llama-3.1-8b-instruct"), weights=weights_fact(inspect_weights(tmp_path / "big"))
    )
    assert judgement.codes == ["WEIGHTS_MISMATCH"] and "parameters" in judgement.message


def test_an_8b_header_matches_a_declared_8b(tmp_path: Path, judge) -> None:
    count = write_sparse_checkpoint(tmp_path / "8b", LLAMA_8B)
    assert 7.9e9 < count < 8.1e9
    fact = weights_fact(inspect_weights(tmp_path / "8b"))
    assert judge.judge(declared("llama-3.1-8b-instruct"), weights=fact).allowed


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
def test_unreadable_checkpoints_are_refused_as_unjudgeable(tmp_path: Path, judge, setup, reason: str) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    setup(folder)
    recorded: list[Judgement] = []
    recording = Judge(judge.engine, recorder=lambda judgement, subject: recorded.append(judgement))
    with pytest.raises(WeightsRefused, match=f"cannot be judged: .*{reason}"):
        verify_weights(folder, recording, declared("llama-3.1-8b-instruct"))
    # No input could be formed: answered and recorded as the judgement API's UNJUDGEABLE, no policy code.
    assert [(j.verdict, j.codes, j.problem and j.problem[0]) for j in recorded] == [
        (Verdict.UNJUDGEABLE, [], k8s.REASON_WEIGHTS_UNREADABLE)
    ]


def test_a_model_outside_the_catalogue_is_never_served(tiny, judge) -> None:
    with pytest.raises(WeightsRefused, match="UNKNOWN_MODEL"):
        verify_weights(tiny["tiny-llama-text"], judge, declared("gpt-4o"))


@pytest.mark.slow
def test_cli_verify_exit_codes(tiny, judge, signed_bundle: SignedBundle) -> None:
    runner = CliRunner()
    where = ["--cluster", str(USDEF), "--end-use", "defense"]
    ok = runner.invoke(
        app, ["models", "verify", str(tiny["tiny-llama-text"]), "-m", "llama-3.1-8b-instruct", *where]
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["model_id"] == "llama-3.1-8b-instruct"
    bad = runner.invoke(
        app, ["models", "verify", str(tiny["tiny-mllama-vision"]), "-m", "llama-3.1-8b-instruct", *where]
    )
    assert bad.exit_code == 1 and isinstance(bad.exception, WeightsRefused)


# --- who produced them: OpenSSF model signatures -----------------------------------------------------------
def _copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    return copy


def _signed_by_dev(model: str) -> DecisionInput:
    return declared(model).model_copy(update={"weights_signer": DEV_SIGNER})


def test_the_tiny_checkpoints_are_signed_and_verify_as_their_signer(tiny, judge) -> None:
    for name, folder in tiny.items():
        assert (folder / SIGNATURE_FILE).is_file(), name
        assert verify_checkpoint(folder, DEV_SIGNER).verified
    verified = verify_weights(tiny["tiny-llama-text"], judge, _signed_by_dev("llama-3.1-8b-instruct"))
    assert verified.model_id == "llama-3.1-8b-instruct"


def test_one_byte_changed_in_a_signed_checkpoint_is_refused_at_load(tiny, judge, tmp_path: Path) -> None:
    folder = _copy(tiny["tiny-llama-text"], tmp_path)
    weights = next(folder.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # the last byte of the last tensor: the header (and so the facts) stay the same
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsRefused) as refused:
        verify_weights(folder, judge, _signed_by_dev("llama-3.1-8b-instruct"))
    message = str(refused.value)
    assert "WEIGHTS_SIGNATURE_INVALID" in message and "sovereign-dev" in message
    assert "https://github.com/ossf/model-signing-spec" in message


def test_a_checkpoint_signed_by_another_key_is_refused_at_load(tiny, judge, tmp_path: Path) -> None:
    folder = _copy(tiny["tiny-llama-text"], tmp_path)
    other = ec.generate_private_key(ec.SECP256R1())
    key = tmp_path / "other.pem"
    key.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    sign_checkpoint(folder, DEV_SIGNER, key)  # claims the dev identity, with someone else's key
    with pytest.raises(WeightsRefused, match="WEIGHTS_SIGNATURE_INVALID"):
        verify_weights(folder, judge, _signed_by_dev("llama-3.1-8b-instruct"))
    (folder / SIGNATURE_FILE).unlink()
    with pytest.raises(WeightsRefused, match="is not signed"):
        verify_weights(folder, judge, _signed_by_dev("llama-3.1-8b-instruct"))


def test_weights_without_a_named_signer_are_served_with_the_notice(tiny, judge) -> None:
    facts = weights_fact(inspect_weights(tiny["tiny-llama-text"]))
    judgement = judge.judge(declared("llama-3.1-8b-instruct"), weights=facts)
    assert judgement.allowed and "WEIGHTS_UNSIGNED_NOTICE" in {o["code"] for o in judgement.obligations}


@pytest.mark.slow
def test_models_sign_and_verify_signer_from_the_cli(
    tiny, tmp_path: Path, signed_bundle: SignedBundle
) -> None:
    folder = _copy(tiny["tiny-llama-text"], tmp_path)
    (folder / SIGNATURE_FILE).unlink()
    runner = CliRunner()
    signed = runner.invoke(app, ["models", "sign", str(folder), "--identity", "acme-release"])
    assert signed.exit_code == 0, signed.output
    assert f"signed {folder} as acme-release" in signed.stdout and (folder / SIGNATURE_FILE).is_file()
    verify = ["models", "verify", str(folder), "-m", "llama-3.1-8b-instruct", "--cluster", str(USDEF)]
    ok = runner.invoke(app, [*verify, "--end-use", "defense", "--signer", "acme-release"])
    assert ok.exit_code == 0, ok.output
    wrong = runner.invoke(app, [*verify, "--end-use", "defense", "--signer", DEV_SIGNER])
    assert wrong.exit_code == 1 and "WEIGHTS_SIGNATURE_INVALID" in str(wrong.exception)
