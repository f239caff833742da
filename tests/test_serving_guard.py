"""The per-request guard on the real in-process engine (signed Wasm bundle) and the real REST engine."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from serving.args import PolicyContext
from serving.guard import Answer, RequestGuard
from sovereign import toolchain
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import load_cluster
from sovereign.policy.engine import fail_closed
from sovereign.policy.judgement import Judgement
from sovereign.policy.rest_engine import RestEngine

CLUSTERS = toolchain.REPO_ROOT / "clusters"
TEXT_8B = "llama-3.1-8b-instruct"
VISION_11B = "llama-3.2-11b-vision-instruct"
PNG_PART = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAE="}}


def chat(*content: Any) -> dict[str, Any]:
    return {"model": TEXT_8B, "messages": [{"role": "user", "content": list(content) or "hello"}]}


@pytest.fixture(autouse=True)
def _policy_bundle(monkeypatch: pytest.MonkeyPatch, signed_bundle: SignedBundle) -> None:
    """The guard's engine evaluates the session's bundle in-process."""
    monkeypatch.delenv("SOVEREIGN_OPA_URL", raising=False)


def context(name: str, end_use: str) -> PolicyContext:
    """A replica's policy context for cluster file `name`, serving for `end_use`."""
    return PolicyContext(cluster=subjects.facts_of(load_cluster(CLUSTERS / f"{name}.yaml")), end_use=end_use)


def eu_guard(model: str = TEXT_8B) -> RequestGuard:
    return RequestGuard(context("eu-frankfurt-1", "commercial"), [model])


@pytest.mark.slow
def test_text_request_on_the_eu_cluster_is_allowed_by_the_wasm_engine() -> None:
    guard = eu_guard()
    assert guard.judge.engine.name == "wasm"
    verdict = guard.check(chat({"type": "text", "text": "hello"}), TEXT_8B, "acme")
    assert verdict.allowed and verdict.modalities == ["text"]
    assert verdict.judgement.engine == "wasm" and verdict.judgement.policy_revision


@pytest.mark.slow
def test_image_request_on_a_text_model_in_the_eu_is_refused() -> None:
    verdict = eu_guard().check(chat(PNG_PART), TEXT_8B, "acme")
    assert not verdict.allowed and verdict.status == 403
    assert verdict.modalities == ["image", "text"]


@pytest.mark.slow
def test_a_multimodal_model_on_the_eu_cluster_is_refused_with_region_modality_from_the_rego() -> None:
    verdict = eu_guard(VISION_11B).check(chat(), VISION_11B, None)
    assert not verdict.allowed and verdict.status == 403
    assert "REGION_MODALITY" in verdict.codes


@pytest.mark.slow
def test_image_request_on_the_us_defense_vision_model_is_allowed() -> None:
    guard = RequestGuard(context("usdef-east-1", "defense"), [VISION_11B])
    verdict = guard.check(chat(PNG_PART), VISION_11B, "army")
    assert verdict.allowed and verdict.modalities == ["image", "text"]


@pytest.mark.slow
def test_content_the_hosted_model_does_not_take_is_refused_by_the_policy() -> None:
    guard = RequestGuard(context("usdef-east-1", "defense"), [VISION_11B])
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}}
    verdict = guard.check(chat(audio), VISION_11B, None)
    assert not verdict.allowed and verdict.status == 403
    assert "audio" in verdict.modalities and "REQUEST_MODALITY_UNSUPPORTED" in verdict.codes


@pytest.mark.slow
def test_decision_input_carries_the_request_facts() -> None:
    inp = eu_guard().decision_input(TEXT_8B, {"text", "image"}, "acme")
    assert inp["request"] == {"modalities": ["image", "text"], "tenant": "acme"}
    assert inp["model"] == TEXT_8B and inp["end_use"] == "commercial"
    assert inp["cluster"]["region"] == "eu-text-only"
    assert inp["as_of"] == datetime.now(UTC).date().isoformat()


def test_unreachable_opa_server_means_503_never_served() -> None:
    from sovereign.devenv.process import free_port

    engine = RestEngine(f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    guard = RequestGuard(context("eu-frankfurt-1", "commercial"), [TEXT_8B], engine=engine)
    verdict = guard.check(chat(), TEXT_8B, None)
    assert not verdict.allowed and verdict.status == 503 and verdict.codes == ["ENGINE_UNAVAILABLE"]


def test_an_engine_that_cannot_start_means_503(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(progress: Any = None) -> Any:
        raise RuntimeError("bundle signing key missing")

    monkeypatch.setattr("sovereign.policy.engine.engine_from_env", broken)
    guard = eu_guard()
    assert guard.judge.engine.name == "none"
    verdict = guard.check(chat(), TEXT_8B, None)
    assert verdict.status == 503 and "bundle signing key missing" in verdict.message


@pytest.mark.slow
def test_wasm_decisions_are_memoised_per_input_but_failures_never(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = eu_guard()
    calls: list[dict[str, Any]] = []
    real = guard.judge.engine.decide
    answers: list[dict[str, Any]] = []

    def counting(inp: dict[str, Any]) -> dict[str, Any]:
        calls.append(inp)
        return answers.pop(0) if answers else real(inp)

    monkeypatch.setattr(guard.judge.engine, "decide", counting)
    for _ in range(3):
        assert guard.check(chat(), TEXT_8B, "acme").allowed
    assert len(calls) == 1
    guard.check(chat(), TEXT_8B, "other-tenant")
    assert len(calls) == 2
    answers.append(fail_closed("ENGINE_UNAVAILABLE", "pool exhausted", "wasm"))
    assert guard.check(chat(), TEXT_8B, "third").status == 503
    assert guard.check(chat(), TEXT_8B, "third").allowed  # the failure was not remembered
    assert len(calls) == 4


def test_rest_decisions_are_not_memoised() -> None:
    engine = RestEngine("http://127.0.0.1:9", 0.2)
    guard = RequestGuard(context("eu-frankfurt-1", "commercial"), [TEXT_8B], engine=engine)
    assert guard._memo is None


ALLOW = {"allow": True, "violations": [], "obligations": [], "policy_revision": "r1", "engine": "wasm"}


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (ALLOW, (True, 200, [])),
        (
            {
                **ALLOW,
                "allow": False,
                "violations": [{"code": "REGION_MODALITY", "message": "m", "citation": "c"}],
            },
            (False, 403, ["REGION_MODALITY"]),
        ),
        (fail_closed("BUNDLE_UNVERIFIED", "tampered", "wasm"), (False, 503, ["BUNDLE_UNVERIFIED"])),
        (fail_closed("ENGINE_UNAVAILABLE", "down", "opa-rest"), (False, 503, ["ENGINE_UNAVAILABLE"])),
        ({**ALLOW, "violations": [{"code": "X", "message": "m"}]}, (False, 403, ["X"])),
    ],
)
def test_how_the_guard_answers_a_judgement(
    decision: dict[str, Any], expected: tuple[bool, int, list[str]]
) -> None:
    answer = Answer(Judgement.of(decision), ["text"])
    assert (answer.allowed, answer.status, answer.codes) == expected


@pytest.mark.parametrize("deployment", ["ingress", "llm"])
def test_a_replica_destroyed_by_ray_serve_closes_its_decision_log(deployment: str, tmp_path: Path) -> None:
    """What Ray Serve's graceful replica shutdown runs (its __del__; no atexit follows in the actor): the
    segment ends with a final signed head. On a real Ray: tests/test_serving_app.py."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from serving.ingress import OpenAiIngress
    from serving.llm import LlamaServer
    from sovereign.audit import DecisionLog, verify_log

    key = Ed25519PrivateKey.generate()
    replica_class = (OpenAiIngress if deployment == "ingress" else LlamaServer).func_or_class
    replica = object.__new__(replica_class)  # its __init__ needs a model and an engine: only the log here
    replica.decisions = DecisionLog.open(tmp_path, "serving", key=key)
    destroy(replica)
    (segment,) = verify_log(tmp_path, key.public_key()).segments
    assert segment.closed and segment.status == "ok"
    # One whose __init__ failed before it opened a log is destroyed without error.
    destroy(object.__new__(replica_class))


def destroy(replica: object) -> None:
    """As Ray Serve's replica does (call_destructor): __del__, awaited when async (serve.ingress's is)."""
    done = replica.__del__()  # type: ignore[attr-defined]
    if inspect.isawaitable(done):
        asyncio.run(done)
