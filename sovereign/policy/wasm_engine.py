"""In-process evaluation of the signed Wasm bundle with opa-py-wasm.

The bundle is verified and loaded once; opa-py-wasm's `OpaWasmPolicy` keeps a bounded pool of Wasm
instances, each used by one thread at a time, so one engine serves concurrent callers.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from pathlib import Path
from typing import Any

from opapywasm import UNDEFINED, OpaWasmPolicy, PolicyConfig
from opapywasm import runtime as opa_runtime

from sovereign.policy import wasm_calls
from sovereign.policy.bundle import (
    BATCH_ENTRYPOINT,
    DECISION_ENTRYPOINT,
    WhatIfPolicy,
    unverified_message,
    verify_built,
)
from sovereign.policy.bundle_signature import BundleUnverified
from sovereign.policy.engine import (
    BUNDLE_UNVERIFIED,
    ENGINE_UNAVAILABLE,
    Failure,
    fail_closed,
    finish,
    finish_batch,
)

NAME = "wasm"
# Inputs per batched evaluation: ~0.1 ms each on a quiet core, so a chunk takes ~20 ms, far inside the
# 2 s evaluation timeout even on a loaded machine, and ~300 KB of JSON, inside the 1 MB input limit.
BATCH_CHUNK = 200


class _QuietGrowth(logging.Filter):
    """opa-py-wasm starts every instance with 2 memory pages and retries with more when the policy's static
    data needs it, then warns; the retry is its normal path (the policy carries its messages as data), so
    the warning would only be noise on every CLI run and replica start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("policy needed a larger initial memory")


logging.getLogger("opapywasm.runtime").addFilter(_QuietGrowth())
wasm_calls.install()


def _leb128(wasm: bytes, at: int) -> tuple[int, int]:
    """The unsigned LEB128 number at `at` and the offset after it."""
    value = shift = 0
    while True:
        byte = wasm[at]
        value, shift, at = value | (byte & 0x7F) << shift, shift + 7, at + 1
        if byte < 0x80:
            return value, at


def _declared_memory_pages(wasm: bytes) -> int:
    """The minimum pages of the module's `env.memory` import (0 when it has none), read from its import
    section: asking wasmtime would compile the module once more than opa-py-wasm does, doubling the cost
    of every load. A malformed module reads as 0 here and is refused by opa-py-wasm's own validation."""
    at = 8  # past the magic number and the version
    with suppress(IndexError):
        while at < len(wasm):
            section, (size, at) = wasm[at], _leb128(wasm, at + 1)
            if section == 2:  # the import section
                break
            at += size
        count, at = _leb128(wasm, at)
        for _ in range(count):
            names = []
            for _ in range(2):  # the module's name, then the import's
                length, at = _leb128(wasm, at)
                names.append(wasm[at : at + length])
                at += length
            kind, at = wasm[at], at + 1
            if kind == 0x00:  # a function: its type index
                _, at = _leb128(wasm, at)
            elif kind == 0x03:  # a global: its value type and mutability
                at += 2
            else:  # a table (its element type, then limits) or a memory (limits): the maximum when flagged
                flags, at = wasm[at + (kind == 0x01)], at + (kind == 0x01) + 1
                minimum, at = _leb128(wasm, at)
                if kind == 0x02 and names == [b"env", b"memory"]:
                    return minimum
                if flags & 1:
                    _, at = _leb128(wasm, at)
    return 0


def policy_from_wasm(wasm: bytes, config: PolicyConfig) -> OpaWasmPolicy:
    """An opa-py-wasm policy for `wasm`, starting its memory at the size the module asks for.

    opa-py-wasm 1.2.1 gives every instance 2 pages and grows them only when copying the module's data
    traps; a module whose memory import itself asks for more (its static strings outgrew 128 KiB) fails to
    link instead. No option sets the start size, so it is raised here to the module's declared minimum.
    """
    opa_runtime._DEFAULT_MEMORY_PAGES = max(opa_runtime._DEFAULT_MEMORY_PAGES, _declared_memory_pages(wasm))
    policy = OpaWasmPolicy.from_wasm_bytes(wasm, config)
    wasm_calls.reuse_last_instance(policy)
    return policy


class WasmEngine:
    name = NAME

    def __init__(
        self, bundle: Path, verification_key: Path, pool_size: int = 4, timeout_s: float = 2.0
    ) -> None:
        self.revision: str | None = None
        self._policy: OpaWasmPolicy | None = None
        self._refusal: Failure | None = None
        try:
            verified = verify_built(bundle, verification_key)
        except BundleUnverified as exc:
            self._refusal = (BUNDLE_UNVERIFIED, unverified_message(exc))
        else:
            self._load(verified.files, verified.revision, f"the policy bundle {bundle}", pool_size, timeout_s)

    @classmethod
    def for_whatif(cls, policy: WhatIfPolicy, pool_size: int = 4, timeout_s: float = 2.0) -> WasmEngine:
        """The engine of a what-if's own unsigned build of a policies/ folder (`bundle.build_for_whatif`),
        loaded from memory: the one evaluation of a policy that no signature vouches for, and only the
        what-if asks for it (every consumer loads a bundle verified with the trust anchor)."""
        engine = cls.__new__(cls)
        engine.revision, engine._policy, engine._refusal = None, None, None
        engine._load(policy.files, policy.revision, "the what-if's policy", pool_size, timeout_s)
        return engine

    def _load(
        self, files: dict[str, bytes], revision: str, what: str, pool_size: int, timeout_s: float
    ) -> None:
        try:
            policy = policy_from_wasm(
                files["policy.wasm"],
                PolicyConfig(
                    pool_size=pool_size, eval_timeout_seconds=timeout_s, borrow_timeout_seconds=timeout_s
                ),
            )
            if missing := sorted(set(policy.builtins) - set(policy.registered_builtins)):
                policy.close()
                raise RuntimeError(f"it needs built-ins the Wasm host lacks: {', '.join(missing)}")
            policy.set_data(files.get("data.json", b"{}"))
        except Exception as exc:  # fail closed: whatever stops loading means no decision can be trusted
            self._refusal = (ENGINE_UNAVAILABLE, f"cannot load {what}: {exc}")
        else:
            self._policy, self.revision = policy, revision

    def _evaluate(self, inp: dict[str, Any], entrypoint: str) -> tuple[object, Failure | None]:
        if self._policy is None:
            return None, self._refusal
        try:
            result = self._policy.evaluate(inp, entrypoint)
        except Exception as exc:  # fail closed: an evaluation error, timeout or full pool is a deny
            return None, (ENGINE_UNAVAILABLE, f"policy evaluation failed: {type(exc).__name__}: {exc}")
        if result is UNDEFINED:
            return None, (ENGINE_UNAVAILABLE, f"the policy left {entrypoint} undefined")
        return result, None

    def decide(self, inp: dict[str, Any]) -> dict[str, Any]:
        result, failure = self._evaluate(inp, DECISION_ENTRYPOINT)
        if failure:
            return fail_closed(*failure, NAME, self.revision)
        return finish(result, NAME, str(self.revision))

    def decide_many(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Decisions in order, from batched evaluations of at most BATCH_CHUNK inputs each: a chunk stays
        well inside the evaluation timeout and the instance's input limit (1 MB) whatever the batch size,
        so a whole fleet or the matrix is judged in-process instead of failing closed."""
        decisions: list[dict[str, Any]] = []
        for start in range(0, len(inputs), BATCH_CHUNK):
            chunk = inputs[start : start + BATCH_CHUNK]
            results, failure = self._evaluate({"items": chunk}, BATCH_ENTRYPOINT)
            if failure:
                decisions += [fail_closed(*failure, NAME, self.revision) for _ in chunk]
            else:
                decisions += finish_batch(results, len(chunk), NAME, str(self.revision))
        return decisions

    def close(self) -> None:
        if self._policy is not None:
            self._policy.close()
