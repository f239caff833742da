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

from sovereign.audit.index import INDEX_FILE
from sovereign.audit.segment import LOG_SUFFIX, Lines, parse_record
from sovereign.audit.signed_manifest import ManifestRefused, member_problems, verified
from sovereign.audit.verify import verify_log
from sovereign.errors import SovereignError
from sovereign.evidence import pack
from sovereign.models.signing import signed_digests
from sovereign.policy.bundle import kept_revision, verify_built
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
    _check_bundles(members, policy_key, manifest.get("policy_revision"), report)
    _check_weights_signatures(members, report)
    return report


def _check_log(members: dict[str, bytes], audit_key: Ed25519PublicKey, report: PackReport) -> None:
    with tempfile.TemporaryDirectory(prefix="evidence-log-") as tmp:
        folder = Path(tmp)
        for name, data in members.items():
            if name.startswith(pack.LOG_PREFIX):
                (folder / name.removeprefix(pack.LOG_PREFIX)).write_bytes(data)
        # The pack holds the region's segments only: the index's others are absent on purpose.
        log = verify_log(folder, audit_key, subset=True)
        if log.index is not None:
            report.problems.append(f"{pack.LOG_PREFIX}{INDEX_FILE}: {log.index.describe()}")
        report.warnings += [f"{pack.LOG_PREFIX}{INDEX_FILE}: {w}" for w in log.index_warnings]
        for segment in log.segments:
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


def _check_bundles(members: dict[str, bytes], policy_key: Path, in_force: Any, report: PackReport) -> None:
    """Every bundle member verifies with the policy trust anchor and is the revision its name says; every
    revision a record names, and the one the manifest says was in force, has its bundle."""
    bundles = {
        name.removeprefix(pack.POLICY_PREFIX).removesuffix("/bundle.tar.gz"): name
        for name in members
        if name.startswith(pack.POLICY_PREFIX)
    }
    with tempfile.TemporaryDirectory(prefix="evidence-bundle-") as tmp:
        for revision, name in sorted(bundles.items()):
            try:
                bundle = kept_revision(Path(tmp), revision)  # refuses a revision that is not a folder name
            except SovereignError:
                bundle = None
            if bundle is None or name != pack.policy_bundle(revision):
                report.problems.append(f"{name}: not a policy bundle member (policy/REVISION/bundle.tar.gz)")
                continue
            bundle.parent.mkdir(parents=True)
            bundle.write_bytes(members[name])
            try:
                verified = verify_built(bundle, policy_key)
            except BundleUnverified as exc:
                report.problems.append(f"{name}: {exc}")
                continue
            if verified.revision != revision:
                report.problems.append(f"{name}: holds revision {verified.revision}, not {revision}")
    named = pack.revisions_named(members)
    for revision, record in sorted(named.items()):
        if revision not in bundles:
            report.problems.append(
                f"{pack.LOG_PREFIX}{record.rpartition(':')[0]}{LOG_SUFFIX}: record {record} was judged on "
                f"policy revision {revision}, but its bundle {pack.policy_bundle(revision)} is not packed"
            )
    if in_force not in bundles:
        report.problems.append(
            f"{pack.MANIFEST}: the policy revision in force, {in_force}, has no bundle in the pack"
        )


def _check_weights_signatures(members: dict[str, bytes], report: PackReport) -> None:
    """Each packed checkpoint signature verifies with its signer's packed public key, and signs every weights
    file the data plane recorded for that deployment with the digest recorded."""
    recorded: dict[str, dict[str, str]] = {}
    for row in json.loads(members.get(pack.WEIGHTS, b"[]")):
        recorded.setdefault(row["rayservice"], {})[row["file"]] = row["sha256"]
    for row in json.loads(members.get(pack.WEIGHTS_SIGNATURES, b"[]")):
        deployment, signature, key = row.get("deployment"), row.get("signature"), row.get("key")
        where = f"{pack.WEIGHTS_SIGNATURES}: {deployment}"
        if signature is None:
            report.warnings.append(f"{where}: its checkpoint is not signed")
            continue
        if key is None:
            report.warnings.append(
                f"{signature}: not checked: signer {row.get('signer')}'s public key was not published where "
                "the pack was exported"
            )
            continue
        if signature not in members or key not in members:
            report.problems.append(f"{where}: {signature} or {key} is not in the pack")
            continue
        with tempfile.TemporaryDirectory(prefix="evidence-weights-") as tmp:
            (Path(tmp) / "model.sig").write_bytes(members[signature])
            (Path(tmp) / "signer.pem").write_bytes(members[key])
            try:
                signed = signed_digests(Path(tmp) / "model.sig", Path(tmp) / "signer.pem")
            except Exception as exc:  # any failure to verify (a parse error included) means not proven
                report.problems.append(f"{signature}: does not verify with {key}: {type(exc).__name__} {exc}")
                continue
        for file, digest in sorted(recorded.get(deployment, {}).items()):
            if signed.get(file) != digest:
                report.problems.append(
                    f"{pack.WEIGHTS}: {deployment} {file}: the data plane recorded sha256 {digest}, but "
                    f"{signature} signs {signed.get(file) or 'no such file'}"
                )
