"""The local control plane is the real thing: KubeRay's CRD schema is enforced, ServiceAccount tokens
issued by the API server authenticate, and RBAC denies what it does not grant."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from sovereign.devenv.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane

VALID_RAYSERVICE = {
    "apiVersion": "ray.io/v1",
    "kind": "RayService",
    "metadata": {"name": "schema-probe", "namespace": "default"},
    "spec": {
        "serveConfigV2": "applications: []\n",
        "rayClusterConfig": {
            "rayVersion": "2.51.0",
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {
                    "spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.51.0"}]}
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def admin(controlplane: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(controlplane.kubeconfig))


def _create_rayservice(api: client.ApiClient, body: dict) -> dict:
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        "ray.io", "v1", body["metadata"]["namespace"], "rayservices", body
    )


def test_kuberay_crd_schema_rejects_a_malformed_rayservice(admin: client.ApiClient) -> None:
    bad = copy.deepcopy(VALID_RAYSERVICE)
    bad["metadata"]["name"] = "schema-probe-bad"
    bad["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"] = "notalist"
    with pytest.raises(ApiException) as err:
        _create_rayservice(admin, bad)
    assert err.value.status == 422
    assert "spec.rayClusterConfig.headGroupSpec.template.spec.containers" in err.value.body


def test_kuberay_crd_schema_accepts_a_valid_rayservice(admin: client.ApiClient) -> None:
    created = _create_rayservice(admin, copy.deepcopy(VALID_RAYSERVICE))
    assert created["metadata"]["uid"]
    fetched = client.CustomObjectsApi(admin).get_namespaced_custom_object(
        "ray.io", "v1", "default", "rayservices", "schema-probe"
    )
    assert fetched["spec"]["rayClusterConfig"]["rayVersion"] == "2.51.0"


def _service_account_with_configmap_reader(api: client.ApiClient, namespace: str) -> str:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata={"name": "probe"}))
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata={"name": "configmap-reader"},
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata={"name": "probe-reads-configmaps"},
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-reader"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="probe", namespace=namespace)],
        ),
    )
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    issued = core.create_namespaced_service_account_token("probe", namespace, request)
    return str(issued.status.token)


def _client_with_token(plane: ControlPlane, token: str) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = plane.apiserver_url
    cfg.ssl_ca_cert = str(plane.pki_dir / "ca.crt")
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


def test_service_account_token_authenticates_and_rbac_is_enforced(
    controlplane: ControlPlane, admin: client.ApiClient
) -> None:
    token = _service_account_with_configmap_reader(admin, "sa-probe")
    as_probe = client.CoreV1Api(_client_with_token(controlplane, token))

    assert as_probe.list_namespaced_config_map("sa-probe").items is not None  # granted by the Role

    with pytest.raises(ApiException) as secrets_err:
        as_probe.list_namespaced_secret("sa-probe")
    assert secrets_err.value.status == 403
    assert "system:serviceaccount:sa-probe:probe" in secrets_err.value.body

    with pytest.raises(ApiException) as other_ns_err:
        as_probe.list_namespaced_config_map("default")
    assert other_ns_err.value.status == 403


def test_a_forged_token_is_rejected(controlplane: ControlPlane) -> None:
    forged = client.CoreV1Api(_client_with_token(controlplane, "not-a-real-token"))
    with pytest.raises(ApiException) as err:
        forged.list_namespace()
    assert err.value.status == 401


def test_kubectl_create_token_issues_a_working_token(
    controlplane: ControlPlane, admin: client.ApiClient
) -> None:
    client.CoreV1Api(admin).create_namespaced_service_account(
        "default", client.V1ServiceAccount(metadata={"name": "kubectl-probe"})
    )
    done = controlplane.kubectl("create", "token", "kubectl-probe", "-n", "default")
    assert done.returncode == 0, done.stderr
    review = client.AuthenticationV1Api(admin).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=done.stdout.strip()))
    )
    assert review.status.authenticated is True
    assert review.status.user.username == "system:serviceaccount:default:kubectl-probe"


def test_kuberay_crds_are_established(controlplane: ControlPlane) -> None:
    done = controlplane.kubectl("get", "crd", "-o", "name")
    names = set(done.stdout.split())
    assert {
        "customresourcedefinition.apiextensions.k8s.io/rayservices.ray.io",
        "customresourcedefinition.apiextensions.k8s.io/rayclusters.ray.io",
        "customresourcedefinition.apiextensions.k8s.io/rayjobs.ray.io",
    } <= names


def test_namespace_deletion_and_owner_cascades_finish(admin: client.ApiClient) -> None:
    """kube-controller-manager's namespace and garbage-collector controllers run beside the API server."""
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="gc-probe")))
    owner = core.create_namespaced_config_map("gc-probe", client.V1ConfigMap(metadata={"name": "owner"}))
    owned = client.V1ConfigMap(
        metadata={
            "name": "owned",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
            ],
        }
    )
    core.create_namespaced_config_map("gc-probe", owned)
    core.delete_namespaced_config_map("owner", "gc-probe", propagation_policy="Foreground")

    def eventually_gone(read: Callable[[], object], timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                read()
            except ApiException as exc:
                if exc.status == 404:
                    return True
                raise
            time.sleep(0.5)
        return False

    assert eventually_gone(lambda: core.read_namespaced_config_map("owned", "gc-probe"))
    core.delete_namespace("gc-probe")
    assert eventually_gone(lambda: core.read_namespace("gc-probe"))
