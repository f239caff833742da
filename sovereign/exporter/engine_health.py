"""Policy engine health, reported by each component that holds an engine and serves decisions (the operator,
serving replicas): whether the engine answers, and each time its signed bundle is refused. The alerts in
infra/monitoring read these.

Both are read off the judgements the component acts on (`observe`), never from a probe of their own: an
engine is up while it decides, down while every decision is ENGINE_UNAVAILABLE or BUNDLE_UNVERIFIED.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from sovereign.exporter.cardinality import BoundedLabel
from sovereign.exporter.decisions import Point
from sovereign.policy.engine import BUNDLE_UNVERIFIED, ENGINE_FAILURES
from sovereign.policy.judgement import Judgement


class EngineHealth:
    """`sovereign_policy_engine_up{point,engine}`, `sovereign_policy_bundle_refused_total{point,reason}`."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.up = Gauge(
            "sovereign_policy_engine_up",
            "1 when the policy engine answered its last health check or decision, 0 when it did not.",
            ["point", "engine"],
            registry=registry,
        )
        self.refused = Counter(
            "sovereign_policy_bundle_refused",
            "Policy bundles refused (bad signature, digest mismatch, unreadable, another revision served).",
            ["point", "reason"],
            registry=registry,
        )
        self._engine = BoundedLabel(limit=8)
        self._refusing: set[Point] = set()
        self._lock = threading.Lock()

    def observe(self, point: Point, judgement: Judgement) -> None:
        """What one judgement says of the engine that made it. A refused bundle is counted once when the
        refusal starts, not once per decision it spoils, so the counter counts refusals."""
        failures = set(judgement.codes) & ENGINE_FAILURES
        engine = self._engine(judgement.engine or "none")
        self.up.labels(point=point, engine=engine).set(0 if failures else 1)
        refusing = BUNDLE_UNVERIFIED in failures
        with self._lock:
            started = refusing and point not in self._refusing
            if refusing:
                self._refusing.add(point)
            else:
                self._refusing.discard(point)
        # The series exists at 0 from the point's first judgement: Prometheus' increase() sees a series
        # only rise from a sample it holds, so a counter born at 1 would hide the first refusal.
        refusals = self.refused.labels(point=point, reason=BUNDLE_UNVERIFIED)
        if started:
            refusals.inc()


_DEFAULT = EngineHealth()


def observe_engine(point: Point, judgement: Judgement) -> None:
    """Engine health from a judgement, in this process's default registry (the operator's /metrics)."""
    _DEFAULT.observe(point, judgement)
