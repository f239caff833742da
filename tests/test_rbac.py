"""The operator's identity against the real API server: a ServiceAccount token from TokenRequest, least
privilege proven by SubjectAccessReview and by the token itself, and no running as an administrator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operators.localrun import LocalOperator
from operators.sovereign_operator.kube import Kube, api_client
from sovereign.devenv.controlplane import ControlPlane
from sovereign.vocabulary import OPERATOR_SERVICE_ACCOUNT

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]
USER = "system:serviceaccount:{}:{}".format(*OPERATOR_SERVICE_ACCOUNT)
ONBOARDED, OTHER = "rbac-onboarded", "rbac-other"


@pytest.fixture(scope="module")
def namespaces(sovereign_operator: LocalOperator, controlplane: ControlPlane) -> None:
    sovereign_operator.onboard(ONBOARDED)
    assert controlplane.kubectl("create", "namespace", OTHER).returncode == 0


def allowed(
    op: LocalOperator, verb: str, resource: str, namespace: str | None = None, group: str = ""
) -> bool:
    review = client.AuthorizationV1Api(op.api_client).create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": USER,
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource.split("/")[0],
                    "subresource": resource.split("/")[1] if "/" in resource else "",
                    **({"namespace": namespace} if namespace else {}),
                },
            },
        }
    )
    return bool(review.status.allowed)


NEEDS = [
    ("create", "rayservices", ONBOARDED, "ray.io"),
    ("patch", "rayservices", ONBOARDED, "ray.io"),
    ("delete", "rayservices", ONBOARDED, "ray.io"),
    ("watch", "rayservices", None, "ray.io"),
    ("list", "llamadeployments", None, "sovereign.dev"),
    ("patch", "llamadeployments/status", ONBOARDED, "sovereign.dev"),
    ("patch", "clusterrequests/status", ONBOARDED, "sovereign.dev"),
    ("create", "sovereignclusters", None, "sovereign.dev"),
    ("create", "events", ONBOARDED, ""),
]
FORBIDDEN = [
    ("get", "secrets", ONBOARDED, ""),
    ("list", "secrets", None, ""),
    ("get", "secrets", "sovereign-system", ""),
    ("create", "rayservices", OTHER, "ray.io"),
    ("delete", "rayservices", OTHER, "ray.io"),
    ("patch", "llamadeployments/status", OTHER, "sovereign.dev"),
    ("patch", "llamadeployments", ONBOARDED, "sovereign.dev"),
    ("create", "configmaps", ONBOARDED, ""),
    ("create", "pods", ONBOARDED, ""),
    ("create", "events", OTHER, ""),
    ("delete", "namespaces", None, ""),
    ("create", "rolebindings", ONBOARDED, "rbac.authorization.k8s.io"),
    ("patch", "validatingwebhookconfigurations", None, "admissionregistration.k8s.io"),
]


@pytest.mark.parametrize(("verb", "resource", "namespace", "group"), NEEDS)
def test_the_operator_may_do_what_it_needs(
    verb: str,
    resource: str,
    namespace: str | None,
    group: str,
    sovereign_operator: LocalOperator,
    namespaces: None,
) -> None:
    assert allowed(sovereign_operator, verb, resource, namespace, group)


@pytest.mark.parametrize(("verb", "resource", "namespace", "group"), FORBIDDEN)
def test_the_operator_may_not_read_secrets_or_touch_what_it_does_not_own(
    verb: str,
    resource: str,
    namespace: str | None,
    group: str,
    sovereign_operator: LocalOperator,
    namespaces: None,
) -> None:
    assert not allowed(sovereign_operator, verb, resource, namespace, group)


def test_the_token_is_a_service_account_token_that_cannot_read_secrets(
    sovereign_operator: LocalOperator, namespaces: None
) -> None:
    kubeconfig = sovereign_operator.credentials / "kubeconfig"
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    assert token.count(".") == 2  # a JWT the API server signed (TokenRequest), not a static token
    operator_api = api_client(kubeconfig)
    review = client.AuthenticationV1Api(operator_api).create_self_subject_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    assert review.status.user_info.username == USER
    assert "system:masters" not in (review.status.user_info.groups or [])
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(operator_api).list_namespaced_secret(ONBOARDED)
    assert denied.value.status == 403


def test_the_operator_refuses_to_run_as_an_administrator(
    sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    for name in ("webhook.crt", "webhook.key", "ca.crt", "webhook.json"):
        (tmp_path / name).write_bytes((sovereign_operator.credentials / name).read_bytes())
    (tmp_path / "kubeconfig").write_bytes(controlplane.kubeconfig.read_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "sovereign", "operator", "run", f"--credentials={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SOVEREIGN_OPA_URL": sovereign_operator.opa_url},
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to run as sovereign-admin (system:masters)" in done.stderr


# Every write the operator makes (operators/sovereign_operator/kube.py; kopf's own progress goes to the same
# status subresources): made with the operator's own token on objects that do not exist. The API server
# authorizes before it looks: 404 means allowed, 403 refused.
WRITES = [
    ("patch clusterrequests/status", lambda kube, ns: kube.patch_status("clusterrequests", ns, "absent", {})),
    (
        "patch llamadeployments/status",
        lambda kube, ns: kube.patch_status("llamadeployments", ns, "absent", {}),
    ),
    ("patch rayservices", lambda kube, ns: kube.patch_rayservice(ns, "absent", {})),
    ("json-patch rayservices", lambda kube, ns: kube.restore_rayservice(ns, "absent", [])),
    (
        "patch sovereignclusters/status",
        lambda kube, _: kube.custom.patch_cluster_custom_object_status(
            "sovereign.dev", "v1alpha1", "sovereignclusters", "absent", {}
        ),
    ),
    (
        "delete sovereignclusters",
        lambda kube, _: kube.custom.delete_cluster_custom_object(
            "sovereign.dev", "v1alpha1", "sovereignclusters", "absent"
        ),
    ),
]


@pytest.mark.parametrize(("write", "call"), WRITES, ids=[w for w, _ in WRITES])
def test_the_operators_own_token_may_make_each_write_it_makes_in_an_onboarded_namespace(
    write: str, call: Any, sovereign_operator: LocalOperator, namespaces: None
) -> None:
    kube = Kube(api_client(sovereign_operator.credentials / "kubeconfig"))
    with pytest.raises(ApiException) as answered:
        call(kube, ONBOARDED)
    assert answered.value.status == 404, f"{write}: {answered.value.body}"
    if write.startswith(("patch clusterrequests", "patch llamadeployments", "patch rayservices")):
        with pytest.raises(ApiException) as refused:  # and only there
            call(kube, OTHER)
        assert refused.value.status == 403, f"{write} in {OTHER}: {refused.value.body}"


def test_the_operators_own_token_records_events_about_namespaced_and_cluster_scoped_objects(
    sovereign_operator: LocalOperator, namespaces: None
) -> None:
    kube = Kube(api_client(sovereign_operator.credentials / "kubeconfig"))
    request = {"apiVersion": "sovereign.dev/v1alpha1", "kind": "ClusterRequest"}
    kube.event(
        {**request, "metadata": {"name": "rbac-probe", "namespace": ONBOARDED}}, "Normal", "Probe", "m"
    )
    cluster = {"apiVersion": "sovereign.dev/v1alpha1", "kind": "SovereignCluster"}
    kube.event({**cluster, "metadata": {"name": "rbac-probe"}}, "Normal", "Probe", "m")  # into default
