"""The archive: named members, a manifest of their digests, and the audit key's signature over it.

A pack is a gzip'd tar with members in name order and fixed metadata, so the same contents give the same
bytes; `manifest.json` lists every other member's SHA-256 and `manifest.sig` signs manifest.json.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovereign.audit.segment import LOG_SUFFIX, parse_record
from sovereign.audit.signed_manifest import MANIFEST, SIGNATURE, as_json, digest, signed

__all__ = [
    "MANIFEST",
    "SIGNATURE",
    "as_json",
    "digest",
    "policy_bundle",
    "read",
    "revisions_named",
    "signer_key",
    "weights_signature",
    "write",
]
FORMAT = "sovereign-evidence/1"
LOG_PREFIX = "log/"
POLICY_PREFIX = "policy/"  # policy/<revision>/bundle.tar.gz: each signed Rego bundle a record names
DECISIONS = "decisions.json"
WEIGHTS = "weights.json"
# Per deployment whose checkpoint the exporter could read: its signer, and its signature and key members.
WEIGHTS_SIGNATURES = "weights-signatures.json"
WEIGHTS_PREFIX = "weights/"
ACCREDITATIONS = "accreditations.json"
MATRIX_HTML = "matrix.html"
MATRIX_MARKDOWN = "matrix.md"
ML_BOM = "ml-bom.cdx.json"


def policy_bundle(revision: str) -> str:
    """The member holding the signed bundle (OPA's Rego target, its signature inside) of `revision`."""
    return f"{POLICY_PREFIX}{revision}/bundle.tar.gz"


def weights_signature(deployment: str) -> str:
    """The member holding the model.sig of the checkpoint deployment NAMESPACE/NAME serves."""
    return f"{WEIGHTS_PREFIX}{deployment}/model.sig"


def signer_key(identity: str) -> str:
    """The member holding a weights signer's published public key."""
    return f"{WEIGHTS_PREFIX}signers/{identity}.pem"


def revisions_named(members: dict[str, bytes]) -> dict[str, str]:
    """Each policy revision the pack's log records name, with the first record naming it (SEGMENT:INDEX).
    Lines that are not records are left to the log's verification."""
    named: dict[str, str] = {}
    for name in sorted(members):
        if not (name.startswith(LOG_PREFIX) and name.endswith(LOG_SUFFIX)):
            continue
        segment = name.removeprefix(LOG_PREFIX).removesuffix(LOG_SUFFIX)
        for line in members[name].split(b"\n"):
            parsed = parse_record(line)
            if parsed is not None and (revision := parsed[1].policy_revision) is not None:
                named.setdefault(revision, f"{segment}:{parsed[0]}")
    return named


def write(out: Path, members: dict[str, bytes], facts: dict[str, Any], key: Ed25519PrivateKey) -> None:
    """Write the pack to `out` (through a temporary file: a half-written pack never has the final name)."""
    doc = {"format": FORMAT, **facts, "members": {name: digest(data) for name, data in members.items()}}
    manifest, signature = signed(doc, key)
    everything = {**members, MANIFEST: manifest, SIGNATURE: signature}
    partial = out.with_name(out.name + ".partial")
    with tarfile.open(partial, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(everything):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(everything[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(everything[name]))
    partial.replace(out)


def read(path: Path) -> dict[str, bytes]:
    """Every regular member by name; OSError/tarfile.TarError when the archive cannot be read."""
    members: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as tar:
        for info in tar.getmembers():
            handle = tar.extractfile(info) if info.isfile() else None
            if handle is None:
                raise tarfile.TarError(f"{info.name}: not a regular file")
            members[info.name] = handle.read()
    return members
