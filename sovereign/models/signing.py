"""Who produced a checkpoint: OpenSSF model signatures (the `model-signing` library) over every file.

`sovereign models sign` is the only signer: it signs a checkpoint folder with a signer identity's
elliptic-curve key (created on first use under the state dir, 0600) and writes `model.sig` (a Sigstore
bundle) into the folder, then publishes the identity's public key to the trust folder. Consumers (a
serving replica, `sovereign models verify`) only verify: with the public key of the identity a
LlamaDeployment names (`spec.weights.signer`), found in the trust folder ($SOVEREIGN_WEIGHTS_SIGNERS, else
STATE_DIR/trust/weights-signers/<identity>.pem). The result is a fact for the policy (`weights.signature`);
the policy decides what a missing or wrong signature means. Where the checkpoint is not (an air-gap
transfer, an evidence pack), `carried_signatures` gathers the signatures and keys to carry, and
`signed_digests` checks a signature with the key alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sovereign.errors import BadInput
from sovereign.state_dir import state_root

SIGNATURE_FILE = "model.sig"
SIGNERS_ENV = "SOVEREIGN_WEIGHTS_SIGNERS"
DEV_SIGNER = "sovereign-dev"  # the identity `sovereign models build` signs the tiny checkpoints as
_IDENTITY = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def signers_dir() -> Path:
    if explicit := os.environ.get(SIGNERS_ENV):
        return Path(explicit)
    return state_root() / "trust" / "weights-signers"


def _checked(identity: str) -> str:
    if not _IDENTITY.match(identity):
        raise BadInput(f"signer identity {identity!r}: use a DNS label, e.g. acme-ml-release")
    return identity


def _hashing(folder: Path) -> Any:
    from model_signing import hashing  # imported late: it pulls in Sigstore

    # The signature lives in the folder it signs, so it is left out of what it covers.
    return hashing.Config().set_ignored_paths(paths=[folder / SIGNATURE_FILE])


def sign_checkpoint(folder: Path, identity: str, key: Path | None = None) -> Path:
    """Sign every file of checkpoint `folder` as `identity`; returns the signature's path."""
    from model_signing import signing

    if not folder.is_dir():
        raise BadInput(f"{folder}: not a checkpoint folder")
    key = key or _identity_key(_checked(identity))
    signature = folder / SIGNATURE_FILE
    config = signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(_hashing(folder))
    config.sign(folder, signature)
    return signature


def _identity_key(identity: str) -> Path:
    """The identity's private key under the state dir, created on first use; its public half published."""
    path = state_root() / "signing" / f"weights-{identity}.key"
    if not path.is_file():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
    private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    public = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    published = signer_key(identity)
    published.parent.mkdir(parents=True, exist_ok=True)
    published.write_bytes(public)
    return path


def signer_key(identity: str) -> Path:
    """Where `identity`'s published public key is (whether or not it is there)."""
    return signers_dir() / f"{identity}.pem"


@dataclass(frozen=True)
class CarriedSignatures:
    signatures: dict[str, Path]  # checkpoint name -> its model.sig
    signers: dict[str, Path]  # identity -> its published public key


def carried_signatures(
    checkpoints: Mapping[str, Path], signers: Iterable[str] | None = None
) -> CarriedSignatures:
    """What lets checkpoints' signatures be checked away from the checkpoints: the model.sig of each of
    `checkpoints` (name -> folder) that is signed, and the published public key of each of `signers` (all
    published ones when None) that is published."""
    signatures = {
        name: folder / SIGNATURE_FILE
        for name, folder in sorted(checkpoints.items())
        if (folder / SIGNATURE_FILE).is_file()
    }
    if signers is None:
        published = {path.stem: path for path in sorted(signers_dir().glob("*.pem"))}
    else:
        published = {identity: signer_key(identity) for identity in sorted(set(signers))}
    return CarriedSignatures(signatures, {who: path for who, path in published.items() if path.is_file()})


def signed_digests(signature: Path, public_key: Path) -> dict[str, str]:
    """The SHA-256 of every file `signature` (a model.sig) covers, by path in the checkpoint, once the
    signature verifies with `public_key`; ValueError (or a parse error) when it does not. Needs neither
    the checkpoint nor a network: what an auditor holding the signature and the key can check."""
    # model-signing's public verifier hashes the checkpoint's files as well; its key verifier alone checks
    # the signature and returns the signed manifest.
    from model_signing._signing import sign_ec_key, sign_sigstore_pb

    manifest = sign_ec_key.Verifier(public_key).verify(sign_sigstore_pb.Signature.read(signature))
    digests = {}
    for descriptor in manifest.resource_descriptors():
        if descriptor.digest.algorithm != "sha256":
            raise ValueError(f"{descriptor.identifier} is hashed with {descriptor.digest.algorithm}")
        digests[descriptor.identifier] = descriptor.digest.digest_hex
    return digests


@dataclass(frozen=True)
class Signature:
    """Whether `folder`'s files are signed by the expected identity, and if not, why."""

    signer: str | None
    verified: bool
    problem: str | None = None

    def fact(self) -> dict[str, Any]:
        fact: dict[str, Any] = {"verified": self.verified, "signer": self.signer}
        if self.problem:
            fact["problem"] = self.problem
        return fact


def verify_checkpoint(folder: Path, signer: str | None) -> Signature:
    """Verify `folder`'s signature with `signer`'s published key; every failure is a fact, not an error."""
    if signer is None:
        return Signature(None, False, "the deployment names no signer (spec.weights.signer)")
    public = signer_key(signer)
    signature = folder / SIGNATURE_FILE
    if not public.is_file():
        return Signature(signer, False, f"no public key for signer <{signer}> at {public} (${SIGNERS_ENV})")
    if not signature.is_file():
        return Signature(signer, False, f"{folder} is not signed (no {SIGNATURE_FILE})")
    from model_signing import verifying

    config = verifying.Config().use_elliptic_key_verifier(public_key=public)
    try:
        config.set_hashing_config(_hashing(folder)).verify(folder, signature)
    except Exception as exc:  # fail closed: whatever stops verification means the files are not proven
        return Signature(signer, False, f"{type(exc).__name__}: {exc}")
    return Signature(signer, True)
