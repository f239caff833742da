"""KubeRay as a real region's stack installs it: its kustomize base at the pinned version (make tools copies
it from KubeRay's Go module), rendered with its namespace and image, and accepted by a real API server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from infra import region_objects, stack_config
from operators.manifests import KUBERAY_NAMESPACE
from sovereign import toolchain

IMAGE = "registry.acme.example/kuberay/operator:v1.5.1"


def _rendered(image: str = IMAGE) -> list[dict]:
    base = [d for p in toolchain.kuberay_operator_manifests() for d in yaml.safe_load_all(p.read_text()) if d]
    return region_objects.kuberay_operator(image, base)


def test_the_stacks_default_kuberay_image_is_the_pinned_version() -> None:
    config = stack_config.load(toolchain.REPO_ROOT, "us-defense")
    assert config.kuberay_image == f"quay.io/kuberay/operator:{toolchain.versions()['KUBERAY_VERSION']}"


def test_kuberay_is_rendered_in_its_namespace_with_the_given_image() -> None:
    docs = _rendered()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
        ]
    )
    assert docs[0]["metadata"]["name"] == KUBERAY_NAMESPACE
    for doc in docs[1:]:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "kuberay"
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == KUBERAY_NAMESPACE
        for subject in doc.get("subjects", []):
            assert subject == {
                "kind": "ServiceAccount",
                "name": "kuberay-operator",
                "namespace": KUBERAY_NAMESPACE,
            }
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kuberay-operator" and pod["securityContext"]["runAsNonRoot"] is True
    assert [c["image"] for c in pod["containers"]] == [IMAGE]
    # The base is not changed in place: rendering twice with another image gives that image.
    (again,) = [d for d in _rendered("other/kuberay:v1.5.1") if d["kind"] == "Deployment"]
    assert again["spec"]["template"]["spec"]["containers"][0]["image"] == "other/kuberay:v1.5.1"


def test_a_real_api_server_accepts_kuberay_as_rendered(kubeconfig: Path) -> None:
    # Server-side dry run: the API server validates every object (schema, RBAC rules) and stores nothing.
    # The namespace is created first for real: a dry-run namespace does not exist for the objects in it.
    kubectl = [str(toolchain.binary("kubectl")), "--kubeconfig", str(kubeconfig)]
    docs = _rendered()
    namespace, objects = docs[0], docs[1:]
    subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(namespace), text=True, check=True)
    stream = "\n---\n".join(json.dumps(doc) for doc in objects)
    done = subprocess.run(
        [*kubectl, "apply", "--dry-run=server", "-o", "name", "-f", "-"],
        input=stream,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(
        [
            "serviceaccount/kuberay-operator",
            "clusterrole.rbac.authorization.k8s.io/kuberay-operator",
            "clusterrolebinding.rbac.authorization.k8s.io/kuberay-operator",
            "role.rbac.authorization.k8s.io/kuberay-operator-leader-election",
            "rolebinding.rbac.authorization.k8s.io/kuberay-operator-leader-election",
            "deployment.apps/kuberay-operator",
        ]
    )
