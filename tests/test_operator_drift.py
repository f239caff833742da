"""Policy drift against the running operator: a new policy revision, an expired accreditation, an
unreachable OPA, and a SIGKILL in the middle of a rollout."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from operators.localrun import LocalOperator, wait_until
from operators.sovereign_operator import rayservice
from operators.sovereign_operator.conditions import find
from serving.manifest import RAY_IMAGE
from sovereign.devenv.controlplane import ControlPlane
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle, build_bundle, folder_sources
from sovereign.policy.clusters import ClusterSpec, Deployment
from sovereign.vocabulary import CONDITION_POLICY_COMPLIANT as POLICY_COMPLIANT
from sovereign.vocabulary import REASON_ENGINE_UNAVAILABLE, REASON_SCREENING_UNAVAILABLE

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]
# Upper bounds, met in seconds alone: a restarted operator first re-judges the whole shared control plane's
# fleet (every module's deployments), which under a full test run can take tens of seconds.
WAIT_S = 90.0


def usdef_cluster(ns: str, expires: date) -> ClusterSpec:
    """The cluster `<ns>-1`, on which namespace `ns` may deploy."""
    return ClusterSpec.model_validate(
        {
            "name": f"{ns}-1",
            "tenants": [ns],
            "region": "us-defense",
            "country": "US",
            "operator": {
                "name": "Lattice Federal Systems Inc.",
                "country": "US",
                "kind": "government_agency",
            },
            "accreditations": [{"scheme": "dod-il5", "expires": expires.isoformat()}],
        }
    )


def deploy(op: LocalOperator, cluster: ClusterSpec, ns: str, name: str, end_use: str = "defense") -> str:
    declared = Deployment.model_validate({"name": name, "model": "llama-3.1-8b-instruct", "end_use": end_use})
    created = op.create(subjects.llama_deployment(cluster, declared, ns))
    return str(created["metadata"]["name"])


def compliant(op: LocalOperator, ns: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The deployment's status and its PolicyCompliant condition."""
    status = (op.get("llamadeployments", name, ns) or {}).get("status") or {}
    return status, find(status.get("conditions"), POLICY_COMPLIANT) or {}


def compliance(op: LocalOperator, ns: str, name: str) -> tuple[str | None, list[str]]:
    status, condition = compliant(op, ns, name)
    return condition.get("status"), [v["code"] for v in status.get("violations") or []]


def held(op: LocalOperator, ns: str, name: str, reason: str = REASON_ENGINE_UNAVAILABLE) -> bool:
    """PolicyCompliant says nothing could be decided, and why: Unknown, `reason`."""
    _, condition = compliant(op, ns, name)
    return (condition.get("status"), condition.get("reason")) == ("Unknown", reason)


def decision_of(op: LocalOperator, ns: str, name: str) -> dict[str, Any]:
    """The operator's status, less kopf's own bookkeeping (written after each handler)."""
    status = dict((op.get("llamadeployments", name, ns) or {}).get("status") or {})
    status.pop("kopf", None)
    return status


def suspended(op: LocalOperator, ns: str, name: str) -> bool | None:
    rs = op.get("rayservices", name, ns)
    return None if rs is None else rayservice.is_suspended(rs)


def running(op: LocalOperator, ns: str, name: str) -> bool:
    return suspended(op, ns, name) is False


@pytest.fixture(scope="module")
def defense_banned_bundle(
    tmp_path_factory: pytest.TempPathFactory, defense_banned_policies: Path
) -> SignedBundle:
    """The real policy, with `defense` taken out of the us-defense region's end uses: a new revision."""
    out = tmp_path_factory.mktemp("policy-change") / "bundle"
    return build_bundle(folder_sources(defense_banned_policies), out, progress=lambda line: None)


def direct_rayservice(cluster: ClusterSpec, ns: str, name: str) -> dict[str, Any]:
    """A RayService made by hand, exactly as the operator would generate it for a defence deployment."""
    declared = Deployment.model_validate(
        {"name": name, "model": "llama-3.1-8b-instruct", "end_use": "defense"}
    )
    deployment = subjects.llama_deployment(cluster, declared, ns)
    deployment["metadata"]["uid"] = "by-hand"
    cluster_obj = subjects.sovereign_cluster(cluster)
    body = rayservice.desired(
        deployment, cluster_obj, subjects.deployment_input(cluster_obj, deployment), RAY_IMAGE
    )
    del body["metadata"]["ownerReferences"]
    return body


def test_a_policy_change_suspends_what_it_now_denies_and_restores_it_when_reverted(
    sovereign_operator: LocalOperator, signed_bundle: SignedBundle, defense_banned_bundle: SignedBundle
) -> None:
    op, ns = sovereign_operator, "drift-policy"
    op.onboard(ns)
    cluster = usdef_cluster("drift-policy", datetime.now(UTC).date() + timedelta(days=365))
    op.create(subjects.sovereign_cluster(cluster))
    defense, research = deploy(op, cluster, ns, "defense"), deploy(op, cluster, ns, "research", "research")
    for name in (defense, research):
        wait_until(lambda name=name: running(op, ns, name), WAIT_S, f"{name} to run")
    research_status = decision_of(op, ns, research)
    direct = op.create(direct_rayservice(cluster, ns, "direct-defense"))["metadata"]["name"]  # admitted
    assert defense_banned_bundle.revision != signed_bundle.revision

    try:
        op.start_opa(defense_banned_bundle)
        wait_until(lambda: suspended(op, ns, defense), WAIT_S, "the defence RayService to be suspended")
        # A RayService made directly escapes nothing: re-judged in the same pass, suspended as well.
        wait_until(lambda: suspended(op, ns, direct), WAIT_S, "the direct defence RayService to be suspended")
        assert compliance(op, ns, defense) == ("False", ["END_USE_NOT_PERMITTED"])
        status = op.get("llamadeployments", defense, ns)["status"]  # type: ignore[index]
        assert (
            status["policy"]["revision"] == defense_banned_bundle.revision and status["phase"] == "Suspended"
        )
        assert running(op, ns, research)  # still allowed: untouched, its status not even rewritten
        assert decision_of(op, ns, research) == research_status
        # One drift pass, one batched query, logged when the pass ends.
        wait_until(lambda: f"-> {defense_banned_bundle.revision}" in op.log(), WAIT_S, "the drift pass")
    finally:
        op.start_opa()
    wait_until(lambda: running(op, ns, defense), WAIT_S, "the defence RayService to be restored")
    assert compliance(op, ns, defense) == ("True", [])


def test_an_expired_accreditation_suspends_and_the_present_restores(
    sovereign_operator: LocalOperator,
) -> None:
    op, ns = sovereign_operator, "drift-expiry"
    op.onboard(ns)
    expires = datetime.now(UTC).date() + timedelta(days=30)
    cluster = usdef_cluster("drift-expiry", expires)
    op.create(subjects.sovereign_cluster(cluster))
    name = deploy(op, cluster, ns, "chat")
    wait_until(lambda: running(op, ns, name), WAIT_S, "the deployment to run")
    try:
        # Judged as of the day after expiry, as it will be on that day (`--as-of` rehearses it).
        op.start(f"--as-of={(expires + timedelta(days=1)).isoformat()}")
        wait_until(lambda: suspended(op, ns, name), WAIT_S, "suspension the day after expiry")
        assert compliance(op, ns, name) == ("False", ["ACCREDITATION_EXPIRED"])
    finally:
        op.start()
    wait_until(lambda: running(op, ns, name), WAIT_S, "restoration as of today")


def one_running_and_one_to_apply(
    op: LocalOperator, ns: str, manifest: Path
) -> tuple[ClusterSpec, str, dict[str, Any] | None]:
    """A cluster `<ns>-1` with one running deployment, and a second written to `manifest`, not applied:
    the cluster, the running one's name and its RayService as it runs."""
    op.onboard(ns)
    cluster = usdef_cluster(ns, datetime.now(UTC).date() + timedelta(days=365))
    op.create(subjects.sovereign_cluster(cluster))
    name = deploy(op, cluster, ns, "running")
    wait_until(lambda: running(op, ns, name), WAIT_S, "the deployment to run")
    declared = Deployment.model_validate(
        {"name": "new", "model": "llama-3.1-8b-instruct", "end_use": "defense"}
    )
    manifest.write_text(yaml.safe_dump(subjects.llama_deployment(cluster, declared, ns)))
    return cluster, name, op.get("rayservices", name, ns)


def test_with_opa_down_new_deployments_are_refused_and_nothing_running_is_touched(
    sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    op, ns = sovereign_operator, "drift-opa-down"
    cluster, name, before = one_running_and_one_to_apply(op, ns, tmp_path / "new.yaml")

    op.stop_opa()
    try:
        refused = controlplane.kubectl("apply", "-f", str(tmp_path / "new.yaml"))
        assert refused.returncode != 0 and "ENGINE_UNAVAILABLE" in refused.stderr, refused.stderr
        assert op.get("llamadeployments", f"{cluster.name}-new", ns) is None
        # A change of the cluster's facts asks for a new judgement the engine cannot give: held.
        op.patch("sovereignclusters", cluster.name, {"spec": {"gpu": {"capacity": 64}}})
        wait_until(lambda: held(op, ns, name), WAIT_S, "the running deployment held (Unknown)")
        time.sleep(3)  # three drift ticks against a dead engine
        after = op.get("rayservices", name, ns)
        assert after is not None and not rayservice.is_suspended(after)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # type: ignore[index]
    finally:
        op.start_opa()
    wait_until(lambda: compliance(op, ns, name)[0] == "True", WAIT_S, "the held deployment judged again")
    admitted = controlplane.kubectl("apply", "-f", str(tmp_path / "new.yaml"))
    assert admitted.returncode == 0, admitted.stderr
    wait_until(lambda: running(op, ns, f"{cluster.name}-new"), WAIT_S, "the new deployment once OPA is back")


def test_a_stale_screening_list_holds_everything_until_a_current_one_replaces_it(
    sovereign_operator: LocalOperator,
    controlplane: ControlPlane,
    tmp_path: Path,
    current_screening_list: Path,
) -> None:
    op, ns = sovereign_operator, "drift-screening"
    _, name, before = one_running_and_one_to_apply(op, ns, tmp_path / "new.yaml")
    screening_list = tmp_path / "csl.json"
    doc = json.loads(current_screening_list.read_text())
    for source in doc["sources_used"]:
        source["source_last_updated"] = (datetime.now(UTC) - timedelta(days=10)).isoformat()
    screening_list.write_text(json.dumps(doc))
    try:
        op.start(f"--screening-list={screening_list}")  # ten days old: past its 7-day limit
        wait_until(
            lambda: held(op, ns, name, REASON_SCREENING_UNAVAILABLE),
            WAIT_S,
            "the deployment held (stale list)",
        )
        after = op.get("rayservices", name, ns)
        assert after is not None and not rayservice.is_suspended(after)  # held, never suspended
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # type: ignore[index]
        refused = controlplane.kubectl("apply", "-f", str(tmp_path / "new.yaml"))
        assert refused.returncode != 0 and "SCREENING_UNAVAILABLE" in refused.stderr, refused.stderr
        assert "10 days" in refused.stderr

        screening_list.write_text(current_screening_list.read_text())  # the refresh lands: no restart
        wait_until(lambda: compliance(op, ns, name)[0] == "True", WAIT_S, "the deployment judged again")
        admitted = controlplane.kubectl("apply", "-f", str(tmp_path / "new.yaml"))
        assert admitted.returncode == 0, admitted.stderr
    finally:
        op.start()


def test_sigkill_mid_rollout_of_50_converges_without_lost_or_duplicated_rayservices(
    sovereign_operator: LocalOperator,
) -> None:
    """The operator is SIGKILLed once its fifth RayService exists, while the 50 LlamaDeployments are still
    being submitted (so the kill lands mid-rollout however fast it reconciles; a create its webhook cannot
    answer meanwhile is submitted again). Restarted, it converges: one RayService per LlamaDeployment, each
    owned by it, every status Running."""
    op, ns, count = sovereign_operator, "drift-rollout", 50
    op.onboard(ns)
    cluster = usdef_cluster("drift-rollout", datetime.now(UTC).date() + timedelta(days=365))
    op.create(subjects.sovereign_cluster(cluster))

    def submit() -> dict[str, str]:
        uids: dict[str, str] = {}
        for index in range(count):
            declared = Deployment.model_validate(
                {"name": f"d{index:02d}", "model": "llama-3.1-8b-instruct", "end_use": "research"}
            )
            body = subjects.llama_deployment(cluster, declared, ns)
            uids[body["metadata"]["name"]] = _created_uid(op, body, ns)
        return uids

    with ThreadPoolExecutor(max_workers=1) as pool:
        submitted = pool.submit(submit)
        try:
            wait_until(
                lambda: len(op.list("rayservices", ns)) >= 5, WAIT_S, "the rollout to start", interval=0.05
            )
            op.kill()
            at_kill = len(op.list("rayservices", ns)), len(op.list("llamadeployments", ns))
            time.sleep(1)  # creates meet the dead webhook meanwhile
        finally:
            op.start()  # also when the rollout never started: the module's other tests share this operator
        uids = submitted.result(timeout=WAIT_S)
    assert at_kill[0] <= at_kill[1] < count  # killed mid-rollout: LlamaDeployments yet to be submitted
    wait_until(lambda: len(op.list("rayservices", ns)) == count, 90, f"{count} RayServices")
    wait_until(
        lambda: all(d.get("status", {}).get("phase") == "Running" for d in op.list("llamadeployments", ns)),
        WAIT_S,
        "every status to say Running",
    )
    services = op.list("rayservices", ns)
    assert sorted(rs["metadata"]["name"] for rs in services) == sorted(uids)
    assert {rs["metadata"]["name"]: rayservice.owner_uid(rs) for rs in services} == uids


def _created_uid(op: LocalOperator, body: dict[str, Any], namespace: str) -> str:
    """Create `body` and return its uid, submitting it again while the admission webhook cannot be called
    (the API server answers 500 while the operator restarts)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return str(op.create(body)["metadata"]["uid"])
        except ApiException as exc:
            if exc.status == 409:  # an earlier try landed though its answer was lost
                existing = op.get("llamadeployments", body["metadata"]["name"], namespace)
                assert existing is not None
                return str(existing["metadata"]["uid"])
            if exc.status != 500 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
