"""Bundles are built and signed only on purpose (`sovereign bundle build`). Every consumer only verifies,
with a trust anchor configured apart from the bundle, and is undecided (BUNDLE_UNVERIFIED) without one."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from operators.sovereign_operator.engines import engines_from_env
from serving.args import PolicyContext
from serving.guard import RequestGuard
from sovereign import toolchain
from sovereign.errors import SovereignError
from sovereign.policy import subjects
from sovereign.policy.bundle import (
    BUNDLE_DIR_ENV,
    TRUST_ANCHOR_ENV,
    BundleMissing,
    PolicySources,
    SignedBundle,
    build_bundle,
    configured_bundle,
)
from sovereign.policy.bundle_signature import BundleUnverified
from sovereign.policy.clusters import load_cluster
from sovereign.policy.engine import engine_from_env
from sovereign.policy.rest_engine import RestEngine
from sovereign.policy.wasm_engine import WasmEngine

CLUSTERS = toolchain.REPO_ROOT / "clusters"
MODEL, END_USE = "llama-3.3-70b-instruct", "defense"
DECIDE = ["decide", "--cluster", str(CLUSTERS / "usdef-east-1.yaml"), "--model", MODEL, "--end-use", END_USE]
INPUT = subjects.model_input(
    subjects.sovereign_cluster(load_cluster(CLUSTERS / "usdef-east-1.yaml")),
    MODEL,
    END_USE,
    as_of="2026-06-01",
).policy_input({"performed": False, "hits": []})
ALLOW_ALL = 'package sovereign.decision\n\nresult := {"allow": true, "violations": [], "obligations": []}\n'


def sovereign(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process, with this process's environment (and so its state dir)."""
    return subprocess.run(
        [sys.executable, "-m", "sovereign", *args], capture_output=True, text=True, timeout=300
    )


def files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def codes(decision: dict[str, Any]) -> list[str]:
    return [v["code"] for v in decision["violations"]]


@pytest.fixture
def empty_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty state dir, as right after set-up, and no bundle or OPA server configured elsewhere."""
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(state))
    for name in (BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV, "SOVEREIGN_OPA_URL", "SOVEREIGN_SCREENING_LIST"):
        monkeypatch.delenv(name, raising=False)
    return state


@pytest.fixture
def foreign_bundle(tmp_path: Path, tiny_policy: Callable[..., PolicySources]) -> SignedBundle:
    """An allow-everything bundle signed with a key of its own: what someone who can write the bundle's
    folder, but not the trust anchor, could put there."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOVEREIGN_STATE_DIR", str(tmp_path / "foreign-state"))
        sources = tiny_policy({}, decision_rego=ALLOW_ALL)
        return build_bundle(sources, tmp_path / "foreign-bundle", progress=lambda line: None)


# --- with nothing built, nothing is built -----------------------------------------------------------------


@pytest.mark.slow
def test_decide_on_an_empty_state_dir_exits_2_naming_the_build_and_creates_nothing(empty_state: Path) -> None:
    done = sovereign(*DECIDE)
    assert done.returncode == 2, done.stderr
    assert "sovereign bundle build" in done.stderr
    assert codes(json.loads(done.stdout)) == ["BUNDLE_UNVERIFIED"]
    assert files(empty_state) == []  # no key, no bundle, no folder


def test_every_consumer_on_an_empty_state_dir_is_undecided_and_creates_nothing(empty_state: Path) -> None:
    engines = engines_from_env(batch_timeout_s=5.0)  # the operator's
    for decision in [engines.single.decide(INPUT), *engines.batch.decide_many([INPUT, INPUT])]:
        assert decision["allow"] is False and codes(decision) == ["BUNDLE_UNVERIFIED"]
        assert "sovereign bundle build" in decision["violations"][0]["message"]
    # The dev control plane's OPA and the Pulumi program: an error with exit code 2, before anything starts.
    with pytest.raises(BundleMissing, match="sovereign bundle build") as missing:
        configured_bundle()
    assert missing.value.exit_code == 2
    assert files(empty_state) == []


@pytest.mark.slow
def test_bundle_build_creates_the_key_the_anchor_and_the_bundle_each_in_its_own_place(
    empty_state: Path,
) -> None:
    built = sovereign("bundle", "build")
    assert built.returncode == 0, built.stderr
    anchor = empty_state / "trust" / "policy-bundle.pem"
    assert f"trust anchor (the public key consumers verify bundles with) written to {anchor}" in built.stderr
    revision = json.loads((empty_state / "policy-bundle" / "stamp.json").read_text())["revision"]
    assert files(empty_state) == [
        "policy-bundle",
        "policy-bundle/bundle.tar.gz",
        "policy-bundle/bundle.wasm.tar.gz",
        "policy-bundle/bundles",  # each revision kept, for the evidence packs of records judged on it
        f"policy-bundle/bundles/{revision}",
        f"policy-bundle/bundles/{revision}/bundle.tar.gz",
        "policy-bundle/stamp.json",
        "signing",
        "signing/.lock",
        "signing/policy-bundle.key",
        "trust",
        "trust/policy-bundle.pem",
    ]
    assert (empty_state / "signing" / "policy-bundle.key").stat().st_mode & 0o077 == 0
    assert "PRIVATE KEY" not in anchor.read_text()

    decided = sovereign(*DECIDE)
    assert decided.returncode == 0, decided.stderr
    assert f"revision {json.loads(decided.stdout)['policy_revision']}" in built.stdout

    again = sovereign("bundle", "build")
    assert again.returncode == 0 and again.stderr == ""  # up to date: neither rebuilt nor re-keyed


# --- a bundle signed by another key than the anchor ---------------------------------------------------------


def test_a_bundle_signed_by_another_key_is_refused_in_process(
    foreign_bundle: SignedBundle, signed_bundle: SignedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With its own key it verifies and allows: what follows is the anchor's doing.
    assert WasmEngine(foreign_bundle.wasm, foreign_bundle.verification_key).decide(INPUT)["allow"] is True

    monkeypatch.delenv("SOVEREIGN_OPA_URL", raising=False)
    monkeypatch.setenv(BUNDLE_DIR_ENV, str(foreign_bundle.wasm.parent))  # the anchor stays the session's
    operator = engines_from_env(batch_timeout_s=5.0)
    for decision in [engine_from_env().decide(INPUT), operator.single.decide(INPUT)]:
        assert decision["allow"] is False and codes(decision) == ["BUNDLE_UNVERIFIED"]
        assert "signature does not verify" in decision["violations"][0]["message"]
    with pytest.raises(BundleUnverified, match="signature does not verify"):
        configured_bundle()  # the dev control plane and the Pulumi program


@pytest.mark.slow
def test_a_bundle_signed_by_another_key_is_not_served_by_opa(
    foreign_bundle: SignedBundle, signed_bundle: SignedBundle, start_opa_server: Callable[..., Any]
) -> None:
    anchored = replace(foreign_bundle, verification_key=signed_bundle.verification_key)
    server = start_opa_server(anchored, ready=False)
    assert server.process.popen.wait(timeout=30) != 0
    assert "failed to verify JWT signature" in server.process.log_path.read_text()
    refused = RestEngine(server.url, timeout_s=0.5).decide(INPUT)
    assert refused["allow"] is False and codes(refused) == ["ENGINE_UNAVAILABLE"]


def test_a_bundle_signed_by_another_key_means_503_at_the_serving_guard(
    foreign_bundle: SignedBundle, signed_bundle: SignedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOVEREIGN_OPA_URL", raising=False)
    monkeypatch.setenv(BUNDLE_DIR_ENV, str(foreign_bundle.wasm.parent))
    model = "llama-3.1-8b-instruct"
    cluster = subjects.facts_of(load_cluster(CLUSTERS / "eu-frankfurt-1.yaml"))
    guard = RequestGuard(PolicyContext(cluster=cluster, end_use="commercial"), [model])
    verdict = guard.check({"model": model, "messages": [{"role": "user", "content": "hello"}]}, model, "acme")
    assert not verdict.allowed and verdict.status == 503 and verdict.codes == ["BUNDLE_UNVERIFIED"]


# --- the anchor is kept apart ------------------------------------------------------------------------------


def test_an_anchor_beside_the_bundle_is_refused(
    signed_bundle: SignedBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beside = signed_bundle.wasm.parent / "verification-key.pem"
    monkeypatch.setenv(TRUST_ANCHOR_ENV, str(beside))
    with pytest.raises(SovereignError, match="must not be kept beside the bundle"):
        build_bundle(progress=lambda line: None)
    assert not beside.exists()

    copy = tmp_path / "bundle"
    copy.mkdir()
    (copy / signed_bundle.wasm.name).write_bytes(signed_bundle.wasm.read_bytes())
    (copy / "verification-key.pem").write_bytes(signed_bundle.verification_key.read_bytes())
    monkeypatch.setenv(BUNDLE_DIR_ENV, str(copy))
    monkeypatch.setenv(TRUST_ANCHOR_ENV, str(copy / "verification-key.pem"))
    monkeypatch.delenv("SOVEREIGN_OPA_URL", raising=False)
    decision = engine_from_env().decide(INPUT)
    assert (
        codes(decision) == ["BUNDLE_UNVERIFIED"]
        and "beside the bundle" in decision["violations"][0]["message"]
    )


@pytest.mark.slow
def test_the_builder_refuses_an_anchor_of_another_key(
    foreign_bundle: SignedBundle,
    signed_bundle: SignedBundle,
    tmp_path: Path,
    tiny_policy: Callable[..., PolicySources],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TRUST_ANCHOR_ENV, str(foreign_bundle.verification_key))
    with pytest.raises(SovereignError, match="is not the public half of the signing key"):
        build_bundle(tiny_policy({}), tmp_path / "out", progress=lambda line: None)
    assert not (tmp_path / "out").exists()
