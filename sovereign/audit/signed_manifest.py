"""A manifest of members signed with the audit key, and its offline check: what an evidence pack
(sovereign.evidence) and an air-gap transfer (sovereign.airgap) are both made of.

The manifest is canonical JSON (sorted keys, two-space indent, one trailing newline) holding a `format`,
the exporter's facts and `members` (each member's name and what was recorded of it); the signature is the
Ed25519 signature of those exact bytes, base64, nothing around it. Only exporters sign; a verifier takes
the public key from a trust anchor configured apart from what it checks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sovereign.audit import keys

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def as_json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def signed(doc: dict[str, Any], key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """`doc` as manifest bytes, and their signature's bytes."""
    text = as_json(doc)
    return text, keys.sign(key, text).encode()


class ManifestRefused(Exception):
    """The manifest is missing, unsigned or signed by another key: nothing it lists can be believed."""


def verified(
    manifest: bytes | None, signature: bytes | None, key: Ed25519PublicKey, what: str
) -> dict[str, Any]:
    """The manifest's document once its signature verifies with `key`; ManifestRefused naming why not."""
    if manifest is None or signature is None:
        raise ManifestRefused(f"{MANIFEST} or {SIGNATURE} is missing: {what} is not signed")
    # signature_valid passes only the canonical base64: no byte can be added to or changed in it unnoticed.
    if not keys.signature_valid(key, manifest, signature.decode("ascii", "replace")):
        raise ManifestRefused(f"{MANIFEST}: its signature does not verify with audit key {keys.key_id(key)}")
    return json.loads(manifest)


def member_problems(
    listed: Iterable[str], present: Iterable[str], differs: Callable[[str], str | None], where: str
) -> list[str]:
    """One line per member missing from `where`, present but unlisted, or whose recorded facts `differs`
    says are not its own, in name order."""
    listed, present = set(listed), set(present)
    problems = []
    for name in sorted(listed | present):
        if name not in present:
            problems.append(f"{name}: listed in the manifest but missing from {where}")
        elif name not in listed:
            problems.append(f"{name}: in {where} but not in the signed manifest")
        elif (problem := differs(name)) is not None:
            problems.append(f"{name}: {problem}")
    return problems
