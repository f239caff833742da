"""The per-request guard: gather the request's facts, ask the policy engine, act on its decision.

The decision is the Rego policy's (sovereign/decision/result), evaluated in-process on the signed bundle
(or by the OPA server at $SOVEREIGN_OPA_URL). The input is the cluster's decision input for the hosted
model plus `request: {modalities, tenant}`. The guard only maps the decision to HTTP:

- allowed → served; denied → 403 with the policy's reason codes; ENGINE_UNAVAILABLE or
  BUNDLE_UNVERIFIED (any engine failure) → 503;
- non-text content: a bundle whose decision carries the obligation REQUEST_MODALITIES_CHECKED has
  judged `request.modalities` itself and is followed as is. A bundle without that rule judged only the
  model on this cluster (REGION_MODALITY for a multimodal model in a text-only region), so the guard
  relies on that model/region decision only for content the hosted model's catalogue entry takes as
  input, and refuses anything else with 403 REQUEST_MODALITY_UNCHECKED. This can only refuse more than
  the policy, never allow what it denied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving.modalities import non_text, request_modalities
from sovereign.policy.decision_input import ClusterFacts, DecisionInput, EndUse
from sovereign.policy.engine import ENGINE_UNAVAILABLE, PolicyEngine, fail_closed
from sovereign.policydata import load_policy_data

REQUEST_MODALITIES_CHECKED = "REQUEST_MODALITIES_CHECKED"
_MEMO_SIZE = 4096
REQUEST_MODALITY_UNCHECKED = "REQUEST_MODALITY_UNCHECKED"
_UNAVAILABLE_CODES = frozenset({ENGINE_UNAVAILABLE, "BUNDLE_UNVERIFIED"})


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    status: int  # the HTTP status to answer with when not allowed
    codes: list[str]
    message: str
    modalities: list[str]
    decision: dict[str, Any]

    @property
    def label(self) -> str:
        """The decision label for metrics: allow, deny or unavailable."""
        if self.allowed:
            return "allow"
        return "unavailable" if self.status == 503 else "deny"


def _covers_request_modalities(decision: dict[str, Any]) -> bool:
    return any(
        isinstance(item, dict) and item.get("code") == REQUEST_MODALITIES_CHECKED
        for item in decision.get("obligations", [])
    )


def verdict_of(decision: dict[str, Any], modalities: set[str], model_takes: set[str]) -> Verdict:
    """How the guard acts on one decision for a request with these modalities to a model taking those."""
    found = sorted(modalities)
    violations = decision.get("violations") or []
    if decision.get("allow") is not True or violations:
        found_codes = {str(v.get("code")) for v in violations if isinstance(v, dict)}
        codes = sorted(found_codes) or [ENGINE_UNAVAILABLE]
        status = 503 if set(codes) & _UNAVAILABLE_CODES else 403
        message = "; ".join(str(v.get("message")) for v in violations if isinstance(v, dict))
        return Verdict(False, status, codes, message or "the policy denied the request", found, decision)
    unjudged = non_text(modalities - model_takes)
    if unjudged and not _covers_request_modalities(decision):
        message = (
            f"the request carries {', '.join(unjudged)} content, which the hosted model does not take, and "
            f"the policy bundle (revision {decision.get('policy_revision')}) does not judge request "
            "modalities: refused"
        )
        return Verdict(False, 403, [REQUEST_MODALITY_UNCHECKED], message, found, decision)
    return Verdict(True, 200, [], "", found, decision)


def _load_engine() -> tuple[PolicyEngine | None, str]:
    from sovereign.policy.engine import engine_from_env

    try:
        return engine_from_env(), ""
    except Exception as exc:  # fail closed: no engine means every request is answered 503
        return None, f"the policy engine could not start: {type(exc).__name__}: {exc}"


def _screening_hits(cluster: ClusterFacts, screening_list: Path | None) -> list[dict[str, Any]]:
    if screening_list is None:
        return []
    from sovereign.policy.screening import ScreeningList

    return ScreeningList.load(screening_list).screen(cluster.operator.name)


class RequestGuard:
    """One per ingress replica: the decision input of each hosted model, built once, and the engine."""

    def __init__(
        self,
        cluster: ClusterFacts,
        end_use: EndUse,
        model_ids: list[str],
        screening_list: Path | None = None,
        engine: PolicyEngine | None = None,
    ) -> None:
        if engine is None:
            engine, self._engine_error = _load_engine()
        else:
            self._engine_error = ""
        self.engine = engine
        # The in-process engine holds one verified bundle for its whole life, so its decision is a pure
        # function of the input (as_of included): identical inputs are answered from a bounded memo, which
        # keeps the Wasm call (~1 ms) off the hot path. Never for the OPA server, whose bundle can change
        # and whose outage must show at once; never for an unavailable engine.
        self._memo: dict[str, dict[str, Any]] | None = {} if engine and engine.name == "wasm" else None
        hits = _screening_hits(cluster, screening_list)
        catalogue = load_policy_data()
        self._takes = {}
        for model_id in model_ids:
            variant = catalogue.model(model_id)
            self._takes[model_id] = set(variant.modalities.input) if variant else set()
        self._inputs = {
            model_id: DecisionInput(cluster=cluster, model=model_id, end_use=end_use).policy_input(hits)
            for model_id in model_ids
        }

    def decision_input(self, model_id: str, modalities: set[str], tenant: str | None) -> dict[str, Any]:
        request: dict[str, Any] = {"modalities": sorted(modalities)}
        if tenant is not None:
            request["tenant"] = tenant
        # as_of is today at each request: an accreditation that expires tonight stops serving tomorrow.
        return {**self._inputs[model_id], "as_of": datetime.now(UTC).date().isoformat(), "request": request}

    def decide(self, inp: dict[str, Any]) -> dict[str, Any]:
        if self.engine is None:
            return fail_closed(ENGINE_UNAVAILABLE, self._engine_error, "none")
        if self._memo is None:
            return self.engine.decide(inp)
        key = json.dumps(inp, sort_keys=True, separators=(",", ":"))
        if (decision := self._memo.get(key)) is None:
            decision = self.engine.decide(inp)
            if not {str(v.get("code")) for v in decision.get("violations", [])} & _UNAVAILABLE_CODES:
                if len(self._memo) >= _MEMO_SIZE:
                    self._memo.pop(next(iter(self._memo)))  # oldest first: dicts keep insertion order
                self._memo[key] = decision
        return decision

    def check(self, body: Any, model_id: str, tenant: str | None) -> Verdict:
        modalities = request_modalities(body)
        decision = self.decide(self.decision_input(model_id, modalities, tenant))
        return verdict_of(decision, modalities, self._takes[model_id])
