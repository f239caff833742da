"""An air-gap transfer, exported for real (the session's signed bundle, its screening sample, a checkpoint
signed with model-signing, the locks and SBOMs; no wheels or image archives: they need the index and a
builder) and verified offline: the round trip passes, and one changed byte in any member, an extra file, a
missing file or a bad signature is refused, naming the member first."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from sovereign import cli
from sovereign.airgap import layout
from sovereign.airgap.export import ExportOptions, export_transfer, wheel_platforms
from sovereign.airgap.verify import verify_transfer
from sovereign.audit.signed_manifest import MANIFEST, SIGNATURE
from sovereign.errors import BadInput
from sovereign.models.signing import SIGNERS_ENV, sign_checkpoint
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.screening import SAMPLE_LIST

KEY = Ed25519PrivateKey.generate()
# Every member of a us-defense transfer without wheels or archives: the byte-flip test covers each one, and
# test_the_transfer_holds_exactly_these_members keeps this list equal to what the exporter writes.
MEMBERS = [
    "clusters/usdef-east-1.yaml",
    "images/images.json",
    "locks/operator.txt",
    "locks/serving.txt",
    "models/tiny-chat/model.sig",
    "policy/bundle.tar.gz",
    "policy/bundle.wasm.tar.gz",
    "sbom/operator.cdx.json",
    "sbom/serving.cdx.json",
    "screening/consolidated.json",
    "stack/us-defense.yaml",
    "trust/policy-bundle.pem",
    "trust/weights-signers/release-team.pem",
]


def _public_pem(tmp: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp / "exporter.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture(scope="module")
def exported(signed_bundle: SignedBundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    models = tmp_path_factory.mktemp("models")
    checkpoint = models / "tiny-chat"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}\n')
    (checkpoint / "model.safetensors").write_bytes(b"\0" * 64)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SIGNERS_ENV, str(tmp_path_factory.mktemp("signers")))
        sign_checkpoint(checkpoint, "release-team")
        out = tmp_path_factory.mktemp("transfer") / "us-defense"
        export_transfer(
            "us-defense",
            out,
            ExportOptions(stack="us-defense", models=models, wheels=False, archives=False),
            key=KEY,
            progress=lambda line: None,
        )
        yield out


@pytest.fixture
def transfer(exported: Path, tmp_path: Path) -> Path:
    """A copy of the exported transfer a test may change."""
    return Path(shutil.copytree(exported, tmp_path / "transfer"))


@pytest.mark.slow
def test_the_transfer_holds_exactly_these_members(exported: Path) -> None:
    assert sorted(layout.members_of(exported)) == sorted([*MEMBERS, MANIFEST, SIGNATURE])


def test_export_then_verify_round_trip(exported: Path, tmp_path: Path) -> None:
    report = verify_transfer(exported, KEY.public_key())
    assert report.ok, report.problems
    facts = report.facts
    assert facts["region"] == "us-defense" and facts["format"] == layout.FORMAT
    assert facts["screening"]["sources"] and all(s["last_updated"] for s in facts["screening"]["sources"])
    assert facts["models"] == ["tiny-chat"] and facts["wheels"] is False
    images = {image["name"]: image for image in facts["images"]}
    assert images["serving"]["reference"] == "registry.example/sovereign/serving:0.1.0"
    assert images["operator"]["archive"] is None  # no builder asked for: said so in images.json
    # What the region pulls besides the project's images, by the references its stack names.
    assert images["opa"]["reference"] == "openpolicyagent/opa:1.10.0-static"
    assert images["kuberay-operator"]["reference"] == "quay.io/kuberay/operator:v1.5.1"
    done = CliRunner().invoke(
        cli.app, ["airgap", "verify", str(exported), "--key", str(_public_pem(tmp_path, KEY))]
    )
    assert done.exit_code == 0, done.output
    assert "verified (region us-defense" in done.output


@pytest.mark.parametrize("member", [*MEMBERS, MANIFEST, SIGNATURE])
def test_one_changed_byte_in_any_member_is_refused_naming_it(transfer: Path, member: str) -> None:
    path = transfer / member
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = verify_transfer(transfer, KEY.public_key())
    if member in (MANIFEST, SIGNATURE):
        assert report.problems == [f"{MANIFEST}: its signature does not verify with audit key {_key_id()}"]
    else:
        assert report.problems == [f"{member}: its SHA-256 differs from the signed manifest's"]


def _key_id() -> str:
    from sovereign.audit import keys

    return keys.key_id(KEY.public_key())


def test_a_truncated_member_is_named_with_its_size(transfer: Path) -> None:
    path = transfer / layout.SCREENING
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-1])
    assert verify_transfer(transfer, KEY.public_key()).problems == [
        f"{layout.SCREENING}: {size - 1} bytes, but the signed manifest says {size}"
    ]


def test_an_extra_file_is_refused(transfer: Path) -> None:
    (transfer / "wheels").mkdir()
    (transfer / "wheels" / "evil-1.0-py3-none-any.whl").write_bytes(b"PK")
    assert verify_transfer(transfer, KEY.public_key()).problems == [
        "wheels/evil-1.0-py3-none-any.whl: in the transfer but not in the signed manifest"
    ]


def test_a_missing_file_is_refused(transfer: Path) -> None:
    (transfer / layout.POLICY_BUNDLE).unlink()
    assert verify_transfer(transfer, KEY.public_key()).problems == [
        f"{layout.POLICY_BUNDLE}: listed in the manifest but missing from the transfer"
    ]


def test_a_link_in_place_of_a_member_is_refused(transfer: Path, tmp_path: Path) -> None:
    target = transfer / "locks" / "serving.txt"
    outside = tmp_path / "serving.txt"
    shutil.move(target, outside)
    target.symlink_to(outside)
    assert verify_transfer(transfer, KEY.public_key()).problems == [
        "locks/serving.txt: a link, not a file: a transfer holds files only"
    ]


def test_a_bad_signature_is_refused(transfer: Path, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    # Signed by someone else: refused with the anchor, and the anchor's owner is named by key id.
    (transfer / SIGNATURE).write_bytes(_signature(other, (transfer / MANIFEST).read_bytes()))
    assert verify_transfer(transfer, KEY.public_key()).problems == [
        f"{MANIFEST}: its signature does not verify with audit key {_key_id()}"
    ]
    (transfer / SIGNATURE).unlink()
    assert verify_transfer(transfer, KEY.public_key()).problems == [
        f"{MANIFEST} or {SIGNATURE} is missing: the transfer is not signed"
    ]


def _signature(key: Ed25519PrivateKey, data: bytes) -> bytes:
    from sovereign.audit import keys

    return keys.sign(key, data).encode()


def test_the_cli_exits_1_naming_the_first_bad_member(transfer: Path, tmp_path: Path) -> None:
    (transfer / "images" / "images.json").write_text("[]\n")
    (transfer / "clusters" / "usdef-east-1.yaml").unlink()
    done = CliRunner().invoke(
        cli.app, ["airgap", "verify", str(transfer), "--key", str(_public_pem(tmp_path, KEY))]
    )
    assert done.exit_code == 1, done.output
    lines = done.output.splitlines()
    assert (
        lines[0] == "FAILED clusters/usdef-east-1.yaml: listed in the manifest but missing from the transfer"
    )
    assert lines[1].startswith("FAILED images/images.json: ")


def test_a_key_inside_the_transfer_is_refused(transfer: Path) -> None:
    inside = _public_pem(transfer, KEY)
    done = CliRunner().invoke(cli.app, ["airgap", "verify", str(transfer), "--key", str(inside)])
    assert isinstance(done.exception, BadInput) and "lies inside the transfer" in str(done.exception)


def test_export_refuses_a_folder_in_use_and_a_stack_of_another_region(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(BadInput, match="exists and is not an empty folder"):
        export_transfer("us-defense", tmp_path / "used", ExportOptions(stack="us-defense"), key=KEY)
    with pytest.raises(BadInput, match="--stack five-eyes deploys region five-eyes, not us-defense"):
        export_transfer("us-defense", tmp_path / "new", ExportOptions(stack="five-eyes"), key=KEY)


@pytest.mark.slow
def test_the_cli_exports_with_the_audit_key_and_verifies_with_its_public_half(
    signed_bundle: SignedBundle, tmp_path: Path
) -> None:
    out = tmp_path / "five-eyes"
    done = CliRunner().invoke(
        cli.app,
        ["airgap", "export", "--region", "five-eyes", "--out", str(out), "--no-wheels", "--no-images"],
    )
    assert done.exit_code == 0, done.output
    assert "images: no OCI archives in this transfer: not asked for (--no-images)" in done.output
    assert not (out / "wheels").exists() and (out / "clusters" / "fvey-london-1.yaml").is_file()
    done = CliRunner().invoke(cli.app, ["airgap", "verify", str(out)])  # the state dir's audit public key
    assert done.exit_code == 0, done.output


def test_wheels_are_fetched_for_every_glibc_the_target_runs() -> None:
    # pip download takes --platform literally; the locks' target is glibc 2.28 on x86_64.
    tags = wheel_platforms()
    assert tags[0] == "manylinux_2_28_x86_64" and tags[-1] == "manylinux1_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64"} <= set(tags)
    assert "manylinux_2_29_x86_64" not in tags and not any(t.startswith("linux") for t in tags)


@pytest.mark.slow
def test_a_list_the_region_could_not_screen_with_is_not_exported_and_nothing_is_left(
    signed_bundle: SignedBundle, tmp_path: Path
) -> None:
    # The shipped sample given as the list: refused as a sample (only the dev sample is accepted as one).
    out = tmp_path / "us-defense"
    options = ExportOptions(stack="us-defense", screening_list=SAMPLE_LIST, wheels=False, archives=False)
    with pytest.raises(BadInput, match="sample"):
        export_transfer("us-defense", out, options, key=KEY, progress=lambda line: None)
    assert sorted(tmp_path.iterdir()) == []  # neither the transfer nor its half-written staging folder
