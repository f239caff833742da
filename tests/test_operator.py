"""The operator as a process against the real API server and OPA: LlamaDeployment create/update/delete,
denial without admission, and the three enforcement modes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from operators.localrun import LocalOperator, wait_until
from operators.sovereign_operator import rayservice
from operators.sovereign_operator.conditions import find
from serving.args import IMPORT_PATH, ServingArgs
from sovereign import vocabulary as k8s
from sovereign.devenv.controlplane import ControlPlane
from sovereign.exporter.allocation import requested_gpus
from sovereign.policy import subjects
from sovereign.policy.clusters import ClusterSpec, Deployment
from sovereign.vocabulary import CONDITION_DEPLOYED as DEPLOYED
from sovereign.vocabulary import CONDITION_POLICY_COMPLIANT as POLICY_COMPLIANT
from sovereign.vocabulary import LABEL_CLUSTER, LABEL_MODEL, LABEL_REGION, LABEL_TENANT

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]
WAIT_S = 30.0


def usdef_cluster(ns: str, enforcement: str = "enforce", quota: int = 64) -> ClusterSpec:
    """The cluster `<ns>-1`, on which namespace `ns` may deploy."""
    expires = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
    return ClusterSpec.model_validate(
        {
            "name": f"{ns}-1",
            "tenants": [ns],
            "region": "us-defense",
            "country": "US",
            "weights_country": "US",
            "gpu_quota": quota,
            "enforcement": enforcement,
            "operator": {
                "name": "Lattice Federal Systems Inc.",
                "country": "US",
                "kind": "government_contractor",
                "sponsor_country": "US",
            },
            "accreditations": [{"scheme": "dod-il5", "expires": expires}],
        }
    )


def deployment(
    cluster: ClusterSpec, name: str, namespace: str, model: str = "llama-3.3-70b-instruct", **spec: Any
) -> dict[str, Any]:
    declared = Deployment.model_validate({"name": name, "model": model, "end_use": "defense", **spec})
    return subjects.llama_deployment(cluster, declared, namespace)


def compliance(obj: dict[str, Any] | None) -> tuple[str | None, str | None]:
    condition = find((obj or {}).get("status", {}).get("conditions"), POLICY_COMPLIANT) or {}
    return condition.get("status"), condition.get("reason")


def test_compliant_deployment_becomes_a_sized_labelled_owned_rayservice_and_goes_with_it(
    sovereign_operator: LocalOperator,
) -> None:
    op, ns = sovereign_operator, "op-flows"
    op.onboard(ns)
    cluster = usdef_cluster(ns)
    op.create(subjects.sovereign_cluster(cluster, capacity=96))
    created = op.create(deployment(cluster, "chat", ns, replicas=2, gpus_per_replica=4))
    name = created["metadata"]["name"]

    rs = wait_until(lambda: op.get("rayservices", name, ns), WAIT_S, "the RayService")
    labels = rs["metadata"]["labels"]
    assert (labels[LABEL_REGION], labels[LABEL_CLUSTER], labels[LABEL_MODEL], labels[LABEL_TENANT]) == (
        "us-defense",
        "op-flows-1",
        "llama-3.3-70b-instruct",
        ns,
    )
    assert rayservice.owner_uid(rs) == created["metadata"]["uid"]
    assert requested_gpus(rs) == 8
    app = yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"][0]
    assert app["import_path"] == IMPORT_PATH
    assert ServingArgs.model_validate(app["args"]).policy.cluster.name == "op-flows-1"

    ld = wait_until(
        lambda: (d := op.get("llamadeployments", name, ns)) and d.get("status", {}).get("phase") and d,
        WAIT_S,
        "status",
    )
    status = ld["status"]
    assert status["phase"] == "Running" and status["policy"]["allowed"] is True
    compliant = find(status["conditions"], POLICY_COMPLIANT)
    assert compliant and compliant["status"] == "True" and compliant["observedGeneration"] == 1
    assert compliant["lastTransitionTime"] and find(status["conditions"], DEPLOYED)["status"] == "True"  # type: ignore[index]
    assert not ld["metadata"].get("finalizers")  # nothing can stick in Terminating without the operator
    assert "RayServiceCreated" in wait_until(lambda: op.event_reasons(ns, name), WAIT_S, "an Event")

    op.patch("llamadeployments", name, {"spec": {"replicas": 3}}, ns)
    wait_until(
        lambda: requested_gpus(op.get("rayservices", name, ns) or rs) == 12, WAIT_S, "the resized RayService"
    )
    wait_until(
        lambda: (op.get("llamadeployments", name, ns) or {}).get("status", {}).get("observedGeneration") == 2,
        WAIT_S,
        "observedGeneration 2",
    )

    op.delete("llamadeployments", name, ns)
    wait_until(lambda: op.get("rayservices", name, ns) is None, WAIT_S, "the RayService to go")


def test_an_edited_owned_rayservice_is_restored_to_what_was_judged_annotation_or_not(
    sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    op, ns = sovereign_operator, "op-edits"
    op.onboard(ns)
    cluster = usdef_cluster(ns)
    op.create(subjects.sovereign_cluster(cluster, capacity=96))
    name = op.create(deployment(cluster, "chat", ns))["metadata"]["name"]
    judged = wait_until(lambda: op.get("rayservices", name, ns), WAIT_S, "the RayService")
    # Another (allowed) image and another size, the spec-hash annotation left as it was: admitted, since
    # admission judges what it would run, but it is not what was judged for this deployment.
    group = judged["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    container = {**group["template"]["spec"]["containers"][0], "image": "rayproject/ray:nightly"}
    edited = {
        "spec": {
            "rayClusterConfig": {
                "workerGroupSpecs": [
                    {**group, "template": {**group["template"], "spec": {"containers": [container]}}}
                ]
            }
        }
    }
    (tmp_path / "edit.yaml").write_text(yaml.safe_dump(edited))
    done = controlplane.kubectl(
        "patch", "rayservice", name, "-n", ns, "--type=merge", "--patch-file", str(tmp_path / "edit.yaml")
    )
    assert done.returncode == 0, done.stderr
    restored = wait_until(
        lambda: (rs := op.get("rayservices", name, ns)) and rs["spec"] == judged["spec"] and rs,
        WAIT_S,
        "the judged spec restored",
    )
    assert (
        restored["metadata"]["generation"] > judged["metadata"]["generation"]
    )  # it was edited, then restored
    # The Event follows the restoring write; it is not in the same request.
    wait_until(lambda: "RayServiceUpdated" in op.event_reasons(ns, name), WAIT_S, "its Event")


def test_without_admission_a_denied_deployment_gets_no_rayservice_but_reasons(
    sovereign_operator: LocalOperator, controlplane: ControlPlane
) -> None:
    """A namespace the operator may write in but the webhook does not watch: the reconciler alone refuses."""
    op, ns = sovereign_operator, "op-no-admission"
    op.onboard(ns)
    assert controlplane.kubectl("label", "namespace", ns, f"{k8s.LABEL_MANAGED}-").returncode == 0
    cluster = usdef_cluster(ns, quota=8)
    op.create(subjects.sovereign_cluster(cluster))
    name = op.create(deployment(cluster, "big", ns, replicas=4, gpus_per_replica=8))["metadata"]["name"]

    ld = wait_until(
        lambda: (d := op.get("llamadeployments", name, ns)) and compliance(d)[0] and d, WAIT_S, "a decision"
    )
    assert compliance(ld) == ("False", "Denied")
    assert ld["status"]["phase"] == "Refused"
    assert [v["code"] for v in ld["status"]["violations"]] == ["GPU_QUOTA_EXCEEDED"]
    assert all(v["citation"] for v in ld["status"]["violations"])
    assert "GPU_QUOTA_EXCEEDED" in find(ld["status"]["conditions"], POLICY_COMPLIANT)["message"]  # type: ignore[index]
    assert "PolicyDenied" in wait_until(lambda: op.event_reasons(ns, name), WAIT_S, "an Event")
    assert op.get("rayservices", name, ns) is None


def test_warn_admits_with_warnings_enforce_suspends_dryrun_records(
    sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Any
) -> None:
    op, ns = sovereign_operator, "op-modes"
    op.onboard(ns)
    cluster = usdef_cluster(ns, enforcement="warn")
    op.create(subjects.sovereign_cluster(cluster))
    noncompliant = deployment(cluster, "unknown", ns, model="llama-9-1t", gpus_per_replica=2)
    name = noncompliant["metadata"]["name"]
    (tmp_path / "ld.yaml").write_text(yaml.safe_dump(noncompliant))

    applied = controlplane.kubectl("apply", "-f", str(tmp_path / "ld.yaml"))
    assert applied.returncode == 0, applied.stderr
    assert "Warning:" in applied.stderr and "UNKNOWN_MODEL (spec.model)" in applied.stderr
    wait_until(lambda: op.get("rayservices", name, ns), WAIT_S, "the RayService warn mode admits")
    ld = wait_until(
        lambda: (d := op.get("llamadeployments", name, ns)) and compliance(d)[0] and d, WAIT_S, "status"
    )
    assert compliance(ld) == ("False", "DeniedWarnOnly") and ld["status"]["phase"] == "Running"

    op.patch("sovereignclusters", cluster.name, {"spec": {"enforcement": "enforce"}})
    suspended = wait_until(
        lambda: (rs := op.get("rayservices", name, ns)) and rayservice.is_suspended(rs) and rs,
        WAIT_S,
        "suspension",
    )
    assert suspended["metadata"]["uid"] == op.get("rayservices", name, ns)["metadata"]["uid"]  # type: ignore[index]
    ld = wait_until(
        lambda: (d := op.get("llamadeployments", name, ns)) and d["status"]["phase"] == "Suspended" and d,
        WAIT_S,
        "Suspended",
    )
    assert compliance(ld) == ("False", "Denied")
    wait_until(lambda: "RayServiceSuspended" in op.event_reasons(ns, name), WAIT_S, "the suspension Event")

    op.patch("sovereignclusters", cluster.name, {"spec": {"enforcement": "dryrun"}})
    wait_until(
        lambda: not rayservice.is_suspended(op.get("rayservices", name, ns) or {}), WAIT_S, "resumption"
    )
    ld = wait_until(
        lambda: (d := op.get("llamadeployments", name, ns)) and compliance(d)[1] == "DeniedDryRun" and d,
        WAIT_S,
        "dryrun",
    )
    assert ld["status"]["phase"] == "Running"
    second = {**noncompliant, "metadata": {**noncompliant["metadata"], "name": f"{name}-2"}}
    (tmp_path / "ld2.yaml").write_text(yaml.safe_dump(second))
    applied = controlplane.kubectl("apply", "-f", str(tmp_path / "ld2.yaml"))
    assert applied.returncode == 0 and "Warning:" not in applied.stderr  # dryrun: recorded, not shown
    assert "PolicyViolationsRecorded" in wait_until(
        lambda: op.event_reasons(ns, f"{name}-2"), WAIT_S, "an Event"
    )
