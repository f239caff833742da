"""GPU allocation accounting against the real kube-apiserver with KubeRay's real CRDs: GPUs per running
RayService, GPU-hours over time, SovereignCluster capacity and quota, the node's pods joined onto the GPU
series, and every source failing on its own without taking the others down."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sovereign.devenv.controlplane import ControlPlane
from sovereign.devenv.process import free_port
from sovereign.exporter.accounting import SOVEREIGN_CLUSTERS, ClusterAccounting, CrdRef
from sovereign.exporter.allocation import AllocationKey, allocation, requested_gpus
from sovereign.exporter.cardinality import BoundedLabel
from sovereign.exporter.health import SourceHealth
from sovereign.exporter.placement import NodePlacement

pytestmark = pytest.mark.controlplane

NAMESPACE = "accounting-test"
NODE = "gpu-node-accounting"
SOVEREIGN_CLUSTER_CRD = (
    Path(__file__).resolve().parent.parent / "operators" / "crds" / "sovereignclusters.yaml"
)


def rayservice(
    name: str,
    labels: dict[str, str],
    head_gpus: int = 0,
    workers: tuple[tuple[int, int], ...] = (),
    namespace: str = NAMESPACE,
) -> dict[str, Any]:
    """A valid KubeRay RayService; `workers` is (replicas, GPUs per pod) per worker group."""

    def template(gpus: int) -> dict[str, Any]:
        limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
        return {
            "spec": {
                "containers": [
                    {"name": "ray", "image": "rayproject/ray:2.51.0", "resources": {"limits": limits}}
                ]
            }
        }

    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "serveConfigV2": "applications: []\n",
            "rayClusterConfig": {
                "rayVersion": "2.51.0",
                "headGroupSpec": {"rayStartParams": {}, "template": template(head_gpus)},
                "workerGroupSpecs": [
                    {
                        "groupName": f"g{i}",
                        "replicas": replicas,
                        "rayStartParams": {},
                        "template": template(gpus),
                    }
                    for i, (replicas, gpus) in enumerate(workers)
                ],
            },
        },
    }


def labels(region: str, cluster: str, model: str, tenant: str) -> dict[str, str]:
    return {
        "sovereign.dev/region": region,
        "sovereign.dev/cluster": cluster,
        "sovereign.dev/model": model,
        "sovereign.dev/tenant": tenant,
    }


def install_sovereign_cluster_crd(plane: ControlPlane) -> None:
    """The operator's real CRD, applied as the operator's local run applies it (same field manager, so the
    two never conflict); it stays installed for the other tests."""
    applied = plane.kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager=sovereign-localrun",
        "-f", str(SOVEREIGN_CLUSTER_CRD),
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    waited = plane.kubectl(
        "wait", "--for=condition=Established", "crd/sovereignclusters.sovereign.dev", timeout=60
    )
    assert waited.returncode == 0, waited.stderr


def sovereign_cluster(name: str, region: str, country: str, capacity: int, quota: int) -> dict[str, Any]:
    return {
        "apiVersion": "sovereign.dev/v1alpha1",
        "kind": "SovereignCluster",
        "metadata": {"name": name},
        "spec": {
            "region": region,
            "country": country,
            "operator": {"name": f"{name} operator", "country": country, "kind": "company"},
            "gpu": {"capacity": capacity, "quota": quota},
        },
    }


def create_sovereign_clusters(admin: client.ApiClient, bodies: list[dict[str, Any]]) -> None:
    custom = client.CustomObjectsApi(admin)
    for body in bodies:
        custom.create_cluster_custom_object("sovereign.dev", "v1alpha1", "sovereignclusters", body)


def gpu_pod(name: str, node: str, labels: dict[str, str]) -> dict[str, Any]:
    """A pod bound to `node` holding one GPU, as KubeRay would create from a labelled template."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "ray",
                    "image": "rayproject/ray:2.51.0",
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }
            ],
        },
    }


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def api(controlplane: ControlPlane) -> Iterator[client.ApiClient]:
    admin = config.new_client_from_config(config_file=str(controlplane.kubeconfig))
    core, custom = client.CoreV1Api(admin), client.CustomObjectsApi(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    for body in (
        rayservice(
            "eu-8b-acme",
            labels("eu-text-only", "acct-eu-1", "llama-3.1-8b-instruct", "acme"),
            workers=((2, 1),),
        ),
        rayservice(
            "eu-70b-globex",
            labels("eu-text-only", "acct-eu-1", "llama-3.3-70b-instruct", "globex"),
            1,
            ((1, 4),),
        ),
        rayservice(
            "us-8b-dod", labels("us-defense", "acct-us-1", "llama-3.1-8b-instruct", "dod"), head_gpus=1
        ),
    ):
        custom.create_namespaced_custom_object("ray.io", "v1", NAMESPACE, "rayservices", body)
    suspended = rayservice("us-idle", labels("us-defense", "acct-us-1", "llama-3.1-8b-instruct", "dod"), 4)
    suspended["spec"]["rayClusterConfig"]["suspend"] = True
    custom.create_namespaced_custom_object("ray.io", "v1", NAMESPACE, "rayservices", suspended)
    install_sovereign_cluster_crd(controlplane)
    create_sovereign_clusters(
        admin,
        [
            sovereign_cluster("acct-eu-1", "eu-text-only", "DE", 16, 8),
            sovereign_cluster("acct-us-1", "us-defense", "US", 8, 4),
        ],
    )
    core.create_namespaced_pod(
        NAMESPACE,
        gpu_pod(
            "eu-8b-acme-worker", NODE, labels("eu-text-only", "acct-eu-1", "llama-3.1-8b-instruct", "acme")
        ),
    )
    yield admin
    remove_test_objects(admin, NAMESPACE, ["acct-eu-1", "acct-us-1"])


def remove_test_objects(admin: client.ApiClient, namespace: str, sovereign_clusters: list[str]) -> None:
    """Delete what a module created, one by one: this control plane has no controller-manager, so
    deleting the namespace alone would leave its RayServices and pods in place for the next module."""
    core, custom = client.CoreV1Api(admin), client.CustomObjectsApi(admin)
    custom.delete_collection_namespaced_custom_object("ray.io", "v1", namespace, "rayservices")
    for name in sovereign_clusters:
        custom.delete_cluster_custom_object("sovereign.dev", "v1alpha1", "sovereignclusters", name)
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)  # no kubelet to confirm
    core.delete_namespace(namespace)


def scrape(collector: ClusterAccounting, health: SourceHealth) -> dict[str, dict[tuple, float]]:
    registry = CollectorRegistry()
    registry.register(collector)
    registry.register(health)
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {
        f.name: {
            tuple(sorted(s.labels.items())): s.value for s in f.samples if not s.name.endswith("_created")
        }
        for f in families
    }


def ours(series: dict[tuple, float]) -> dict[tuple, float]:
    """Only this module's clusters: other tests may leave RayServices in the shared control plane."""
    return {k: v for k, v in series.items() if dict(k).get("cluster", "").startswith("acct-")}


def key(region: str, cluster: str, model: str, tenant: str) -> tuple:
    return tuple(sorted({"region": region, "cluster": cluster, "model": model, "tenant": tenant}.items()))


def accounting(
    api: client.ApiClient, crd: CrdRef = SOVEREIGN_CLUSTERS, clock: Clock | None = None, **scope: bool
):
    health, placement = SourceHealth(), NodePlacement(region="eu-text-only", cluster="acct-eu-1")
    acc = ClusterAccounting(
        api,
        health,
        placement,
        node=NODE,
        tenant=BoundedLabel(limit=50),
        sovereign_clusters=crd,
        clock=clock or Clock(),
        **scope,
    )
    return acc, health, placement


def test_gpus_held_by_running_rayservices_and_gpu_hours_over_time(api: client.ApiClient) -> None:
    clock = Clock()
    acc, health, _ = accounting(api, clock=clock)
    acc.poll()
    first = scrape(acc, health)
    assert ours(first["sovereign_gpu_allocated"]) == {
        key("eu-text-only", "acct-eu-1", "llama-3.1-8b-instruct", "acme"): 2,  # 2 worker replicas x 1 GPU
        key("eu-text-only", "acct-eu-1", "llama-3.3-70b-instruct", "globex"): 5,  # head 1 + 1 x 4
        key("us-defense", "acct-us-1", "llama-3.1-8b-instruct", "dod"): 1,  # the suspended one holds none
    }
    assert set(ours(first["sovereign_gpu_hours"]).values()) == {0}

    clock.now += 1800  # half an hour later
    acc.poll()
    hours = scrape(acc, health)["sovereign_gpu_hours"]
    assert hours[key("eu-text-only", "acct-eu-1", "llama-3.3-70b-instruct", "globex")] == pytest.approx(2.5)
    assert hours[key("eu-text-only", "acct-eu-1", "llama-3.1-8b-instruct", "acme")] == pytest.approx(1.0)
    assert hours[key("us-defense", "acct-us-1", "llama-3.1-8b-instruct", "dod")] == pytest.approx(0.5)


def test_suspending_a_rayservice_stops_its_gpu_hours(api: client.ApiClient) -> None:
    clock = Clock()
    acc, health, _ = accounting(api, clock=clock)
    custom = client.CustomObjectsApi(api)
    acc.poll()
    custom.patch_namespaced_custom_object(
        "ray.io",
        "v1",
        NAMESPACE,
        "rayservices",
        "us-8b-dod",
        {"spec": {"rayClusterConfig": {"suspend": True}}},
    )
    try:
        clock.now += 3600
        acc.poll()  # billed for the hour it ran, then seen suspended
        clock.now += 3600
        acc.poll()
        scraped = scrape(acc, health)
        dod = key("us-defense", "acct-us-1", "llama-3.1-8b-instruct", "dod")
        assert scraped["sovereign_gpu_hours"][dod] == pytest.approx(1.0)
        assert dod not in scraped["sovereign_gpu_allocated"]
    finally:
        custom.patch_namespaced_custom_object(
            "ray.io",
            "v1",
            NAMESPACE,
            "rayservices",
            "us-8b-dod",
            {"spec": {"rayClusterConfig": {"suspend": False}}},
        )


def test_capacity_and_quota_per_sovereign_cluster(api: client.ApiClient) -> None:
    acc, health, _ = accounting(api)
    acc.poll()
    scraped = scrape(acc, health)
    where = lambda region, cluster: (("cluster", cluster), ("region", region))  # noqa: E731
    assert ours(scraped["sovereign_gpu_capacity"]) == {
        where("eu-text-only", "acct-eu-1"): 16,
        where("us-defense", "acct-us-1"): 8,
    }
    assert ours(scraped["sovereign_gpu_quota"]) == {
        where("eu-text-only", "acct-eu-1"): 8,
        where("us-defense", "acct-us-1"): 4,
    }
    assert health.missing() == {}


def test_the_gpu_pods_on_this_node_label_its_gpus(api: client.ApiClient) -> None:
    acc, _, placement = accounting(api)
    acc.poll()
    assert placement.labels() == {
        "region": "eu-text-only",
        "cluster": "acct-eu-1",
        "model": "llama-3.1-8b-instruct",
        "namespace": NAMESPACE,
    }


def test_absent_sovereigncluster_crd_reports_that_source_down_and_serves_the_rest(
    api: client.ApiClient,
) -> None:
    acc, health, _ = accounting(
        api, crd=CrdRef("not-installed.sovereign.dev", "v1alpha1", "sovereignclusters")
    )
    acc.poll()
    scraped = scrape(acc, health)
    assert "is not served by the API server (is its CRD installed?)" in health.missing()["sovereignclusters"]
    assert scraped["sovereign_exporter_source_up"] == {
        (("source", "pods"),): 1,
        (("source", "rayservices"),): 1,
        (("source", "sovereignclusters"),): 0,
    }
    assert "sovereign_gpu_quota" not in scraped
    assert scraped["sovereign_gpu_allocated"]  # allocation is still served


def _unreachable(tmp_path: Path) -> client.ApiClient:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
                "current-context": "gone",
            }
        )
    )
    return config.new_client_from_config(config_file=str(kubeconfig))


def test_unreachable_api_server_reports_every_source_down_without_raising(tmp_path: Path) -> None:
    acc, health, placement = accounting(_unreachable(tmp_path))
    acc.poll()
    scraped = scrape(acc, health)
    assert set(health.missing()) == {"rayservices", "sovereignclusters", "pods"}
    assert all("API server unreachable" in reason for reason in health.missing().values())
    assert "sovereign_gpu_allocated" not in scraped  # unknown, not zero
    assert placement.labels()["model"] == ""


def test_a_node_exporter_reads_only_its_pods_and_a_cluster_one_only_the_cluster_wide_sources(
    tmp_path: Path,
) -> None:
    """One exporter per GPU node and one per cluster: each polls, and reports, only its own sources, so the
    cluster-wide series come once per cluster whatever its number of nodes."""
    api = _unreachable(tmp_path)
    node, node_health, _ = accounting(api, cluster_wide=False)
    node.poll()
    assert set(node_health.missing()) == {"pods"}
    assert not {"sovereign_gpu_allocated", "sovereign_gpu_hours"} & set(scrape(node, node_health))
    cluster, cluster_health, _ = accounting(api, node_local=False)
    cluster.poll()
    assert set(cluster_health.missing()) == {"rayservices", "sovereignclusters"}
    assert "sovereign_gpu_hours" in scrape(cluster, cluster_health)


def test_requested_gpus_counts_replicas_and_hosts_and_names_an_unreadable_object() -> None:
    body = rayservice("x", {}, head_gpus=1, workers=((3, 2),))
    body["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["numOfHosts"] = 2
    assert requested_gpus(body) == 1 + 3 * 2 * 2
    broken = copy.deepcopy(body)
    broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0][
        "resources"
    ]["limits"]["nvidia.com/gpu"] = "many"
    with pytest.raises(ValueError, match=f"RayService {NAMESPACE}/x: cannot read its GPU requests"):
        requested_gpus(broken)
    broken["metadata"]["name"] = "broken"
    held, problems = allocation([broken, body], tenant=lambda t: t or "unknown")
    assert held == {AllocationKey("unknown", "unknown", "unknown", "unknown"): 13}  # the readable one
    assert len(problems) == 1 and f"RayService {NAMESPACE}/broken" in problems[0]
