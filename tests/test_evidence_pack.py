"""Evidence packs against every single change an archive can suffer: `verify_pack` refuses each, naming the
member, and passes the untouched pack. Built by the real `export_pack` from a real decision log; the live
state is given as empty (the region's API server is exercised in tests/test_decision_log.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tar_members import archive

from operators.sovereign_operator.weights_mounts import WeightsMounts
from sovereign import toolchain
from sovereign import vocabulary as k8s
from sovereign.audit import DecisionLog, Point, record_of
from sovereign.errors import BadInput
from sovereign.evidence import pack
from sovereign.evidence.export import export_pack
from sovereign.evidence.live import RegionState
from sovereign.evidence.verify import verify_pack
from sovereign.models.signing import DEV_SIGNER, SIGNATURE_FILE, signer_key
from sovereign.policy import subjects
from sovereign.policy.bundle import (
    BUNDLE_DIR_ENV,
    SignedBundle,
    build_bundle,
    folder_sources,
    install_bundle,
    kept_revision,
)
from sovereign.policy.clusters import load_cluster
from sovereign.policy.judgement import Judge
from sovereign.policy.wasm_engine import WasmEngine

KEY = Ed25519PrivateKey.generate()
CASES = {"count": 0}


def _export(
    folder: Path,
    log: Path,
    out: Path,
    state: RegionState | None = None,
    mounts: WeightsMounts | None = None,
) -> None:
    """Export us-defense from `log` with the bundle folder `folder`; the live state empty unless given."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(BUNDLE_DIR_ENV, str(folder))
        export_pack(
            "us-defense",
            out,
            kubeconfig=None,
            clusters_dir=toolchain.REPO_ROOT / "clusters",
            log_dir=log,
            state=state or RegionState([], [], []),
            weights_mounts=mounts,
            key=KEY,
            progress=lambda line: None,
        )


@pytest.fixture(scope="module")
def usdef_log(signed_bundle: SignedBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log holding real judgements of the us-defense region's declared deployments."""
    log = tmp_path_factory.mktemp("log")
    judge = Judge(WasmEngine(signed_bundle.wasm, signed_bundle.verification_key))
    spec = load_cluster(toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml")
    with DecisionLog.open(log, "operator", key=KEY) as writer:
        for name, inp in subjects.declared_inputs(spec).items():
            writer.append(
                record_of(judge.judge(inp), point=Point.ADMISSION, subject=f"LlamaDeployment {name}")
            )
    return log


@pytest.fixture(scope="module")
def built(
    signed_bundle: SignedBundle, usdef_log: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, SignedBundle]:
    """A pack of the us-defense region exported from that log."""
    out = tmp_path_factory.mktemp("pack") / "us-defense.tar.gz"
    _export(signed_bundle.wasm.parent, usdef_log, out)
    return out, signed_bundle


@pytest.mark.slow
def test_the_untouched_pack_verifies(built: tuple[Path, SignedBundle]) -> None:
    path, bundle = built
    report = verify_pack(path, KEY.public_key(), bundle.verification_key)
    assert report.ok, report.problems
    assert report.facts["region"] == "us-defense" and report.facts["records"] > 0


@st.composite
def tampering(draw: st.DrawFn, names: list[str]) -> tuple[str, str, int, int]:
    return (
        draw(st.sampled_from(names)),
        draw(st.sampled_from(["edit", "insert", "delete", "reorder", "truncate"])),
        draw(st.integers(min_value=0, max_value=2**31)),
        draw(st.integers(min_value=1, max_value=64)),
    )


def _changed(data: bytes, kind: str, at: int, size: int) -> bytes:
    """`data` with one change of `kind` at a position drawn from `at`; never the same bytes."""
    at = at % max(len(data), 1)
    if kind == "edit":
        return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :] if data else b"\x01"
    if kind == "insert":
        return data[:at] + b"x" * size + data[at:]
    if kind == "delete":
        return data[:at] + data[at + size :] if data else b"\x01"
    if kind == "truncate":
        return data[: min(at, len(data) - 1)] if data else b"\x01"
    middle, tail = data[at : at + size], data[at + size : at + 2 * size]
    swapped = data[:at] + tail + middle + data[at + 2 * size :]
    return swapped if swapped != data else data + b"\n"  # identical halves: a reordering changes nothing


@pytest.mark.slow  # 1,000 tampered packs, each verified: `make test` runs it, not `make test-fast`
def test_any_single_change_to_any_member_is_refused_naming_it(
    built: tuple[Path, SignedBundle], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path, bundle = built
    members = pack.read(path)
    scratch = tmp_path_factory.mktemp("tampered") / "pack.tar.gz"

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(tampering(sorted(members)))
    def check(case: tuple[str, str, int, int]) -> None:
        name, kind, at, size = case
        changed = {**members, name: _changed(members[name], kind, at, size)}
        scratch.write_bytes(archive(changed))
        report = verify_pack(scratch, KEY.public_key(), bundle.verification_key)
        named = pack.MANIFEST if name == pack.SIGNATURE else name
        assert not report.ok and report.problems[0].startswith(named), (case, report.problems)
        CASES["count"] += 1

    check()
    assert CASES["count"] >= 1000


def test_a_member_removed_added_or_members_reordered(
    built: tuple[Path, SignedBundle], tmp_path: Path
) -> None:
    path, bundle = built
    members = pack.read(path)
    scratch = tmp_path / "pack.tar.gz"
    for name in sorted(members):
        if name in (pack.MANIFEST, pack.SIGNATURE):
            continue
        scratch.write_bytes(archive({k: v for k, v in members.items() if k != name}))
        report = verify_pack(scratch, KEY.public_key(), bundle.verification_key)
        assert report.problems == [f"{name}: listed in the manifest but missing from the pack"], name
    scratch.write_bytes(archive({**members, "notes.txt": b"added later"}))
    report = verify_pack(scratch, KEY.public_key(), bundle.verification_key)
    assert report.problems == ["notes.txt: in the pack but not in the signed manifest"]
    # The archive's own order is not evidence: the manifest names the members, not their order.
    scratch.write_bytes(archive(members, sorted(members, reverse=True)))
    assert verify_pack(scratch, KEY.public_key(), bundle.verification_key).ok
    scratch.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    report = verify_pack(scratch, KEY.public_key(), bundle.verification_key)
    assert report.problems and "not a readable evidence pack" in report.problems[0]


@pytest.fixture(scope="module")
def two_revisions(
    signed_bundle: SignedBundle, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path, SignedBundle, SignedBundle]:
    """A region whose log holds decisions on two policy revisions: the session's, then a changed one
    published over it into the same bundle folder. Returns that folder, the log, its pack, both bundles."""
    policies = tmp_path_factory.mktemp("policies") / "policies"
    shutil.copytree(toolchain.REPO_ROOT / "policies", policies)
    with (policies / "sovereign" / "decision" / "decision.rego").open("a") as rego:
        rego.write("\n# changed: a new revision\n")
    changed = build_bundle(
        folder_sources(policies), tmp_path_factory.mktemp("changed"), progress=lambda line: None
    )
    assert changed.revision != signed_bundle.revision
    folder = tmp_path_factory.mktemp("bundle-folder")
    log = tmp_path_factory.mktemp("log-two")
    spec = load_cluster(toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml")
    with DecisionLog.open(log, "operator", key=KEY) as writer:
        for bundle in (signed_bundle, changed):
            install_bundle(bundle, folder)  # as `sovereign bundle publish` does
            judge = Judge(WasmEngine(bundle.wasm, bundle.verification_key))
            for name, inp in subjects.declared_inputs(spec).items():
                writer.append(
                    record_of(judge.judge(inp), point=Point.DRIFT, subject=f"LlamaDeployment {name}")
                )
    out = tmp_path_factory.mktemp("pack-two") / "us-defense.tar.gz"
    _export(folder, log, out)
    return folder, log, out, signed_bundle, changed


def _resigner(exported: Path, out: Path) -> tuple[dict[str, bytes], Callable[[dict[str, bytes]], Path]]:
    """The members of `exported` but its manifest, and a function writing changed members to `out` as a
    pack signed by the exporter's key again: what remains to be caught is what was changed."""
    members = pack.read(exported)
    manifest = json.loads(members.pop(pack.MANIFEST))
    members.pop(pack.SIGNATURE)
    facts = {k: v for k, v in manifest.items() if k not in ("format", "members")}

    def resign(changed: dict[str, bytes]) -> Path:
        pack.write(out, changed, facts, KEY)
        return out

    return members, resign


@pytest.mark.slow
def test_the_pack_carries_the_bundle_of_every_revision_its_records_name(
    two_revisions: tuple[Path, Path, Path, SignedBundle, SignedBundle],
) -> None:
    _, _, out, old, new = two_revisions
    members = pack.read(out)
    assert {name for name in members if name.startswith(pack.POLICY_PREFIX)} == {
        pack.policy_bundle(old.revision),
        pack.policy_bundle(new.revision),
    }
    assert members[pack.policy_bundle(old.revision)] == old.rego.read_bytes()
    report = verify_pack(out, KEY.public_key(), old.verification_key)
    assert report.ok, report.problems
    assert report.facts["policy_revision"] == new.revision


def test_export_refuses_when_a_named_revision_is_no_longer_kept(
    two_revisions: tuple[Path, Path, Path, SignedBundle, SignedBundle], tmp_path: Path
) -> None:
    folder, log, _, old, _ = two_revisions
    copy = tmp_path / "bundle-folder"
    shutil.copytree(folder, copy)
    shutil.rmtree(kept_revision(copy, old.revision).parent)
    with pytest.raises(
        BadInput, match=f"no longer keeps policy revision\\(s\\) {old.revision} .*record operator-"
    ):
        _export(copy, log, tmp_path / "pack.tar.gz")


def test_verify_names_the_record_whose_revision_has_no_bundle_and_checks_each_bundle(
    two_revisions: tuple[Path, Path, Path, SignedBundle, SignedBundle], tmp_path: Path
) -> None:
    _, _, exported, old, new = two_revisions
    members, resign = _resigner(exported, tmp_path / "pack.tar.gz")
    without_old = {k: v for k, v in members.items() if k != pack.policy_bundle(old.revision)}
    out = resign(without_old)
    problems = verify_pack(out, KEY.public_key(), old.verification_key).problems
    first = pack.revisions_named(members)[old.revision]
    assert problems == [
        f"{pack.LOG_PREFIX}{first.rpartition(':')[0]}.log: record {first} was judged on policy revision "
        f"{old.revision}, but its bundle {pack.policy_bundle(old.revision)} is not packed"
    ]
    # A bundle under another revision's name, and one signed by another key, are refused by name.
    swapped = {**without_old, pack.policy_bundle(old.revision): members[pack.policy_bundle(new.revision)]}
    problems = verify_pack(resign(swapped), KEY.public_key(), old.verification_key).problems
    assert problems == [
        f"{pack.policy_bundle(old.revision)}: holds revision {new.revision}, not {old.revision}"
    ]
    other_anchor = tmp_path / "other.pem"
    other_anchor.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    problems = verify_pack(out, KEY.public_key(), other_anchor).problems
    assert {p.split(":")[0] for p in problems} == {
        pack.policy_bundle(old.revision),
        pack.policy_bundle(new.revision),
    }


SIGNED = "usdef-team/usdef-chat"  # a deployment whose checkpoint the exporter reads through its mount


@pytest.fixture(scope="module")
def weights_pack(
    signed_bundle: SignedBundle,
    usdef_log: Path,
    tiny_models: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """us-defense exported with a deployment serving a signed tiny checkpoint under the mounted store (its
    RayService's digests recorded), and another whose checkpoint lies outside every mount."""
    folder = next(iter(tiny_models.values()))
    weights_file = folder / "model.safetensors"
    digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()

    def deployment(ident: str, path: str) -> dict[str, Any]:
        namespace, name = ident.split("/")
        weights = {"path": path, "signer": DEV_SIGNER}
        return {
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"model": folder.name, "clusterRef": "usdef-east-1", "weights": weights},
        }

    namespace, name = SIGNED.split("/")
    condition = {
        "type": k8s.CONDITION_WEIGHTS_VERIFIED,
        "status": "True",
        "message": f"{folder.name}: {weights_file.name} sha256={digest}",
    }
    rayservice = {
        "metadata": {"namespace": namespace, "name": name, "labels": {k8s.LABEL_CLUSTER: "usdef-east-1"}},
        "status": {"conditions": [condition]},
    }
    deployments = [deployment(SIGNED, f"/models/{folder.name}"), deployment("usdef-team/other", "/opt/x")]
    out = tmp_path_factory.mktemp("pack-weights") / "us-defense.tar.gz"
    mounts = WeightsMounts.parse([f"/models={folder.parent}"])
    _export(signed_bundle.wasm.parent, usdef_log, out, RegionState([], deployments, [rayservice]), mounts)
    return out


@pytest.mark.slow
def test_the_pack_carries_each_checkpoints_signature_and_its_signers_key(
    weights_pack: Path, tiny_models: dict[str, Path], signed_bundle: SignedBundle
) -> None:
    members = pack.read(weights_pack)
    folder = next(iter(tiny_models.values()))
    assert members[pack.weights_signature(SIGNED)] == (folder / SIGNATURE_FILE).read_bytes()
    assert members[pack.signer_key(DEV_SIGNER)] == signer_key(DEV_SIGNER).read_bytes()
    # Only the checkpoint readable through the mount is listed: the other's is nowhere here.
    assert json.loads(members[pack.WEIGHTS_SIGNATURES]) == [
        {
            "deployment": SIGNED,
            "signer": DEV_SIGNER,
            "signature": pack.weights_signature(SIGNED),
            "key": pack.signer_key(DEV_SIGNER),
        }
    ]
    report = verify_pack(weights_pack, KEY.public_key(), signed_bundle.verification_key)
    assert report.ok, report.problems


def test_verify_checks_each_signature_with_its_signers_key_and_the_recorded_digests(
    weights_pack: Path, signed_bundle: SignedBundle, tmp_path: Path
) -> None:
    members, resign = _resigner(weights_pack, tmp_path / "pack.tar.gz")
    anchor = signed_bundle.verification_key
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    problems = verify_pack(
        resign({**members, pack.signer_key(DEV_SIGNER): other_pem}), KEY.public_key(), anchor
    )
    assert len(problems.problems) == 1
    assert problems.problems[0].startswith(f"{pack.weights_signature(SIGNED)}: does not verify with ")
    # A digest the data plane recorded that the signature does not sign: named by deployment and file.
    weights = json.loads(members[pack.WEIGHTS])
    weights[0]["sha256"] = "0" * 64
    report = verify_pack(resign({**members, pack.WEIGHTS: pack.as_json(weights)}), KEY.public_key(), anchor)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(
        f"{pack.WEIGHTS}: {SIGNED} model.safetensors: the data plane recorded"
    )
    # No published key for the signer: not checked, and said so.
    rows = json.loads(members[pack.WEIGHTS_SIGNATURES])
    rows[0]["key"] = None
    unkeyed = {k: v for k, v in members.items() if k != pack.signer_key(DEV_SIGNER)}
    report = verify_pack(
        resign({**unkeyed, pack.WEIGHTS_SIGNATURES: pack.as_json(rows)}), KEY.public_key(), anchor
    )
    assert report.ok and any("public key was not published" in warning for warning in report.warnings)
