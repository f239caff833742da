"""Admission judges the checkpoint a LlamaDeployment names, as the replica will at load.

The operator reads the model store where it mounts it (`--weights-mount POD_PATH=OPERATOR_PATH`) and gathers
the same facts a replica gathers before loading (sovereign.models.checkpoint): one changed byte or a
signature by another key is refused by the API server's call to the webhook, before anything is created.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from operators import manifests
from operators.localrun import LocalOperator, wait_until
from operators.sovereign_operator.weights_mounts import WeightsMounts
from sovereign import vocabulary as k8s
from sovereign.devenv.controlplane import ControlPlane
from sovereign.errors import BadInput
from sovereign.models.signing import DEV_SIGNER, SIGNATURE_FILE, sign_checkpoint
from sovereign.policy.judgement import Verdict

MODEL = "llama-3.1-8b-instruct"  # the variant the tiny text checkpoint stands in for


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Path:
    """A model store: the signed tiny checkpoint, a copy with one byte changed, one signed by another key."""
    root = tmp_path_factory.mktemp("store")
    good = root / "good"
    shutil.copytree(tiny_models["tiny-llama-text"], good)
    tampered = root / "tampered"
    shutil.copytree(good, tampered)
    weights = next(tampered.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # tensor data, not the header: the facts are unchanged, only the signature can tell
    weights.write_bytes(bytes(data))
    forged = root / "forged"
    shutil.copytree(good, forged)
    key = root / "other.key"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    sign_checkpoint(forged, DEV_SIGNER, key)  # claims the dev identity with a key that is not its
    return root


def _deployment(name: str, path: str, signer: str | None = DEV_SIGNER) -> dict:
    weights = {"path": path, **({"signer": signer} if signer else {})}
    return {
        "apiVersion": k8s.API_VERSION,
        "kind": k8s.LLAMA_DEPLOYMENT,
        "metadata": {"name": name, "namespace": "usdef-team"},
        "spec": {
            "clusterRef": "usdef-east-1",
            "model": MODEL,
            "endUse": "defense",
            "gpusPerReplica": 0,
            "weights": weights,
        },
    }


# --- the mounts, at the unit seam ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/models", "expected POD_PATH=OPERATOR_PATH"),
        ("models=/tmp", "expected POD_PATH=OPERATOR_PATH"),
        ("/models=", "expected POD_PATH=OPERATOR_PATH"),
        ("/models=/no/such/folder", "/no/such/folder is not a folder"),
    ],
)
def test_a_bad_mount_names_the_option_and_the_form(value: str, expected: str) -> None:
    with pytest.raises(BadInput, match="--weights-mount") as refused:
        WeightsMounts.parse([value])
    assert expected in str(refused.value)


def test_the_longest_mounted_prefix_wins(tmp_path: Path) -> None:
    (tmp_path / "all").mkdir()
    (tmp_path / "eu").mkdir()
    mounts = WeightsMounts.parse([f"/models={tmp_path / 'all'}", f"/models/eu={tmp_path / 'eu'}"])
    assert mounts.locate("/models/eu/llama") == tmp_path / "eu" / "llama"
    assert mounts.locate("/models/us/llama") == tmp_path / "all" / "us" / "llama"
    assert mounts.locate("/modelsX/llama") is None and mounts.locate("/scratch/llama") is None


@pytest.mark.slow
def test_no_mount_means_admission_leaves_the_weights_to_the_replica(store: Path) -> None:
    assert WeightsMounts().fact(_deployment("any", "/models/good")) is None


def test_weights_outside_the_store_or_unreadable_cannot_be_judged(store: Path) -> None:
    mounts = WeightsMounts.parse([f"/models={store}"])
    outside = mounts.fact(_deployment("outside", "/scratch/good"))
    assert not isinstance(outside, dict) and outside is not None
    assert outside.verdict is Verdict.UNJUDGEABLE
    assert outside.problem is not None and outside.problem[0] == k8s.REASON_WEIGHTS_UNREADABLE
    assert "--weights-mount" in outside.message and "/scratch/good" in outside.message
    missing = mounts.fact(_deployment("missing", "/models/nothing-here"))
    assert not isinstance(missing, dict) and missing is not None
    assert "cannot be read" in missing.message


def test_a_passed_checkpoint_is_verified_again_once_a_file_changes(store: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(store / "good", folder)
    mounts = WeightsMounts.parse([f"/models={tmp_path}"])
    first = mounts.fact(_deployment("a", "/models/ckpt"))
    assert isinstance(first, dict) and first["signature"]["verified"] is True
    assert mounts.fact(_deployment("a", "/models/ckpt")) is first  # unchanged: not hashed again
    weights = next(folder.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    again = mounts.fact(_deployment("a", "/models/ckpt"))
    assert isinstance(again, dict) and again["signature"]["verified"] is False
    (folder / SIGNATURE_FILE).unlink()
    unsigned = mounts.fact(_deployment("a", "/models/ckpt"))
    assert isinstance(unsigned, dict) and "is not signed" in unsigned["signature"]["problem"]


# --- through the real API server ---------------------------------------------------------------------------
@pytest.mark.controlplane
@pytest.mark.slow
def test_admission_refuses_tampered_and_forged_weights_and_admits_the_signed_ones(
    store: Path, sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    op = sovereign_operator
    for path in ("namespaces.yaml", "us-defense/sovereigncluster.yaml"):
        done = controlplane.kubectl("apply", "-f", str(manifests.EXAMPLES_DIR / path))
        assert done.returncode == 0, done.stderr

    def apply(body: dict) -> tuple[int, str]:
        file = tmp_path / f"{body['metadata']['name']}.yaml"
        file.write_text(yaml.safe_dump(body))
        done = controlplane.kubectl("apply", "-f", str(file))
        return done.returncode, done.stderr

    op.start(f"--weights-mount=/models={store}")
    try:
        code, err = apply(_deployment("weights-tampered", "/models/tampered"))
        assert code != 0 and "WEIGHTS_SIGNATURE_INVALID (spec.weights.path / spec.weights.signer)" in err, err
        assert "are not proven signed by <sovereign-dev>" in err
        assert "https://github.com/ossf/model-signing-spec" in err

        code, err = apply(_deployment("weights-forged", "/models/forged"))
        assert code != 0 and "WEIGHTS_SIGNATURE_INVALID" in err, err

        code, err = apply(_deployment("weights-elsewhere", "/scratch/good"))
        assert code != 0 and "outside the model store the operator verifies (/models)" in err, err

        for refused in ("weights-tampered", "weights-forged", "weights-elsewhere"):
            assert op.get("llamadeployments", refused, "usdef-team") is None

        code, err = apply(_deployment("weights-signed", "/models/good"))
        assert code == 0, err
        wait_until(lambda: op.get("rayservices", "weights-signed", "usdef-team"), 30, "its RayService")
    finally:
        op.delete("llamadeployments", "weights-signed", "usdef-team")
        op.start()  # as found: no mount
