"""`sovereign audit` as an auditor runs it: keygen, verify (exit 0 verified, 1 tampered, 2 bad input), show
with filters, prove and check-proof by a third party holding only the public key."""

from __future__ import annotations

import io
import json
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sovereign import cli
from sovereign.audit import DecisionLog, DecisionRecord, input_digest
from sovereign.audit.location import AUDIT_DIR_ENV
from sovereign.audit.segment import HEADS_SUFFIX

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def sovereign(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    """Run `sovereign ARGS` through the real entry point; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sovereign", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def decision(number: int, region: str, cluster: str, codes: tuple[str, ...] = ()) -> DecisionRecord:
    return DecisionRecord(
        time=T0 + timedelta(hours=number),
        point="admission",
        region=region,
        cluster=cluster,
        subject=f"LlamaDeployment/team-a/chat-{number}",
        tenant="team-a",
        input_digest=input_digest({"n": number}),
        allow=not codes,
        verdict="denied" if codes else "allowed",
        codes=codes,
        obligations=("BUILT_WITH_LLAMA",),
        policy_revision="rev-1",
        engine="wasm",
    )


DECISIONS = [
    decision(0, "eu-sovereign", "eu-1"),
    decision(1, "eu-sovereign", "eu-2", ("EXPORT_DENIED",)),
    decision(2, "us-defense", "usdef-east-1"),
    decision(3, "us-defense", "usdef-east-1", ("TENANT_NOT_ALLOWED",)),
]


@pytest.fixture
def audit_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> DecisionLog:
    """A state dir of the test's own with the audit key made by `sovereign audit keygen`, and a closed
    segment of DECISIONS in $SOVEREIGN_AUDIT_DIR."""
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(AUDIT_DIR_ENV, str(tmp_path / "audit"))
    for name in ("SOVEREIGN_AUDIT_KEY", "SOVEREIGN_AUDIT_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "keygen")
    assert code == 0 and "audit-log.key" in out
    with DecisionLog.open(writer="operator") as log:
        for record in DECISIONS:
            log.append(record)
    return log


def test_keygen_keeps_the_private_key_to_its_owner_and_refuses_to_replace_it(
    audit_log: DecisionLog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private = tmp_path / "state" / "keys" / "audit" / "audit-log.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (tmp_path / "state" / "trust" / "audit-log.pem").read_text().startswith("-----BEGIN PUBLIC KEY")
    before = private.read_bytes()
    code, _, err = sovereign(monkeypatch, capsys, "audit", "keygen")
    assert code == 2 and "already exists" in err and private.read_bytes() == before


def test_verify_a_clean_log(
    audit_log: DecisionLog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "verify")
    assert code == 0 and f"ok {audit_log.segment}: 4 records" in out and "verified" in out
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "verify", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert [(s["segment"], s["status"], s["records"]) for s in report["segments"]] == [
        (audit_log.segment, "ok", 4)
    ]


def test_verify_names_the_tampered_segment_record_and_kind(
    audit_log: DecisionLog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = audit_log.path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"allow":false', b'"allow":true')
    audit_log.path.write_bytes(b"".join(lines))
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "verify")
    assert code == 1
    assert f"TAMPERED {audit_log.segment}: record 1 ({audit_log.path.name} line 2): edited" in out
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "verify", "--json")
    (segment,) = json.loads(out)["segments"]
    assert code == 1 and segment["finding"]["kind"] == "edited" and segment["finding"]["record"] == 1


def test_verify_reports_an_unsealed_tail_and_passes_the_sealed_part(
    audit_log: DecisionLog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    heads = audit_log.heads_path.read_bytes().splitlines(keepends=True)
    audit_log.heads_path.write_bytes(heads[0])  # as a writer killed before its first head over records
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "verify")
    assert code == 0 and "unsealed" in out
    assert "unsealed: 4 records after the last signed head (writer did not shut down cleanly)" in out


@pytest.mark.slow
def test_verify_bad_input_exits_2_naming_the_fix(
    audit_log: DecisionLog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = sovereign(monkeypatch, capsys, "audit", "verify", str(tmp_path / "nowhere"))
    assert code == 2 and "no decision log at" in err and AUDIT_DIR_ENV in err
    code, _, err = sovereign(monkeypatch, capsys, "audit", "verify", "--key", str(tmp_path / "none.pem"))
    assert code == 2 and "sovereign audit keygen" in err and "--key" in err
    inside = tmp_path / "audit" / "audit-log.pem"
    inside.write_bytes((tmp_path / "state" / "trust" / "audit-log.pem").read_bytes())
    code, _, err = sovereign(monkeypatch, capsys, "audit", "verify", "--key", str(inside))
    assert code == 2 and "inside the log folder" in err
    (tmp_path / "empty").mkdir()
    code, _, err = sovereign(monkeypatch, capsys, "audit", "verify", str(tmp_path / "empty"))
    assert code == 2 and "holds no log segment" in err


def _shown(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *filters: str) -> list[Any]:
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "show", "--json", *filters)
    assert code == 0
    return [row["subject"].rsplit("-", 1)[1] for row in json.loads(out)]


@pytest.mark.slow
def test_show_filters(
    audit_log: DecisionLog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _shown(monkeypatch, capsys) == ["0", "1", "2", "3"]
    assert _shown(monkeypatch, capsys, "--region", "eu-sovereign") == ["0", "1"]
    assert _shown(monkeypatch, capsys, "--cluster", "usdef-east-1") == ["2", "3"]
    assert _shown(monkeypatch, capsys, "--code", "TENANT_NOT_ALLOWED") == ["3"]
    assert _shown(monkeypatch, capsys, "--code", "BUILT_WITH_LLAMA") == ["0", "1", "2", "3"]  # an obligation
    assert _shown(monkeypatch, capsys, "--subject", "LlamaDeployment/team-a/chat-2") == ["2"]
    assert _shown(monkeypatch, capsys, "--since", "2026-11-29T09:00Z", "--until", "2026-11-29T11:00Z") == [
        "1",
        "2",
    ]
    assert _shown(monkeypatch, capsys, "--point", "serving") == []
    monkeypatch.setenv("COLUMNS", "250")  # one table row a line
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "show", "--region", "us-defense")
    assert (
        code == 0 and f"{audit_log.segment}:3" in out and "TENANT_NOT_ALLOWED" in out and "2 decisions" in out
    )
    code, _, err = sovereign(monkeypatch, capsys, "audit", "show", "--since", "yesterday")
    assert code == 2 and "--since" in err and "ISO" in err


@pytest.mark.slow
def test_prove_and_check_proof_without_the_log(
    audit_log: DecisionLog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "prove", f"{audit_log.segment}:1")
    assert code == 0
    proof = tmp_path / "proof.json"
    proof.write_text(out)
    public = tmp_path / "published.pem"  # what the third party was given
    public.write_bytes((tmp_path / "state" / "trust" / "audit-log.pem").read_bytes())
    for path in (tmp_path / "audit").iterdir():
        path.unlink()

    code, out, _ = sovereign(monkeypatch, capsys, "audit", "check-proof", str(proof), "--key", str(public))
    assert code == 0 and "included in signed head" in out and "LlamaDeployment/team-a/chat-1" in out
    code, out, _ = sovereign(
        monkeypatch, capsys, "audit", "check-proof", "-", "--key", str(public), stdin=proof.read_text()
    )
    assert code == 0

    document = json.loads(proof.read_text())
    document["line"] = document["line"].replace('"allow":false', '"allow":true')
    proof.write_text(json.dumps(document))
    code, _, err = sovereign(monkeypatch, capsys, "audit", "check-proof", str(proof), "--key", str(public))
    assert code == 1 and "not included in the signed head" in err


@pytest.mark.slow
def test_prove_bad_input_exits_2(
    audit_log: DecisionLog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = sovereign(monkeypatch, capsys, "audit", "prove", "17")
    assert code == 2 and "SEGMENT:INDEX" in err
    code, _, err = sovereign(monkeypatch, capsys, "audit", "prove", "nope:1")
    assert code == 2 and "no segment nope" in err
    code, _, err = sovereign(monkeypatch, capsys, "audit", "prove", f"{audit_log.segment}:4")
    assert code == 2 and "not covered by a signed head" in err


def test_prove_refuses_a_record_that_no_longer_matches_its_head(
    audit_log: DecisionLog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    audit_log.path.write_bytes(
        audit_log.path.read_bytes().replace(b'"region":"us-defense"', b'"region":"eu-sovereign"')
    )
    code, _, err = sovereign(monkeypatch, capsys, "audit", "prove", f"{audit_log.segment}:2")
    assert code == 1 and "sovereign audit verify" in err
    assert audit_log.heads_path.with_suffix(HEADS_SUFFIX).exists()


@pytest.mark.slow
def test_heads_are_printed_as_signed_and_a_record_is_proven_against_an_earlier_published_head(
    audit_log: DecisionLog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with DecisionLog.open(writer="serving") as log:
        for record in DECISIONS[:2]:
            log.append(record)
        log.checkpoint()  # head 1, over 2 records: the one published
        for record in DECISIONS[2:]:
            log.append(record)
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "heads", "--segment", log.segment)
    assert code == 0
    lines = out.splitlines()
    assert lines == log.heads_path.read_text().splitlines()  # the exact signed bytes, nothing else
    assert [(json.loads(line)["seq"], json.loads(line)["size"]) for line in lines] == [(0, 0), (1, 2), (2, 4)]
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "heads", "--last")
    assert code == 0 and sorted(json.loads(line)["segment"] for line in out.splitlines()) == sorted(
        [audit_log.segment, log.segment]
    )
    published = json.loads(lines[1])

    code, out, _ = sovereign(monkeypatch, capsys, "audit", "prove", f"{log.segment}:1", "--head", "1")
    assert code == 0 and json.loads(out)["head"] == published
    proof = tmp_path / "proof.json"
    proof.write_text(out)
    public = tmp_path / "state" / "trust" / "audit-log.pem"
    code, out, _ = sovereign(monkeypatch, capsys, "audit", "check-proof", str(proof), "--key", str(public))
    assert code == 0 and "included in signed head 1" in out
    # A record the published head does not cover, and a head the segment does not have.
    code, _, err = sovereign(monkeypatch, capsys, "audit", "prove", f"{log.segment}:2", "--head", "1")
    assert code == 2 and "not in signed head 1" in err and "against head 2" in err
    code, _, err = sovereign(monkeypatch, capsys, "audit", "prove", f"{log.segment}:1", "--head", "7")
    assert code == 2 and "heads 0..2" in err


def test_heads_of_a_tampered_segment_are_not_printed(
    audit_log: DecisionLog, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    audit_log.path.write_bytes(audit_log.path.read_bytes().replace(b'"allow":false', b'"allow":true', 1))
    code, out, err = sovereign(monkeypatch, capsys, "audit", "heads")
    assert code == 1 and out == "" and f"TAMPERED {audit_log.segment}: record 1" in err
    code, _, err = sovereign(monkeypatch, capsys, "audit", "heads", "--segment", "nope")
    assert code == 2 and "no such segment" in err
