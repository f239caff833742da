"""The audit key: an Ed25519 key that signs the log's tree heads, kept apart from the policy bundle's key.

Under the state dir (the policy bundle's key lives in signing/, its trust anchor in trust/):

    keys/audit/audit-log.key   private key (0600, folder 0700): read only by processes that write the log
    trust/audit-log.pem        public key: all that a verifier (or a third party checking a proof) needs

Only `sovereign audit keygen` creates the pair; writers refuse to start without it rather than make a key
nobody has been given the public half of. A verifier takes the public key from `--key`,
$SOVEREIGN_AUDIT_PUBLIC_KEY or trust/, and refuses one kept inside the log folder: whoever can rewrite the
log could replace that key too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sovereign.errors import BadInput
from sovereign.state_dir import state_root

PRIVATE_KEY_ENV = "SOVEREIGN_AUDIT_KEY"
PUBLIC_KEY_ENV = "SOVEREIGN_AUDIT_PUBLIC_KEY"
KEYGEN_COMMAND = "sovereign audit keygen"


def private_key_path() -> Path:
    if explicit := os.environ.get(PRIVATE_KEY_ENV):
        return Path(explicit)
    return state_root() / "keys" / "audit" / "audit-log.key"


def public_key_path() -> Path:
    if explicit := os.environ.get(PUBLIC_KEY_ENV):
        return Path(explicit)
    return state_root() / "trust" / "audit-log.pem"


def key_id(public: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key: names the key a head was signed with."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def create_key() -> tuple[Path, Path]:
    """Create the audit key pair; refused when a private key is already there (logs it signed would no
    longer verify with the new public key)."""
    private_path, public_path = private_key_path(), public_key_path()
    if private_path.exists():
        raise BadInput(
            f"the audit key {private_path} already exists: keep it (its logs verify with {public_path}), "
            f"or move it away first to start a new key"
        )
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def ensure_key() -> Path:
    """The audit key, created when there is none: what `sovereign dev up` does, so a dev environment's
    enforcement points record their decisions from the start. A production key is made on purpose."""
    if not private_key_path().exists():
        create_key()
    return private_key_path()


def load_signing_key(path: Path | None = None) -> Ed25519PrivateKey:
    path = path or private_key_path()
    try:
        mode = path.stat().st_mode
        pem = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"no audit key at {path}: `{KEYGEN_COMMAND}` creates it (and the public key verifiers use), "
            f"or point {PRIVATE_KEY_ENV} at the Ed25519 private key this process signs the log with"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BadInput(f"the audit key {path} is readable by others: `chmod 600 {path}`")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError:
        raise BadInput(f"the audit key {path} is not a PEM private key") from None
    # The policy bundle's key is RSA: an Ed25519 key here can never be that key reused.
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(f"the audit key {path} is not an Ed25519 key: `{KEYGEN_COMMAND}` makes one")
    return key


def load_public_key(path: Path | None = None) -> Ed25519PublicKey:
    path = path or public_key_path()
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"no audit public key at {path}: pass the log writer's public key with --key, or set "
            f"{PUBLIC_KEY_ENV}; `{KEYGEN_COMMAND}` writes it to {public_key_path()} where the key is made"
        ) from None
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise BadInput(f"the audit public key {path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadInput(f"the audit public key {path} is not an Ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode()


def signature_valid(key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    """Whether `signature` is the base64 `sign` writes of a signature of `message` by `key`. Only the
    canonical encoding passes: a decoder ignores the unused bits of the last character, so 15 other
    characters there decode to the same signature, and a signed line could be edited unnoticed."""
    try:
        raw = base64.b64decode(signature, validate=True)
        if base64.b64encode(raw).decode() != signature:
            return False
        key.verify(raw, message)
    except (InvalidSignature, ValueError):
        return False
    return True
