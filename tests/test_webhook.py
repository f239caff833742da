"""The admission webhook as a `kubectl apply` user meets it: the API server calls the operator's webhook
over TLS, and refusals carry the reason codes, the field to fix and the citation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from operators import manifests
from operators.localrun import LocalOperator, wait_until
from operators.sovereign_operator import rayservice
from operators.sovereign_operator.credentials import Credentials
from serving.manifest import RAY_IMAGE
from sovereign import vocabulary as k8s
from sovereign.devenv.controlplane import ControlPlane
from sovereign.devenv.pki import LocalCA
from sovereign.policy import subjects

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]
EXAMPLES = manifests.EXAMPLES_DIR
WEBHOOK = 'admission webhook "llamadeployments.admission.sovereign.dev" denied the request'
EXPECTED_CODES = {
    "us-defense": ["GPU_QUOTA_EXCEEDED"],
    "five-eyes": ["DATA_RESIDENCY"],
    "eu-text-only": ["EU_MULTIMODAL_LICENCE", "REGION_MODALITY"],
}


def _name(path: Path) -> tuple[str, str]:
    meta = yaml.safe_load(path.read_text())["metadata"]
    return meta["namespace"], meta["name"]


@pytest.fixture(scope="module")
def examples(sovereign_operator: LocalOperator, controlplane: ControlPlane) -> None:
    for path in [EXAMPLES / "namespaces.yaml", *sorted(EXAMPLES.glob("*/sovereigncluster.yaml"))]:
        done = controlplane.kubectl("apply", "-f", str(path))
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("region", sorted(EXPECTED_CODES))
def test_examples_compliant_admitted_noncompliant_refused_with_codes_fields_and_citations(
    region: str, examples: None, sovereign_operator: LocalOperator, controlplane: ControlPlane
) -> None:
    op = sovereign_operator
    compliant, noncompliant = (
        EXAMPLES / region / f"llamadeployment-{kind}.yaml" for kind in ("compliant", "noncompliant")
    )
    admitted = controlplane.kubectl("apply", "-f", str(compliant))
    assert admitted.returncode == 0, admitted.stderr
    wait_until(lambda: op.get("rayservices", _name(compliant)[1], _name(compliant)[0]), 30, "its RayService")

    refused = controlplane.kubectl("apply", "-f", str(noncompliant))
    assert refused.returncode != 0
    assert WEBHOOK in refused.stderr
    for code in EXPECTED_CODES[region]:
        assert code in refused.stderr
    # Each reason cites its source, or the project's own rule marked as such (tests/test_citations.py).
    assert "https://" in refused.stderr or "sovereign design rule" in refused.stderr
    namespace, name = _name(noncompliant)
    assert op.get("llamadeployments", name, namespace) is None
    assert op.get("rayservices", name, namespace) is None


def _ld(tmp_path: Path, ns: str, **spec: object) -> Path:
    body = {
        "apiVersion": k8s.API_VERSION,
        "kind": "LlamaDeployment",
        "metadata": {"name": "bad-input", "namespace": ns},
        "spec": {
            "clusterRef": "usdef-east-1",
            "model": "llama-3.3-70b-instruct",
            "endUse": "defense",
            **spec,
        },
    }
    path = tmp_path / "ld.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"gpusPerReplica": -1}, "spec.gpusPerReplica"),
        ({"endUse": "warfare"}, 'spec.endUse: Unsupported value: "warfare"'),
        ({"model": "llama-9-1t"}, "UNKNOWN_MODEL (spec.model)"),
        ({"clusterRef": "atlantis-1"}, "spec.clusterRef: SovereignCluster atlantis-1 does not exist"),
        ({"replicas": 0}, "spec.replicas"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_created(
    spec: dict[str, object],
    expected: str,
    examples: None,
    sovereign_operator: LocalOperator,
    controlplane: ControlPlane,
    tmp_path: Path,
) -> None:
    refused = controlplane.kubectl("apply", "-f", str(_ld(tmp_path, "usdef-team", **spec)))
    assert refused.returncode != 0
    assert expected in refused.stderr, refused.stderr
    assert sovereign_operator.get("llamadeployments", "bad-input", "usdef-team") is None
    assert sovereign_operator.get("rayservices", "bad-input", "usdef-team") is None


def test_a_team_cannot_deploy_on_a_cluster_that_is_not_its_own(
    examples: None, sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    """The EU team names the US defence cluster: refused, citing that cluster's own tenant list."""
    refused = controlplane.kubectl(
        "apply", "-f", str(_ld(tmp_path, "eu-team", model="llama-3.1-8b-instruct"))
    )
    assert refused.returncode != 0
    assert "TENANT_NOT_ALLOWED (metadata.namespace / spec.clusterRef)" in refused.stderr, refused.stderr
    assert "namespace <eu-team> may not deploy on cluster <usdef-east-1>: its tenants are <usdef-team>" in (
        refused.stderr
    )
    assert "SovereignCluster <usdef-east-1> spec.tenants.namespaces" in refused.stderr
    assert sovereign_operator.get("llamadeployments", "bad-input", "eu-team") is None
    # Its own team may (the same deployment from usdef-team is admitted).
    admitted = controlplane.kubectl(
        "apply", "-f", str(_ld(tmp_path, "usdef-team", model="llama-3.1-8b-instruct"))
    )
    assert admitted.returncode == 0, admitted.stderr
    sovereign_operator.delete("llamadeployments", "bad-input", "usdef-team")


def test_a_rayservice_made_by_hand_is_refused(
    examples: None, sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    rayservice = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {
            "name": "by-hand",
            "namespace": "usdef-team",
            "labels": {"sovereign.dev/cluster": "usdef-east-1"},
        },
        "spec": {
            "serveConfigV2": yaml.safe_dump({"applications": [{"name": "x", "import_path": "my.app:build"}]}),
            "rayClusterConfig": {
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{"name": "h", "image": "i"}]}},
                }
            },
        },
    }
    (tmp_path / "rs.yaml").write_text(yaml.safe_dump(rayservice))
    refused = controlplane.kubectl("apply", "-f", str(tmp_path / "rs.yaml"))
    assert refused.returncode != 0
    assert 'admission webhook "rayservices.admission.sovereign.dev" denied the request' in refused.stderr
    # Its only application is another builder's: it declares no deployment, so there is nothing to judge.
    assert "by-hand cannot be judged" in refused.stderr and "serving.app:build_app" in refused.stderr
    del rayservice["metadata"]["labels"]
    (tmp_path / "rs.yaml").write_text(yaml.safe_dump(rayservice))
    refused = controlplane.kubectl("apply", "-f", str(tmp_path / "rs.yaml"))
    assert refused.returncode != 0 and "metadata.labels[sovereign.dev/cluster] is missing" in refused.stderr


def test_a_down_webhook_refuses_in_managed_namespaces_only(
    examples: None, sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    sovereign_operator.stop()
    try:
        refused = controlplane.kubectl("apply", "-f", str(_ld(tmp_path, "usdef-team")))
        assert refused.returncode != 0 and "failed calling webhook" in refused.stderr, refused.stderr
        elsewhere = controlplane.kubectl("create", "configmap", "unaffected", "--namespace=default")
        assert elsewhere.returncode == 0, elsewhere.stderr  # the rest of the cluster does not wait on it
    finally:
        sovereign_operator.start()


# --- a RayService as submitted is judged on what it would run ---------------------------------------------
def _judged_rayservice(op: LocalOperator, name: str) -> dict[str, Any]:
    """What the operator generates for the us-defense example deployment (70B, defense), as an unowned
    RayService named `name` in usdef-team: the starting point of each bypass."""
    example = yaml.safe_load((EXAMPLES / "us-defense" / "llamadeployment-compliant.yaml").read_text())
    example["metadata"].update(name=name, uid="by-hand")
    cluster = op.get("sovereignclusters", example["spec"]["clusterRef"])
    assert cluster is not None
    judged = subjects.deployment_input(cluster, example)
    body = rayservice.desired(example, cluster, judged, RAY_IMAGE)
    del body["metadata"]["ownerReferences"]
    return body


def _serve_config(body: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(body["spec"]["serveConfigV2"])  # type: ignore[no-any-return]


def _with_app(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    config = _serve_config(body)
    config["applications"][0].update(changes)
    body["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    return body


def _worker(body: dict[str, Any]) -> dict[str, Any]:
    return body["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]  # type: ignore[no-any-return]


def _another_image(body: dict[str, Any]) -> dict[str, Any]:
    _worker(body)["template"]["spec"]["containers"][0]["image"] = "registry.example/evil/ray:1"
    return body


def _opa_url_in_env(body: dict[str, Any]) -> dict[str, Any]:
    env = [{"name": "SOVEREIGN_OPA_URL", "value": "http://allow-all.example:8181"}]
    _worker(body)["template"]["spec"]["containers"][0]["env"] = env
    return body


def _deployment_override(body: dict[str, Any]) -> dict[str, Any]:
    return _with_app(body, deployments=[{"name": "LlamaServer", "ray_actor_options": {"num_gpus": 0}}])


def _forged_facts(body: dict[str, Any]) -> dict[str, Any]:
    args = _serve_config(body)["applications"][0]["args"]
    args["policy"]["cluster"]["accreditations"] = [{"scheme": "dod-il5", "expires": "2099-12-31"}]
    return _with_app(body, args=args)


def _another_builder(body: dict[str, Any]) -> dict[str, Any]:
    config = _serve_config(body)
    config["applications"].append({"name": "side", "import_path": "evil.app:build", "args": {}})
    body["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    return body


def _forged_namespace(body: dict[str, Any]) -> dict[str, Any]:
    args = _serve_config(body)["applications"][0]["args"]
    args["policy"]["namespace"] = "another-team"  # a tenant the cluster admits would be re-checked instead
    return _with_app(body, args=args)


def _autoscaled_over_quota(body: dict[str, Any]) -> dict[str, Any]:
    _worker(body)["maxReplicas"] = 100  # 100 x 4 GPUs, over the example cluster's quota of 64
    return body


def _runtime_env(key: str, value: Any) -> Any:
    return lambda body: _with_app(body, runtime_env={key: value})


BYPASSES = {
    "image": (_another_image, "WORKLOAD_IMAGE_NOT_ALLOWED"),
    "runtime_env.env_vars": (
        _runtime_env("env_vars", {"PYTHONPATH": "/evil"}),
        "WORKLOAD_RUNTIME_ENV_NOT_ALLOWED",
    ),
    "runtime_env.pip": (_runtime_env("pip", ["evil-package"]), "WORKLOAD_RUNTIME_ENV_NOT_ALLOWED"),
    "runtime_env.working_dir": (
        _runtime_env("working_dir", "s3://evil/code.zip"),
        "WORKLOAD_RUNTIME_ENV_NOT_ALLOWED",
    ),
    "runtime_env.py_modules": (
        _runtime_env("py_modules", ["s3://evil/m.zip"]),
        "WORKLOAD_RUNTIME_ENV_NOT_ALLOWED",
    ),
    "container env": (_opa_url_in_env, "WORKLOAD_OVERRIDE"),
    "deployments[] override": (_deployment_override, "WORKLOAD_OVERRIDE"),
    "forged cluster facts": (_forged_facts, "WORKLOAD_FACTS_MISMATCH"),
    "forged namespace": (_forged_namespace, "WORKLOAD_FACTS_MISMATCH"),
    "another builder beside": (_another_builder, "WORKLOAD_IMPORT_PATH_NOT_ALLOWED"),
    "autoscaling over quota": (_autoscaled_over_quota, "GPU_QUOTA_EXCEEDED"),
}


@pytest.mark.parametrize("bypass", sorted(BYPASSES))
def test_a_rayservice_that_would_run_more_than_was_judged_is_refused_with_its_code(
    bypass: str, examples: None, sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    change, code = BYPASSES[bypass]
    body = change(_judged_rayservice(sovereign_operator, "bypass"))
    (tmp_path / "rs.yaml").write_text(yaml.safe_dump(body))
    refused = controlplane.kubectl("apply", "-f", str(tmp_path / "rs.yaml"))
    assert refused.returncode != 0
    assert code in refused.stderr and "rayservices.admission.sovereign.dev" in refused.stderr, refused.stderr
    assert sovereign_operator.get("rayservices", "bypass", "usdef-team") is None


def test_a_rayservice_exactly_as_the_operator_would_generate_it_is_admitted(
    examples: None, sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    (tmp_path / "rs.yaml").write_text(yaml.safe_dump(_judged_rayservice(sovereign_operator, "as-judged")))
    admitted = controlplane.kubectl("apply", "-f", str(tmp_path / "rs.yaml"))
    assert admitted.returncode == 0, admitted.stderr
    sovereign_operator.delete("rayservices", "as-judged", "usdef-team")


@pytest.mark.parametrize("kind", ["RayCluster", "RayJob"])
def test_a_raycluster_or_rayjob_made_by_hand_is_refused(
    kind: str, examples: None, sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    ray_cluster = _judged_rayservice(sovereign_operator, "unused")["spec"]["rayClusterConfig"]
    spec = (
        ray_cluster
        if kind == "RayCluster"
        else {"entrypoint": "python evil.py", "rayClusterSpec": ray_cluster}
    )
    body = {
        "apiVersion": "ray.io/v1",
        "kind": kind,
        "metadata": {"name": "by-hand", "namespace": "usdef-team"},
    }
    (tmp_path / "ray.yaml").write_text(yaml.safe_dump({**body, "spec": spec}))
    refused = controlplane.kubectl("apply", "-f", str(tmp_path / "ray.yaml"))
    assert refused.returncode != 0
    assert f"{kind} usdef-team/by-hand cannot be judged" in refused.stderr, refused.stderr
    assert "declare a LlamaDeployment" in refused.stderr


def test_a_direct_rayservice_counts_towards_the_quota_of_later_deployments(
    examples: None, sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    op = sovereign_operator
    body = _judged_rayservice(op, "direct")
    worker = _worker(body)
    worker.update(replicas=15, minReplicas=15, maxReplicas=15)  # 15 x 4 GPUs: 60 of the cluster's 64
    (tmp_path / "rs.yaml").write_text(yaml.safe_dump(body))
    admitted = controlplane.kubectl("apply", "-f", str(tmp_path / "rs.yaml"))
    assert admitted.returncode == 0, admitted.stderr
    try:
        asking = _ld(tmp_path, "usdef-team", replicas=2, gpusPerReplica=4)  # 8 more: over the quota
        # The operator learns of the RayService from its watch: dry runs (judged, never stored) until it has.
        dry_run = ["apply", "--dry-run=server", "-f", str(asking)]
        wait_until(
            lambda: controlplane.kubectl(*dry_run).returncode != 0, 30, "the direct RayService's claim"
        )
        refused = controlplane.kubectl("apply", "-f", str(asking))
        assert refused.returncode != 0
        assert "GPU_QUOTA_EXCEEDED" in refused.stderr, refused.stderr
        in_use = int(re.search(r"has (\d+) GPUs in use", refused.stderr).group(1))  # type: ignore[union-attr]
        assert in_use >= 60  # the direct RayService's 60, and whatever the examples hold
        assert op.get("llamadeployments", "bad-input", "usdef-team") is None
    finally:
        op.delete("rayservices", "direct", "usdef-team")


def test_only_the_api_server_may_call_the_webhook(
    examples: None, sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path: Path
) -> None:
    """The webhook asks its callers for a client certificate from the control plane's CA: a caller without
    one (anyone on the host who can reach the port) is turned away before any review is read."""
    found = Credentials.load(sovereign_operator.credentials)
    url = f"{found.webhook['url']}/{k8s.DEPLOYMENTS}"
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "x"}}
    with pytest.raises(requests.exceptions.ConnectionError):  # TLS refused: no (trusted) client certificate
        requests.post(url, json=review, verify=str(found.ca), timeout=10)
    # The API server, presenting its client certificate, is served: the examples were admitted through it.
    assert controlplane.kubectl("get", "llamadeployments", "-n", "usdef-team").returncode == 0
    stranger = LocalCA(tmp_path / "stranger-ca").issue_client_cert("stranger")
    with pytest.raises(requests.exceptions.ConnectionError):  # TLS refused: no (trusted) client certificate
        requests.post(
            url, json=review, verify=str(found.ca), cert=(str(stranger.cert), str(stranger.key)), timeout=10
        )
