"""The fleet file (its errors name the field and the fix, exit 2, before any region is read) and a region's
status as summarised from its objects. Against a real control plane: tests/test_whatif_fleet.py."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from test_matrix import run_cli

from sovereign import vocabulary as k8s
from sovereign.errors import BadInput
from sovereign.fleet.fleetfile import FleetFile, FleetRegion, load_fleet, write_fleet
from sovereign.fleet.status import Gpus, summarise

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: admin, context: {cluster: c, user: u}}]
current-context: admin
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "regions" / "eu" / "kubeconfig"
    path.parent.mkdir(parents=True)
    path.write_text(KUBECONFIG)
    return path


def test_kubeconfigs_are_read_from_the_fleet_files_folder_and_the_file_round_trips(
    tmp_path: Path, kubeconfig: Path
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "regions:\n"
        "  eu-text-only:\n"
        "    kubeconfig: regions/eu/kubeconfig\n"
        "    context: admin\n"
        "    prometheus: http://127.0.0.1:9090/\n"
    )
    fleet = load_fleet(path)
    region = fleet.regions["eu-text-only"]
    assert (region.kubeconfig, region.context, region.prometheus_url) == (
        kubeconfig,
        "admin",
        "http://127.0.0.1:9090",
    )
    assert load_fleet(write_fleet(tmp_path / "copy" / "fleet.yaml", fleet)) == fleet


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        (
            "regions:\n  eu:\n    kubeconfig: regions/eu/kubeconfig\n    prometheus: 127.0.0.1:9090\n",
            [
                "regions.eu.prometheus: Input should be a valid URL, relative URL without a base; "
                "expected Prometheus' base URL, e.g. http://127.0.0.1:9090"
            ],
        ),
        (
            "regions:\n  eu:\n    kubeconfig: regions/eu/kubeconfig\n    kubecontext: admin\n",
            ["regions.eu.kubecontext: unknown field: remove it or fix its spelling"],
        ),
        (
            "regions:\n  eu:\n    context: admin\n",
            ["regions.eu.kubeconfig: field required: add it; expected the path of the region's kubeconfig"],
        ),
        (
            "regions:\n  eu/west: {kubeconfig: k}\n  us: a-string\n",
            [
                "regions.eu/west.[key]: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]*$'; "
                "expected a region name of letters, digits, '.', '_' and '-'",
                "regions.us: Input should be a valid dictionary or instance of FleetRegion; "
                "expected a mapping with kubeconfig (required), context and prometheus",
            ],
        ),
        (
            "regions: {}\n",
            [
                "regions: Dictionary should have at least 1 item after validation, not 0; "
                "expected a map of region name -> {kubeconfig, context, prometheus}"
            ],
        ),
        (
            "regions:\n  eu: {kubeconfig: regions/eu/missing}\n"
            "  us: {kubeconfig: regions/eu/kubeconfig, context: x}\n",
            [
                "regions.eu.kubeconfig: cannot read {tmp}/regions/eu/missing (No such file or directory); "
                "give the path of the region's kubeconfig",
                "regions.us.context: {tmp}/regions/eu/kubeconfig has no context 'x' (it has: admin); "
                "name one of them or leave it out",
            ],
        ),
    ],
)
def test_each_error_names_the_field_and_the_fix_and_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    kubeconfig: Path,
    text: str,
    lines: list[str],
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    code, out, err = run_cli(monkeypatch, capsys, "fleet", "status", "--fleet", str(path))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: {path}: invalid fleet file",
        *(line.replace("{tmp}", str(tmp_path)) for line in lines),
    ]


@pytest.mark.parametrize("text", ["", "- eu\n", "regions: [\n"])
def test_what_is_not_a_fleet_file_is_bad_input(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(
        BadInput, match=r"not a fleet file: give a YAML mapping with `regions:`|malformed YAML"
    ):
        load_fleet(path)


def test_a_missing_fleet_file_names_both_settings(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"cannot read the fleet file .*give --fleet or \$SOVEREIGN_FLEET"):
        load_fleet(tmp_path / "nowhere.yaml")


def test_a_region_summary_reads_decisions_in_force_pending_requests_and_expiring_accreditations() -> None:
    cluster = {
        "metadata": {"name": "eu-1"},
        "spec": {
            "region": "eu-text-only",
            "enforcement": "enforce",
            "accreditations": [
                {"scheme": "bsi-c5", "expires": "2026-12-31"},  # 30 days on: listed
                {"scheme": "iso-27001", "expires": "2027-01-01"},  # 31 days on: not yet
                {"scheme": "old", "expires": "2026-11-30"},  # expired yesterday
            ],
        },
    }
    allowed = {
        "metadata": {"namespace": "eu-1", "name": "chat"},
        "spec": {"clusterRef": "eu-1", "model": "llama-3.1-8b-instruct", "endUse": "commercial"},
        "status": {
            "phase": k8s.PHASE_RUNNING,
            "policy": {"allowed": True, "revision": "r1"},
            "conditions": [
                {"type": k8s.CONDITION_POLICY_COMPLIANT, "status": "True", "reason": k8s.REASON_ALLOWED}
            ],
        },
    }
    denied = {
        "metadata": {"namespace": "eu-1", "name": "vision"},
        "spec": {"clusterRef": "eu-1", "model": "llama-3.2-11b-vision-instruct", "endUse": "commercial"},
        "status": {
            "phase": k8s.PHASE_REFUSED,
            "policy": {"allowed": False, "revision": "r2"},
            "violations": [{"code": "REGION_MODALITY"}, {"code": "EU_MULTIMODAL_LICENCE"}],
            "conditions": [
                {"type": k8s.CONDITION_POLICY_COMPLIANT, "status": "False", "reason": k8s.REASON_DENIED}
            ],
        },
    }
    fresh = {"metadata": {"namespace": "eu-1", "name": "new"}, "spec": {"clusterRef": "eu-1"}}
    pending = {
        "metadata": {"namespace": "contractors", "name": "waiting", "generation": 1},
        "status": {
            "phase": k8s.PHASE_PENDING,
            "conditions": [
                {
                    "type": k8s.CONDITION_DECIDED,
                    "status": "Unknown",
                    "reason": k8s.REASON_ENGINE_UNAVAILABLE,
                    "message": "OPA is down",
                }
            ],
        },
    }
    decided = {
        "metadata": {"namespace": "contractors", "name": "done", "generation": 2},
        "status": {"phase": k8s.PHASE_DENIED, "observedGeneration": 2},
    }
    gpus = Gpus(prometheus=None, unavailable="no Prometheus")
    status = summarise(
        "eu", [cluster], [allowed, denied, fresh], [pending, decided], gpus, date(2026, 12, 1)
    ).model_dump(mode="json")
    assert status["clusters"] == [{"name": "eu-1", "region": "eu-text-only", "enforcement": "enforce"}]
    assert [
        (d["name"], d["phase"], d["compliant"], d["reason"], d["codes"]) for d in status["deployments"]
    ] == [
        ("chat", "Running", "True", "Allowed", []),
        ("vision", "Refused", "False", "Denied", ["EU_MULTIMODAL_LICENCE", "REGION_MODALITY"]),
        ("new", None, None, None, []),
    ]
    assert status["revisions_in_force"] == ["r1", "r2"]
    assert status["pending_requests"] == [
        {
            "namespace": "contractors",
            "name": "waiting",
            "phase": "Pending",
            "reason": k8s.REASON_ENGINE_UNAVAILABLE,
            "message": "OPA is down",
        }
    ]
    assert [(e["scheme"], e["days_left"]) for e in status["expiring_accreditations"]] == [
        ("bsi-c5", 30),
        ("old", -1),
    ]


def test_write_fleet_writes_only_what_is_set(tmp_path: Path, kubeconfig: Path) -> None:
    fleet = FleetFile(regions={"eu": FleetRegion(kubeconfig=kubeconfig)})
    assert (
        write_fleet(tmp_path / "fleet.yaml", fleet).read_text()
        == f"regions:\n  eu:\n    kubeconfig: {kubeconfig}\n"
    )
