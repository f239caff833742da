"""`SovereignRegion`: everything one sovereign region runs on its Kubernetes cluster, as one component."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

import pulumi

from infra import decisions, region_objects
from infra.kube_api import Connection
from infra.kube_object import KubeObject, identity
from infra.stack_config import Workloads
from operators import manifests
from sovereign import toolchain, yamldoc
from sovereign import vocabulary as k8s
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import ClusterSpec

COMPONENT_TYPE = "sovereign:index:SovereignRegion"


@dataclass(frozen=True)
class SovereignRegionArgs:
    region: str
    """Region profile (policies/data/regions/<region>.yaml); every cluster must be in it."""
    clusters: list[ClusterSpec]
    """The declared clusters (clusters/*.yaml): each one SovereignCluster, namespace and LlamaDeployments."""
    connection: Connection
    """The API server every object goes to."""
    workloads: Workloads
    """in-cluster: the operator and OPA run as Deployments here, the exporter as a DaemonSet on GPU nodes;
    local: they run as local processes."""
    bundle: SignedBundle
    """The verified policy bundle OPA serves in the cluster; its trust anchor is shipped apart from it."""
    egress_cidrs: list[IPv4Network | IPv6Network] = field(default_factory=list)
    """The region's own endpoints, the only egress allowed besides DNS and the sovereign namespaces."""
    operator_image: str = ""
    """Operator image, for in-cluster workloads."""
    serving_image: str = ""
    """In-cluster: the image the operator writes into its RayServices (empty: the operator's default)."""
    opa_image: str = ""
    """OPA image, for in-cluster workloads."""
    kuberay_image: str = ""
    """In-cluster: KubeRay's operator image; the stack installs KubeRay (CRDs and operator) with it. Empty:
    KubeRay is the cluster's own."""
    webhook_ca: bytes | None = None
    """In-cluster: the CA the API server trusts the operator's webhook through."""
    dashboards: dict[str, str] = field(default_factory=dict)
    """Grafana dashboards (file name -> JSON), shipped as ConfigMaps for the Grafana sidecar."""
    rules: dict[str, str] = field(default_factory=dict)
    """Prometheus rule files (file name -> YAML), shipped as one ConfigMap."""

    def __post_init__(self) -> None:
        if wrong := [c.name for c in self.clusters if c.region != self.region]:
            raise ValueError(f"clusters {', '.join(wrong)} are not in region {self.region}")
        if self.workloads is Workloads.in_cluster and not (
            self.operator_image and self.opa_image and self.webhook_ca
        ):
            raise ValueError("in-cluster workloads need operator_image, opa_image and webhook_ca")


class SovereignRegion(pulumi.ComponentResource):
    namespaces: pulumi.Output[list[str]]
    endpoints: pulumi.Output[dict[str, str]]
    compliance: pulumi.Output[dict[str, Any]]

    def __init__(
        self, name: str, args: SovereignRegionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, {}, opts)
        self._name, self._args = name, args
        # Judged before anything is registered: a deployment that cannot be judged stops the program
        # while nothing exists yet.
        clusters = [(spec, subjects.sovereign_cluster(spec)) for spec in args.clusters]
        declared = [(spec, cluster, _judged_deployments(spec, cluster)) for spec, cluster in clusters]
        judged = [pair for _, _, pairs in declared for pair in pairs]
        judgements = decisions.judge_many(
            [decisions.policy_input(d, context) for d, context in judged],
            [decisions.subject(d) for d, _ in judged],
        )

        system = self._apply(
            region_objects.namespace(region_objects.SYSTEM_NAMESPACE, {k8s.LABEL_REGION: args.region})
        )
        crds = [self._apply(doc) for doc in _documents(manifests.CRD_FILES)]
        # The operator's RBAC file also declares its namespace: this component owns namespaces (labelled).
        rbac = [
            self._apply(doc, [system])
            for doc in _documents([manifests.RBAC_FILE])
            if doc["kind"] != "Namespace"
        ]
        policy = [
            self._apply(region_objects.bundle_configmap(args.bundle), [system]),
            self._apply(region_objects.trust_configmap(args.bundle.verification_key), [system]),
        ]
        self._apply(region_objects.rules_configmap(args.rules), [system])
        for doc in region_objects.dashboards_configmaps(args.dashboards):
            self._apply(doc, [system])
        endpoints = {"apiserver": args.connection.server}
        # Local workloads: the operator process registers its own webhook (sovereign operator setup).
        admission: list[KubeObject] = []
        if args.workloads is Workloads.in_cluster and args.webhook_ca:
            # KubeRay first: the operator creates RayServices, which only KubeRay's CRDs make a kind.
            kuberay = self._kuberay(args.kuberay_image) if args.kuberay_image else []
            for doc in region_objects.opa_workload(args.opa_image):
                self._apply(doc, policy)
            service_account = k8s.OPERATOR_SERVICE_ACCOUNT[1]
            operator = [
                self._apply(doc, [*rbac, *policy, *kuberay])  # it mounts the bundle to verify what OPA serves
                for doc in region_objects.operator_workload(
                    args.operator_image, service_account, args.serving_image or None
                )
            ]
            exporter: list[KubeObject] = []
            for doc in region_objects.exporter_workload(
                args.operator_image, args.region, _idle_cluster(args)
            ):
                exporter.append(self._apply(doc, [system, *exporter]))  # the workloads after their account
            # Registered once the operator is available: with failurePolicy Fail, an earlier registration
            # would refuse this stack's own LlamaDeployments.
            admission = [self._apply(region_objects.webhook_registration(args.webhook_ca), operator)]
            endpoints["opa"] = region_objects.opa_url()
            endpoints["webhook"] = (
                f"https://{region_objects.OPERATOR_NAME}.{region_objects.SYSTEM_NAMESPACE}.svc"
            )

        namespaces = [region_objects.SYSTEM_NAMESPACE]
        for spec, cluster, deployments in declared:
            cluster_obj = self._apply(cluster, crds)
            ns, *ns_objects = manifests.onboard_namespace(spec.name)
            ns["metadata"]["labels"].update({k8s.LABEL_REGION: args.region, k8s.LABEL_CLUSTER: spec.name})
            ns_obj = self._apply(ns)
            namespaces.append(spec.name)
            for doc in [*ns_objects, region_objects.egress_policy(spec.name, args.egress_cidrs)]:
                self._apply(doc, [ns_obj])
            for deployment, context in deployments:
                self._apply(deployment, [*crds, ns_obj, cluster_obj, *admission], context)

        compliance = {
            _ref(deployment): decisions.summary(judgement)
            for (deployment, _), judgement in zip(judged, judgements, strict=True)
        }
        self.namespaces = pulumi.Output.from_input(namespaces)
        self.endpoints = pulumi.Output.from_input(endpoints)
        self.compliance = pulumi.Output.from_input(compliance)
        self.register_outputs(
            {"namespaces": self.namespaces, "endpoints": self.endpoints, "compliance": self.compliance}
        )

    def _kuberay(self, image: str) -> list[KubeObject]:
        """KubeRay's CRDs and operator at the pinned version (tools/versions.env), in its own namespace."""
        crds = [self._apply(doc) for doc in _documents(toolchain.kuberay_crds())]
        ns, *objects = region_objects.kuberay_operator(
            image, _documents(toolchain.kuberay_operator_manifests())
        )
        ns_obj = self._apply(ns)
        return [*crds, ns_obj, *(self._apply(doc, [ns_obj, *crds]) for doc in objects)]

    def _apply(
        self,
        manifest: dict[str, Any],
        depends_on: list[KubeObject] | None = None,
        policy_context: dict[str, Any] | None = None,
    ) -> KubeObject:
        ref = identity(manifest)
        where = f"{ref['namespace']}-" if ref["namespace"] else ""
        logical = f"{self._name}-{ref['kind'].lower()}-{where}{ref['name']}"
        options = pulumi.ResourceOptions(parent=self, depends_on=depends_on or [])
        return KubeObject(logical, manifest, self._args.connection, policy_context, options)


def _judged_deployments(
    spec: ClusterSpec, cluster: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """A cluster's LlamaDeployments (in the namespace named after it), each with its policy context."""
    deployments = [subjects.llama_deployment(spec, d, spec.name) for d in spec.deployments]
    return [(d, decisions.policy_context(cluster, deployments, i)) for i, d in enumerate(deployments)]


def _idle_cluster(args: SovereignRegionArgs) -> str:
    """The cluster label of GPUs no deployment holds: the region's cluster when the Kubernetes cluster
    hosts one; with several, such a GPU belongs to none of them."""
    return args.clusters[0].name if len(args.clusters) == 1 else region_objects.UNATTRIBUTED_CLUSTER


def _ref(manifest: dict[str, Any]) -> str:
    return f"{manifest['metadata']['namespace']}/{manifest['metadata']['name']}"


def _documents(files: list[Path]) -> list[dict[str, Any]]:
    return [doc for path in files for doc in yamldoc.safe_load_all(path.read_text()) if doc]
