"""The example Alertmanager configuration passes `amtool check-config` (Debian's 0.25), and routes each
shipped alert, by the labels it carries, to its tenant, its cluster's owner or the platform team
(`amtool config routes test`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from sovereign import toolchain

MONITORING = Path(__file__).resolve().parent.parent / "infra" / "monitoring"
CONFIG = MONITORING / "alertmanager" / "alertmanager.example.yml"
ALERTS = MONITORING / "rules" / "sovereign-alerts.rules.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = toolchain.system_binary("amtool", "run 'make tools' (installs Debian's prometheus-alertmanager)")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60)


def receivers(labels: dict[str, str], config: Path = CONFIG) -> list[str]:
    done = amtool(
        "config", "routes", "test", f"--config.file={config}", *(f"{k}={v}" for k, v in labels.items())
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().split(",")


def shipped_alerts() -> dict[str, dict[str, str]]:
    """Each shipped alert's static labels (severity, scope)."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule["labels"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_amtool_accepts_the_example_configuration() -> None:
    done = amtool("check-config", str(CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_amtool_refuses_a_route_to_an_undefined_receiver(tmp_path: Path) -> None:
    doc = yaml.safe_load(CONFIG.read_text())
    doc["route"]["routes"][0]["routes"][0]["receiver"] = "tenant-nobody"
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(yaml.safe_dump(doc))
    done = amtool("check-config", str(broken))
    assert done.returncode != 0
    assert 'undefined receiver "tenant-nobody"' in done.stdout + done.stderr


def test_every_shipped_alert_names_its_audience() -> None:
    scopes = {name: labels.get("scope") for name, labels in shipped_alerts().items()}
    assert set(scopes.values()) == {"tenant", "cluster", "platform"}, scopes
    assert scopes["SovereignNonCompliantDeployment"] == "tenant"


EU = {"region": "eu-text-only", "cluster": "eu-frankfurt-1"}


@pytest.mark.parametrize(
    ("alert", "labels", "expected"),
    [
        # A tenant's deployment: the tenant, and the owner of the cluster it runs on.
        (
            "SovereignNonCompliantDeployment",
            EU | {"namespace": "eu-frankfurt-1", "deployment": "chat-70b"},
            ["tenant-eu-frankfurt-1", "owner-rheinwerk-cloud"],
        ),
        # A tenant without a route of its own reaches the platform, which forwards; its owner still hears.
        (
            "SovereignNonCompliantDeployment",
            {"region": "five-eyes", "cluster": "fvey-london-1", "namespace": "fvey-london-1"},
            ["platform-oncall", "desk-five-eyes"],
        ),
        ("SovereignGpuQuotaExceeded", EU, ["owner-rheinwerk-cloud"]),
        (
            "SovereignGpuQuotaNearlyFull",
            {"region": "us-defense", "cluster": "usdef-lattice-2"},
            ["owner-lattice-federal"],
        ),
        ("SovereignAccreditationExpiringSoon", EU | {"scheme": "bsi-c5"}, ["owner-rheinwerk-cloud"]),
        (
            "SovereignAccreditationExpired",
            {"region": "us-defense", "cluster": "usdef-west-1"},
            ["desk-us-defense"],
        ),
        (
            "SovereignAllocatedGpusIdle",
            {"region": "eu-text-only", "cluster": "eu-amsterdam-1"},
            ["owner-grachtwerk-data"],
        ),
        ("SovereignPolicyEngineDown", {"point": "serving", "engine": "opa-rest"}, ["platform-pager"]),
        (
            "SovereignPolicyBundleRefused",
            {"point": "admission", "reason": "BUNDLE_UNVERIFIED"},
            ["platform-pager"],
        ),
        (
            "SovereignExporterSourceDown",
            {"source": "pods", "instance": "gpu-node-1:9401"},
            ["platform-oncall"],
        ),
    ],
)
def test_each_alert_reaches_its_tenant_its_cluster_owner_or_the_platform(
    alert: str, labels: dict[str, str], expected: list[str]
) -> None:
    static = shipped_alerts()[alert]
    assert receivers({"alertname": alert, **static, **labels}) == expected
