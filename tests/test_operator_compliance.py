"""What the operator reports of compliance, without a cluster: a deployment's series from the action
reconcile acts on, a cluster's accreditation expiry from the facts it is judged with. End to end (the
real operator scraped by a real Prometheus, the alerts firing): tests/test_monitoring_alerts.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from judgements import decision
from prometheus_client import CollectorRegistry

from operators.sovereign_operator.compliance import ComplianceReport
from operators.sovereign_operator.drift import DeploymentFleet
from operators.sovereign_operator.reconcile import Converged, resolve
from sovereign import toolchain
from sovereign import vocabulary as k8s
from sovereign.exporter.compliance import ComplianceGauges
from sovereign.policy import subjects
from sovereign.policy.clusters import load_cluster
from sovereign.policy.engine import ENGINE_UNAVAILABLE, fail_closed
from sovereign.policy.judgement import Judge, Judgement, Mode

SPEC = load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-frankfurt-1.yaml")  # bsi-c5 until 2027-03-31
CLUSTER = subjects.sovereign_cluster(SPEC)
CHAT = subjects.llama_deployment(SPEC, SPEC.deployments[0], SPEC.name)
CHAT["metadata"]["uid"] = "chat-uid"
LABELS = {
    "region": "eu-text-only",
    "cluster": "eu-frankfurt-1",
    "namespace": "eu-frankfurt-1",
    "deployment": CHAT["metadata"]["name"],
    "model": "llama-3.3-70b-instruct",
}


ALLOWED = Judgement.of(decision(True))
DENIED = Judgement.of(decision(False, "END_USE_NOT_PERMITTED"))
UNDECIDED = Judgement.of(fail_closed(ENGINE_UNAVAILABLE, "connection refused", "opa-rest"))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def report(registry: CollectorRegistry) -> ComplianceReport:
    return ComplianceReport(ComplianceGauges(registry))


def compliant(registry: CollectorRegistry, **labels: str) -> float | None:
    return registry.get_sample_value("sovereign_deployment_compliant", LABELS | labels)


@pytest.mark.parametrize(
    ("judgement", "mode", "value"),
    [
        (ALLOWED, Mode.ENFORCE, 1),
        (DENIED, Mode.ENFORCE, 0),  # refused: suspended
        (DENIED, Mode.WARN, 0),  # runs, but the policy does not allow it
        (DENIED, Mode.DRYRUN, 0),
        (Judgement.unjudgeable(k8s.REASON_INVALID_SPEC, "bad spec"), Mode.ENFORCE, 0),
    ],
)
def test_a_deployment_is_compliant_exactly_when_its_judgement_admits_it(
    report: ComplianceReport, registry: CollectorRegistry, judgement: Judgement, mode: Mode, value: int
) -> None:
    report.acted(CHAT, CLUSTER, resolve(judgement, mode).action)
    assert compliant(registry) == value


def test_while_nothing_can_be_decided_the_last_value_stands(
    report: ComplianceReport, registry: CollectorRegistry
) -> None:
    report.acted(CHAT, CLUSTER, resolve(UNDECIDED, Mode.ENFORCE).action)
    assert compliant(registry) is None  # never decided: no series
    for judgement, value in ((ALLOWED, 1), (UNDECIDED, 1), (DENIED, 0), (UNDECIDED, 0)):
        report.acted(CHAT, CLUSTER, resolve(judgement, Mode.ENFORCE).action)
        assert compliant(registry) == value


def test_a_deleted_cluster_leaves_its_deployments_non_compliant_without_a_region(
    report: ComplianceReport, registry: CollectorRegistry
) -> None:
    gone = Judgement.unjudgeable(
        k8s.REASON_CLUSTER_NOT_FOUND, "SovereignCluster eu-frankfurt-1 does not exist"
    )
    report.acted(CHAT, {}, resolve(gone, Mode.ENFORCE).action)
    assert compliant(registry, region="") == 0


def test_a_full_listing_drops_deployments_gone_and_reports_every_accreditation(
    report: ComplianceReport, registry: CollectorRegistry
) -> None:
    other = {**CHAT, "metadata": {**CHAT["metadata"], "name": "other"}}
    for deployment in (CHAT, other):
        report.acted(deployment, CLUSTER, resolve(ALLOWED, Mode.ENFORCE).action)
    unreadable = {"metadata": {"name": "broken"}, "spec": {"region": "eu-text-only"}}  # no country, operator
    two_schemes = subjects.sovereign_cluster(SPEC)
    two_schemes["metadata"]["name"] = "eu-twice-1"
    two_schemes["spec"]["accreditations"] = [
        {"scheme": "bsi-c5", "expires": "2026-12-31"},
        {"scheme": "bsi-c5", "expires": "2027-01-31"},  # renewed: the later one holds
        {"scheme": "iso-27001", "expires": "2026-06-30"},
    ]
    report.listed([CHAT], [CLUSTER, unreadable, two_schemes])

    assert compliant(registry) == 1
    assert compliant(registry, deployment="other") is None

    def expiry(cluster: str, scheme: str) -> float | None:
        labels = {"region": "eu-text-only", "cluster": cluster, "scheme": scheme}
        return registry.get_sample_value("sovereign_accreditation_expiry_timestamp_seconds", labels)

    # Valid through its `expires` day (the policy: as_of <= expires): it expires at the next UTC midnight.
    assert expiry("eu-frankfurt-1", "bsi-c5") == datetime(2027, 4, 1, tzinfo=UTC).timestamp()
    assert expiry("eu-twice-1", "bsi-c5") == datetime(2027, 2, 1, tzinfo=UTC).timestamp()
    assert expiry("eu-twice-1", "iso-27001") == datetime(2026, 7, 1, tzinfo=UTC).timestamp()
    assert expiry("broken", "bsi-c5") is None


class OneListing:
    """An API server holding one SovereignCluster and one LlamaDeployment."""

    def list_all(self, plural: str, *_: str) -> list[dict[str, Any]]:
        return {k8s.DEPLOYMENTS: [CHAT], k8s.CLUSTERS: [CLUSTER]}.get(plural, [])


class Unchanged:
    def __init__(self, compliance: ComplianceReport) -> None:
        self.compliance = compliance

    def converge(self, *_: Any, **__: Any) -> Converged:
        return Converged()


def test_a_fleet_pass_reports_what_it_listed(report: ComplianceReport, registry: CollectorRegistry) -> None:
    gone = {**CHAT, "metadata": {**CHAT["metadata"], "name": "deleted-while-down"}}
    report.acted(gone, CLUSTER, resolve(DENIED, Mode.ENFORCE).action)
    DeploymentFleet(OneListing(), Unchanged(report), Judge(None)).converge(cluster="eu-frankfurt-1")  # type: ignore[arg-type]
    assert compliant(registry, deployment="deleted-while-down") is None
    labels = {"region": "eu-text-only", "cluster": "eu-frankfurt-1", "scheme": "bsi-c5"}
    assert registry.get_sample_value("sovereign_accreditation_expiry_timestamp_seconds", labels)
