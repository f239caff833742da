"""The platform engineer's path, for real: the pinned Pulumi CLI, a file backend, a real API server.

`sovereign up local` creates the region's objects (read back from the API server), a second `up` changes
nothing (nor does a plain `pulumi up -s local --yes` from a shell), an edited cluster YAML is a
one-resource update, a non-compliant cluster makes preview (and up) fail with its reason code and creates
nothing, `destroy` leaves nothing behind. Bad input exits 2 before Pulumi starts.

Everything lives in temporary folders (state, PULUMI_HOME, a copy of the project and clusters/), on a
control plane of this module's own: `destroy` removes the sovereign CRDs, which other tests' session
control plane must keep. Deletion needs the garbage collector and namespace controller, so a
kube-controller-manager (part of every dev control plane) is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config as kube_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from infra.kube_api import connect
from infra.kube_object import KubeObjectProvider
from sovereign import toolchain
from sovereign.audit import keys as audit_keys
from sovereign.audit.query import Query, read_records
from sovereign.audit.record import Point
from sovereign.devenv.controlplane import ControlPlane, ControlPlaneConfig, running_controlplane
from sovereign.devenv.process import free_port
from sovereign.policy.bundle import SignedBundle, opa_server_args
from sovereign.policy.screening_source import SCREENING_LIST_ENV

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

ROOT = toolchain.REPO_ROOT
SOVEREIGN = ROOT / ".venv" / "bin" / "sovereign"
CHAT = ("usdef-east-1", "usdef-east-1-chat-70b")  # the LlamaDeployment clusters/usdef-east-1.yaml declares
# A US-defense cluster run by a company: not eligible for the region (OPERATOR_NOT_ELIGIBLE).
NON_COMPLIANT = """\
name: usdef-west-9
region: us-defense
country: US
gpu_quota: 8
operator: {name: Example Analytics LLC, country: US, kind: company}
accreditations:
  - {scheme: dod-il5, expires: "2027-06-30"}
deployments:
  - {name: chat, model: llama-3.3-70b-instruct, end_use: defense, gpus_per_replica: 4}
"""


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, signed_bundle: SignedBundle) -> Iterator[ControlPlane]:
    state = tmp_path_factory.mktemp("pulumi-e2e-plane")
    config = ControlPlaneConfig(name="pulumi-e2e", state_dir=state, opa_args=opa_server_args(signed_bundle))
    with running_controlplane(config) as plane:
        yield plane


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, plane: ControlPlane) -> Path:
    """The project as committed (Pulumi.yaml, program, clusters/), the local stack pointed at `plane`."""
    project = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "infra" / "stacks").mkdir(parents=True)
    (project / "infra" / "__main__.py").symlink_to(ROOT / "infra" / "__main__.py")
    shutil.copytree(ROOT / "clusters", project / "clusters")
    stack = yaml.safe_load((ROOT / "infra" / "stacks" / "local.yaml").read_text())
    stack["config"]["sovereign:kubeconfig"] = str(plane.kubeconfig)
    (project / "infra" / "stacks" / "local.yaml").write_text(yaml.safe_dump(stack))
    return project


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, bundle_env: dict[str, str], current_screening_list: Path
) -> dict[str, str]:
    """The user's environment minus anything that would reach their real Pulumi or sovereign state; the
    program ships the session's built bundle, and its policy pack screens against a current list and
    records its decisions with the session's audit key (in this home's state dir)."""
    home = tmp_path_factory.mktemp("home")
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PULUMI_", "SOVEREIGN_")) and key != "KUBECONFIG"
    }
    home_env = {"SOVEREIGN_STATE_DIR": str(home / "state"), "PULUMI_HOME": str(home / "pulumi-home")}
    screening = {SCREENING_LIST_ENV: str(current_screening_list)}
    audit = {audit_keys.PRIVATE_KEY_ENV: str(audit_keys.private_key_path())}
    return {**clean, **home_env, **bundle_env, **screening, **audit}


def sovereign(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SOVEREIGN), *args], env=env, capture_output=True, text=True, timeout=300)


def pulumi(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Plain `pulumi` as infra/README.md has a shell run it: after `eval "$(sovereign dev env)"`."""
    script = f'eval "$({SOVEREIGN} dev env --project-dir {project})" && exec pulumi "$@"'
    return subprocess.run(
        ["bash", "-c", script, "pulumi", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def last_changes(project: Path, env: dict[str, str]) -> dict[str, int]:
    done = pulumi(project, env, "stack", "history", "-s", "local", "--json", "--page-size", "1")
    assert done.returncode == 0, done.stderr
    return {op: n for op, n in json.loads(done.stdout)[0]["resourceChanges"].items() if n}


class Api:
    def __init__(self, kubeconfig: Path) -> None:
        self.client = DynamicClient(kube_config.new_client_from_config(config_file=str(kubeconfig)))

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        self.client.resources.invalidate_cache()
        try:
            resource = self.client.resources.get(api_version=api_version, kind=kind)
            return dict(self.client.get(resource, name=name, namespace=namespace).to_dict())
        except (NotFoundError, ResourceNotFoundError):  # the object, or its whole kind (CRD deleted), is gone
            return None


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def test_region_stack_lifecycle(plane: ControlPlane, project: Path, env: dict[str, str]) -> None:
    api = Api(plane.kubeconfig)
    where = ["--project-dir", str(project)]

    declared = (project / "infra" / "stacks" / "local.yaml").read_text()

    # 1. up creates the region's objects.
    out = ok(sovereign(env, "up", "local", *where))
    assert "OPERATOR_NOT_ELIGIBLE" not in out
    created = last_changes(project, env)
    assert set(created) == {"create"} and created["create"] >= 20
    cluster = api.get("sovereign.dev/v1alpha1", "SovereignCluster", "usdef-east-1")
    assert cluster and cluster["spec"]["operator"]["kind"] == "government_contractor"
    deployment = api.get("sovereign.dev/v1alpha1", "LlamaDeployment", CHAT[1], CHAT[0])
    assert deployment and deployment["spec"]["replicas"] == 1
    namespace = api.get("v1", "Namespace", "usdef-east-1")
    assert namespace and namespace["metadata"]["labels"]["sovereign.dev/managed"] == "true"
    assert api.get("networking.k8s.io/v1", "NetworkPolicy", "sovereign-egress-in-region", "usdef-east-1")
    bundle = api.get("v1", "ConfigMap", "sovereign-policy-bundle", "sovereign-system")
    assert bundle and "bundle.tar.gz" in bundle["binaryData"]
    managers = {entry["manager"] for entry in deployment["metadata"]["managedFields"]}
    assert "sovereign-pulumi" in managers  # server-side apply under the stack's field manager

    # 2. A second up changes nothing, nor does the same program run by a plain `pulumi up` from a shell
    #    (through the stand-in language host).
    ok(sovereign(env, "up", "local", *where))
    assert set(last_changes(project, env)) == {"same"}
    ok(pulumi(project, env, "up", "-s", "local", "--yes"))
    assert set(last_changes(project, env)) == {"same"}

    # 3. One edited field in a cluster YAML is one updated resource.
    cluster_file = project / "clusters" / "usdef-east-1.yaml"
    cluster_file.write_text(cluster_file.read_text().replace("replicas: 1,", "replicas: 2,"))
    ok(sovereign(env, "up", "local", *where))
    changes = last_changes(project, env)
    assert changes.pop("update") == 1 and set(changes) == {"same"}
    deployment = api.get("sovereign.dev/v1alpha1", "LlamaDeployment", CHAT[1], CHAT[0])
    assert deployment and deployment["spec"]["replicas"] == 2

    # 4. A non-compliant cluster fails preview with its code, and up creates nothing of it.
    (project / "clusters" / "usdef-west-9.yaml").write_text(NON_COMPLIANT)
    stack_file = project / "infra" / "stacks" / "local.yaml"
    compliant_stack = stack_file.read_text()
    stack = yaml.safe_load(compliant_stack)
    stack["config"]["sovereign:clusters"].append("clusters/usdef-west-9.yaml")
    stack_file.write_text(yaml.safe_dump(stack))
    for action in ("preview", "up"):
        refused = sovereign(env, action, "local", *where)
        assert refused.returncode == 1, refused.stderr
        assert "refused by the policy" in refused.stderr
        assert "usdef-west-9-chat: OPERATOR_NOT_ELIGIBLE" in refused.stderr.replace("\n", " ")
        assert api.get("sovereign.dev/v1alpha1", "SovereignCluster", "usdef-west-9") is None
        assert api.get("v1", "Namespace", "usdef-west-9") is None
    stack_file.write_text(compliant_stack)
    #    Each refusal, as every judgement of the program and the policy pack, is a record of the decision log.
    log = Path(env["SOVEREIGN_STATE_DIR"]) / "audit"
    refusals = read_records(log, Query(point=Point.PREVIEW, code="OPERATOR_NOT_ELIGIBLE"))[0]
    assert refusals and {r.record.subject for r in refusals} == {
        "LlamaDeployment usdef-west-9/usdef-west-9-chat"
    }
    assert not any(r.record.allow for r in refusals)
    ok(sovereign(env, "audit", "verify", str(log), f"--key={audit_keys.public_key_path()}"))

    # 5. destroy leaves nothing behind.
    ok(sovereign(env, "destroy", "local", *where))
    assert_gone(api)

    # 6. Pulumi kept its passphrase check in its own stack file, never in the declaration (tracked).
    assert (project / "infra" / "stacks" / "local.yaml").read_text() == declared
    assert "encryptionsalt:" in (project / "infra" / "stacks" / "Pulumi.local.yaml").read_text()


def assert_gone(api: Api) -> None:
    for api_version, kind, name, namespace in [
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "llamadeployments.sovereign.dev", None),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "sovereignclusters.sovereign.dev", None),
        ("v1", "Namespace", "usdef-east-1", None),
        ("v1", "Namespace", "sovereign-system", None),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", "sovereign-operator", None),
        ("rbac.authorization.k8s.io/v1", "Role", "sovereign-operator-events", "default"),
    ]:
        assert api.get(api_version, kind, name, namespace) is None, f"{kind} {name} is still there"


def test_bad_input_exits_2_before_pulumi_starts(
    project: Path, env: dict[str, str], bundle_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "project"
    shutil.copytree(project, bad, symlinks=True)
    stack_file = bad / "infra" / "stacks" / "local.yaml"
    stack = yaml.safe_load(stack_file.read_text())
    state = Path(env["SOVEREIGN_STATE_DIR"])
    before = sorted(p.name for p in (state / "pulumi" / "state").rglob("*")) if state.exists() else []

    without_region = {k: v for k, v in stack["config"].items() if k != "sovereign:region"}
    stack_file.write_text(yaml.safe_dump({"config": without_region}))
    done = sovereign(env, "preview", "local", "--project-dir", str(bad))
    assert done.returncode == 2 and "sovereign:region: field required" in done.stderr

    stack_file.write_text(yaml.safe_dump(stack))
    cluster_file = bad / "clusters" / "usdef-east-1.yaml"
    cluster_file.write_text(cluster_file.read_text().replace("end_use:", "enduse:"))
    done = sovereign(env, "up", "local", "--project-dir", str(bad))
    assert done.returncode == 2 and "deployments[0].enduse: unknown field" in done.stderr

    shutil.copy(project / "clusters" / "usdef-east-1.yaml", cluster_file)
    port = free_port()  # nothing listens there
    kubeconfig = yaml.safe_load(Path(stack["config"]["sovereign:kubeconfig"]).read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    stack["config"]["sovereign:kubeconfig"] = str(tmp_path / "kubeconfig")
    stack_file.write_text(yaml.safe_dump(stack))
    done = sovereign(env, "up", "local", "--project-dir", str(bad))
    assert done.returncode == 2 and f"the API server https://127.0.0.1:{port}" in done.stderr

    unbuilt = {k: v for k, v in env.items() if k not in bundle_env}  # the state dir holds no bundle
    done = sovereign(unbuilt, "up", "local", "--project-dir", str(project))
    assert done.returncode == 2 and "sovereign bundle build" in done.stderr

    after = sorted(p.name for p in (state / "pulumi" / "state").rglob("*")) if state.exists() else []
    assert after == before  # Pulumi never ran


def test_provider_waits_for_a_deployment_and_reads_what_is_gone(plane: ControlPlane) -> None:
    """The Kubernetes object provider alone, on the real API server (no kubelet: status is written here)."""
    conn = connect(str(plane.kubeconfig), "", "test")
    provider, api = KubeObjectProvider(), Api(plane.kubeconfig)
    labels = {"app": "probe"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
    props = {"manifest": deployment, "connection": conn.as_props()}
    invalid = {**deployment, "spec": {**deployment["spec"], "replicas": -1}}
    (failure,) = provider.check({}, {**props, "manifest": invalid}).failures
    assert "spec.replicas: Invalid value: -1" in failure.reason  # refused at preview, by the API server
    assert provider.check({}, props).failures == []
    assert api.get("apps/v1", "Deployment", "probe", "default") is None  # a dry run creates nothing
    with ThreadPoolExecutor(1) as pool:
        creating = pool.submit(provider.create, props)
        time.sleep(1.5)
        assert not creating.done(), "create returned before the Deployment was available"
        live = api.get("apps/v1", "Deployment", "probe", "default")
        assert live is not None
        generation = live["metadata"]["generation"]
        status = {"observedGeneration": generation, "replicas": 1, "readyReplicas": 1, "availableReplicas": 1}
        resource = api.client.resources.get(api_version="apps/v1", kind="Deployment")
        api.client.patch(
            resource.status,  # type: ignore[attr-defined]
            body={"status": status},
            name="probe",
            namespace="default",
            content_type="application/merge-patch+json",
        )
        created = creating.result(timeout=30)
    assert created.id == "apps/Deployment/default/probe"
    assert created.outs["manifest"]["spec"]["replicas"] == 1

    provider.delete(created.id, created.outs)  # foreground: returns once the garbage collector is done
    assert api.get("apps/v1", "Deployment", "probe", "default") is None
    gone = provider.read(created.id, created.outs)
    assert gone.id == ""
