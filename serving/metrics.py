"""sovereign's serving metrics, in Prometheus form, with label values drawn from bounded sets.

Ray's own Serve metrics (ray_serve_*) are exported on Ray's metrics port as usual; these are served by the
ingress at GET /metrics from its own registry: requests, tokens and latency, and, as at every enforcement
point, the guard's policy decisions (`sovereign_policy_decisions_total{point="serving"}`) and the health
of the engine that made them (sovereign.exporter.decisions, sovereign.exporter.engine_health). Ray's
metric API would prefix every name with `ray_`, and the dashboards and alerts use the sovereign_* names.
Labels stay bounded: region and cluster are fixed per app, model is a hosted model id or "_unknown",
decision is allow/deny/unavailable/error, code is a policy reason code or one of the ingress's own error
codes, and tenants beyond `max_tenants` distinct values (or not shaped like an identifier) are counted as
"_other".
"""

from __future__ import annotations

import re
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram

from sovereign.exporter.decisions import DecisionCounter
from sovereign.exporter.engine_health import EngineHealth
from sovereign.policy.judgement import Judgement

UNKNOWN_MODEL = "_unknown"
NO_TENANT = "_none"
OTHER_TENANT = "_other"
_TENANT_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# Seconds: from a refused request (well under 1 ms) to a long CPU generation.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class TenantLabels:
    """The first `limit` distinct well-formed tenants keep their name; any other becomes "_other"."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, tenant: str | None) -> str:
        if tenant is None or tenant == "":
            return NO_TENANT
        if not _TENANT_SHAPE.fullmatch(tenant):
            return OTHER_TENANT
        with self._lock:
            if tenant in self._seen:
                return tenant
            if len(self._seen) < self._limit:
                self._seen.add(tenant)
                return tenant
        return OTHER_TENANT


class ServingMetrics:
    def __init__(self, region: str, cluster: str, models: list[str], max_tenants: int) -> None:
        self.registry = CollectorRegistry()
        self._fixed = {"region": region, "cluster": cluster}
        self.decisions = DecisionCounter(self.registry)
        self.engine = EngineHealth(self.registry)
        self._models = set(models)
        self.tenant = TenantLabels(max_tenants)
        common = ["region", "cluster", "model", "tenant"]
        self.requests = Counter(
            "sovereign_requests",
            "Requests answered by the serving ingress, by policy decision and reason code.",
            [*common, "decision", "code"],
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "sovereign_prompt_tokens", "Prompt tokens of served requests.", common, registry=self.registry
        )
        self.completion_tokens = Counter(
            "sovereign_completion_tokens",
            "Tokens generated for served requests.",
            common,
            registry=self.registry,
        )
        self.duration = Histogram(
            "sovereign_request_duration_seconds",
            "Time from the request reaching the ingress to its last byte, by decision.",
            ["region", "cluster", "model", "decision"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def judged(self, model: str, judgement: Judgement) -> None:
        """The guard's judgement of one request to hosted `model` (undecided counts as a deny, as it acts)."""
        decision = "allow" if judgement.allowed else "deny"
        self.decisions.record(
            "serving", self._fixed["region"], self._fixed["cluster"], model, decision, judgement.codes
        )
        self.engine.observe("serving", judgement)

    def model_label(self, model: object) -> str:
        return model if isinstance(model, str) and model in self._models else UNKNOWN_MODEL

    def observe(
        self,
        *,
        model: object,
        tenant: str | None,
        decision: str,
        code: str,
        seconds: float,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        labels = {**self._fixed, "model": self.model_label(model), "tenant": self.tenant(tenant)}
        self.requests.labels(**labels, decision=decision, code=code).inc()
        # Both token series of a caller exist once it was served, so their sum (chargeback) misses neither.
        if decision == "allow" or prompt_tokens or completion_tokens:
            self.prompt_tokens.labels(**labels).inc(prompt_tokens)
            self.completion_tokens.labels(**labels).inc(completion_tokens)
        self.duration.labels(**self._fixed, model=labels["model"], decision=decision).observe(seconds)
