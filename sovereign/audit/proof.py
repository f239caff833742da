"""Inclusion proofs a third party can check with the audit public key alone.

A proof carries the record line as written, its index, the signed head it is proven against (the last, or
an earlier one a third party already holds: `sovereign audit heads` prints them to publish) and the
RFC 9162 audit path (pymerkle's serialised InclusionProof). Checking it needs neither the log nor this
project's writer: verify the head's signature, hash the line as a leaf, and fold the path up to the
head's root (`check_proof`, or any RFC 9162 verifier with SHA-256).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError
from pymerkle import InclusionProof, InvalidProof, verify_inclusion

from sovereign.audit.keys import key_id, signature_valid
from sovereign.audit.record import DecisionRecord
from sovereign.audit.segment import HEADS_SUFFIX, LOG_SUFFIX, Lines, SignedHead, parse_record, signed_heads
from sovereign.audit.tree import ALGORITHM, LeafHashes, leaf_hash
from sovereign.errors import BadInput, SovereignError


class ProofInvalid(SovereignError):
    """An inclusion proof does not check out: the message says which part fails."""


class RecordProof(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str  # <segment>:<index>
    line: str  # the record line exactly as logged: its leaf hash is taken over these bytes
    index: int
    head: SignedHead
    proof: dict[str, Any]  # pymerkle's InclusionProof.serialize(); leaf indexes count from 1 there


def parse_record_id(record_id: str) -> tuple[str, int]:
    segment, sep, index = record_id.rpartition(":")
    if not sep or not segment or not index.isdigit():
        raise BadInput(
            f"record {record_id!r}: expected SEGMENT:INDEX, e.g. serving-host-4242-20261129T015900000000Z:17 "
            "(`sovereign audit show` lists record ids)"
        )
    return segment, int(index)


def prove(directory: Path, record_id: str, head_seq: int | None = None) -> RecordProof:
    """The proof that record `record_id` is in signed head `head_seq` of its segment (default: the last):
    an earlier head is one a third party may already hold, published before."""
    segment, index = parse_record_id(record_id)
    log_path, heads_path = directory / f"{segment}{LOG_SUFFIX}", directory / f"{segment}{HEADS_SUFFIX}"
    if not log_path.exists() or not heads_path.exists():
        raise BadInput(
            f"record {record_id}: no segment {segment} in {directory} (`sovereign audit show` lists them)"
        )
    heads = signed_heads(directory, segment)
    lines = Lines.read(log_path).complete
    if not heads or index >= heads[-1].size or index >= len(lines):
        raise BadInput(
            f"record {record_id} is not covered by a signed head yet (they cover "
            f"{heads[-1].size if heads else 0} of {len(lines)} records): prove it once the writer signs "
            "its next head"
        )
    head = heads[-1] if head_seq is None else next((h for h in heads if h.seq == head_seq), None)
    if head is None:
        raise BadInput(
            f"--head {head_seq}: segment {segment} has signed heads 0..{heads[-1].seq} "
            "(`sovereign audit heads` lists them)"
        )
    if index >= head.size:
        first = next(h.seq for h in heads if h.size > index)
        raise BadInput(
            f"record {record_id} is not in signed head {head.seq} (it covers {head.size} records): "
            f"prove it against head {first} or a later one"
        )
    tree = LeafHashes(leaf_hash(line) for line in lines[: head.size])
    proof = RecordProof(
        record_id=record_id,
        line=lines[index].decode(),
        index=index,
        head=head,
        proof=tree.prove_inclusion(index + 1, head.size).serialize(),
    )
    try:
        _check_path(proof)
    except ProofInvalid:
        raise SovereignError(
            f"record {record_id} does not match the signed head of its segment: `sovereign audit verify "
            f"{directory}` says what was changed"
        ) from None
    return proof


def check_proof(document: dict[str, Any], public_key: Ed25519PublicKey) -> DecisionRecord:
    """The proven record once the head's signature and the inclusion path check out; ProofInvalid naming
    what fails otherwise."""
    try:
        proof = RecordProof.model_validate(document)
    except ValidationError as exc:
        raise ProofInvalid(f"not an audit inclusion proof: {exc.errors()[0]['msg']}") from None
    head = proof.head
    if head.key_id != key_id(public_key):
        raise ProofInvalid(f"the head was signed by key {head.key_id[:16]}…, not by the given public key")
    if not signature_valid(public_key, head.message(), head.signature):
        raise ProofInvalid("the head's signature does not verify: the head was changed after signing")
    if proof.record_id != f"{head.segment}:{proof.index}":
        raise ProofInvalid(f"record id {proof.record_id} is not record {proof.index} of the head's segment")
    _check_path(proof)
    parsed = parse_record(proof.line.encode())
    if parsed is None or parsed[0] != proof.index:
        raise ProofInvalid(f"the proven line is not record {proof.index} of a decision log")
    return parsed[1]


def _check_path(proof: RecordProof) -> None:
    try:
        path = InclusionProof.deserialize(proof.proof)
        verify_inclusion(
            leaf_hash(proof.line.encode()),
            bytes.fromhex(proof.head.root),
            path,
            index=proof.index + 1,
            size=proof.head.size,
            algorithm=ALGORITHM,
        )
    except InvalidProof as exc:
        raise ProofInvalid(f"the record is not included in the signed head: {exc}") from None
