"""Policy decision counters, called by every enforcement point (Pulumi preview, admission, serving).

The counter lives in the caller's default prometheus-client registry, so each component exposes it on
its own /metrics. The decision itself comes from Rego: this only counts what the caller was told.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, get_args

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from sovereign.exporter.cardinality import BoundedLabel

Point = Literal["preview", "admission", "serving"]
Decision = Literal["allow", "deny"]
NO_CODE = "none"
NAME = "sovereign_policy_decisions"  # a counter: exposed as sovereign_policy_decisions_total


class DecisionCounter:
    """`sovereign_policy_decisions_total{point,region,cluster,model,decision,code}` with bounded labels.

    Limits sit well above the catalogue (a handful of regions, tens of clusters, models and reason
    codes) so real values always fit, while a flood of made-up names stops at the limit as `other`.
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.counter = Counter(
            NAME,
            "Policy decisions by enforcement point and reason code (one increment per code of a decision).",
            ["point", "region", "cluster", "model", "decision", "code"],
            registry=registry,
        )
        self._region = BoundedLabel(limit=32)
        self._cluster = BoundedLabel(limit=256)
        self._model = BoundedLabel(limit=64)
        self._code = BoundedLabel(limit=128)

    def record(
        self, point: Point, region: str, cluster: str, model: str, decision: Decision, codes: Iterable[str]
    ) -> None:
        if point not in get_args(Point):
            raise ValueError(f"point must be one of {get_args(Point)}, got {point!r}")
        if decision not in get_args(Decision):
            raise ValueError(f"decision must be one of {get_args(Decision)}, got {decision!r}")
        labels = {
            "point": point,
            "region": self._region(region),
            "cluster": self._cluster(cluster),
            "model": self._model(model),
            "decision": decision,
        }
        for code in sorted(set(codes)) or [NO_CODE]:
            self.counter.labels(**labels, code=self._code(code)).inc()

    def resume(self, labels: Mapping[str, str], total: float) -> None:
        """Count on from `total` for one series another process of the same point counted before (the
        preview, pushed to a gateway between short-lived runs)."""
        bounded = {
            "point": labels["point"],
            "region": self._region(labels["region"]),
            "cluster": self._cluster(labels["cluster"]),
            "model": self._model(labels["model"]),
            "decision": labels["decision"],
            "code": self._code(labels["code"]),
        }
        self.counter.labels(**bounded).inc(total)


_DEFAULT = DecisionCounter()


def record_decision(
    point: Point, region: str, cluster: str, model: str, decision: Decision, codes: Iterable[str]
) -> None:
    """Count one decision: once per reason code, or once with code `none` when it carries no code."""
    _DEFAULT.record(point, region, cluster, model, decision, codes)
