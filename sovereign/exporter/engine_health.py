"""Policy engine health, reported by the component that holds the engine (operator, serving): whether
the engine answers, and each signed bundle it refused. The alerts in infra/monitoring read these."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from sovereign.exporter.cardinality import BoundedLabel
from sovereign.exporter.decisions import Point

ENGINE_UP = Gauge(
    "sovereign_policy_engine_up",
    "1 when the policy engine answered its last health check or decision, 0 when it did not.",
    ["point", "engine"],
)
BUNDLE_REFUSED = Counter(
    "sovereign_policy_bundle_refused",
    "Policy bundles refused on load (bad signature, digest mismatch, unreadable).",
    ["point", "reason"],
)

_engine = BoundedLabel(limit=8)
_reason = BoundedLabel(limit=32)


def set_engine_up(point: Point, engine: str, up: bool) -> None:
    ENGINE_UP.labels(point=point, engine=_engine(engine)).set(1 if up else 0)


def record_bundle_refused(point: Point, reason: str) -> None:
    BUNDLE_REFUSED.labels(point=point, reason=_reason(reason)).inc()
