"""The per-request guard: gather the request's facts, judge them through the judgement API, act on it.

The decision is the Rego policy's, evaluated in-process on the signed bundle (or by the OPA server at
$SOVEREIGN_OPA_URL). The input is the deployment's judged facts (the serving args the operator wrote from
the one mapping) plus `request: {modalities, tenant}`. The guard only maps the judgement to HTTP:
allowed → served; denied → 403 with the policy's reason codes; undecided (engine unavailable, bundle
unverified) → 503. Content a region or the model cannot take is the policy's to refuse
(REGION_MODALITY, REQUEST_MODALITY_UNSUPPORTED), never the guard's.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from serving.args import PolicyContext
from serving.modalities import request_modalities
from sovereign.policy.engine import PolicyEngine, UnavailableEngine
from sovereign.policy.judgement import Judge, Judgement, Recorder, Subject, Verdict
from sovereign.policy.screening_source import Screening
from sovereign.policy.subjects import serving_input

_MEMO_SIZE = 4096


@dataclass(frozen=True)
class Answer:
    """How the guard answers one request: served, or the HTTP status and the policy's codes."""

    judgement: Judgement
    modalities: list[str]

    @property
    def allowed(self) -> bool:
        return self.judgement.allowed

    @property
    def status(self) -> int:
        if self.allowed:
            return 200
        return 503 if self.judgement.verdict is Verdict.UNDECIDED else 403

    @property
    def codes(self) -> list[str]:
        return self.judgement.codes

    @property
    def message(self) -> str:
        return self.judgement.message or "the policy denied the request"


def _load_engine() -> PolicyEngine:
    from sovereign.policy.engine import engine_from_env

    try:
        return engine_from_env()
    except Exception as exc:  # fail closed: no engine means every request is answered 503
        return UnavailableEngine(f"the policy engine could not start: {type(exc).__name__}: {exc}")


class RequestGuard:
    """One per ingress replica: the judged facts of each hosted model, built once, and the judge."""

    def __init__(
        self,
        context: PolicyContext,
        model_ids: list[str],
        engine: PolicyEngine | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        if engine is None:
            engine = _load_engine()
        # No list, or one that stops being current: every request is undecided (503), never unscreened.
        screening = Screening.enforcing(context.screening_list, refuse_to_start=False)
        self.judge = Judge(engine, screening, recorder=recorder)
        # The in-process engine holds one verified bundle for its whole life, so its decision is a pure
        # function of the input (as_of included): identical inputs are answered from a bounded memo, which
        # keeps the Wasm call (~1 ms) off the hot path. Never for the OPA server, whose bundle can change
        # and whose outage must show at once; never for an undecided judgement.
        self._memo: dict[str, Judgement] | None = {} if engine.name == "wasm" else None
        self._memo_lock = threading.Lock()  # the ingress checks requests in worker threads
        # The deployment's judged facts, formed by the one mapping (its namespace and signer included).
        self._inputs = {model_id: serving_input(context, model_id) for model_id in model_ids}

    def decision_input(self, model_id: str, modalities: set[str], tenant: str | None) -> dict[str, Any]:
        request: dict[str, Any] = {"modalities": sorted(modalities)}
        if tenant is not None:
            request["tenant"] = tenant
        # as_of is the judge's today at each request: an accreditation that expires tonight stops serving
        # tomorrow.
        return self.judge.policy_input(self._inputs[model_id], request=request)

    def judge_request(self, doc: dict[str, Any], subject: Subject) -> Judgement:
        """The judgement of one request; each request leaves its own record, memo or not."""
        if self._memo is None:
            return self.judge.judge_document(doc, subject)
        key = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        with self._memo_lock:
            judgement = self._memo.get(key)
        if judgement is not None:
            self.judge.record(judgement, subject)
            return judgement
        judgement = self.judge.judge_document(doc, subject)
        if judgement.verdict is not Verdict.UNDECIDED:
            with self._memo_lock:
                if len(self._memo) >= _MEMO_SIZE:
                    self._memo.pop(next(iter(self._memo)))  # oldest first: dicts keep insertion order
                self._memo[key] = judgement
        return judgement

    def check(self, body: Any, model_id: str, tenant: str | None, request_id: str = "unnamed") -> Answer:
        modalities = request_modalities(body)
        doc = self.decision_input(model_id, modalities, tenant)
        judgement = self.judge_request(doc, Subject(f"request {request_id}", tenant=tenant))
        return Answer(judgement, sorted(modalities))
