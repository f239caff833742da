"""SovereignRegion under Pulumi's mocks (no CLI): which objects it declares, how, and its outputs.

Decisions come from the real OPA server on the session's signed bundle (the `opa_server` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from ipaddress import ip_network
from typing import Any

import pulumi
import pytest

from infra import decisions
from infra.kube_api import Connection
from infra.kube_object import KubeObject
from infra.region import COMPONENT_TYPE, SovereignRegion, SovereignRegionArgs
from infra.stack_config import Workloads
from sovereign import toolchain
from sovereign import vocabulary as k8s
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import ClusterSpec, load_cluster

KUBE_OBJECT = f"pulumi-python:{KubeObject._resource_type_name}"
CONNECTION = Connection("/tmp/kubeconfig", "", "https://127.0.0.1:6443")
USDEF = load_cluster(toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml")


@dataclass
class Registered:
    type: str
    name: str
    parent: str
    dependencies: list[str]
    inputs: dict[str, Any]

    @property
    def manifest(self) -> dict[str, Any]:
        return self.inputs["manifest"]


class RecordingMonitor(pulumi.runtime.mocks.MockMonitor):
    """The SDK's mock monitor, also keeping each registration's parent and dependencies."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if registration := self.resources.get(response.urn):  # the root Stack is not kept
            self.registered.append(
                Registered(
                    request.type, request.name, request.parent, list(request.dependencies), registration.state
                )
            )
        return response


class EchoMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


@pytest.fixture
def policy_engine(opa_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SOVEREIGN_OPA_URL", opa_server.url)
    decisions.judge.cache_clear()
    decisions._judge_json.cache_clear()
    yield
    decisions.judge.cache_clear()
    decisions._judge_json.cache_clear()


def deploy(args: SovereignRegionArgs) -> tuple[list[Registered], dict[str, Any]]:
    """Run the component under the mocks; return what it registered and its resolved outputs."""
    monitor = RecordingMonitor(EchoMocks())
    pulumi.runtime.set_mocks(EchoMocks(), project="sovereign", stack="test", preview=False, monitor=monitor)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def run() -> pulumi.Output[Any]:
        region = SovereignRegion(args.region, args)
        both = pulumi.Output.all(region.namespaces, region.endpoints, region.compliance)
        return both.apply(
            lambda values: outputs.update(zip(("namespaces", "endpoints", "compliance"), values, strict=True))
        )

    run()
    return monitor.registered, outputs


def region_args(bundle: SignedBundle, **overrides: Any) -> SovereignRegionArgs:
    values: dict[str, Any] = {
        "region": "us-defense",
        "clusters": [USDEF],
        "connection": CONNECTION,
        "workloads": Workloads.local,
        "bundle": bundle,
        "egress_cidrs": [ip_network("10.20.0.0/16")],
        "dashboards": {"sovereign-gpu.json": "{}"},
        "rules": {"sovereign-alerts.rules.yml": "groups: []\n"},
    }
    return SovereignRegionArgs(**{**values, **overrides})


def in_cluster_args(bundle: SignedBundle, **overrides: Any) -> SovereignRegionArgs:
    """A region whose operator and OPA run in the cluster (KubeRay only where an image is given)."""
    values: dict[str, Any] = {
        "workloads": Workloads.in_cluster,
        "operator_image": "registry.example/sovereign/operator:0.1.0",
        "opa_image": "openpolicyagent/opa:1.10.0-static",
        "webhook_ca": b"-----BEGIN CERTIFICATE-----\n",
    }
    return region_args(bundle, **{**values, **overrides})


def by_kind(registered: list[Registered], kind: str) -> list[Registered]:
    return [r for r in registered if r.type == KUBE_OBJECT and r.manifest["kind"] == kind]


def test_local_region_declares_objects_not_workloads(
    signed_bundle: SignedBundle, policy_engine: None
) -> None:
    registered, outputs = deploy(region_args(signed_bundle))
    assert by_kind(registered, "ValidatingWebhookConfiguration") == []  # the local operator registers its own
    component = [r for r in registered if r.type == COMPONENT_TYPE]
    assert len(component) == 1
    children = [r for r in registered if r.type == KUBE_OBJECT]
    assert children and all(r.parent.endswith(f"{COMPONENT_TYPE}::us-defense") for r in children)

    kinds = {r.manifest["kind"] for r in children}
    assert {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "NetworkPolicy",
    } <= kinds
    assert {"SovereignCluster", "LlamaDeployment", "ConfigMap"} <= kinds
    assert "Deployment" not in kinds and "Service" not in kinds  # local mode: they run as processes

    crds = {r.manifest["metadata"]["name"] for r in by_kind(registered, "CustomResourceDefinition")}
    assert crds == {
        "sovereignclusters.sovereign.dev",
        "llamadeployments.sovereign.dev",
        "clusterrequests.sovereign.dev",
    }
    workload_ns = [
        r for r in by_kind(registered, "Namespace") if r.manifest["metadata"]["name"] == "usdef-east-1"
    ]
    assert workload_ns[0].manifest["metadata"]["labels"][k8s.LABEL_MANAGED] == "true"
    assert workload_ns[0].manifest["metadata"]["labels"]["sovereign.dev/region"] == "us-defense"

    assert outputs["namespaces"] == ["sovereign-system", "usdef-east-1"]
    assert outputs["endpoints"] == {"apiserver": CONNECTION.server}
    verdict = outputs["compliance"]["usdef-east-1/usdef-east-1-chat-70b"]
    assert verdict["allowed"] is True and verdict["violations"] == []
    assert "BUILT_WITH_LLAMA" in verdict["obligations"]


def test_llama_deployment_waits_for_its_crd_namespace_and_cluster(
    signed_bundle: SignedBundle, policy_engine: None
) -> None:
    registered, _ = deploy(region_args(signed_bundle))
    (deployment,) = by_kind(registered, "LlamaDeployment")
    named = {dep.rpartition("::")[2] for dep in deployment.dependencies}
    assert {
        "us-defense-customresourcedefinition-llamadeployments.sovereign.dev",
        "us-defense-namespace-usdef-east-1",
        "us-defense-sovereigncluster-usdef-east-1",
    } <= named
    # What the policy pack needs to judge it travels with it, and is what the one mapping reads.
    context = deployment.inputs["policy_context"]
    assert context["cluster"] == subjects.sovereign_cluster(USDEF)
    assert context["gpusInUse"] == 0


def test_sibling_deployments_count_towards_the_quota_context(
    signed_bundle: SignedBundle, policy_engine: None
) -> None:
    spec = USDEF.model_copy(
        update={
            "deployments": [*USDEF.deployments, USDEF.deployments[0].model_copy(update={"name": "chat-2"})]
        }
    )
    registered, outputs = deploy(region_args(signed_bundle, clusters=[spec]))
    # Pulumi registers resources in whatever order their inputs resolve; declaration order is what counts.
    contexts = {
        r.manifest["metadata"]["name"]: r.inputs["policy_context"]["gpusInUse"]
        for r in by_kind(registered, "LlamaDeployment")
    }
    assert contexts == {"usdef-east-1-chat-70b": 0, "usdef-east-1-chat-2": 4}  # the second sees 1 x 4 GPUs
    assert set(outputs["compliance"]) == {
        "usdef-east-1/usdef-east-1-chat-70b",
        "usdef-east-1/usdef-east-1-chat-2",
    }


def test_in_cluster_region_runs_opa_and_the_operator_behind_its_webhook(
    signed_bundle: SignedBundle, policy_engine: None
) -> None:
    registered, outputs = deploy(in_cluster_args(signed_bundle))
    (webhook,) = by_kind(registered, "ValidatingWebhookConfiguration")
    for hook in webhook.manifest["webhooks"]:
        assert hook["clientConfig"]["service"]["name"] == "sovereign-operator"
        assert hook["namespaceSelector"] == {"matchLabels": {k8s.LABEL_MANAGED: "true"}}
        assert hook["failurePolicy"] == "Fail"
    assert any(dep.endswith("deployment-sovereign-system-sovereign-operator") for dep in webhook.dependencies)
    (deployment,) = by_kind(registered, "LlamaDeployment")
    assert any(
        dep.endswith("validatingwebhookconfiguration-sovereign-operator") for dep in deployment.dependencies
    )
    deployments = {r.manifest["metadata"]["name"]: r.manifest for r in by_kind(registered, "Deployment")}
    assert set(deployments) == {"sovereign-opa", "sovereign-operator"}
    operator_pod = deployments["sovereign-operator"]["spec"]["template"]["spec"]
    assert operator_pod["serviceAccountName"] == k8s.OPERATOR_SERVICE_ACCOUNT[1]
    opa_pod = deployments["sovereign-opa"]["spec"]["template"]["spec"]
    opa_args = opa_pod["containers"][0]["args"]
    assert "--verification-key=/trust/policy-bundle.pem" in opa_args and "/bundle/bundle.tar.gz" in opa_args
    assert {v["name"]: (v.get("configMap") or v["secret"]) for v in opa_pod["volumes"]} == {
        "bundle": {"name": "sovereign-policy-bundle"},
        "trust": {"name": "sovereign-policy-trust"},
        "tls": {"secretName": "sovereign-opa-tls"},
    }
    assert outputs["endpoints"]["opa"] == "https://sovereign-opa.sovereign-system.svc:8181"
    configmaps = {r.manifest["metadata"]["name"]: r.manifest for r in by_kind(registered, "ConfigMap")}
    bundle, trust = configmaps["sovereign-policy-bundle"], configmaps["sovereign-policy-trust"]
    assert bundle["metadata"]["annotations"]["sovereign.dev/policy-revision"] == signed_bundle.revision
    assert "data" not in bundle and set(bundle["binaryData"]) == {"bundle.tar.gz"}
    assert trust["data"] == {"policy-bundle.pem": signed_bundle.verification_key.read_text()}
    (opa,) = [
        r for r in by_kind(registered, "Deployment") if r.manifest["metadata"]["name"] == "sovereign-opa"
    ]
    (operator,) = [
        r for r in by_kind(registered, "Deployment") if r.manifest["metadata"]["name"] == "sovereign-operator"
    ]
    for configmap in ("sovereign-policy-bundle", "sovereign-policy-trust"):
        for workload in (opa, operator):  # the operator verifies the bundle OPA serves
            assert any(
                dep.endswith(f"configmap-sovereign-system-{configmap}") for dep in workload.dependencies
            )


def test_denied_deployment_is_declared_and_reported_denied(
    signed_bundle: SignedBundle, policy_engine: None
) -> None:
    """The program declares what the YAML says; refusing it is the policy pack's job (see the e2e test)."""
    raw = USDEF.model_dump(mode="json")
    raw["operator"].update(kind="company", sponsor_country=None)
    spec = ClusterSpec.model_validate(raw)
    _, outputs = deploy(region_args(signed_bundle, clusters=[spec]))
    verdict = outputs["compliance"]["usdef-east-1/usdef-east-1-chat-70b"]
    assert verdict["allowed"] is False
    assert "OPERATOR_NOT_ELIGIBLE" in verdict["violations"]


def test_bad_args_fail_before_anything_is_registered(signed_bundle: SignedBundle) -> None:
    with pytest.raises(ValueError, match="not in region five-eyes"):
        region_args(signed_bundle, region="five-eyes")
    with pytest.raises(ValueError, match="operator_image, opa_image and webhook_ca"):
        region_args(signed_bundle, workloads=Workloads.in_cluster, operator_image="x", opa_image="y")


def test_in_cluster_region_installs_kuberay_before_the_operator(
    signed_bundle: SignedBundle, policy_engine: None
) -> None:
    args = in_cluster_args(
        signed_bundle,
        serving_image="registry.example/sovereign/serving:0.1.0",
        kuberay_image="quay.io/kuberay/operator:v1.5.1",
    )
    registered, _ = deploy(args)
    crds = {r.manifest["metadata"]["name"] for r in by_kind(registered, "CustomResourceDefinition")}
    assert {"rayservices.ray.io", "rayclusters.ray.io", "rayjobs.ray.io"} <= crds
    deployments = {r.manifest["metadata"]["name"]: r for r in by_kind(registered, "Deployment")}
    assert set(deployments) == {"sovereign-opa", "sovereign-operator", "kuberay-operator"}
    kuberay = deployments["kuberay-operator"]
    assert kuberay.manifest["metadata"]["namespace"] == "kuberay-system"
    assert kuberay.manifest["spec"]["template"]["spec"]["containers"][0]["image"] == args.kuberay_image
    assert any(dep.endswith("customresourcedefinition-rayservices.ray.io") for dep in kuberay.dependencies)
    operator = deployments["sovereign-operator"]
    assert any(dep.endswith("customresourcedefinition-rayservices.ray.io") for dep in operator.dependencies)
    assert any(dep.endswith("deployment-kuberay-system-kuberay-operator") for dep in operator.dependencies)
    container = operator.manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--ray-image", "registry.example/sovereign/serving:0.1.0"]
    # Without a KubeRay image the cluster's own KubeRay is used: nothing of KubeRay's is declared.
    registered, _ = deploy(replace(args, kuberay_image=""))
    crds = {r.manifest["metadata"]["name"] for r in by_kind(registered, "CustomResourceDefinition")}
    assert not any(name.endswith(".ray.io") for name in crds)
    assert "kuberay-operator" not in {
        r.manifest["metadata"]["name"] for r in by_kind(registered, "Deployment")
    }
