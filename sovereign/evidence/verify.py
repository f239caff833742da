"""Check an evidence pack offline with the public keys alone: exit 0, or the first member or record that
fails, named."""

from __future__ import annotations

import json
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovereign.audit.segment import LOG_SUFFIX, Lines, parse_record
from sovereign.audit.signed_manifest import ManifestRefused, member_problems, verified
from sovereign.audit.verify import verify_log
from sovereign.evidence import pack
from sovereign.policy.bundle import verify_built
from sovereign.policy.bundle_signature import BundleUnverified


@dataclass
class PackReport:
    path: Path
    facts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # each names the member or record at fault
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_pack(path: Path, audit_key: Ed25519PublicKey, policy_key: Path) -> PackReport:
    report = PackReport(path)
    try:
        members = pack.read(path)
    except (OSError, tarfile.TarError, EOFError) as exc:
        report.problems.append(f"{path}: not a readable evidence pack: {exc}")
        return report
    try:
        manifest = verified(
            members.pop(pack.MANIFEST, None), members.pop(pack.SIGNATURE, None), audit_key, "the pack"
        )
    except ManifestRefused as exc:
        report.problems.append(str(exc))
        return report
    report.facts = {k: v for k, v in manifest.items() if k != "members"}
    listed: dict[str, str] = manifest["members"]

    def differs(name: str) -> str | None:
        return (
            None
            if pack.digest(members[name]) == listed[name]
            else "its SHA-256 differs from the signed manifest's"
        )

    report.problems += member_problems(listed, members, differs, "the pack")
    if report.problems:
        return report
    _check_log(members, audit_key, report)
    _check_bundle(members, policy_key, manifest.get("policy_revision"), report)
    return report


def _check_log(members: dict[str, bytes], audit_key: Ed25519PublicKey, report: PackReport) -> None:
    with tempfile.TemporaryDirectory(prefix="evidence-log-") as tmp:
        folder = Path(tmp)
        for name, data in members.items():
            if name.startswith(pack.LOG_PREFIX):
                (folder / name.removeprefix(pack.LOG_PREFIX)).write_bytes(data)
        for segment in verify_log(folder, audit_key).segments:
            if segment.finding is not None:
                report.problems.append(f"{pack.LOG_PREFIX}{segment.segment}: {segment.finding.describe()}")
            report.warnings += [f"{pack.LOG_PREFIX}{segment.segment}: {w}" for w in segment.warnings]
        for decision in json.loads(members.get(pack.DECISIONS, b"[]")):
            if (problem := _decision_problem(folder, decision)) is not None:
                report.problems.append(f"{pack.DECISIONS}: {decision.get('subject')}: {problem}")


def _decision_problem(folder: Path, decision: dict[str, Any]) -> str | None:
    """Why `decision` is not the record it points at, or None when it is."""
    segment, _, index = str(decision.get("record_id")).rpartition(":")
    log = folder / f"{segment}{LOG_SUFFIX}"
    if not log.exists() or not index.isdigit():
        return f"record {decision.get('record_id')} is not in the pack's log"
    lines = Lines.read(log).complete
    parsed = parse_record(lines[int(index)]) if int(index) < len(lines) else None
    if parsed is None or parsed[1].model_dump(mode="json") != decision.get("record"):
        return f"differs from record {decision.get('record_id')} of the log"
    return None


def _check_bundle(members: dict[str, bytes], policy_key: Path, revision: Any, report: PackReport) -> None:
    with tempfile.TemporaryDirectory(prefix="evidence-bundle-") as tmp:
        bundle = Path(tmp) / "bundle.tar.gz"
        bundle.write_bytes(members.get(pack.POLICY_BUNDLE, b""))
        try:
            verified = verify_built(bundle, policy_key)
        except BundleUnverified as exc:
            report.problems.append(f"{pack.POLICY_BUNDLE}: {exc}")
            return
    if verified.revision != revision:
        report.problems.append(
            f"{pack.POLICY_BUNDLE}: revision {verified.revision}, but the manifest says {revision}"
        )
