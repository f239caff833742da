"""The what-if and the fleet view against the real control plane and the running operator: the what-if
names exactly the RayServices the operator's drift pass suspends once the candidate is published; publishing
refuses until they are named; `fleet status --json` shows a live region in full beside an unreachable one."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from test_matrix import run_cli
from test_operator_drift import (
    WAIT_S,
    compliance,
    deploy,
    direct_rayservice,
    running,
    suspended,
    usdef_cluster,
)

from operators.localrun import LocalOperator, wait_until
from operators.sovereign_operator import rayservice
from sovereign import vocabulary as k8s
from sovereign.devenv.controlplane import ControlPlane
from sovereign.devenv.process import free_port
from sovereign.fleet.fleetfile import FleetFile, FleetRegion, write_fleet
from sovereign.policy import subjects
from sovereign.policy.bundle import BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV, SignedBundle, verify_built
from sovereign.policy.judgement import Mode
from sovereign.policy.screening_source import SCREENING_LIST_ENV

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]
REGION = "pytest"


@pytest.fixture
def live(
    monkeypatch: pytest.MonkeyPatch, sovereign_operator: LocalOperator, current_screening_list: Path
) -> LocalOperator:
    """The CLI configured as the operator is: the bundle folder its OPA serves and it verifies, the trust
    anchor, the screening list."""
    op = sovereign_operator
    monkeypatch.setenv(BUNDLE_DIR_ENV, str(op.bundle_dir))
    monkeypatch.setenv(TRUST_ANCHOR_ENV, str(op.bundle.verification_key))
    monkeypatch.setenv(SCREENING_LIST_ENV, str(current_screening_list))
    monkeypatch.delenv("SOVEREIGN_OPA_URL", raising=False)
    return op


def live_revision(op: LocalOperator) -> str:
    anchor = op.bundle.verification_key
    return verify_built(SignedBundle.at(op.bundle_dir, "", anchor).rego, anchor).revision


def running_rayservices(op: LocalOperator) -> set[str]:
    """Every RayService of the control plane that runs now, as REGION/NAMESPACE/NAME."""
    listed = op.custom.list_cluster_custom_object(k8s.RAY_GROUP, k8s.RAY_VERSION, k8s.RAYSERVICES)["items"]
    return {
        f"{REGION}/{rs['metadata']['namespace']}/{rs['metadata']['name']}"
        for rs in listed
        if not rayservice.is_suspended(rs)
    }


def test_whatif_names_exactly_what_the_operator_suspends_once_published_and_publish_waits_for_those_names(
    live: LocalOperator,
    controlplane: ControlPlane,
    signed_bundle: SignedBundle,
    defense_banned_policies: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    op, ns = live, "whatif"
    op.onboard(ns)
    enforce = usdef_cluster(ns, datetime.now(UTC).date() + timedelta(days=365))
    warn = enforce.model_copy(update={"name": f"{ns}-warn", "enforcement": Mode.WARN})
    for cluster in (enforce, warn):
        op.create(subjects.sovereign_cluster(cluster))
    defense, research = deploy(op, enforce, ns, "defense"), deploy(op, enforce, ns, "research", "research")
    warned = deploy(op, warn, ns, "defense")
    direct = op.create(direct_rayservice(enforce, ns, "direct"))["metadata"]["name"]
    for name in (defense, research, warned, direct):
        wait_until(lambda name=name: running(op, ns, name), WAIT_S, f"{name} to run")

    candidate, fleet = tmp_path / "candidate", tmp_path / "fleet.yaml"
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "bundle",
        "build",
        "--policies",
        str(defense_banned_policies),
        "--out",
        str(candidate),
    )
    assert code == 0, err
    write_fleet(fleet, FleetFile(regions={REGION: FleetRegion(kubeconfig=controlplane.kubeconfig)}))

    code, out, err = run_cli(
        monkeypatch, capsys, "whatif", "--bundle", str(candidate), "--fleet", str(fleet), "--json"
    )
    assert code == 1, err  # publishing as is would be refused
    report = json.loads(out)
    predicted = set(report["would_suspend"])
    mine = {(s["kind"], s["name"]): s for s in report["regions"][0]["subjects"] if s["namespace"] == ns}
    assert {f"{REGION}/{ns}/{defense}", f"{REGION}/{ns}/{direct}"} <= predicted
    assert not predicted & {f"{REGION}/{ns}/{research}", f"{REGION}/{ns}/{warned}"}
    assert mine[(k8s.LLAMA_DEPLOYMENT, defense)]["new"]["codes"] == ["END_USE_NOT_PERMITTED"]
    assert mine[(k8s.LLAMA_DEPLOYMENT, warned)]["change"] == "newly denied"  # warn mode: runs on
    assert mine[(k8s.LLAMA_DEPLOYMENT, research)]["change"] == "unchanged"
    assert report["current_revision"] == signed_bundle.revision in report["regions"][0]["in_force"]
    # The shared control plane may run other tests' deployments the change also suspends: all are named.
    assert report["publishable"] is False and "--accept-suspensions " in report["refusal"]
    assert defense in report["refusal"].split("--accept-suspensions ", 1)[1].split(",")

    # Refused while a suspension is not named, or a name is not one: nothing is installed.
    code, out, err = run_cli(monkeypatch, capsys, "bundle", "publish", str(candidate), "--fleet", str(fleet))
    assert code == 1 and all(ident in err for ident in predicted), err
    assert "would be SUSPENDED" in out  # the what-if is shown first
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "bundle",
        "publish",
        str(candidate),
        f"--fleet={fleet}",
        f"--accept-suspensions={','.join(predicted)},{research}",
    )
    assert code == 2 and f"--accept-suspensions {research}: the what-if would suspend no such" in err, err
    assert live_revision(op) == signed_bundle.revision

    before, log_from = running_rayservices(op), len(op.log())
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "bundle",
        "publish",
        str(candidate),
        f"--fleet={fleet}",
        f"--accept-suspensions={','.join(sorted(predicted))}",
    )
    assert code == 0, err
    new_revision = report["new_revision"]
    assert live_revision(op) == new_revision != signed_bundle.revision
    try:
        op.opa.start(
            SignedBundle.at(op.bundle_dir, new_revision, op.bundle.verification_key)
        )  # as --watch does
        wait_until(
            lambda: f"-> {new_revision}" in op.log()[log_from:], WAIT_S, "a drift pass on the new revision"
        )
        assert before - running_rayservices(op) == predicted  # what the operator suspended: exactly those
        assert running(op, ns, warned) and compliance(op, ns, warned) == ("False", ["END_USE_NOT_PERMITTED"])
    finally:
        op.start_opa()
    wait_until(lambda: running(op, ns, defense), WAIT_S, "the defence deployment restored")
    assert suspended(op, ns, direct)  # a RayService made by hand stays suspended until a person resumes it


@pytest.fixture
def prometheus() -> Iterator[str]:
    """A Prometheus answering the exporter's GPU queries for one cluster of ours and one of another fleet."""
    results = {
        "sovereign_gpu_allocated": [("us-defense", "fleetstatus-1", 2), ("eu-text-only", "elsewhere", 5)],
        "sovereign_gpu_capacity": [("us-defense", "fleetstatus-1", 8)],
        "DCGM_FI_DEV_GPU_UTIL > bool 0": [("us-defense", "fleetstatus-1", 1)],
    }

    class Api(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)["query"][0]
            rows = next(
                (rows for metric, rows in results.items() if metric in query and "avg" not in query), []
            )
            body = {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [
                        {"metric": {"region": r, "cluster": c}, "value": [0, str(v)]} for r, c, v in rows
                    ],
                },
            }
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_fleet_status_shows_each_region_in_full_beside_an_unreachable_one(
    live: LocalOperator,
    controlplane: ControlPlane,
    signed_bundle: SignedBundle,
    prometheus: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    op, ns = live, "fleetstatus"
    op.onboard(ns)
    cluster = usdef_cluster(ns, datetime.now(UTC).date() + timedelta(days=10))
    op.create(subjects.sovereign_cluster(cluster))
    name = deploy(op, cluster, ns, "research", "research")
    wait_until(lambda: running(op, ns, name), WAIT_S, f"{name} to run")
    gone = yaml.safe_load(controlplane.kubeconfig.read_text())
    gone["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    (tmp_path / "gone.kubeconfig").write_text(yaml.safe_dump(gone))
    fleet = tmp_path / "fleet.yaml"
    dead_prometheus = f"http://127.0.0.1:{free_port()}"
    fleet.write_text(
        yaml.safe_dump(
            {
                "regions": {
                    "gone": {"kubeconfig": "gone.kubeconfig"},
                    REGION: {"kubeconfig": str(controlplane.kubeconfig), "prometheus": prometheus},
                    "dead-prometheus": {
                        "kubeconfig": str(controlplane.kubeconfig),
                        "prometheus": dead_prometheus,
                    },
                    "no-prometheus": {"kubeconfig": str(controlplane.kubeconfig)},
                }
            },
            sort_keys=False,
        )
    )

    code, out, err = run_cli(monkeypatch, capsys, "fleet", "status", "--fleet", str(fleet), "--json")
    assert code == 1, err  # a region could not be read
    regions = {r["region"]: r for r in json.loads(out)["regions"]}
    assert list(regions) == ["gone", REGION, "dead-prometheus", "no-prometheus"]
    assert regions["gone"]["reachable"] is False
    assert (
        "is unreachable" in regions["gone"]["problem"] and "Connection refused" in regions["gone"]["problem"]
    )
    region = regions[REGION]
    assert region["reachable"] is True
    assert {"name": cluster.name, "region": "us-defense", "enforcement": "enforce"} in region["clusters"]
    (shown,) = [d for d in region["deployments"] if (d["namespace"], d["name"]) == (ns, name)]
    assert (shown["phase"], shown["compliant"], shown["reason"], shown["revision"]) == (
        "Running",
        "True",
        "Allowed",
        signed_bundle.revision,
    )
    assert signed_bundle.revision in region["revisions_in_force"]
    expiring = [e for e in region["expiring_accreditations"] if e["cluster"] == cluster.name]
    assert [(e["scheme"], e["days_left"]) for e in expiring] == [("dod-il5", 10)]
    assert region["gpus"] == {
        "prometheus": prometheus,
        "allocated": 2.0,
        "in_use": 1.0,
        "capacity": 8.0,
        "unavailable": None,
    }
    assert (
        "regions.dead-prometheus.prometheus in the fleet file"
        in regions["dead-prometheus"]["gpus"]["unavailable"]
    )
    assert (
        regions["no-prometheus"]["gpus"]["unavailable"] == "no Prometheus for this region in the fleet file"
    )

    code, out, err = run_cli(monkeypatch, capsys, "fleet", "status", "--fleet", str(fleet))
    assert code == 1 and err == ""
    assert any(
        line.startswith("gone: UNREACHABLE: the API server at 127.0.0.1:") for line in out.splitlines()
    )
    assert f"    {ns}/{name} on {cluster.name}: llama-3.1-8b-instruct for research; Running, Allowed" in out
    assert f"    {cluster.name}: dod-il5 expires" in out and "(in 10 days)" in out
