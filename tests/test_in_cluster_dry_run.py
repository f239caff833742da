"""Each committed in-cluster stack, as the Pulumi program composes it, checked object by object by a real
API server with a server-side dry run, plus the RayService its operator would write for each deployment.

Its own control plane: no webhook is registered there, so the stack's LlamaDeployments meet only their
CRD's schema (admission itself is tested in test_webhook.py), and nothing here touches the session's
shared control plane. Namespaces and CustomResourceDefinitions are applied for real, as Pulumi applies
them before their dependents (a namespace or kind made in a dry run does not exist for the objects that
need it); every other object is stored nowhere.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from region_under_mocks import KUBE_OBJECT, deploy

from infra import program, stack_config
from infra.kube_object import normalise_numbers
from infra.region_plan import plan
from infra.stack_config import Workloads
from operators.sovereign_operator import rayservice
from sovereign import toolchain
from sovereign.devenv.controlplane import ControlPlane, ControlPlaneConfig, running_controlplane
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle

ROOT = toolchain.REPO_ROOT
IN_CLUSTER = [
    s for s in stack_config.stacks(ROOT) if stack_config.load(ROOT, s).workloads == Workloads.in_cluster
]

pytestmark = pytest.mark.controlplane
# Applied for real before the rest, as the provider does (server-side apply, one field manager).
FIRST = {"Namespace", "CustomResourceDefinition"}
APPLY = ("apply", "--server-side", "--field-manager=sovereign-pulumi", "--force-conflicts", "-o", "name")


@pytest.fixture(scope="module")
def bare_cluster(
    tmp_path_factory: pytest.TempPathFactory, signed_bundle: SignedBundle
) -> Iterator[ControlPlane]:
    """A control plane of its own: CRDs installed, no operator, no webhook."""
    config = ControlPlaneConfig(name="dryrun", state_dir=tmp_path_factory.mktemp("dryrun-controlplane"))
    with running_controlplane(config) as plane:
        yield plane


def kubectl(plane: ControlPlane, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    command = [str(toolchain.binary("kubectl")), "--kubeconfig", str(plane.kubeconfig), *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)


def name_of(doc: dict[str, Any]) -> str:
    """How `kubectl apply -o name` prints an object: kind.group/name, lower-case kind, core without group."""
    group = doc["apiVersion"].rpartition("/")[0]
    kind = doc["kind"].lower() + (f".{group}" if group else "")
    return f"{kind}/{doc['metadata']['name']}"


def test_no_in_cluster_stack_goes_unchecked() -> None:
    assert set(IN_CLUSTER) == {"us-defense", "five-eyes", "eu-text-only"}


@pytest.mark.parametrize("stack", IN_CLUSTER)
def test_every_object_of_the_stack_passes_a_server_side_dry_run(
    stack: str, bare_cluster: ControlPlane, signed_bundle: SignedBundle, pulumi_policy_engine: None
) -> None:
    committed = stack_config.load(ROOT, stack)
    # The committed stack, pointed at this API server; its webhook CA is this control plane's.
    config = committed.model_copy(
        update={
            "kubeconfig": str(bare_cluster.kubeconfig),
            "context": "",
            "webhook_ca_file": str(bare_cluster.pki_dir / "ca.crt"),
        }
    )
    args = program.region_args(config, plan(config, ROOT), signed_bundle)
    registered, _ = deploy(args)
    # As the provider sends them: Pulumi's wire format turned every number into a float.
    manifests = [normalise_numbers(r.manifest) for r in registered if r.type == KUBE_OBJECT]

    first = [m for m in manifests if m["kind"] in FIRST]
    created = kubectl(bare_cluster, *APPLY, "-f", "-", stdin=_stream(first))
    assert created.returncode == 0, created.stderr
    established = kubectl(
        bare_cluster, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all", stdin=""
    )
    assert established.returncode == 0, established.stderr
    others = [m for m in manifests if m["kind"] not in FIRST]
    checked = kubectl(
        bare_cluster,
        *APPLY,
        *("--dry-run=server", "-f", "-"),
        stdin=_stream(others),
    )
    assert checked.returncode == 0, checked.stderr
    assert sorted(checked.stdout.split()) == sorted(name_of(m) for m in others)

    # Every workload runs an image the stack names, KubeRay's operator and the exporters included.
    kinds = {m["kind"] for m in others}
    assert {
        "Deployment",
        "DaemonSet",
        "ValidatingWebhookConfiguration",
        "SovereignCluster",
        "LlamaDeployment",
    } <= kinds
    images = {
        (m["kind"], m["metadata"]["name"]): [c["image"] for c in m["spec"]["template"]["spec"]["containers"]]
        for m in others
        if m["kind"] in {"Deployment", "DaemonSet"}
    }
    assert images == {
        ("Deployment", "sovereign-opa"): [committed.opa_image],
        ("Deployment", "sovereign-operator"): [committed.operator_image],
        ("Deployment", "kuberay-operator"): [committed.kuberay_image],
        ("DaemonSet", "sovereign-exporter"): [committed.operator_image],
        ("Deployment", "sovereign-exporter-accounting"): [committed.operator_image],
    }

    # The RayService the in-cluster operator would write for each deployment: the image it was started
    # with (its Deployment's --ray-image) is the stack's serving image, and the API server takes it.
    (operator,) = [
        m for m in others if m["kind"] == "Deployment" and m["metadata"]["name"] == "sovereign-operator"
    ]
    operator_args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    ray_image = operator_args[operator_args.index("--ray-image") + 1]
    assert ray_image == committed.serving_image
    clusters = {m["metadata"]["name"]: m for m in others if m["kind"] == "SovereignCluster"}
    rayservices = []
    for deployment in (m for m in others if m["kind"] == "LlamaDeployment"):
        owned = {**deployment, "metadata": {**deployment["metadata"], "uid": "0d7c2f1e-dry-run"}}
        cluster = clusters[deployment["spec"]["clusterRef"]]
        body = rayservice.desired(owned, cluster, subjects.deployment_input(cluster, owned), ray_image)
        rayservices.append(body)
        pods = body["spec"]["rayClusterConfig"]
        groups = [pods["headGroupSpec"], *pods["workerGroupSpecs"]]
        assert {c["image"] for g in groups for c in g["template"]["spec"]["containers"]} == {
            committed.serving_image
        }
    assert rayservices, f"{stack} declares no deployment"
    served = kubectl(
        bare_cluster, "apply", "--dry-run=server", "-o", "name", "-f", "-", stdin=_stream(rayservices)
    )
    assert served.returncode == 0, served.stderr
    assert sorted(served.stdout.split()) == sorted(name_of(b) for b in rayservices)


def test_the_dry_run_refuses_what_the_api_server_would(bare_cluster: ControlPlane) -> None:
    """The check above can fail: a Deployment with a malformed image pull policy is refused, naming it."""
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "broken", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "broken"}},
            "template": {
                "metadata": {"labels": {"app": "broken"}},
                "spec": {"containers": [{"name": "c", "image": "x:1", "imagePullPolicy": "Sometimes"}]},
            },
        },
    }
    done = kubectl(
        bare_cluster, "apply", "--dry-run=server", "-o", "name", "-f", "-", stdin=_stream([broken])
    )
    assert done.returncode != 0 and "imagePullPolicy" in done.stderr


def _stream(docs: list[dict[str, Any]]) -> str:
    return "\n---\n".join(json.dumps(doc) for doc in docs)
