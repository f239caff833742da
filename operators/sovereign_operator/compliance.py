"""What the operator reports of compliance, from exactly what it acts on (sovereign/exporter/compliance.py
holds the series): a deployment is compliant when its judgement's action is ADMIT, not when it is
refused, warned about or recorded; while nothing could be decided (HOLD) its last value stands, as its
RayService does. A cluster's accreditation expiry is read from the facts its deployments are judged with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sovereign.errors import BadInput
from sovereign.exporter.compliance import (
    COMPLIANCE,
    AccreditationSeries,
    ComplianceGauges,
    DeploymentSeries,
)
from sovereign.policy.judgement import Action
from sovereign.policy.subjects import cluster_facts


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


class ComplianceReport:
    def __init__(self, gauges: ComplianceGauges = COMPLIANCE) -> None:
        self.gauges = gauges

    def acted(self, deployment: Mapping[str, Any], cluster: Mapping[str, Any], action: Action) -> None:
        """A deployment was judged on `cluster` (empty when it is gone) and resolved to `action`."""
        if action is Action.HOLD:
            return
        namespace, name = _key(deployment)
        spec = deployment.get("spec") or {}
        self.gauges.set_deployment(
            DeploymentSeries(
                region=str((cluster.get("spec") or {}).get("region") or ""),
                cluster=str(spec.get("clusterRef")),
                namespace=namespace,
                deployment=name,
                model=str(spec.get("model")),
                compliant=action is Action.ADMIT,
            )
        )

    def removed(self, deployment: Mapping[str, Any]) -> None:
        self.gauges.forget_deployment(_key(deployment))

    def listed(self, deployments: Iterable[Mapping[str, Any]], clusters: Iterable[Mapping[str, Any]]) -> None:
        """Every LlamaDeployment and SovereignCluster, as a full pass lists them: deployments gone since
        lose their series; every cluster's accreditations are reported anew."""
        self.gauges.keep_deployments(_key(d) for d in deployments)
        accreditations = []
        for cluster in clusters:
            try:
                facts = cluster_facts(cluster)
            except BadInput:  # its deployments are unjudgeable (and reported so): no facts to report
                continue
            accreditations += [
                AccreditationSeries(facts.region, facts.name, a.scheme, a.expires)
                for a in facts.accreditations
            ]
        self.gauges.set_accreditations(accreditations)
