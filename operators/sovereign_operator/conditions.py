"""Kubernetes-convention conditions (metav1.Condition) for sovereign's status fields; kopf has none."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from sovereign import vocabulary as k8s
from sovereign.policy.judgement import SCREENING_UNAVAILABLE, Judgement

Status = Literal["True", "False", "Unknown"]

# Condition types and reasons: sovereign.vocabulary.


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def undecided_reason(judgements: Iterable[Judgement]) -> str:
    """The reason an undecided status gives: what the decision lacked, a current screening list or an
    engine that could answer."""
    codes = {code for judgement in judgements for code in judgement.codes}
    if SCREENING_UNAVAILABLE in codes:
        return k8s.REASON_SCREENING_UNAVAILABLE
    return k8s.REASON_ENGINE_UNAVAILABLE


def condition(kind: str, status: Status, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def stamped(new: Iterable[dict[str, Any]], old: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Add lastTransitionTime, keeping the previous one while a condition's status is unchanged."""
    previous = {c.get("type"): c for c in old or []}
    stamp = now()
    result = []
    for item in new:
        before = previous.get(item["type"])
        same = (
            before is not None and before.get("status") == item["status"] and before.get("lastTransitionTime")
        )
        result.append({**item, "lastTransitionTime": before["lastTransitionTime"] if same else stamp})
    return result


def without_times(conditions: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Conditions compared for change: everything but their timestamps."""
    return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions or []]


def find(conditions: Iterable[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == kind), None)
