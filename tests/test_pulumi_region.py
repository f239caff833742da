"""SovereignRegion under Pulumi's mocks (no CLI): which objects it declares, how, and its outputs.

Decisions come from the real OPA server on the session's signed bundle (the `opa_server` fixture).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from region_under_mocks import CONNECTION, KUBE_OBJECT, USDEF, by_kind, deploy, in_cluster_args, region_args

from infra import region_objects
from infra.region import COMPONENT_TYPE
from infra.stack_config import Workloads
from operators.manifests import RAY_SERVE_PORT
from sovereign import vocabulary as k8s
from sovereign.exporter.entry import DEFAULT_PORT as EXPORTER_PORT
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import ClusterSpec


def test_local_region_declares_objects_not_workloads(
    signed_bundle: SignedBundle, pulumi_policy_engine: None
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
    assert not {"Deployment", "DaemonSet", "Service"} & kinds  # local mode: they run as processes

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
    signed_bundle: SignedBundle, pulumi_policy_engine: None
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
    signed_bundle: SignedBundle, pulumi_policy_engine: None
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
    signed_bundle: SignedBundle, pulumi_policy_engine: None
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
    assert set(deployments) == {"sovereign-opa", "sovereign-operator", "sovereign-exporter-accounting"}
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
    assert bundle["metadata"]["annotations"][k8s.ANNOTATION_POLICY_REVISION] == signed_bundle.revision
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
    signed_bundle: SignedBundle, pulumi_policy_engine: None
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


@pytest.mark.slow
def test_in_cluster_region_installs_kuberay_before_the_operator(
    signed_bundle: SignedBundle, pulumi_policy_engine: None
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
    assert set(deployments) == {
        "sovereign-opa",
        "sovereign-operator",
        "sovereign-exporter-accounting",
        "kuberay-operator",
    }
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


def _scraped_port(pod_template: dict[str, Any]) -> int:
    """The port Prometheus's kubernetes-pods job scrapes, checked against the container port named metrics."""
    annotations = pod_template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    (port,) = [p for c in pod_template["spec"]["containers"] for p in c["ports"] if p["name"] == "metrics"]
    assert int(annotations["prometheus.io/port"]) == port["containerPort"]
    return int(port["containerPort"])


@pytest.mark.slow
def test_in_cluster_region_exposes_the_operator_and_exporter_metrics_to_prometheus(
    signed_bundle: SignedBundle, pulumi_policy_engine: None
) -> None:
    args = in_cluster_args(signed_bundle)
    registered, _ = deploy(args)
    (operator,) = [
        r.manifest
        for r in by_kind(registered, "Deployment")
        if r.manifest["metadata"]["name"] == "sovereign-operator"
    ]
    template = operator["spec"]["template"]
    container = template["spec"]["containers"][0]
    port = _scraped_port(template)
    cli = container["args"]
    # On every interface of the pod (a loopback listener is unreachable from Prometheus), on the port named.
    assert (
        cli[cli.index("--metrics-port") + 1] == str(port)
        and cli[cli.index("--metrics-addr") + 1] == "0.0.0.0"
    )

    (exporter,) = by_kind(registered, "DaemonSet")
    daemonset = exporter.manifest
    assert daemonset["metadata"]["namespace"] == region_objects.SYSTEM_NAMESPACE
    template = daemonset["spec"]["template"]
    assert _scraped_port(template) == EXPORTER_PORT
    pod = template["spec"]
    (container,) = pod["containers"]
    assert container["image"] == args.operator_image  # the image that carries nvidia-ml-py and the client
    cli = container["args"]
    assert (
        cli[:4] == ["exporter", "--in-cluster", "--scope", "node"]
        and cli[cli.index("--addr") + 1] == "0.0.0.0"
    )
    assert (
        cli[cli.index("--region") + 1] == "us-defense" and cli[cli.index("--cluster") + 1] == "usdef-east-1"
    )
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"  # NVML through the NVIDIA runtime, no GPU taken
    assert "resources" not in container
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    # Its ServiceAccount may only list what it accounts, and the DaemonSet waits for the binding.
    assert pod["serviceAccountName"] == "sovereign-exporter"
    (role,) = [
        r.manifest
        for r in by_kind(registered, "ClusterRole")
        if r.manifest["metadata"]["name"] == "sovereign-exporter"
    ]
    assert {(rule["apiGroups"][0], rule["resources"][0], tuple(rule["verbs"])) for rule in role["rules"]} == {
        ("ray.io", "rayservices", ("list",)),
        ("sovereign.dev", "sovereignclusters", ("list",)),
        ("", "pods", ("list",)),
    }
    assert any(dep.endswith("clusterrolebinding-sovereign-exporter") for dep in exporter.dependencies)
    # The cluster-wide allocation from one replica, not once per GPU node: no GPU, no node placement.
    (accounting,) = [
        r.manifest
        for r in by_kind(registered, "Deployment")
        if r.manifest["metadata"]["name"] == "sovereign-exporter-accounting"
    ]
    assert accounting["spec"]["replicas"] == 1
    template = accounting["spec"]["template"]
    assert _scraped_port(template) == EXPORTER_PORT
    (container,) = template["spec"]["containers"]
    assert container["args"][:4] == ["exporter", "--in-cluster", "--scope", "cluster"]
    assert container["env"] == [] and "nodeSelector" not in template["spec"]
    assert template["spec"]["serviceAccountName"] == "sovereign-exporter"

    # Nothing keeps Prometheus out: no policy restricts ingress to the sovereign namespace's pods, and the
    # Ray pods' ingress policy admits anyone to Serve's port, where the serving app answers /metrics.
    policies = [r.manifest for r in by_kind(registered, "NetworkPolicy")]
    assert not [
        p
        for p in policies
        if p["metadata"]["namespace"] == region_objects.SYSTEM_NAMESPACE
        and "Ingress" in p["spec"]["policyTypes"]
    ]
    (ray_ingress,) = [p for p in policies if p["metadata"]["name"] == "sovereign-ray-ingress"]
    assert {"ports": [{"protocol": "TCP", "port": RAY_SERVE_PORT}]} in ray_ingress["spec"]["ingress"]
    # A region of several clusters labels idle GPUs as no cluster's.
    spec = USDEF.model_copy(update={"name": "usdef-east-2"})
    registered, _ = deploy(in_cluster_args(signed_bundle, clusters=[USDEF, spec]))
    (exporter,) = by_kind(registered, "DaemonSet")
    cli = exporter.manifest["spec"]["template"]["spec"]["containers"][0]["args"]
    assert cli[cli.index("--cluster") + 1] == "unattributed"
