"""Verify a signed OPA bundle in Python, the way `opa run --verification-key` does, before any use of it.

Written by hand because no Python library verifies OPA bundle signatures (the Wasm SDKs load a bare
policy.wasm). The `.signatures.json` JWT (checked with PyJWT) lists every file with its SHA-256; OPA
hashes JSON files (data.json, .manifest) over a canonical encoding of their parsed value rather than
their bytes, which `_structured_digest` reproduces. A bundle passes only when the token verifies and
the files in the tarball are exactly the files it lists, each with the listed hash.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from sovereign.errors import SovereignError

SIGNING_ALG = "RS256"
SIGNATURES_FILE = ".signatures.json"
_STRUCTURED = (".json", ".manifest")
_RAW = (".rego", ".wasm")


class BundleUnverified(SovereignError):
    """The bundle is unsigned, signed by another key, or was changed after signing."""


@dataclass(frozen=True)
class VerifiedBundle:
    files: dict[str, bytes]  # path inside the bundle (no leading slash) -> content
    manifest: dict[str, Any]

    @property
    def revision(self) -> str:
        return str(self.manifest.get("revision", ""))


class _Number(str):
    """A JSON number kept as written: OPA hashes numbers by their literal text."""


def _go_json_string(text: str) -> str:
    # Go's encoder (with HTML escaping off, as OPA uses it) escapes the same characters as Python's
    # ensure_ascii=False encoder, plus U+2028 and U+2029.
    return json.dumps(text, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _canonical(value: object) -> str:
    if isinstance(value, dict):
        items = (f"{_go_json_string(key)}:{_canonical(value[key])}" for key in sorted(value))
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(item) for item in value) + "]"
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, str):
        return _go_json_string(value)
    return json.dumps(value)  # true, false, null


def _structured_digest(raw: bytes) -> str:
    value = json.loads(raw, parse_int=_Number, parse_float=_Number, parse_constant=_Number)
    return hashlib.sha256(_canonical(value).encode()).hexdigest()


def _file_digest(name: str, raw: bytes) -> str:
    if name.endswith(_STRUCTURED):
        return _structured_digest(raw)
    return hashlib.sha256(raw).hexdigest()


def read_tarball(path: Path) -> dict[str, bytes]:
    """The regular files of a bundle tarball by path (no leading slash), nothing verified yet."""
    files: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = member.name.lstrip("/")
            if member.isdir():
                continue
            if not member.isfile():
                raise BundleUnverified(f"bundle {path}: {name} is not a regular file")
            if name in files:
                raise BundleUnverified(f"bundle {path}: {name} appears twice")
            extracted = tar.extractfile(member)
            files[name] = extracted.read() if extracted else b""
    return files


def verify_bundle(path: Path, verification_key: bytes) -> VerifiedBundle:
    """The bundle's files once its signature and every file hash check out; BundleUnverified otherwise."""
    try:
        files = read_tarball(path)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BundleUnverified(f"bundle {path} cannot be read: {exc}") from None
    try:
        tokens = json.loads(files.pop(SIGNATURES_FILE))["signatures"]
    except (KeyError, ValueError, TypeError):
        raise BundleUnverified(f"bundle {path} has no valid {SIGNATURES_FILE}: it is not signed") from None
    if not isinstance(tokens, list) or len(tokens) != 1:
        raise BundleUnverified(f"bundle {path}: expected exactly one signature in {SIGNATURES_FILE}")
    try:
        claims = jwt.decode(tokens[0], verification_key, algorithms=[SIGNING_ALG])
        listed = {entry["name"].lstrip("/"): entry for entry in claims["files"]}
    except (jwt.InvalidTokenError, KeyError, TypeError, AttributeError) as exc:
        raise BundleUnverified(f"bundle {path}: signature does not verify with this key ({exc})") from None

    if missing := sorted(set(listed) - set(files)):
        raise BundleUnverified(f"bundle {path}: signed files missing from the bundle: {', '.join(missing)}")
    if extra := sorted(set(files) - set(listed)):
        raise BundleUnverified(f"bundle {path}: files not covered by the signature: {', '.join(extra)}")
    for name, raw in files.items():
        entry = listed[name]
        if entry.get("algorithm") != "SHA-256":
            raise BundleUnverified(
                f"bundle {path}: {name} is hashed with {entry.get('algorithm')}, not SHA-256"
            )
        if not name.endswith(_STRUCTURED + _RAW):
            raise BundleUnverified(f"bundle {path}: unexpected file {name}")
        try:
            digest = _file_digest(name, raw)
        except ValueError:
            raise BundleUnverified(f"bundle {path}: {name} is not valid JSON") from None
        if digest != entry.get("hash"):
            raise BundleUnverified(
                f"bundle {path}: {name} does not match its signed hash (changed after signing)"
            )
    manifest = json.loads(files.get(".manifest", b"{}"))
    return VerifiedBundle(files=files, manifest=manifest)
