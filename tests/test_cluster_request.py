"""A contractor's ClusterRequest through `sovereign request submit | status`, decided by the running
operator: screening, eligibility and accreditation through the policy, recorded in status and Events."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from operators import manifests
from operators.localrun import LocalOperator, wait_until
from sovereign import vocabulary as k8s
from sovereign.devenv.controlplane import ControlPlane

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]
REQUESTS = manifests.EXAMPLES_DIR / "clusterrequests"


def sovereign(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run(
        [sys.executable, "-m", "sovereign", *args], capture_output=True, text=True, env=env, timeout=120
    )


def _renamed(
    source: Path, tmp_path: Path, name: str, cluster: str, namespace: str = "requests", **spec: object
) -> Path:
    doc = yaml.safe_load(source.read_text())
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"].update(clusterName=cluster, **spec)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def requests_namespace(sovereign_operator: LocalOperator) -> str:
    sovereign_operator.onboard("requests")
    return "requests"


def test_an_eligible_accredited_contractor_is_approved_and_gets_its_cluster(
    sovereign_operator: LocalOperator, controlplane: ControlPlane, requests_namespace: str, tmp_path: Path
) -> None:
    op, ns = sovereign_operator, requests_namespace
    path = _renamed(REQUESTS / "clusterrequest-approved.yaml", tmp_path, "lattice", "req-lattice-1")
    submitted = sovereign(controlplane.kubeconfig, "request", "submit", str(path))
    assert submitted.returncode == 0, submitted.stderr
    shown = sovereign(controlplane.kubeconfig, "request", "status", "lattice", "--namespace", ns)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Approved" in shown.stdout and "SovereignCluster req-lattice-1 created" in shown.stdout

    request = op.get("clusterrequests", "lattice", ns)
    assert request is not None
    status = request["status"]
    assert status["decision"]["approved"] is True and status["decision"]["revision"]
    assert [entry["phase"] for entry in status["history"]] == ["Approved"]
    cluster = op.get("sovereignclusters", "req-lattice-1")
    assert cluster is not None
    assert cluster["metadata"]["labels"][k8s.LABEL_REQUEST_UID] == request["metadata"]["uid"]
    assert cluster["spec"]["gpu"] == {"capacity": 16, "quota": 16}
    reasons = wait_until(lambda: set(op.event_reasons(ns, "lattice")), 30, "the Events")
    assert {"ClusterRequestApproved", "SovereignClusterCreated"} <= reasons

    op.delete("clusterrequests", "lattice", ns)  # the request owns its cluster
    wait_until(lambda: op.get("sovereignclusters", "req-lattice-1") is None, 30, "the cluster to go with it")


def test_a_listed_ineligible_lapsed_contractor_is_denied_with_reasons_and_citations(
    sovereign_operator: LocalOperator, controlplane: ControlPlane, requests_namespace: str, tmp_path: Path
) -> None:
    op, ns = sovereign_operator, requests_namespace
    path = _renamed(REQUESTS / "clusterrequest-denied.yaml", tmp_path, "northwind", "req-northwind-1")
    assert sovereign(controlplane.kubeconfig, "request", "submit", str(path)).returncode == 0
    shown = sovereign(controlplane.kubeconfig, "request", "status", "northwind", "--namespace", ns)
    assert shown.returncode == 1, shown.stdout + shown.stderr
    for code in ("DENIED_PARTY", "OPERATOR_NOT_ELIGIBLE", "ACCREDITATION_EXPIRED"):
        assert code in shown.stdout
    assert shown.stdout.count("citation: ") >= 3

    status = op.get("clusterrequests", "northwind", ns)["status"]  # type: ignore[index]
    assert status["phase"] == "Denied" and all(r["citation"] for r in status["reasons"])
    hit = next(r for r in status["reasons"] if r["code"] == "DENIED_PARTY")
    assert "Northwind Aerospace Industries" in hit["message"]  # a current copy of the sample list
    assert op.get("sovereignclusters", "req-northwind-1") is None
    assert "ClusterRequestDenied" in wait_until(lambda: op.event_reasons(ns, "northwind"), 30, "the Event")


def test_bad_requests_are_refused_naming_the_field_and_decisions_cannot_be_rewritten(
    sovereign_operator: LocalOperator, controlplane: ControlPlane, requests_namespace: str, tmp_path: Path
) -> None:
    path = _renamed(
        REQUESTS / "clusterrequest-approved.yaml", tmp_path, "typo", "req-typo-1", endUse="warfare"
    )
    refused = sovereign(controlplane.kubeconfig, "request", "submit", str(path))
    assert refused.returncode == 2 and "spec.endUse" in refused.stderr, refused.stderr
    assert sovereign_operator.get("clusterrequests", "typo", requests_namespace) is None
    missing = sovereign(
        controlplane.kubeconfig, "request", "status", "nobody", "--namespace", requests_namespace
    )
    assert missing.returncode == 2 and "not found" in missing.stderr

    path = _renamed(REQUESTS / "clusterrequest-denied.yaml", tmp_path, "rewrite", "req-rewrite-1")
    assert sovereign(controlplane.kubeconfig, "request", "submit", str(path)).returncode == 0
    patched = controlplane.kubectl(
        "patch",
        "clusterrequest",
        "rewrite",
        "-n",
        requests_namespace,
        "--type=merge",
        "-p",
        '{"spec":{"gpus":4}}',
    )
    assert patched.returncode != 0 and "spec is immutable" in patched.stderr


def test_a_request_the_operator_may_not_answer_says_why_and_is_decided_once_it_may(
    sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    """A namespace nobody onboarded: the operator may not write the request's status (403). `request
    status` says the operator is failing and why, and once the namespace is onboarded the same request is
    decided by the operator's retries: never stuck, never resubmitted."""
    namespace = "requests-not-onboarded"
    assert controlplane.kubectl("create", "namespace", namespace).returncode == 0
    path = _renamed(REQUESTS / "clusterrequest-approved.yaml", tmp_path, "waits", "req-waits-1", namespace)
    assert sovereign(controlplane.kubeconfig, "request", "submit", str(path)).returncode == 0
    waiting = sovereign(controlplane.kubeconfig, "request", "status", "waits", "-n", namespace, "--timeout=6")
    assert waiting.returncode == 1, waiting.stdout + waiting.stderr
    assert "Traceback" not in waiting.stderr
    error = waiting.stderr.strip().splitlines()[-1]
    assert error.startswith("error: clusterrequest requests-not-onboarded/waits has no decision after 6 s: ")
    assert "failing: clusterrequest requests-not-onboarded/waits: the API server refused:" in error
    assert 'cannot patch resource "clusterrequests/status"' in error
    assert "onboard the namespace: label it sovereign.dev/managed=true" in error

    sovereign_operator.onboard(namespace)
    decided = sovereign(
        controlplane.kubeconfig, "request", "status", "waits", "-n", namespace, "--timeout=60"
    )
    assert decided.returncode == 0, decided.stdout + decided.stderr
    assert "Approved" in decided.stdout and "SovereignCluster req-waits-1 created" in decided.stdout
    sovereign_operator.delete("clusterrequests", "waits", namespace)
