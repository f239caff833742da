"""The main job end to end: `sovereign demo` on real parts with every outcome checked, and `sovereign demo
down` leaving no process behind and no port open."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from report_page import FIGURES, ReportPage, assert_drawn_as_answered, prometheus_query
from tar_members import archive

from sovereign.audit import Point, keys
from sovereign.audit.segment import LOG_SUFFIX, parse_record
from sovereign.evidence import pack
from sovereign.evidence.verify import verify_pack
from sovereign.policy.bundle import TRUST_ANCHOR_ENV, trust_anchor_path

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

SOVEREIGN = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "sovereign"


def _env(state: Path) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOVEREIGN_", "PULUMI_")) and k != "KUBECONFIG"
    }
    return {**clean, "SOVEREIGN_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}


def _leftovers(state: Path) -> list[psutil.Process]:
    """Processes of this demo: started under its state folder, or carrying its marker in their environment."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        environ = proc.info["environ"] or {}
        cmdline = proc.info["cmdline"] or []
        marker = environ.get("SOVEREIGN_DEMO_MEMBER", "")
        if marker.startswith(str(state)) or any(str(state) in arg for arg in cmdline):
            found.append(proc)
    return found


def _wait_gone(state: Path, timeout: float = 30) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    left = _leftovers(state)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [p for p in _leftovers(state) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return left


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(log: Path, line: str, demo: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while line not in (text := log.read_text()):
        assert demo.poll() is None, text[-6000:]
        assert time.monotonic() < deadline, f"no {line!r} after {timeout:.0f} s:\n{text[-6000:]}"
        time.sleep(1)
    return text


def _check_evidence(output: str, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The regions' packs together hold decisions of all five enforcement points, from the real components
    that took them; one changed byte in any member of a pack is refused, naming that member."""
    packs = sorted({Path(found) for found in re.findall(r"evidence pack: (\S+\.tar\.gz)", output)})
    assert len(packs) == 3, packs
    points: set[Point] = set()
    for path in packs:
        for name, data in pack.read(path).items():
            if name.startswith(pack.LOG_PREFIX) and name.endswith(LOG_SUFFIX):
                points |= {parsed[1].point for line in data.splitlines() if (parsed := parse_record(line))}
    # The preview's Pulumi policy pack, the operator's webhook, its reconcile and its drift pass after the
    # policy change, the ClusterRequest desk, and the serving guard.
    assert {
        Point.PREVIEW,
        Point.ADMISSION,
        Point.RECONCILE,
        Point.DRIFT,
        Point.CLUSTER_REQUEST,
        Point.SERVING,
    } <= points, points
    # The demo's own public keys, as an auditor given them would use (`sovereign demo` keeps its state in
    # demo-state/ of the state dir).
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(state / "demo-state"))
    monkeypatch.delenv(TRUST_ANCHOR_ENV, raising=False)
    monkeypatch.delenv(keys.PUBLIC_KEY_ENV, raising=False)
    audit_key, policy_key = keys.load_public_key(), trust_anchor_path()
    members = pack.read(packs[0])
    assert verify_pack(packs[0], audit_key, policy_key).ok
    tampered = state / "tampered.tar.gz"
    for name, data in sorted(members.items()):
        flipped = data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0x01]) + data[len(data) // 2 + 1 :]
        tampered.write_bytes(archive({**members, name: flipped}))
        report = verify_pack(tampered, audit_key, policy_key)
        named = pack.MANIFEST if name == pack.SIGNATURE else name
        assert not report.ok and report.problems[0].startswith(named), (name, report.problems)


def _check_report(output: str, env: dict[str, str], folder: Path) -> None:
    """`sovereign report` against the demo's Prometheus: one page with every plot, each value drawn being
    Prometheus's own answer, and the GPU-hours the regions' exporters counted."""
    (url,) = set(re.findall(r"Prometheus (http://127\.0\.0\.1:\d+) ", output))
    out = folder / "report.html"
    done = subprocess.run(
        [SOVEREIGN, "report", "--prometheus", url, "--since", "1h", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    page, query = ReportPage(out.read_text()), prometheus_query(url)
    # One plot each, in order; the alerts' only when an alert fired within the hour (the demo fires none
    # unless its non-compliant deployment has stayed so past the alert's `for:`).
    fired = query('count_over_time(ALERTS{alertstate="firing"}[3600s])', time.time())
    expected = [figure for figure in FIGURES if figure != "plot-alerts" or fired]
    assert list(page.svgs_in.items()) == [(figure, 1) for figure in expected]
    # The demo's replayed GPU is no deployment's (no kubelet to tell whose), so there is no energy per
    # model or caller to draw; every value drawn is still Prometheus's.
    assert_drawn_as_answered(page, query, every_query_answered=False)
    per_1k = "region_cluster_model_tenant:sovereign_gpu_seconds_per_1k_tokens:ratio1h"
    cost = page.plotted("plot-cost", per_1k)
    assert {name.split(" / ")[-1] for name in cost["values"]} >= {"demo-eu", "demo-us"}, cost
    hours = page.plotted("plot-allocation", "sum by (region) (increase(sovereign_gpu_hours_total[3600s]))")
    assert set(hours["values"]) == {"us-defense", "five-eyes", "eu-text-only"}, hours
    assert all(value > 0 for value in hours["values"].values()), hours


@pytest.mark.timeout(1800)
def test_the_demo_holds_every_outcome_stays_up_and_demo_down_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One whole demo (the same steps and checks as `--check`), left up as a user leaves it; its evidence
    packs hold the decisions of every enforcement point and refuse any changed member; then
    `sovereign demo down` from another shell stops it: no process of it is left and no endpoint it printed
    still listens."""
    env = _env(tmp_path)
    log = tmp_path / "demo.out"
    with open(log, "w") as out:
        demo = subprocess.Popen([SOVEREIGN, "demo"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        output = _wait_for(log, "stop everything: make demo-down", demo, 1500)
        for outcome in (
            "passed: eu-text-only: preview refuses eu-rotterdam-1-noncompliant.yaml",
            "passed: EU text request answered",
            "passed: EU image request refused with REGION_MODALITY",
            "passed: us-defense image request answered",
            "passed: Prometheus has every caller's tokens to charge",
            "passed: ClusterRequest lattice-usdef-approved approved",
            "passed: ClusterRequest northwind-fvey-denied denied (screening hit)",
            "passed: what-if predicts fvey-london-1-chat suspended (ACCREDITATION_MISSING), and nothing else",
            "passed: publishing refuses until fvey-london-1-chat is named",
            "passed: published with --accept-suspensions fvey-london-1-chat",
            "passed: policy change suspends fvey-london-1-chat (ACCREDITATION_MISSING)",
            "passed: Prometheus has GPUs allocated by region",
            "passed: Prometheus has the EU preview's refusal",
            "passed: Prometheus has each caller's GPU-seconds per 1,000 tokens",
            "passed: compliance matrix written",
        ):
            assert outcome in output, outcome
        assert [line for line in output.splitlines() if "FAILED" in line] == []
        endpoints = output[output.index("The demo is up") :]
        ports = {int(port) for port in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", endpoints)}
        assert ports and all(_listening(port) for port in ports), ports
        assert len(_leftovers(tmp_path)) > 5  # etcd, apiservers, OPAs, operators, exporters, Prometheus ...
        _check_evidence(output, tmp_path, monkeypatch)
        _check_report(output, env, tmp_path)

        down = subprocess.run(
            [SOVEREIGN, "demo", "down"], env=env, capture_output=True, text=True, timeout=300
        )
        assert down.returncode == 0, down.stdout + down.stderr
        assert demo.wait(timeout=300) is not None  # stopped by `down` (SIGKILL after its 120 s of patience)
        assert _wait_gone(tmp_path) == []
        assert [port for port in ports if _listening(port)] == []
    finally:
        if demo.poll() is None:
            demo.kill()
        for proc in _leftovers(tmp_path):
            proc.kill()
