"""Check a transfer folder offline before anything of it is imported: the manifest's signature with a
trust anchor configured apart from the folder, every member's size and SHA-256, no member missing or added,
and the policy bundle's own signature with the anchor it travels with. Verifies only: never signs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovereign.airgap import layout
from sovereign.audit.signed_manifest import MANIFEST, SIGNATURE, ManifestRefused, member_problems, verified
from sovereign.errors import BadInput
from sovereign.policy.bundle import verify_built
from sovereign.policy.bundle_signature import BundleUnverified

WHERE = "the transfer"


@dataclass
class TransferReport:
    folder: Path
    facts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # each names the member at fault, the first first

    @property
    def ok(self) -> bool:
        return not self.problems


def refuse_anchor_inside(folder: Path, anchor: Path) -> None:
    """A key shipped inside the folder it verifies proves nothing: whoever made the folder made the key."""
    if anchor.resolve().is_relative_to(folder.resolve()):
        raise BadInput(
            f"--key {anchor} lies inside the transfer it would verify: use the exporter's public key as "
            "received apart from the transfer"
        )


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() and not path.is_symlink() else None


def verify_transfer(folder: Path, key: Ed25519PublicKey) -> TransferReport:
    report = TransferReport(folder)
    if not folder.is_dir():
        raise BadInput(f"{folder}: no such transfer folder (sovereign airgap export writes one)")
    try:
        manifest = verified(_read(folder / MANIFEST), _read(folder / SIGNATURE), key, WHERE)
    except ManifestRefused as exc:
        report.problems.append(str(exc))
        return report
    report.facts = {k: v for k, v in manifest.items() if k != "members"}
    listed: dict[str, dict[str, Any]] = manifest["members"]
    present = {n: p for n, p in layout.members_of(folder).items() if n not in (MANIFEST, SIGNATURE)}

    def differs(name: str) -> str | None:
        path, recorded = present[name], listed[name]
        if path.is_symlink():
            return "a link, not a file: a transfer holds files only"
        size = path.stat().st_size
        if size != recorded["size"]:
            return f"{size} bytes, but the signed manifest says {recorded['size']}"
        with path.open("rb") as handle:
            if hashlib.file_digest(handle, "sha256").hexdigest() != recorded["sha256"]:
                return "its SHA-256 differs from the signed manifest's"
        return None

    report.problems += member_problems(listed, present, differs, WHERE)
    if report.ok:
        try:
            verified_bundle = verify_built(folder / layout.POLICY_BUNDLE, folder / layout.POLICY_ANCHOR)
        except BundleUnverified as exc:
            report.problems.append(f"{layout.POLICY_BUNDLE}: {exc}")
        else:
            if verified_bundle.revision != manifest.get("policy_revision"):
                report.problems.append(
                    f"{layout.POLICY_BUNDLE}: revision {verified_bundle.revision}, but the manifest says "
                    f"{manifest.get('policy_revision')}"
                )
    return report
