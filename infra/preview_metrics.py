"""The preview's policy decisions, counted as at every enforcement point and pushed to a Pushgateway.

The policy pack lives only as long as one `pulumi preview`, too short for Prometheus to scrape, so it
pushes `sovereign_policy_decisions_total{point="preview"}` (the one decisions counter,
sovereign/exporter/decisions.py) to the gateway at $SOVEREIGN_PUSHGATEWAY_URL, one LlamaDeployment one
decision. Each stack is one group there (`job="sovereign-preview"`, `stack`); a preview first reads what
its group holds and counts on from it, so across previews the counter only grows, as a counter must
(Pulumi locks a stack while it previews or updates it, so no two runs push one group at once).

Without the setting nothing leaves the process: the verdicts are in the preview's output and the stack's
history. A gateway that does not answer is reported on stderr and never fails a preview. The pack exports
no engine health: an engine that cannot decide fails the preview itself, and is counted here as a deny
with ENGINE_UNAVAILABLE or BUNDLE_UNVERIFIED.
"""

from __future__ import annotations

import os
import sys

import requests
from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client.parser import text_string_to_metric_families

from sovereign.exporter.decisions import NAME, DecisionCounter
from sovereign.policy.judgement import Judgement

PUSHGATEWAY_ENV = "SOVEREIGN_PUSHGATEWAY_URL"
JOB = "sovereign-preview"
_TIMEOUT_S = 2.0
_LABELS = ("point", "region", "cluster", "model", "decision", "code")


def stack_of(urn: str) -> str:
    """The stack in a Pulumi URN: urn:pulumi:<stack>::<project>::<type>::<name>."""
    return urn.removeprefix("urn:pulumi:").split("::", 1)[0]


class PreviewDecisions:
    def __init__(self, gateway: str | None) -> None:
        self.gateway = gateway
        self.registry = CollectorRegistry()
        self.counter = DecisionCounter(self.registry)
        self._counted: set[str] = set()  # URNs: the pack's three policies each judge every resource
        self._resumed = False

    def record(self, urn: str, region: str, cluster: str, model: str, judgement: Judgement) -> None:
        if urn in self._counted:
            return
        self._counted.add(urn)
        if self.gateway is None:
            return
        stack = stack_of(urn)
        try:
            if not self._resumed:
                self._resume(stack)
                self._resumed = True
            decision = "allow" if judgement.allowed else "deny"
            self.counter.record("preview", region, cluster, model, decision, judgement.codes)
            push_to_gateway(
                self.gateway,
                job=JOB,
                registry=self.registry,
                grouping_key={"stack": stack},
                timeout=_TIMEOUT_S,
            )
        except OSError as exc:  # requests' and urllib's errors alike: metrics never fail a preview
            print(f"sovereign: preview decisions not pushed to {self.gateway}: {exc}", file=sys.stderr)

    def _resume(self, stack: str) -> None:
        """Count on from what the gateway holds for this stack's group."""
        text = requests.get(f"{self.gateway.rstrip('/')}/metrics", timeout=_TIMEOUT_S).text
        for family in text_string_to_metric_families(text):
            if family.name != NAME:
                continue
            for sample in family.samples:
                ours = sample.labels.get("job") == JOB and sample.labels.get("stack") == stack
                if ours and sample.name == f"{NAME}_total":
                    self.counter.resume({k: sample.labels[k] for k in _LABELS}, sample.value)


DECISIONS = PreviewDecisions(os.environ.get(PUSHGATEWAY_ENV))
