"""One interface over the two policy engines, and the fail-closed decision both fall back to.

Every caller (the CLI, the Pulumi policy pack, the operator, the serving guard) asks a `PolicyEngine`.
An engine never raises from `decide`: anything short of a well-formed policy result from a verified
bundle becomes a deny with ENGINE_UNAVAILABLE or BUNDLE_UNVERIFIED. No engine builds or signs a bundle:
with none built, or no trust anchor configured, every decision is BUNDLE_UNVERIFIED.
"""

from __future__ import annotations

import os
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from sovereign.policy.bundle import SignedBundle, bundle_dir, trust_anchor_path

FAIL_CLOSED_CITATION = "sovereign fail-closed rule: an unreachable or unverified policy engine means deny"
ENGINE_UNAVAILABLE = "ENGINE_UNAVAILABLE"
BUNDLE_UNVERIFIED = "BUNDLE_UNVERIFIED"
# The codes of a decision that was never made: the one definition every enforcement point reads.
ENGINE_FAILURES = frozenset({ENGINE_UNAVAILABLE, BUNDLE_UNVERIFIED})
FailCode = Literal["ENGINE_UNAVAILABLE", "BUNDLE_UNVERIFIED"]
Failure = tuple[FailCode, str]  # why an engine could not decide: (code, message)


class PolicyEngine(Protocol):
    name: str

    def decide(self, inp: dict[str, Any]) -> dict[str, Any]:
        """The decision for one policy input: the policy's result plus policy_revision and engine."""
        ...

    def decide_many(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Decisions for many inputs, in order, from ONE batched evaluation."""
        ...


class _Violation(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str
    citation: str


class _PolicyResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allow: StrictBool
    violations: list[_Violation]
    obligations: list[Any]


def fail_closed(code: FailCode, message: str, engine: str, revision: str | None = None) -> dict[str, Any]:
    return {
        "allow": False,
        "violations": [{"code": code, "message": message, "citation": FAIL_CLOSED_CITATION}],
        "obligations": [],
        "policy_revision": revision,
        "engine": engine,
    }


def finish(result: object, engine: str, revision: str) -> dict[str, Any]:
    """The policy's result stamped with its bundle revision, or a deny when it is not a well-formed result."""
    try:
        _PolicyResult.model_validate(result)
    except ValidationError as exc:
        return fail_closed(
            ENGINE_UNAVAILABLE, f"the policy returned a malformed result: {exc}", engine, revision
        )
    return {**result, "policy_revision": revision, "engine": engine}  # type: ignore[dict-item]


def finish_batch(results: object, count: int, engine: str, revision: str) -> list[dict[str, Any]]:
    if not isinstance(results, list):
        message = f"the batch policy returned a {type(results).__name__}, not a list of {count} results"
        return [fail_closed(ENGINE_UNAVAILABLE, message, engine, revision) for _ in range(count)]
    if len(results) != count:
        # A comprehension drops items whose decision is undefined, so which one is unknown: deny them all.
        message = (
            f"the batch policy returned {len(results)} decisions for {count} inputs (some left undefined)"
        )
        return [fail_closed(ENGINE_UNAVAILABLE, message, engine, revision) for _ in range(count)]
    return [finish(result, engine, revision) for result in results]


def engine_from_env() -> PolicyEngine:
    """The OPA server at $SOVEREIGN_OPA_URL when set, else in-process Wasm on the bundle in
    $SOVEREIGN_POLICY_BUNDLE_DIR, verified with $SOVEREIGN_POLICY_TRUST_ANCHOR (see bundle.py)."""
    # Imported here: each engine module imports this one, and the REST path need not load wasmtime.
    if url := os.environ.get("SOVEREIGN_OPA_URL"):
        from sovereign.policy.rest_engine import RestEngine

        return RestEngine(url)
    from sovereign.policy.wasm_engine import WasmEngine

    bundle = SignedBundle.at(bundle_dir(), "", trust_anchor_path())
    return WasmEngine(bundle.wasm, bundle.verification_key)


class UnavailableEngine:
    """An engine that could not be started: every decision is ENGINE_UNAVAILABLE, with why."""

    name = "none"

    def __init__(self, message: str) -> None:
        self.message = message

    def decide(self, inp: dict[str, Any]) -> dict[str, Any]:
        return fail_closed(ENGINE_UNAVAILABLE, self.message, self.name)

    def decide_many(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.decide(inp) for inp in inputs]
