"""Kubernetes-convention conditions (metav1.Condition) for sovereign's status fields; kopf has none."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]

# Condition types and reasons: sovereign.vocabulary.


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
