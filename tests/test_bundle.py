"""The signed bundle: built from policies/ with a content revision, rebuilt when stale, refused if changed."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sovereign.errors import SovereignError
from sovereign.policy.bundle import (
    BATCH_ENTRYPOINT,
    DECISION_ENTRYPOINT,
    REVISIONS,
    PolicySources,
    SignedBundle,
    build_bundle,
    kept_revision,
    opa_server_args,
    repo_sources,
    signing_key_path,
)
from sovereign.policy.bundle_signature import BundleUnverified, verify_bundle
from sovereign.policy.rest_engine import RestEngine
from sovereign.policy.wasm_engine import WasmEngine

TinyPolicy = Callable[..., PolicySources]


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name.lstrip("/"): tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _rewrite(path: Path, edit: Callable[[dict[str, bytes]], None], out: Path) -> Path:
    """A copy of a bundle tarball in `out` with `edit` applied to its files (name -> bytes)."""
    files = _members(path)
    edit(files)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo("/" + name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    tampered = out / path.name
    tampered.write_bytes(gzip.compress(buffer.getvalue()))
    return tampered


def _flip_byte(name: str) -> Callable[[dict[str, bytes]], None]:
    def edit(files: dict[str, bytes]) -> None:
        content = bytearray(files[name])
        content[len(content) // 2] ^= 0x01
        files[name] = bytes(content)

    return edit


def _tampered_bundle(
    bundle: SignedBundle, edit: Callable[[dict[str, bytes]], None], out: Path
) -> SignedBundle:
    return SignedBundle(
        wasm=_rewrite(bundle.wasm, edit, out),
        rego=_rewrite(bundle.rego, edit, out),
        verification_key=bundle.verification_key,
        revision=bundle.revision,
    )


def _policy_file(bundle: SignedBundle) -> str:
    """A policy file both targets carry (the Wasm target's optimisation rewrites most of them)."""
    in_wasm = _members(bundle.wasm)
    return next(name for name in sorted(_members(bundle.rego)) if name.endswith(".rego") and name in in_wasm)


# --- the real bundle ---------------------------------------------------------------------------------------


def test_both_targets_are_signed_with_the_source_revision(signed_bundle: SignedBundle) -> None:
    key = signed_bundle.verification_key.read_bytes()
    wasm, rego = verify_bundle(signed_bundle.wasm, key), verify_bundle(signed_bundle.rego, key)
    assert wasm.revision == rego.revision == signed_bundle.revision != ""
    assert {DECISION_ENTRYPOINT, BATCH_ENTRYPOINT} <= {w["entrypoint"] for w in wasm.manifest["wasm"]}
    assert "policy.wasm" in wasm.files and "policy.wasm" not in rego.files
    assert json.loads(wasm.files["data.json"]) == repo_sources().load_data()
    rego_files = {name for name in rego.files if name.endswith(".rego")}
    expected = {str(p.relative_to(repo_sources().root)) for p in repo_sources().rego_files()}
    expected.add("system/authz.rego")  # the OPA server's API authorisation, signed with the policy
    assert rego_files == expected
    # The Wasm target is compiled from its partial evaluation (opa build -O=1): optimized/ and the sources
    # it left as they were, all signed.
    wasm_rego = {name for name in wasm.files if name.endswith(".rego")}
    assert {name for name in wasm_rego if name.startswith("optimized/")}
    assert {name for name in wasm_rego if not name.startswith("optimized/")} < expected
    assert not any(name.endswith("_test.rego") for name in rego.files)


def test_signing_key_is_private_and_kept_apart_and_opa_gets_the_trust_anchor(
    signed_bundle: SignedBundle, session_state: Path
) -> None:
    signing_key = signing_key_path()
    assert signing_key.stat().st_mode & 0o077 == 0 and signing_key.parent.stat().st_mode & 0o077 == 0
    assert "PRIVATE KEY" not in signed_bundle.verification_key.read_text()
    bundle_folder = signed_bundle.wasm.parent
    assert {p.name for p in bundle_folder.iterdir()} == {
        "bundle.wasm.tar.gz",
        "bundle.tar.gz",
        "stamp.json",
        REVISIONS,
    }
    # The revision is kept apart from the targets the next build replaces.
    kept = kept_revision(bundle_folder, signed_bundle.revision)
    assert kept.read_bytes() == signed_bundle.rego.read_bytes()
    assert signing_key.parent != bundle_folder != signed_bundle.verification_key.parent
    assert signed_bundle.verification_key == session_state / "trust" / "policy-bundle.pem"
    assert opa_server_args(signed_bundle) == [
        "--authentication=token",
        "--authorization=basic",
        f"--verification-key={signed_bundle.verification_key}",
        "--signing-alg=RS256",
        "--bundle",
        str(signed_bundle.rego),
    ]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda b: _flip_byte(_policy_file(b)), id="policy-file"),
        pytest.param(lambda b: _flip_byte("data.json"), id="data.json"),
        pytest.param(lambda b: _flip_byte(".manifest"), id="manifest"),
        pytest.param(
            lambda b: lambda files: files.update({"extra.rego": b"package extra\n"}), id="extra-file"
        ),
        pytest.param(lambda b: lambda files: files.pop(_policy_file(b)), id="missing-file"),
        pytest.param(lambda b: lambda files: files.pop(".signatures.json"), id="unsigned"),
    ],
)
def test_a_tampered_bundle_is_refused_by_both_engines(
    signed_bundle: SignedBundle, start_opa_server: Callable[..., Any], edit: Callable, tmp_path: Path
) -> None:
    tampered = _tampered_bundle(signed_bundle, edit(signed_bundle), tmp_path)
    key = signed_bundle.verification_key.read_bytes()
    with pytest.raises(BundleUnverified):
        verify_bundle(tampered.wasm, key)

    decision = WasmEngine(tampered.wasm, tampered.verification_key).decide({"model": "any"})
    assert decision["allow"] is False
    assert [v["code"] for v in decision["violations"]] == ["BUNDLE_UNVERIFIED"]
    assert decision["policy_revision"] is None

    # OPA verifies the Rego-target bundle itself and refuses to start on it.
    server = start_opa_server(tampered, ready=False)
    assert server.process.popen.wait(timeout=30) != 0
    assert "bundle" in server.process.log_path.read_text()
    refused = RestEngine(server.url, timeout_s=0.5).decide({"model": "any"})
    assert refused["allow"] is False
    assert [v["code"] for v in refused["violations"]] == ["ENGINE_UNAVAILABLE"]


def test_a_bundle_signed_with_another_key_is_refused(signed_bundle: SignedBundle, tmp_path: Path) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    other_pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(BundleUnverified, match="signature does not verify"):
        verify_bundle(signed_bundle.wasm, other_pem)
    (tmp_path / "other.pem").write_bytes(other_pem)
    decision = WasmEngine(signed_bundle.wasm, tmp_path / "other.pem").decide({"model": "any"})
    assert [v["code"] for v in decision["violations"]] == ["BUNDLE_UNVERIFIED"]


# --- build mechanics, on a tiny policy ---------------------------------------------------------------------


@pytest.mark.slow
def test_rebuilt_exactly_when_the_sources_change(tmp_path: Path, tiny_policy: TinyPolicy) -> None:
    sources = tiny_policy({"sovereign": {"models": {"m1": {}}}})
    out, said = tmp_path / "out", []
    first = build_bundle(sources, out, progress=said.append)
    assert "building and signing" in said[-2] and "signed" in said[-1]

    said.clear()
    assert build_bundle(sources, out, progress=said.append) == first
    assert said == []  # up to date: not rebuilt

    (sources.root / "sovereign" / "decision_test.rego").write_text("package sovereign.decision_test\n")
    test_only = build_bundle(sources, out, progress=said.append)
    assert said and test_only.revision == first.revision  # rebuilt, but tests are not in the bundle

    (sources.root / "data.json").write_text(json.dumps({"sovereign": {"models": {"m2": {}}}}))
    data_changed = build_bundle(sources, out, progress=said.append)
    assert data_changed.revision != first.revision
    assert (
        WasmEngine(data_changed.wasm, data_changed.verification_key).decide({"model": "m2"})["allow"] is True
    )

    rego = sources.root / "sovereign" / "decision.rego"
    rego.write_text(rego.read_text().replace("default result", "# a comment\ndefault result"))
    assert build_bundle(sources, out, progress=said.append).revision not in {
        first.revision,
        data_changed.revision,
    }

    said.clear()
    assert (
        build_bundle(sources, out, progress=said.append, force=True).revision
        == verify_bundle(
            SignedBundle.at(out, "", first.verification_key).wasm, first.verification_key.read_bytes()
        ).revision
    )
    assert said  # --force rebuilds


def test_a_rego_error_fails_the_build_with_opas_message(tmp_path: Path, tiny_policy: TinyPolicy) -> None:
    sources = tiny_policy({})
    (sources.root / "sovereign" / "broken.rego").write_text("package sovereign.broken\n\nx := \n")
    with pytest.raises(SovereignError, match=r"opa build \(wasm target\) failed"):
        build_bundle(sources, tmp_path / "out", progress=lambda line: None)


def test_json_files_are_hashed_the_way_opa_hashes_them(tmp_path: Path, tiny_policy: TinyPolicy) -> None:
    """OPA hashes data.json over its parsed value: strings, numbers and key order must encode as Go does."""
    tricky = {
        "sovereign": {"models": {"m1": {}}},
        "zeta": ["line\u2028sep", "para\u2029sep", "tab\tnew\nline", "bell\u0007", 'quote"back\\slash'],
        "unicode": {"Ünïcødé": "日本語 <&> 🙂", "b": 1.50, "a": 1e3, "c": -0.0, "d": 12345678901234567890},
        "nested": [{"y": None, "x": True}, [], {}],
    }
    sources = tiny_policy(tricky)
    bundle = build_bundle(sources, tmp_path / "out", progress=lambda line: None)
    verified = verify_bundle(bundle.wasm, bundle.verification_key.read_bytes())
    assert json.loads(verified.files["data.json"]) == tricky
