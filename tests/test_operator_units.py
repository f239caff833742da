"""The operator's logic without a cluster: the one decision-input mapping, the CRDs against the Python
models they mirror, what each verdict means per enforcement mode, GPU accounting, batching and drift
timing. The same paths run end to end against the real API server in test_operator.py and
test_operator_drift.py."""

from __future__ import annotations

import base64
import copy
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from judgements import decision
from kubernetes.client.exceptions import ApiException

from operators import manifests
from operators.sovereign_operator import rayservice
from operators.sovereign_operator.admission import webhook_configuration
from operators.sovereign_operator.compliance import ComplianceReport
from operators.sovereign_operator.drift import DriftWatcher
from operators.sovereign_operator.facts import (
    Claim,
    ClaimLedger,
    ClusterClaims,
    claim_of,
    gpus_in_use,
    judge_deployments,
)
from operators.sovereign_operator.kube import SharedReads
from operators.sovereign_operator.reconcile import Course, Reconciler, resolve
from serving.args import IMPORT_PATH, ServingArgs
from sovereign import toolchain
from sovereign import vocabulary as k8s
from sovereign.exporter.allocation import requested_gpus
from sovereign.exporter.compliance import ComplianceGauges
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import load_cluster
from sovereign.policy.decision_input import DecisionInput, EndUse, OperatorKind
from sovereign.policy.engine import ENGINE_UNAVAILABLE, fail_closed
from sovereign.policy.judgement import Judge, Judgement, Mode, Verdict
from sovereign.policy.wasm_engine import WasmEngine

CLUSTER_FILES = sorted((toolchain.REPO_ROOT / "clusters").glob("*.yaml"))
AS_OF = "2026-06-01"


def _schema(plural: str) -> dict[str, Any]:
    return manifests.crd(plural)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def test_crd_enums_and_defaults_mirror_the_python_models() -> None:
    deployment, cluster, request = (
        _schema(p) for p in ("llamadeployments", "sovereignclusters", "clusterrequests")
    )
    assert deployment["properties"]["endUse"]["enum"] == [e.value for e in EndUse]
    assert request["properties"]["endUse"]["enum"] == [e.value for e in EndUse]
    assert cluster["properties"]["operator"]["properties"]["kind"]["enum"] == [k.value for k in OperatorKind]
    assert request["properties"]["organisation"]["properties"]["kind"]["enum"] == [
        k.value for k in OperatorKind
    ]
    assert deployment["properties"]["replicas"]["default"] == subjects.DEFAULT_REPLICAS
    assert deployment["properties"]["gpusPerReplica"]["default"] == subjects.DEFAULT_GPUS_PER_REPLICA


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.stem)
def test_objects_map_to_the_same_input_as_the_cluster_file(path: Path) -> None:
    """Pulumi builds objects from clusters/*.yaml; as objects they must map to the cluster file's input."""
    spec = load_cluster(path)
    cluster = subjects.sovereign_cluster(spec, capacity=128)
    objects = [subjects.llama_deployment(spec, d, spec.name) for d in spec.deployments]
    from_file = subjects.declared_inputs(spec, AS_OF)
    for index, deployment in enumerate(spec.deployments):
        in_use = subjects.declared_gpus_in_use(objects, index)
        from_objects = subjects.deployment_input(cluster, objects[index], gpus_in_use=in_use, as_of=AS_OF)
        assert from_objects == from_file[deployment.name]
        assert from_objects.gpus == deployment.replicas * deployment.gpus_per_replica


def test_a_request_is_judged_as_the_cluster_and_deployments_it_asks_for() -> None:
    path = manifests.EXAMPLES_DIR / "clusterrequests" / "clusterrequest-approved.yaml"
    request = {**yaml.safe_load(path.read_text()), "metadata": {"name": "r", "namespace": "c", "uid": "u-1"}}
    cluster, deployments = subjects.request_proposal(request)
    assert cluster["metadata"]["name"] == request["spec"]["clusterName"]
    assert cluster["metadata"]["labels"][k8s.LABEL_REQUEST_UID] == "u-1"
    assert cluster["spec"]["gpu"] == {"capacity": 16, "quota": 16}
    assert [d["spec"]["model"] for d in deployments] == request["spec"]["models"]
    inp = subjects.deployment_input(cluster, deployments[0], as_of=AS_OF)
    assert inp.cluster.operator.name == request["spec"]["organisation"]["name"]
    assert inp.gpus == 16 and inp.end_use == EndUse.defense


def test_serve_config_uses_the_serving_builder_and_its_args_model() -> None:
    spec = load_cluster(toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml")
    deployment = subjects.llama_deployment(spec, spec.deployments[0], spec.name)
    deployment["metadata"]["uid"] = "uid-1"
    deployment["spec"]["replicas"] = 3
    cluster = subjects.sovereign_cluster(spec)
    judged = subjects.deployment_input(cluster, deployment, gpus_in_use=2)
    built = rayservice.desired(deployment, cluster, judged, "image:1")
    app = yaml.safe_load(built["spec"]["serveConfigV2"])["applications"][0]
    assert app["import_path"] == IMPORT_PATH
    args = ServingArgs.model_validate(app["args"])
    assert args.llm_configs[0].model_loading_config.model_id == spec.deployments[0].model
    assert args.policy.cluster == judged.cluster and args.policy.gpus == judged.gpus
    assert args.policy.cluster.gpus_in_use == 2  # every request is judged on the facts admitted
    assert requested_gpus(built) == 3 * spec.deployments[0].gpus_per_replica  # what the exporter counts
    assert rayservice.owner_uid(built) == "uid-1"


def _written_rayservice() -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """The first usdef-east-1 deployment, its judged input and the RayService the operator writes for it."""
    spec = load_cluster(toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml")
    deployment = subjects.llama_deployment(spec, spec.deployments[0], spec.name)
    deployment["metadata"]["uid"] = "uid-1"
    cluster = subjects.sovereign_cluster(spec)
    judged = subjects.deployment_input(cluster, deployment)
    return deployment, judged, rayservice.desired(deployment, cluster, judged, "image:1")


def test_serve_config_is_written_as_json_which_any_yaml_reader_reads_the_same() -> None:
    """JSON is YAML: KubeRay's YAML reader takes what the operator writes, and it reads back the same from
    the JSON reader admission tries first; a Serve config written by hand in YAML still reads."""
    from serving.manifest import load_serve_config

    deployment, judged, written = _written_rayservice()
    text = written["spec"]["serveConfigV2"]
    assert json.loads(text) == yaml.safe_load(text) == load_serve_config(text)
    assert json.loads(text) == rayservice.serve_document(deployment, judged)
    by_hand = yaml.safe_dump(json.loads(text))
    assert load_serve_config(by_hand) == json.loads(text)
    with pytest.raises(yaml.YAMLError):
        load_serve_config("applications: [unclosed")


def test_a_rayservice_written_before_json_with_the_same_config_is_current_and_an_edit_is_not() -> None:
    """A live RayService whose Serve config is the wanted one written as YAML (as the operator wrote it
    before it wrote JSON) runs the wanted spec: no update on upgrade. A changed value in it is an edit."""
    _, _, wanted = _written_rayservice()
    config = json.loads(wanted["spec"]["serveConfigV2"])
    as_yaml = copy.deepcopy(wanted)
    as_yaml["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    assert as_yaml["spec"]["serveConfigV2"] != wanted["spec"]["serveConfigV2"]
    assert rayservice.is_current(as_yaml, wanted)
    config["applications"][0]["args"]["policy"]["gpus"] += 1
    as_yaml["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    assert not rayservice.is_current(as_yaml, wanted)
    as_yaml["spec"]["serveConfigV2"] = "applications: [unclosed"
    assert not rayservice.is_current(as_yaml, wanted)


@pytest.mark.parametrize(
    ("judgement", "mode", "course", "compliant"),
    [
        (Judgement.of(decision(True)), Mode.ENFORCE, Course.RUN, "True"),
        (Judgement.of(decision(False, "END_USE_NOT_PERMITTED")), Mode.ENFORCE, Course.SUSPEND, "False"),
        (Judgement.of(decision(False, "END_USE_NOT_PERMITTED")), Mode.WARN, Course.RUN, "False"),
        (Judgement.of(decision(False, "END_USE_NOT_PERMITTED")), Mode.DRYRUN, Course.RUN, "False"),
        (
            Judgement.of(fail_closed(ENGINE_UNAVAILABLE, "x", "opa-rest")),
            Mode.ENFORCE,
            Course.HOLD,
            "Unknown",
        ),
        (Judgement.of(fail_closed(ENGINE_UNAVAILABLE, "x", "opa-rest")), Mode.WARN, Course.HOLD, "Unknown"),
        (
            Judgement.unjudgeable(k8s.REASON_CLUSTER_NOT_FOUND, "gone"),
            Mode.ENFORCE,
            Course.SUSPEND,
            "Unknown",
        ),
    ],
)
def test_what_a_judgement_means_in_each_mode(
    judgement: Judgement, mode: Mode, course: Course, compliant: str
) -> None:
    out = resolve(judgement, mode)
    assert (out.course, out.compliant) == (course, compliant)
    if judgement.verdict is Verdict.DENIED:
        assert out.violations == list(judgement.violations)


def _deployment(name: str, created: str | None, gpus: int, phase: str = "Running") -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "t", "name": name}
    if created:
        meta["creationTimestamp"] = created
    spec = {"clusterRef": "c", "replicas": 1, "gpusPerReplica": gpus}
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def test_gpus_in_use_counts_only_older_holders() -> None:
    first = _deployment("a", "2026-01-01T00:00:00Z", 4)
    second = _deployment("b", "2026-01-02T00:00:00Z", 8)
    stopped = _deployment("c", "2025-12-01T00:00:00Z", 16, phase="Suspended")
    claims = ClusterClaims()
    for deployment in (first, second, stopped):
        claims.put(k8s.LLAMA_DEPLOYMENT, claim_of(deployment))
    assert gpus_in_use(first, claims) == 0  # the oldest holder fits first
    assert gpus_in_use(second, claims) == 4
    assert gpus_in_use(_deployment("new", None, 2), claims) == 12  # at admission: every holder
    assert gpus_in_use(_deployment("b", None, 2), claims) == 4  # never its own name's claim
    assert gpus_in_use(first, None) == 0  # a cluster nothing claims on


def _held_before(own: Claim, claims: list[Claim]) -> int:
    """What the running sums must equal: a pass over every claim, as each judgement once made."""
    return sum(
        c.gpus
        for c in claims
        if c.key != own.key and c.holds and (not own.created or (c.created, c.key) < (own.created, own.key))
    )


def test_the_running_sums_equal_a_recount_through_creates_updates_moves_deletes_and_a_restart() -> None:
    import random

    rng = random.Random(17)
    kinds = [k8s.LLAMA_DEPLOYMENT, k8s.RAY_SERVICE]
    ledger = ClaimLedger()
    live: dict[tuple[str, tuple[str, str]], tuple[str, Claim]] = {}  # (kind, key) -> (cluster, claim)
    for step in range(2000):
        kind, key = rng.choice(kinds), ("t", f"d{rng.randrange(60)}")
        if rng.random() < 0.2:
            ledger.drop(kind, key)
            live.pop((kind, key), None)
            continue
        # Same-second creations and reused names included: the order is by creation time, then name.
        created = "" if rng.random() < 0.05 else f"2026-01-01T00:{rng.randrange(30):02d}:00Z"
        claim = Claim(key, created, rng.choice([0, 1, 2, 8]), rng.random() < 0.7)
        ref = rng.choice(["c1", "c2"])  # a claim moving between clusters included
        ledger.put(kind, ref, claim)
        live[(kind, key)] = (ref, claim)
        if step % 50:
            continue
        # The operator restarted: a ledger rebuilt from what exists now keeps the same sums.
        rebuilt = ClaimLedger()
        for (each_kind, _), (each_ref, each) in live.items():
            rebuilt.put(each_kind, each_ref, each)
        for ref in ("c1", "c2"):
            on_cluster = [c for r, c in live.values() if r == ref]
            probes = [*on_cluster, Claim(("t", "new"), "", 1, False), Claim(("t", "d1"), "", 1, False)]
            for own in probes:
                expected = _held_before(own, on_cluster)
                assert ledger.on(ref).held_before(own) == expected
                assert rebuilt.on(ref).held_before(own) == expected
            for own in on_cluster:  # the creation time looked up by name: a LlamaDeployment's first
                named = [live.get((kind, own.key)) for kind in kinds]
                first = next(entry[1].created for entry in named if entry is not None and entry[0] == ref)
                assert ledger.on(ref).created(own.key) == first


class CountingEngine:
    """A real engine, counted: how many evaluations a fleet costs."""

    def __init__(self, engine: WasmEngine) -> None:
        self.engine, self.name, self.batches, self.items = engine, engine.name, 0, 0

    def decide(self, inp: dict[str, Any]) -> dict[str, Any]:
        return self.engine.decide(inp)

    def decide_many(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.batches, self.items = self.batches + 1, self.items + len(inputs)
        return self.engine.decide_many(inputs)


@pytest.mark.slow
def test_a_fleet_is_judged_in_one_batch_of_distinct_inputs(signed_bundle: SignedBundle) -> None:
    engine = CountingEngine(WasmEngine(signed_bundle.wasm, signed_bundle.verification_key))
    judge = Judge(
        engine, lambda name, as_of: {"performed": True, "hits": []}, lambda: date.fromisoformat(AS_OF)
    )
    spec = load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-rotterdam-1-noncompliant.yaml")
    cluster = subjects.sovereign_cluster(spec)
    deployments = [subjects.llama_deployment(spec, d, spec.name) for _ in range(5) for d in spec.deployments]
    deployments.append({**deployments[0], "spec": {**deployments[0]["spec"], "clusterRef": "nowhere"}})
    judgements = judge_deployments(judge, deployments, {spec.name: cluster}, {})
    assert (engine.batches, engine.items) == (1, 2)  # 10 deployments, 2 distinct inputs, one query
    allowed = {
        d["spec"]["model"]: j.allowed
        for d, j in zip(deployments, judgements, strict=True)
        if j.verdict is not Verdict.UNJUDGEABLE
    }
    assert allowed == {"llama-3.2-11b-vision-instruct": False, "llama-3.1-8b-instruct": True}
    assert judgements[-1].problem is not None and judgements[-1].problem[0] == k8s.REASON_CLUSTER_NOT_FOUND


class Revisions:
    """The engine's answer to the drift probe: a revision, or none while it is unreachable."""

    name = "probe"

    def __init__(self) -> None:
        self.revision: str | None = "r1"

    def decide(self, inp: dict[str, Any]) -> dict[str, Any]:
        if self.revision is None:
            return fail_closed(ENGINE_UNAVAILABLE, "connection refused", "probe")
        return {**decision(False, "INVALID_INPUT"), "policy_revision": self.revision}

    def decide_many(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.decide(i) for i in inputs]


class Passes:
    def __init__(self) -> None:
        self.count = 0
        self.holds: list[tuple[str, str]] = []  # what the next pass cannot judge

    def converge(self) -> Any:
        from operators.sovereign_operator.reconcile import Converged

        self.count += 1
        held, self.holds = self.holds, []
        return Converged(held=held)


def test_drift_passes_run_on_revision_date_and_recheck_never_without_an_engine() -> None:
    probe, fleet, now, today = Revisions(), Passes(), [0.0], [date(2027, 6, 30)]
    judge = Judge(probe, today=lambda: today[0])
    watcher = DriftWatcher(fleet, judge, recheck_s=600, clock=lambda: now[0])  # type: ignore[arg-type]
    assert watcher.tick() is not None and fleet.count == 1  # the first tick judges everything
    assert watcher.tick() is None and fleet.count == 1
    probe.revision = "r2"
    assert "policy revision r1 -> r2" in (watcher.tick() or "")
    today[0] += timedelta(days=1)  # an accreditation valid through 2027-06-30 has expired
    assert "decision date" in (watcher.tick() or "")
    probe.revision = None  # OPA is down: nothing is re-judged, nothing changes
    now[0] += 3600
    assert watcher.tick() is None and fleet.count == 3
    probe.revision = "r2"
    assert "recheck" in (watcher.tick() or "") and fleet.count == 4


def test_a_drift_pass_the_engine_failed_mid_way_runs_again_on_the_next_tick() -> None:
    probe, fleet = Revisions(), Passes()
    watcher = DriftWatcher(fleet, Judge(probe), recheck_s=600, clock=lambda: 0.0)  # type: ignore[arg-type]
    fleet.holds = [("ns", "a"), ("ns", "b")]  # the revision answered, then OPA went away mid-pass
    assert watcher.tick() is not None and fleet.count == 1
    assert watcher.tick() == "2 deployments held while the engine could not judge" and fleet.count == 2
    assert watcher.tick() is None and fleet.count == 2  # judged: nothing due until something changes


def test_webhook_configuration_is_scoped_and_fails_closed() -> None:
    config = webhook_configuration("https://127.0.0.1:9443", b"PEM")
    for webhook in config["webhooks"]:
        assert webhook["failurePolicy"] == "Fail"
        assert webhook["namespaceSelector"] == {"matchLabels": {k8s.LABEL_MANAGED: "true"}}
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == b"PEM"
        assert webhook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert [w["clientConfig"]["url"].rsplit("/", 1)[1] for w in config["webhooks"]] == [
        "llamadeployments",
        "rayservices",
        "rayclusters",
        "rayjobs",
    ]


def test_examples_cover_every_region_with_both_outcomes() -> None:
    for region in ("us-defense", "five-eyes", "eu-text-only"):
        names = sorted(p.name for p in (manifests.EXAMPLES_DIR / region).glob("*.yaml"))
        assert names == [
            "llamadeployment-compliant.yaml",
            "llamadeployment-noncompliant.yaml",
            "sovereigncluster.yaml",
        ]
        cluster = yaml.safe_load((manifests.EXAMPLES_DIR / region / "sovereigncluster.yaml").read_text())
        assert cluster["spec"]["region"] == region
    requests = sorted(p.name for p in (manifests.EXAMPLES_DIR / "clusterrequests").glob("*.yaml"))
    assert requests == ["clusterrequest-approved.yaml", "clusterrequest-denied.yaml"]


class CreatedBetweenLists:
    """An API server on which a LlamaDeployment and its RayService, and a ClusterRequest and its
    SovereignCluster, are created (owner first) while the fleet lists: right after list number `after`."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.lists: list[str] = []
        self.deleted: list[str] = []
        self.objects: dict[str, list[dict[str, Any]]] = {
            k8s.DEPLOYMENTS: [],
            k8s.RAYSERVICES: [_owned_rayservice("orphan", "gone-uid")],  # its deployment is really gone
            k8s.CLUSTERS: [],
            k8s.REQUESTS: [],
        }

    def list_all(self, plural: str, *_: str) -> list[dict[str, Any]]:
        if len(self.lists) == self.after:
            self.objects[k8s.DEPLOYMENTS].append(_meta("new", "new-uid"))
            self.objects[k8s.RAYSERVICES].append(_owned_rayservice("new", "new-uid"))
            self.objects[k8s.REQUESTS].append(_meta("req", "req-uid"))
            cluster = _meta("made", "made-uid")
            cluster["metadata"]["labels"] = {k8s.LABEL_REQUEST_UID: "req-uid"}
            self.objects[k8s.CLUSTERS].append(cluster)
        self.lists.append(plural)
        return [dict(o) for o in self.objects[plural]]

    def delete_rayservice(self, namespace: str, name: str, uid: str) -> None:
        self.deleted.append(f"RayService {name}")

    def delete_cluster(self, name: str, uid: str) -> None:
        self.deleted.append(f"SovereignCluster {name}")


def _meta(name: str, uid: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid}, "spec": {}}


def _owned_rayservice(name: str, owner: str) -> dict[str, Any]:
    rs = _meta(name, f"rs-{name}")
    ref = {"kind": k8s.LLAMA_DEPLOYMENT, "apiVersion": k8s.API_VERSION, "controller": True, "uid": owner}
    rs["metadata"]["ownerReferences"] = [ref]
    return rs


class NoChanges:
    compliance = ComplianceReport(ComplianceGauges(registry=None))

    def converge(self, *_: Any, **__: Any) -> Any:
        from operators.sovereign_operator.reconcile import Converged

        return Converged()


@pytest.mark.parametrize("after", range(6))  # a pass lists five times: before, between and after them all
def test_the_sweep_deletes_only_true_orphans_never_what_was_created_while_it_listed(after: int) -> None:
    from operators.sovereign_operator.drift import DeploymentFleet

    kube = CreatedBetweenLists(after)
    DeploymentFleet(kube, NoChanges(), Judge(Revisions())).converge()  # type: ignore[arg-type]
    assert len(kube.lists) == 5
    assert kube.deleted == ["RayService orphan"]


def test_only_the_raycluster_kuberay_makes_for_an_existing_rayservice_is_admitted() -> None:
    import kopf

    from operators.sovereign_operator.admission import Admission

    admission = Admission(Judge(Revisions()))
    made = {
        "kind": "RayCluster",
        "metadata": {
            "name": "chat-raycluster-x",
            "namespace": "team",
            "ownerReferences": [{"kind": "RayService", "name": "chat", "uid": "rs-1", "controller": True}],
        },
    }
    admission.review_ray_workload(made, "rs-1")  # KubeRay's, for a RayService admission judged
    for other, uid in ((made, None), (made, "rs-2"), ({**made, "kind": "RayJob"}, "rs-1")):
        with pytest.raises(kopf.AdmissionError, match="cannot be judged"):
            admission.review_ray_workload(other, uid)


def test_ray_pods_take_ingress_only_from_their_namespace_and_kuberay_except_serve() -> None:
    from operators.manifests import KUBERAY_NAMESPACE, RAY_SERVE_PORT, onboard_namespace

    (policy,) = [doc for doc in onboard_namespace("team-a") if doc["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == "team-a" and spec["policyTypes"] == ["Ingress"]
    assert spec["podSelector"] == {"matchLabels": {k8s.LABEL_MANAGED_BY: k8s.MANAGED_BY}}
    peers, serve = spec["ingress"]
    assert "ports" not in peers  # any port, but only from these peers: the dashboard and its agent included
    assert peers["from"] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": KUBERAY_NAMESPACE}}},
    ]
    assert serve == {"ports": [{"protocol": "TCP", "port": RAY_SERVE_PORT}]}  # from anywhere: the guard
    built = rayservice.desired(
        {
            "metadata": {"name": "d", "namespace": "team-a", "uid": "u"},
            "spec": {"clusterRef": "c", "model": "m", "endUse": "defense"},
        },
        {"spec": {"region": "us-defense"}},
        DecisionInput.model_validate(
            {
                "cluster": {
                    "name": "c",
                    "region": "us-defense",
                    "country": "US",
                    "operator": {"name": "o", "country": "US", "kind": "company"},
                },
                "model": "m",
                "end_use": "defense",
            }
        ),
        "image",
    )
    pod_labels = built["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"]["labels"]
    assert pod_labels[k8s.LABEL_MANAGED_BY] == k8s.MANAGED_BY  # the policy selects the Ray pods


class RayServiceCreates:
    """An API server taking a RayService create: done, or refused because `taken` (another's) has the name."""

    def __init__(self, taken: dict[str, Any] | None = None) -> None:
        self.taken = taken
        self.calls: list[str] = []

    def create_rayservice(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create")
        if self.taken is not None:
            raise ApiException(status=409, reason="Conflict")
        return body

    def get_rayservice(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append("get")
        return self.taken

    def restore_rayservice(self, *_: Any) -> None:
        self.calls.append("restore")

    def patch_status(self, *_: Any) -> None:
        self.calls.append("status")

    def event(self, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        self.calls.append(reason)


def _converge_new(signed_bundle: SignedBundle, kube: RayServiceCreates) -> list[dict[str, Any]]:
    """Converge a new, allowed LlamaDeployment as kopf's create handler does: no RayService assumed, its
    status handed over (to kopf's patch) rather than PATCHed; the statuses handed over."""
    judge = Judge(
        WasmEngine(signed_bundle.wasm, signed_bundle.verification_key),
        lambda name, as_of: {"performed": True, "hits": []},
        lambda: date.fromisoformat(AS_OF),
    )
    spec = load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-rotterdam-1-noncompliant.yaml")
    allowed = next(d for d in spec.deployments if d.model == "llama-3.1-8b-instruct")
    deployment = subjects.llama_deployment(spec, allowed, spec.name)
    deployment["metadata"]["uid"] = "mine"
    statuses: list[dict[str, Any]] = []
    reconciler = Reconciler(kube, "image", ComplianceReport(ComplianceGauges(registry=None)))  # type: ignore[arg-type]
    result = reconciler.converge(
        judge,
        [deployment],
        {spec.name: subjects.sovereign_cluster(spec)},
        {},
        rayservices={},
        status_to=lambda _, status: statuses.append(status),
    )
    assert not result.failed
    return statuses


def _deployed(status: dict[str, Any]) -> str:
    return next(c["reason"] for c in status["conditions"] if c["type"] == k8s.CONDITION_DEPLOYED)


@pytest.mark.slow
def test_a_new_deployment_costs_one_create_and_one_event_its_status_going_out_with_kopfs_patch(
    signed_bundle: SignedBundle,
) -> None:
    kube = RayServiceCreates()
    statuses = _converge_new(signed_bundle, kube)
    assert kube.calls == ["create", "RayServiceCreated"]  # no GET first, no status PATCH of its own
    assert [(s["phase"], _deployed(s)) for s in statuses] == [(k8s.PHASE_RUNNING, k8s.REASON_APPLIED)]


@pytest.mark.slow
def test_a_new_deployment_whose_rayservice_name_is_taken_reads_it_and_leaves_it_alone(
    signed_bundle: SignedBundle,
) -> None:
    kube = RayServiceCreates(taken=_owned_rayservice("catalogue-8b", "someone-else"))
    statuses = _converge_new(signed_bundle, kube)
    assert kube.calls == ["create", "get"]  # never restored over another's RayService
    assert [_deployed(s) for s in statuses] == [k8s.REASON_NAME_CONFLICT]  # only what holds after the read


def test_reviews_arriving_during_a_read_share_the_next_one_never_one_begun_before_them() -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    reads: list[str] = []
    release = [threading.Event(), threading.Event()]

    def read(name: str) -> int:
        reads.append(name)
        number = len(reads)
        release[number - 1].wait(10)
        if number == 2:
            raise ApiException(status=500)
        return number

    shared: SharedReads[int] = SharedReads(read)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(shared.get, "eu-1")
        wait_until = time.monotonic() + 10
        while not reads and time.monotonic() < wait_until:
            time.sleep(0.01)
        later = [pool.submit(shared.get, "eu-1") for _ in range(3)]  # arrive while the first read runs
        time.sleep(0.2)
        assert reads == ["eu-1"]  # they wait for a read begun after them, not this one
        release[0].set()
        assert first.result(10) == 1
        release[1].set()
        for each in later:  # one read for the three, its failure theirs
            with pytest.raises(ApiException):
                each.result(10)
    assert reads == ["eu-1", "eu-1"]
    assert SharedReads(lambda name: name.upper()).get("eu-2") == "EU-2"  # alone: a read of its own


def test_admission_judges_the_cluster_as_the_api_server_has_it_not_as_the_index_last_saw_it() -> None:
    """kopf's index follows the watch, which lags on a busy machine: admission reads the SovereignCluster
    itself (a cluster just switched to enforce was once admitted against as if it still warned)."""
    from types import SimpleNamespace

    from operators.sovereign_operator import handlers

    stale = {"metadata": {"name": "eu-1"}, "spec": {"enforcement": "warn"}}
    current = {"metadata": {"name": "eu-1"}, "spec": {"enforcement": "enforce"}}
    runtime = SimpleNamespace(
        cluster_reads=SharedReads(lambda name: current if name == "eu-1" else None),
        claims=ClaimLedger(),
    )
    indexes = {"cluster_index": {"eu-1": [stale]}}
    assert handlers._facts(runtime, ["eu-1"], indexes, fresh=True)[0] == {"eu-1": current}  # type: ignore[arg-type]
    assert handlers._facts(runtime, ["eu-1"], indexes)[0] == {"eu-1": stale}  # type: ignore[arg-type]
    assert handlers._facts(runtime, ["gone"], indexes, fresh=True)[0] == {}  # type: ignore[arg-type]


@pytest.mark.slow
def test_admission_reviews_leave_the_object_under_review_as_it_came(signed_bundle: SignedBundle) -> None:
    """The webhook hands a review kopf's parse of the request without a copy: a review only reads it."""
    import copy
    from contextlib import suppress

    import kopf

    from operators.sovereign_operator.admission import Admission
    from operators.sovereign_operator.facts import claims_by_cluster

    judge = Judge(
        WasmEngine(signed_bundle.wasm, signed_bundle.verification_key),
        lambda name, as_of: {"performed": True, "hits": []},
        lambda: date.fromisoformat(AS_OF),
    )
    spec = load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-rotterdam-1-noncompliant.yaml")
    cluster = subjects.sovereign_cluster(spec)
    deployments = [subjects.llama_deployment(spec, d, spec.name) for d in spec.deployments]
    allowed = next(d for d in deployments if d["spec"]["model"] == "llama-3.1-8b-instruct")
    allowed["metadata"]["uid"] = "uid-1"
    written = rayservice.desired(allowed, cluster, subjects.deployment_input(cluster, allowed), "image:1")
    admission, clusters, claims = Admission(judge), {spec.name: cluster}, claims_by_cluster(deployments)
    for body, review in [
        (allowed, admission.review_deployment),
        (written, admission.review_rayservice),
    ]:
        before = copy.deepcopy(body)
        with suppress(kopf.AdmissionError):  # refused or not, the object is as it came
            review(body, None, clusters, claims)
        assert body == before
