"""The pinned external tools are the real ones, at the pinned versions, and the installer never
trusts a half-built entry."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from opa_client.opa import OpaClient

from sovereign import toolchain
from sovereign.devenv.process import ManagedProcess, free_port

REPO = toolchain.REPO_ROOT


def test_pulumi_cli_reports_the_pinned_version() -> None:
    done = subprocess.run([toolchain.binary("pulumi"), "version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == toolchain.versions()["PULUMI_VERSION"] == "v3.250.0"


def test_kube_apiserver_and_kubectl_report_the_pinned_version() -> None:
    pin = toolchain.versions()["KUBERNETES_VERSION"]
    server = subprocess.run([toolchain.binary("kube-apiserver"), "--version"], capture_output=True, text=True)
    assert server.stdout.strip() == f"Kubernetes {pin}"
    kubectl = subprocess.run(
        [toolchain.binary("kubectl"), "version", "--client", "-o", "json"], capture_output=True, text=True
    )
    assert f'"gitVersion": "{pin}"' in kubectl.stdout


def test_etcd_and_opa_report_the_pinned_versions() -> None:
    etcd = subprocess.run([toolchain.binary("etcd"), "--version"], capture_output=True, text=True)
    assert f"etcd Version: {toolchain.versions()['ETCD_VERSION'].lstrip('v')}" in etcd.stdout
    opa = subprocess.run([toolchain.binary("opa"), "version"], capture_output=True, text=True)
    assert f"Version: {toolchain.versions()['OPA_VERSION'].lstrip('v')}" in opa.stdout


VALID_RULES = """
groups:
  - name: probe
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
"""
BROKEN_RULES = """
groups:
  - name: probe
    rules:
      - record: job:up:sum
        expr: sum by (job) (up
"""


@pytest.mark.parametrize(("text", "ok"), [(VALID_RULES, True), (BROKEN_RULES, False)])
def test_promtool_checks_rules(tmp_path: Path, text: str, ok: bool) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(text)
    promtool = toolchain.system_binary("promtool", "run 'make tools'")
    done = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True)
    assert (done.returncode == 0) is ok, done.stdout + done.stderr
    if not ok:
        assert "parse error" in (done.stdout + done.stderr)


PLACEHOLDER_POLICY = """package probe

default allow := false

allow if input.user == "alice"
"""


@pytest.fixture
def placeholder_opa(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "probe.rego").write_text(PLACEHOLDER_POLICY)
    port = free_port()
    proc = ManagedProcess(
        "opa",
        [
            str(toolchain.binary("opa")),
            "run",
            "--server",
            f"--addr=127.0.0.1:{port}",
            str(tmp_path / "probe.rego"),
        ],
        tmp_path / "opa.log",
    )
    proc.start()
    try:
        client = OpaClient(host="127.0.0.1", port=port)
        proc.wait_ready(lambda: client.check_connection() is not None, 20, "OPA health")
        yield port
    finally:
        proc.stop()


@pytest.mark.slow
def test_opa_server_answers_a_query_through_opa_python_client(placeholder_opa: int) -> None:
    client = OpaClient(host="127.0.0.1", port=placeholder_opa)
    assert client.query_rule({"user": "alice"}, "probe", "allow") == {"result": True}
    assert client.query_rule({"user": "mallory"}, "probe", "allow") == {"result": False}


def test_installer_reuses_the_cache() -> None:
    done = subprocess.run([REPO / "tools" / "install.sh", "opa"], capture_output=True, text=True, check=True)
    assert "opa v1.10.0: cached at" in done.stdout


def test_a_failed_build_leaves_no_entry(tmp_path: Path) -> None:
    env = {**os.environ, "SOVEREIGN_TOOLS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}  # no Go: build fails
    done = subprocess.run([REPO / "tools" / "install.sh", "etcd"], capture_output=True, text=True, env=env)
    assert done.returncode != 0
    assert "Go toolchain is needed to build etcd" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no entry and no leftover partial folder
