"""Evidence packs against every single change an archive can suffer: `verify_pack` refuses each, naming the
member, and passes the untouched pack. Built by the real `export_pack` from a real decision log; the live
state is given as empty (the region's API server is exercised in tests/test_decision_log.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tar_members import archive

from sovereign import toolchain
from sovereign.audit import DecisionLog, Point, record_of
from sovereign.evidence import pack
from sovereign.evidence.export import export_pack
from sovereign.evidence.live import RegionState
from sovereign.evidence.verify import verify_pack
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import load_cluster
from sovereign.policy.judgement import Judge
from sovereign.policy.wasm_engine import WasmEngine

KEY = Ed25519PrivateKey.generate()
CASES = {"count": 0}


@pytest.fixture(scope="module")
def built(signed_bundle: SignedBundle, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SignedBundle]:
    """A pack of the us-defense region whose log holds real judgements of its declared deployments."""
    log = tmp_path_factory.mktemp("log")
    judge = Judge(WasmEngine(signed_bundle.wasm, signed_bundle.verification_key))
    spec = load_cluster(toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml")
    with DecisionLog.open(log, "operator", key=KEY) as writer:
        for name, inp in subjects.declared_inputs(spec).items():
            writer.append(
                record_of(judge.judge(inp), point=Point.ADMISSION, subject=f"LlamaDeployment {name}")
            )
    out = tmp_path_factory.mktemp("pack") / "us-defense.tar.gz"
    export_pack(
        "us-defense",
        out,
        kubeconfig=None,
        clusters_dir=toolchain.REPO_ROOT / "clusters",
        log_dir=log,
        state=RegionState([], [], []),
        key=KEY,
        progress=lambda line: None,
    )
    return out, signed_bundle


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
