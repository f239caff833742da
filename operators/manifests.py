"""The operator's own manifests: sovereign's CRDs, the operator's RBAC, the examples, and the objects that
onboard a tenant namespace.

Objects built from declarations (clusters/*.yaml, ClusterRequests) and their mapping to the policy input
live in the policy core (`sovereign.policy.subjects`); names in `sovereign.vocabulary`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sovereign import vocabulary as k8s

_HERE = Path(__file__).resolve().parent
CRD_FILES = sorted((_HERE / "crds").glob("*.yaml"))
RBAC_FILE = _HERE / "rbac" / "operator.yaml"
EXAMPLES_DIR = _HERE / "examples"


NAMESPACES_FILE = EXAMPLES_DIR / "namespaces.yaml"


def operator_manifests() -> list[Path]:
    """What `sovereign operator setup` applies: sovereign's CRDs, then the operator's RBAC."""
    return [*CRD_FILES, RBAC_FILE]


def dev_manifests() -> list[Path]:
    """What `sovereign dev up` applies after the KubeRay CRDs: the operator's manifests, then the example
    tenant namespaces, onboarded (labelled for the webhook, the operator's RoleBinding), so the examples
    (the contractors' ClusterRequests, the teams' LlamaDeployments) can be submitted as they are."""
    return [*operator_manifests(), NAMESPACES_FILE]


def crd(plural: str) -> dict[str, Any]:
    """One of sovereign's CRDs as a document, e.g. crd('llamadeployments')."""
    return yaml.safe_load((_HERE / "crds" / f"{plural}.yaml").read_text())


def onboard_namespace(name: str) -> list[dict[str, Any]]:
    """A namespace for sovereign workloads: labelled for the webhook, with the operator's RoleBinding."""
    sa_namespace, sa_name = k8s.OPERATOR_SERVICE_ACCOUNT
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {k8s.LABEL_MANAGED: "true"}},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "sovereign-operator", "namespace": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": k8s.NAMESPACE_ROLE,
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}],
        },
        ray_ingress_policy(name),
    ]


# Ray's dashboard and its agent (job and Serve config submission: code execution) listen on every
# interface of a Ray pod; only Ray's own pods and KubeRay's operator may reach them. Serve's HTTP port,
# where every request meets the guard, is open.
RAY_SERVE_PORT = 8000
KUBERAY_NAMESPACE = "kuberay-system"


def ray_ingress_policy(namespace: str) -> dict[str, Any]:
    """Ingress to the operator's Ray pods: from the namespace's own pods and KubeRay's, and to Serve."""
    same_namespace = {"podSelector": {}}
    kuberay = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": KUBERAY_NAMESPACE}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "sovereign-ray-ingress", "namespace": namespace},
        "spec": {
            "podSelector": {"matchLabels": {k8s.LABEL_MANAGED_BY: k8s.MANAGED_BY}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [same_namespace, kuberay]},
                {"ports": [{"protocol": "TCP", "port": RAY_SERVE_PORT}]},
            ],
        },
    }
