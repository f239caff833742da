"""The pure parts of infra/: object diffs, refresh views, stack config and region checks (no Pulumi run)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import region_objects, stack_config
from infra.kube_object import diff_props, managed_view, normalise_numbers, object_id
from infra.region_plan import plan
from sovereign import toolchain
from sovereign.devenv.process import free_port
from sovereign.errors import BadInput
from sovereign.policy.bundle import SignedBundle

ROOT = toolchain.REPO_ROOT
CONNECTION = {"kubeconfig": "/a/kubeconfig", "context": "", "server": "https://127.0.0.1:6443"}
CONFIGMAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "rules", "namespace": "sovereign-system", "labels": {"a": "1"}},
    "data": {"replicas": "1"},
}


def props(manifest: dict[str, Any], **connection: str) -> dict[str, Any]:
    return {"manifest": manifest, "connection": {**CONNECTION, **connection}}


def edited(path: str, value: Any) -> dict[str, Any]:
    doc = yaml.safe_load(yaml.safe_dump(CONFIGMAP))
    *parents, last = path.split(".")
    target = doc
    for key in parents:
        target = target[key]
    target[last] = value
    return doc


# --- the Kubernetes object provider's diff ---------------------------------------------------------


def test_same_manifest_is_no_change_even_with_numbers_back_as_floats() -> None:
    with_int = {**CONFIGMAP, "spec": {"replicas": 2}}
    with_float = {**CONFIGMAP, "spec": {"replicas": 2.0}}  # what Pulumi's wire format hands back
    result = diff_props(props(with_float), props(with_int))
    assert result.changes is False
    assert result.replaces == []


def test_a_new_kubeconfig_path_to_the_same_server_is_no_change() -> None:
    result = diff_props(props(CONFIGMAP), props(CONFIGMAP, kubeconfig="/elsewhere/kubeconfig"))
    assert result.changes is False


def test_content_change_is_an_update_not_a_replace() -> None:
    result = diff_props(props(CONFIGMAP), props(edited("data.replicas", "2")))
    assert result.changes is True
    assert result.replaces == []


@pytest.mark.parametrize(
    ("path", "value", "replaced"),
    [
        ("metadata.name", "rules-2", "manifest.name"),
        ("metadata.namespace", "other", "manifest.namespace"),
        ("kind", "Secret", "manifest.kind"),
        ("apiVersion", "example.dev/v1", "manifest.group"),
    ],
)
def test_identity_change_is_a_replace(path: str, value: str, replaced: str) -> None:
    result = diff_props(props(CONFIGMAP), props(edited(path, value)))
    assert result.changes is True
    assert result.replaces == [replaced]


def test_another_cluster_is_a_replace() -> None:
    result = diff_props(props(CONFIGMAP), props(CONFIGMAP, server="https://10.0.0.1:6443"))
    assert result.replaces == ["connection.server"]


def test_a_version_change_within_the_group_is_an_update() -> None:
    old = {**CONFIGMAP, "apiVersion": "sovereign.dev/v1alpha1"}
    new = {**CONFIGMAP, "apiVersion": "sovereign.dev/v1beta1"}
    result = diff_props(props(old), props(new))
    assert (result.changes, result.replaces) == (True, [])


def test_refresh_view_keeps_only_declared_fields_so_server_defaults_are_no_drift() -> None:
    live = {
        **CONFIGMAP,
        "metadata": {**CONFIGMAP["metadata"], "uid": "u-1", "resourceVersion": "7", "managedFields": []},
        "spec": {"ports": [{"port": 80, "protocol": "TCP"}]},
    }
    applied = {**CONFIGMAP, "spec": {"ports": [{"port": 80}]}}
    assert managed_view(applied, live) == applied


def test_refresh_view_shows_an_edit_of_a_declared_field_as_drift() -> None:
    live = edited("data.replicas", "5")
    view = managed_view(CONFIGMAP, live)
    assert view["data"]["replicas"] == "5"
    assert diff_props(props(view), props(CONFIGMAP)).changes is True


def test_normalise_numbers_returns_plain_documents() -> None:
    assert normalise_numbers({"a": [1.0, 1.5, "x"], "b": {"c": 3.0}}) == {"a": [1, 1.5, "x"], "b": {"c": 3}}
    assert type(normalise_numbers({"a": 1.0})["a"]) is int


def test_object_ids_name_group_kind_and_place() -> None:
    assert object_id(CONFIGMAP) == "core/ConfigMap/sovereign-system/rules"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "x.y"},
    }
    assert object_id(crd) == "apiextensions.k8s.io/CustomResourceDefinition/x.y"


# --- region objects ----------------------------------------------------------------------------------


def test_egress_is_denied_except_dns_own_namespace_system_and_in_region_endpoints() -> None:
    from ipaddress import ip_network

    policy = region_objects.egress_policy("usdef-east-1", [ip_network("10.20.0.0/16")])
    spec = policy["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Egress"]
    targets = [peer for rule in spec["egress"] for peer in rule["to"]]
    assert {"ipBlock": {"cidr": "10.20.0.0/16"}} in targets
    assert not any(p.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for p in targets)
    dns = spec["egress"][0]
    assert {p["port"] for p in dns["ports"]} == {53}


def test_opa_verifies_the_bundle_with_a_key_shipped_and_mounted_apart_from_it(tmp_path: Path) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "bundle.tar.gz").write_bytes(b"the signed bundle")
    anchor = tmp_path / "trust.pem"
    anchor.write_text("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")
    bundle = region_objects.bundle_configmap(SignedBundle.at(tmp_path / "bundle", "rev1", anchor))
    trust = region_objects.trust_configmap(anchor)
    assert bundle["metadata"]["name"] != trust["metadata"]["name"]
    assert "data" not in bundle  # nothing but the bundle: no key beside it
    assert base64.b64decode(bundle["binaryData"]["bundle.tar.gz"]) == b"the signed bundle"
    assert trust["data"] == {"policy-bundle.pem": anchor.read_text()}

    deployment, _ = region_objects.opa_workload("openpolicyagent/opa:1.10.0")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v} == {
        "bundle": bundle["metadata"]["name"],
        "trust": trust["metadata"]["name"],
    }
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]} == {
        "bundle": "/bundle",
        "trust": "/trust",
        "tls": "/tls",
    }
    assert "--verification-key=/trust/policy-bundle.pem" in container["args"]
    assert "/bundle/bundle.tar.gz" in container["args"]


def test_opa_in_the_cluster_serves_tls_only_and_requires_the_token() -> None:
    deployment, service = region_objects.opa_workload("openpolicyagent/opa:1.10.0")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert "--addr=0.0.0.0:8181" in args  # all interfaces, so TLS only:
    assert {"--tls-cert-file=/tls/tls.crt", "--tls-private-key-file=/tls/tls.key"} <= set(args)
    assert {"--authentication=token", "--authorization=basic"} <= set(args)
    assert {"name": "tls", "secret": {"secretName": "sovereign-opa-tls"}} in pod["volumes"]
    token = {"secretKeyRef": {"name": "sovereign-opa-token", "key": "token"}}
    assert container["env"] == [{"name": "SOVEREIGN_OPA_TOKEN", "valueFrom": token}]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert service["spec"]["ports"] == [{"name": "https", "port": 8181, "targetPort": 8181}]
    assert region_objects.opa_url() == "https://sovereign-opa.sovereign-system.svc:8181"


def test_the_operator_pins_opas_ca_sends_the_token_and_verifies_the_bundle_itself() -> None:
    deployment, _ = region_objects.operator_workload("registry.example/operator:1", "sovereign-operator")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["SOVEREIGN_OPA_URL"] == "https://sovereign-opa.sovereign-system.svc:8181"
    assert env["SOVEREIGN_OPA_CA"] == "/opa-ca/ca.crt"
    assert env["SOVEREIGN_OPA_TOKEN"] == {"secretKeyRef": {"name": "sovereign-opa-token", "key": "token"}}
    assert env["SOVEREIGN_POLICY_BUNDLE_DIR"] == "/bundle"
    assert env["SOVEREIGN_POLICY_TRUST_ANCHOR"] == "/trust/policy-bundle.pem"
    volumes = {v["name"]: v for v in pod["volumes"]}
    # Only the CA from OPA's TLS Secret, never its private key.
    assert volumes["opa-ca"]["secret"] == {
        "secretName": "sovereign-opa-tls",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert volumes["bundle"]["configMap"]["name"] == "sovereign-policy-bundle"
    assert volumes["trust"]["configMap"]["name"] == "sovereign-policy-trust"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert (mounts["opa-ca"], mounts["bundle"], mounts["trust"]) == ("/opa-ca", "/bundle", "/trust")


def test_dashboards_and_rules_carry_the_sidecar_labels() -> None:
    dashboards = region_objects.dashboards_configmaps({"sovereign-gpu.json": "{}"})
    assert dashboards[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboards[0]["data"] == {"sovereign-gpu.json": "{}"}
    rules = region_objects.rules_configmap({"a.rules.yml": "groups: []"})
    assert rules["metadata"]["labels"]["prometheus_rule"] == "1"


# --- stack config --------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's Pulumi.yaml, stack declarations and clusters/, to edit (not the Pulumi stack
    files a Pulumi run wrote into this checkout: untracked, and no part of the project)."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(
        ROOT / "infra" / "stacks", tmp_path / "infra" / "stacks", ignore=shutil.ignore_patterns("Pulumi.*")
    )
    shutil.copytree(ROOT / "clusters", tmp_path / "clusters")
    return tmp_path


def write_stack(project: Path, stack: str, config: dict[str, Any]) -> None:
    doc = {"config": {f"sovereign:{key}": value for key, value in config.items()}}
    (project / "infra" / "stacks" / f"{stack}.yaml").write_text(yaml.safe_dump(doc))


def test_every_committed_stack_config_is_valid() -> None:
    for stack in ("local", "us-defense", "five-eyes", "eu-text-only"):
        config = stack_config.load(ROOT, stack)
        assert config.region == ("us-defense" if stack == "local" else stack)
        assert all(path.is_file() for path in config.cluster_files(ROOT))


def test_pulumi_yaml_defaults_fill_what_a_stack_leaves_out(project: Path) -> None:
    write_stack(project, "t", {"region": "us-defense", "clusters": ["clusters/usdef-east-1.yaml"]})
    config = stack_config.load(project, "t")
    assert (config.workloads, config.kubeconfig, config.egress_cidrs) == ("local", "", [])
    assert config.opa_image.startswith("openpolicyagent/opa:")


def test_missing_key_is_named(project: Path) -> None:
    write_stack(project, "t", {"clusters": ["clusters/usdef-east-1.yaml"]})
    with pytest.raises(BadInput, match=r"sovereign:region: field required"):
        stack_config.load(project, "t")


def test_unknown_key_is_named(project: Path) -> None:
    write_stack(project, "t", {"region": "us-defense", "clusters": ["c.yaml"], "regoin": "x"})
    with pytest.raises(BadInput, match=r"sovereign:regoin: unknown field"):
        stack_config.load(project, "t")


def test_bad_cidr_and_bad_mode_are_named(project: Path) -> None:
    write_stack(
        project,
        "t",
        {
            "region": "us-defense",
            "clusters": ["c.yaml"],
            "egressCidrs": ["10.0.0.0/99"],
            "workloads": "cloud",
        },
    )
    with pytest.raises(BadInput) as caught:
        stack_config.load(project, "t")
    assert "sovereign:egressCidrs[0]" in str(caught.value)
    assert "sovereign:workloads" in str(caught.value)


def test_in_cluster_needs_an_operator_image_and_its_webhook_ca(project: Path) -> None:
    write_stack(project, "t", {"region": "us-defense", "clusters": ["c.yaml"], "workloads": "in-cluster"})
    with pytest.raises(BadInput, match="set operatorImage, servingImage, webhookCaFile"):
        stack_config.load(project, "t")


def test_paths_are_taken_from_the_project_folder_unless_absolute_or_home(project: Path) -> None:
    write_stack(
        project,
        "t",
        {
            "region": "us-defense",
            "clusters": ["clusters/a.yaml", "/abs/b.yaml", "~/c.yaml"],
            "webhookCaFile": "~/ca",
        },
    )
    config = stack_config.load(project, "t")
    assert config.cluster_files(project) == [
        project / "clusters" / "a.yaml",
        Path("/abs/b.yaml"),
        Path.home() / "c.yaml",
    ]
    with pytest.raises(BadInput, match=rf"sovereign:webhookCaFile: cannot read {Path.home() / 'ca'}") as e:
        config.webhook_ca(project)
    assert "`sovereign operator setup --out DIR` writes into DIR" in str(e.value)  # the fix is named


def test_unknown_stack_lists_the_known_ones(project: Path) -> None:
    with pytest.raises(BadInput, match=r"no stack 'mars'.*eu-text-only, five-eyes, local, us-defense"):
        stack_config.load(project, "mars")


def test_pulumi_s_stack_file_is_written_from_the_declaration_keeping_its_passphrase_check(
    project: Path,
) -> None:
    declaration = project / "infra" / "stacks" / "local.yaml"
    declared = declaration.read_text()
    written = stack_config.write_pulumi_stack_file(project, "local")
    assert written == project / "infra" / "stacks" / "Pulumi.local.yaml"
    assert yaml.safe_load(written.read_text()) == yaml.safe_load(declared)
    # As Pulumi does on a stack's first use; then the engineer edits the declaration.
    written.write_text(written.read_text() + "encryptionsalt: v1:abc:def\n")
    declaration.write_text(declared.replace("127.0.0.0/8", "10.0.0.0/8"))
    stack_config.write_pulumi_stack_file(project, "local")
    doc = yaml.safe_load(written.read_text())
    assert doc["encryptionsalt"] == "v1:abc:def"
    assert doc["config"]["sovereign:egressCidrs"] == ["10.0.0.0/8"]
    assert stack_config.stacks(project) == ["eu-text-only", "five-eyes", "local", "us-defense"]


def test_the_passphrase_salt_in_pulumi_s_stack_file_is_the_backend_s_own(
    project: Path, tmp_path: Path
) -> None:
    """The stack file is the checkout's, the salt each state dir's backend's: a fresh state dir (a new
    backend and passphrase) must not inherit the salt another one left there ("incorrect passphrase")."""
    written = stack_config.write_pulumi_stack_file(project, "local")
    written.write_text(written.read_text() + "encryptionsalt: v1:left:by-another-state-dir\n")
    fresh = f"file://{tmp_path / 'fresh-backend'}"
    stack_config.write_pulumi_stack_file(project, "local", fresh)
    assert "encryptionsalt" not in yaml.safe_load(written.read_text())  # Pulumi makes one with the stack

    # The checkpoint of the stack as Pulumi v3.250 writes it into a file backend, project-scoped.
    checkpoint = tmp_path / "fresh-backend" / ".pulumi" / "stacks" / "sovereign" / "local.json"
    checkpoint.parent.mkdir(parents=True)
    provider = {"type": "passphrase", "state": {"salt": "v1:this:backend"}}
    checkpoint.write_text(
        json.dumps({"version": 3, "checkpoint": {"latest": {"secrets_providers": provider}}})
    )
    stack_config.write_pulumi_stack_file(project, "local", fresh)
    assert yaml.safe_load(written.read_text())["encryptionsalt"] == "v1:this:backend"


def test_no_tracked_stack_declaration_holds_what_pulumi_writes() -> None:
    for stack in stack_config.stacks(ROOT):
        doc = yaml.safe_load(stack_config.stack_file(ROOT, stack).read_text())
        assert set(doc) == {"config"}, stack
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "infra/stacks/Pulumi.local.yaml"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0  # Pulumi's own stack files are never tracked


def test_program_side_reading_matches_the_file_side(project: Path) -> None:
    from_file = stack_config.load(project, "us-defense")
    pulumi_config = {
        "sovereign:kubeconfig": "",
        "sovereign:context": "us-defense",
        "sovereign:region": "us-defense",
        "sovereign:clusters": '["clusters/usdef-east-1.yaml"]',
        "sovereign:workloads": "in-cluster",
        "sovereign:egressCidrs": '["10.20.0.0/16"]',
        "sovereign:operatorImage": "registry.example/sovereign/operator:0.1.0",
        "sovereign:servingImage": "registry.example/sovereign/serving:0.1.0",
        "sovereign:opaImage": from_file.opa_image,
        "sovereign:kuberayImage": from_file.kuberay_image,
        "sovereign:webhookCaFile": from_file.webhook_ca_file,
    }
    assert stack_config.from_pulumi(pulumi_config, "stack us-defense") == from_file


# --- region checks before anything is created -------------------------------------------------------


def test_cluster_file_with_a_wrong_field_is_named_before_any_connection(project: Path) -> None:
    path = project / "clusters" / "usdef-east-1.yaml"
    path.write_text(path.read_text().replace("gpu_quota:", "gpu_quotas:"))
    config = stack_config.load(project, "local")
    with pytest.raises(BadInput, match=r"usdef-east-1.yaml: invalid cluster\n.*gpu_quotas: unknown field"):
        plan(config, project)


def test_cluster_of_another_region_is_refused(project: Path) -> None:
    write_stack(project, "t", {"region": "us-defense", "clusters": ["clusters/eu-frankfurt-1.yaml"]})
    with pytest.raises(BadInput, match=r"region 'eu-text-only' is not this stack's region 'us-defense'"):
        plan(stack_config.load(project, "t"), project)


def test_unreachable_api_server_is_named(project: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    write_stack(
        project,
        "t",
        {"region": "us-defense", "clusters": ["clusters/usdef-east-1.yaml"], "kubeconfig": str(kubeconfig)},
    )
    with pytest.raises(BadInput, match=rf"the API server https://127.0.0.1:{port} .* is unreachable"):
        plan(stack_config.load(project, "t"), project)


def test_missing_kubeconfig_is_named(project: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    write_stack(
        project,
        "t",
        {"region": "us-defense", "clusters": ["clusters/usdef-east-1.yaml"], "kubeconfig": str(missing)},
    )
    with pytest.raises(BadInput, match=rf"kubeconfig {missing} does not exist"):
        plan(stack_config.load(project, "t"), project)
