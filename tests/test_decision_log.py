"""Every enforcement point's judgements land in the decision log, and a region's evidence pack proves them.

On real components: the operator (admission, reconcile, drift, ClusterRequests) on the real API server
writes its segment; `sovereign evidence export` packs the region, `sovereign evidence verify` checks it with
the public keys alone, and refuses it once any single byte of any member changes. (The serving replica's and
the Pulumi preview's records are asserted where those run: tests/test_serving_app.py, test_pulumi_e2e.py.)
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from operators import manifests
from operators.localrun import LocalOperator, wait_until
from sovereign import toolchain
from sovereign.audit.location import audit_dir
from sovereign.audit.query import Query, read_records
from sovereign.audit.record import Point
from sovereign.devenv.controlplane import ControlPlane
from sovereign.evidence import pack

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]
EXAMPLES = manifests.EXAMPLES_DIR
REGION = "us-defense"


def sovereign(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sovereign", *args], capture_output=True, text=True, timeout=300, env=env
    )


def records(point: Point, subject: str | None = None) -> list:
    return read_records(audit_dir(), Query(point=point, subject=subject))[0]


def await_record(point: Point, subject: str) -> None:
    # The writer commits in groups off the request path: a record is on disk within moments.
    wait_until(lambda: records(point, subject) or None, 30, f"a {point} record about {subject}")


@pytest.fixture(scope="module")
def operator_decisions(
    sovereign_operator: LocalOperator, controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Drive each of the operator's points once: a deployment admitted and reconciled, a ClusterRequest
    decided, and a restart, whose first drift pass re-judges every deployment."""
    for path in (
        "namespaces.yaml",
        "us-defense/sovereigncluster.yaml",
        "us-defense/llamadeployment-compliant.yaml",
    ):
        done = controlplane.kubectl("apply", "-f", str(EXAMPLES / path))
        assert done.returncode == 0, done.stderr
    request = yaml.safe_load((EXAMPLES / "clusterrequests" / "clusterrequest-approved.yaml").read_text())
    request["metadata"]["name"] = "evidence-approved"
    request["spec"]["clusterName"] = "usdef-evidence-1"
    request_file = tmp_path_factory.mktemp("request") / "request.yaml"
    request_file.write_text(yaml.safe_dump(request))
    done = controlplane.kubectl("apply", "-f", str(request_file))
    assert done.returncode == 0, done.stderr
    namespace = request["metadata"]["namespace"]
    await_record(Point.CLUSTER_REQUEST, f"ClusterRequest {namespace}/evidence-approved")
    compliant = yaml.safe_load((EXAMPLES / "us-defense" / "llamadeployment-compliant.yaml").read_text())
    subject = f"LlamaDeployment {compliant['metadata']['namespace']}/{compliant['metadata']['name']}"
    await_record(Point.ADMISSION, subject)
    await_record(Point.RECONCILE, subject)
    sovereign_operator.start()  # a restart: its first drift pass judges everything
    await_record(Point.DRIFT, subject)


def test_the_operator_records_every_point_with_its_decision(operator_decisions: None) -> None:
    compliant = "LlamaDeployment usdef-team/usdef-chat-compliant"
    admitted = records(Point.ADMISSION, compliant)
    assert admitted and all(r.record.allow and r.record.policy_revision and r.record.engine for r in admitted)
    (decided, *_) = records(Point.CLUSTER_REQUEST, "ClusterRequest contractors/evidence-approved")
    assert decided.record.allow is True and decided.record.region == REGION
    for point in (Point.RECONCILE, Point.DRIFT):
        assert any(r.record.region == REGION and r.record.verdict == "allowed" for r in records(point))
    check = sovereign("audit", "verify")
    assert check.returncode == 0, check.stdout + check.stderr  # the live segments: unsealed tails at most


@pytest.fixture(scope="module")
def evidence(
    operator_decisions: None, controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("evidence") / f"{REGION}.tar.gz"
    done = sovereign(
        "evidence",
        "export",
        f"--region={REGION}",
        f"--out={out}",
        f"--kubeconfig={controlplane.kubeconfig}",
        f"--clusters={toolchain.REPO_ROOT / 'clusters'}",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"evidence pack: {out}" in done.stdout
    return out


def test_the_pack_verifies_offline_and_holds_what_an_auditor_needs(evidence: Path) -> None:
    done = sovereign("evidence", "verify", str(evidence))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified (region us-defense" in done.stdout
    members = pack.read(evidence)
    assert {
        pack.policy_bundle(json.loads(members[pack.MANIFEST])["policy_revision"]),
        pack.DECISIONS,
        pack.WEIGHTS,
        pack.ACCREDITATIONS,
        pack.MATRIX_HTML,
        pack.MATRIX_MARKDOWN,
        pack.ML_BOM,
    } <= set(members)
    assert any(name.startswith(pack.LOG_PREFIX) and name.endswith(".heads") for name in members)
    decisions = json.loads(members[pack.DECISIONS])
    assert all(d["record"]["region"] == REGION for d in decisions)
    by_subject = {d["subject"]: d for d in decisions}
    # The latest decision about the deployment is the drift pass's, after its admission and reconcile.
    deployment = by_subject["LlamaDeployment usdef-team/usdef-chat-compliant"]
    assert deployment["record"]["point"] == "drift" and deployment["decisions"] >= 3
    assert by_subject["ClusterRequest contractors/evidence-approved"]["record"]["point"] == "cluster_request"
    accreditations = json.loads(members[pack.ACCREDITATIONS])
    assert {a["cluster"] for a in accreditations} >= {"usdef-east-1", "usdef-evidence-1"}
    assert all(a["state"] in {"valid", "expiring", "expired"} for a in accreditations)
    bom = json.loads(members[pack.ML_BOM])
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    models = [c for c in bom["components"] if c["type"] == "machine-learning-model"]
    assert models and all(c["licenses"] for c in models)
    assert "usdef-east-1" in members[pack.MATRIX_MARKDOWN].decode()


def _rewritten(source: Path, out: Path, name: str, change: bytes) -> Path:
    """A copy of the pack whose member `name` is `change`d, everything else as it was."""
    members = pack.read(source)
    members[name] = change
    with tarfile.open(out, "w:gz") as tar:
        for member, data in sorted(members.items()):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def test_one_byte_changed_in_any_member_is_refused_naming_it(evidence: Path, tmp_path: Path) -> None:
    members = pack.read(evidence)
    for name, data in sorted(members.items()):
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0x01
        bad = _rewritten(evidence, tmp_path / "bad.tar.gz", name, bytes(flipped))
        done = sovereign("evidence", "verify", str(bad))
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        named = pack.MANIFEST if name == pack.SIGNATURE else name
        assert f"FAILED {named}" in done.stdout, (name, done.stdout)


def test_a_record_rewritten_by_someone_holding_the_audit_key_is_still_caught(
    evidence: Path, tmp_path: Path
) -> None:
    """Re-signing the manifest does not help: the log's signed heads no longer match the record."""
    from sovereign.audit import keys

    members = pack.read(evidence)
    log_name = next(n for n in sorted(members) if n.startswith(pack.LOG_PREFIX) and n.endswith(".log"))
    lines = members[log_name].split(b"\n")
    flip = (b'"allow":true', b'"allow":false')
    lines[0] = lines[0].replace(*flip) if flip[0] in lines[0] else lines[0].replace(*reversed(flip))
    members[log_name] = b"\n".join(lines)
    facts = {k: v for k, v in json.loads(members[pack.MANIFEST]).items() if k not in ("members", "format")}
    del members[pack.MANIFEST], members[pack.SIGNATURE]
    resigned = tmp_path / "resigned.tar.gz"
    pack.write(resigned, members, facts, keys.load_signing_key())
    done = sovereign("evidence", "verify", str(resigned))
    assert done.returncode == 1
    segment = log_name.removesuffix(".log")
    assert f"FAILED {segment}: record 0" in done.stdout and "edited" in done.stdout, done.stdout


def test_a_pack_checked_with_another_audit_key_is_refused(evidence: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    done = sovereign("evidence", "verify", str(evidence), f"--audit-key={other}")
    assert done.returncode == 1 and "manifest.json: its signature does not verify" in done.stdout


def test_export_without_a_log_or_a_region_state_is_bad_input(
    tmp_path: Path, controlplane: ControlPlane
) -> None:
    empty = tmp_path / "nolog"
    done = sovereign(
        "evidence", "export", f"--region={REGION}", f"--out={tmp_path / 'x.tar.gz'}",
        f"--kubeconfig={controlplane.kubeconfig}", f"--log={empty}",
    )  # fmt: skip
    assert (
        done.returncode == 2 and "no decision log at" in done.stderr and "SOVEREIGN_AUDIT_DIR" in done.stderr
    )
    assert not (tmp_path / "x.tar.gz").exists()
