"""THE judgement API: every enforcement point judges through `Judge` and acts on its typed `Judgement`.

The serving guard, admission, reconcile, drift, ClusterRequests, the Pulumi policy pack, the matrix and
`sovereign decide` all hand a `DecisionInput` (formed by the one mapping in `subjects.py`) to a `Judge`,
which adds the facts every decision needs (denied-party screening, the decision date), asks the engine,
and returns a `Judgement`: allowed, denied or undecided, with the policy's codes, messages, citations,
obligations and revision. `Judgement.action(mode)` is the one place where an enforcement mode turns a
judgement into what to do. Python never decides here: the verdict is read off the Rego result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Protocol

from sovereign.policy.decision_input import DecisionInput
from sovereign.policy.engine import ENGINE_FAILURES, PolicyEngine

# organisation name, decision date -> input.screening (sovereign.policy.screening_source.Screening)
ScreeningFacts = Callable[[str, date], dict[str, Any]]
# The policy's code for a decision it cannot make: a fact it needs (a current screening list) is missing.
SCREENING_UNAVAILABLE = "SCREENING_UNAVAILABLE"
# Codes that mean nothing was decided: callers treat them alike (deny, hold), whoever produced them.
UNDECIDED_CODES = ENGINE_FAILURES | {SCREENING_UNAVAILABLE}


class Verdict(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    UNDECIDED = "undecided"  # no decision: the engine is unavailable or its bundle unverified
    UNJUDGEABLE = "unjudgeable"  # no input: the subject's facts are missing or malformed


class Mode(StrEnum):
    """A cluster's enforcement mode: what a denial does there."""

    ENFORCE = "enforce"  # a denied deployment is refused
    WARN = "warn"  # admitted, with the violations reported
    DRYRUN = "dryrun"  # decisions are only recorded


class Action(StrEnum):
    ADMIT = "admit"  # allowed
    WARN = "warn"  # denied in warn mode: admitted, the violations shown
    RECORD = "record"  # denied in dryrun mode: admitted, the violations only recorded
    REFUSE = "refuse"  # denied in enforce mode, or nothing to judge: refused (a running one is suspended)
    HOLD = "hold"  # no decision: nothing new is admitted and nothing running is changed


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    violations: tuple[dict[str, Any], ...] = ()
    obligations: tuple[dict[str, Any], ...] = ()
    policy_revision: str | None = None
    engine: str | None = None
    # Why there is no input (UNJUDGEABLE): (reason, message), e.g. ("ClusterNotFound", "…").
    problem: tuple[str, str] | None = None
    input: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, decision: dict[str, Any], inp: dict[str, Any] | None = None) -> Judgement:
        """A judgement from the engine's decision document (which always has allow and violations)."""
        violations = tuple(decision.get("violations") or ())
        if not violations:
            verdict = Verdict.ALLOWED if decision.get("allow") is True else Verdict.DENIED
        elif {str(v.get("code")) for v in violations} & UNDECIDED_CODES:
            verdict = Verdict.UNDECIDED
        else:
            verdict = Verdict.DENIED
        return cls(
            verdict,
            violations,
            tuple(decision.get("obligations") or ()),
            decision.get("policy_revision"),
            decision.get("engine"),
            input=inp,
        )

    @classmethod
    def unjudgeable(cls, reason: str, message: str) -> Judgement:
        return cls(Verdict.UNJUDGEABLE, problem=(reason, message))

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED

    @property
    def codes(self) -> list[str]:
        """The violation codes, sorted and unique."""
        return sorted({str(v.get("code")) for v in self.violations})

    @property
    def message(self) -> str:
        if self.problem:
            return self.problem[1]
        return "; ".join(str(v.get("message")) for v in self.violations)

    def action(self, mode: Mode | str = Mode.ENFORCE) -> Action:
        """What this judgement means on a cluster in enforcement `mode`: the one interpretation of modes."""
        if self.verdict is Verdict.ALLOWED:
            return Action.ADMIT
        if self.verdict is Verdict.UNDECIDED:
            return Action.HOLD
        if self.verdict is Verdict.UNJUDGEABLE:
            return Action.REFUSE
        return {Mode.WARN: Action.WARN, Mode.DRYRUN: Action.RECORD}.get(Mode(mode), Action.REFUSE)

    def decision(self) -> dict[str, Any]:
        """The policy's decision document as the engine returned it (what `sovereign decide` prints)."""
        return {
            "allow": self.allowed,
            "violations": list(self.violations),
            "obligations": list(self.obligations),
            "policy_revision": self.policy_revision,
            "engine": self.engine,
        }


@dataclass(frozen=True)
class Subject:
    """What a judgement is about, as its decision record names it."""

    name: str  # the object (kind namespace/name) or the request id
    tenant: str | None = None  # who deploys or asks, when the input does not say (a request's tenant)
    weights_digest: str | None = None  # the checkpoint judged, where known (sha256)


class Recorder(Protocol):
    """Keeps the evidence of each judgement (sovereign.audit.trail.AuditTrail: the decision log)."""

    def __call__(self, judgement: Judgement, subject: Subject) -> None: ...


UNNAMED = Subject("unnamed")  # a caller that names no subject still leaves a record


# From the action that most restricts what runs to the least: several judgements of one subject (each model
# a RayService serves, each a ClusterRequest asks for) act together as the strictest of theirs.
_STRICTEST_FIRST = (Action.HOLD, Action.REFUSE, Action.WARN, Action.RECORD, Action.ADMIT)


def strictest(actions: Iterable[Action]) -> Action:
    """The action of several judgements of one subject taken together: no decision holds the whole subject,
    any refusal refuses it; ADMIT when there is nothing to act on."""
    present = set(actions)
    return next((action for action in _STRICTEST_FIRST if action in present), Action.ADMIT)


def utc_today() -> date:
    return datetime.now(UTC).date()


class Judge:
    """Adds screening and the decision date to each input, asks one engine, returns judgements.

    `screening` gives each input its `screening` facts (see screening_source.Screening); without it the
    input says screening was not performed, and the policy decides what that means. `recorder`, when
    given, keeps every judgement made here with the subject the caller names (an enforcement point's
    decision log): no judgement of that point goes unrecorded.
    """

    def __init__(
        self,
        engine: PolicyEngine,
        screening: ScreeningFacts | None = None,
        today: Callable[[], date] = utc_today,
        recorder: Recorder | None = None,
    ) -> None:
        self.engine = engine
        self.today = today
        self.screening = screening
        self.recorder = recorder

    def policy_input(self, inp: DecisionInput, **facts: Any) -> dict[str, Any]:
        """The document the policy evaluates for `inp`, with `facts` (request, weights, approval) added."""
        as_of = inp.as_of or self.today()
        screened = (
            self.screening(inp.cluster.operator.name, as_of)
            if self.screening is not None
            else {"performed": False, "hits": []}
        )
        doc = inp.policy_input(screened)
        if "as_of" not in doc:
            doc["as_of"] = as_of.isoformat()
        if facts:
            doc.update({key: value for key, value in facts.items() if value is not None})
        return doc

    def judge(self, inp: DecisionInput, *, subject: Subject = UNNAMED, **facts: Any) -> Judgement:
        return self.judge_document(self.policy_input(inp, **facts), subject)

    def judge_document(self, doc: dict[str, Any], subject: Subject = UNNAMED) -> Judgement:
        """A judgement on a document already formed by `policy_input` (the serving guard's hot path)."""
        judgement = Judgement.of(self.engine.decide(doc), doc)
        self.record(judgement, subject)
        return judgement

    def record(self, judgement: Judgement, subject: Subject) -> None:
        """Keep the evidence of `judgement`: what every judgement here does, and what a caller answering
        again from its own memo of an earlier judgement (the serving guard) does for each answer."""
        if self.recorder is not None:
            self.recorder(judgement, subject)

    def judge_many(
        self, inputs: Sequence[DecisionInput | Judgement], subjects: Sequence[Subject] | None = None
    ) -> list[Judgement]:
        """Judgements in order, from ONE batched evaluation of the distinct inputs; an input that could not
        be formed (an UNJUDGEABLE judgement in its place) passes through."""
        docs = [item if isinstance(item, Judgement) else self.policy_input(item) for item in inputs]
        return self.judge_documents(docs, subjects)

    def judge_documents(
        self, docs: Sequence[dict[str, Any] | Judgement], subjects: Sequence[Subject] | None = None
    ) -> list[Judgement]:
        """`subjects`, one per document when given, name what each judgement is about in its record."""
        judgements = self._evaluate(docs)
        for judgement, subject in zip(judgements, subjects or [UNNAMED] * len(judgements), strict=True):
            self.record(judgement, subject)
        return judgements

    def _evaluate(self, docs: Sequence[dict[str, Any] | Judgement]) -> list[Judgement]:
        # A decision depends on its input only, and many deployments share one (same cluster, model and
        # size): each distinct document is evaluated once.
        positions: dict[str, int] = {}
        unique: list[dict[str, Any]] = []
        slots: list[int | Judgement] = []
        for doc in docs:
            if isinstance(doc, Judgement):
                slots.append(doc)
                continue
            key = json.dumps(doc, sort_keys=True)
            if key not in positions:
                positions[key] = len(unique)
                unique.append(doc)
            slots.append(positions[key])
        decisions = self.engine.decide_many(unique) if unique else []
        return [
            slot if isinstance(slot, Judgement) else Judgement.of(decisions[slot], unique[slot])
            for slot in slots
        ]
