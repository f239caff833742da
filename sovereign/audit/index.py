"""The segment index: which segments a log folder holds, in one signed, chained, append-only file.

    segments.index   one line per segment, appended by its writer as it opens the segment (before the
                     segment's first byte): seq (0, 1, 2...), segment, time, prev (SHA-256 of the line
                     before; the first line's is GENESIS), key_id, signature (the audit key's, over the rest)

A segment's own heads say nothing of the segments beside it, so deleting a whole segment (both files)
left nothing to find. `check_index` names a listed segment that is gone and a segment that is not listed;
the chain and the signatures name an index line that was edited, inserted, deleted or moved. Cutting the
index's last lines along with their segments is what no local check can tell from nothing having
happened: publish the index (as the heads) to detect it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, Field, ValidationError

from sovereign.audit import keys
from sovereign.audit.segment import Lines, SignedDocument

INDEX_FILE = "segments.index"
GENESIS = hashlib.sha256(b"sovereign-audit-segment-index/v1 genesis").hexdigest()
_DOMAIN = b"sovereign-audit-segment-index/v1\n"


class IndexEntry(SignedDocument):
    DOMAIN: ClassVar[bytes] = _DOMAIN

    seq: int = Field(ge=0)
    segment: str = Field(min_length=1)
    time: AwareDatetime
    prev: str = Field(pattern=r"^[0-9a-f]{64}$")
    key_id: str


class SignedIndexEntry(IndexEntry):
    signature: str


def register(directory: Path, segment: str, key: Ed25519PrivateKey) -> None:
    """Append `segment` to the folder's index, signed and fsynced; one writer at a time (flock), as the
    writers of a folder are separate processes."""
    fd = os.open(directory / INDEX_FILE, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
    with os.fdopen(fd, "r+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        complete = handle.read().split(b"\n")[:-1]
        entry = IndexEntry(
            seq=len(complete),
            segment=segment,
            time=datetime.now(UTC),
            prev=hashlib.sha256(complete[-1]).hexdigest() if complete else GENESIS,
            key_id=keys.key_id(key.public_key()),
        )
        signed = SignedIndexEntry(**entry.model_dump(), signature=keys.sign(key, entry.message()))
        handle.write(signed.line() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_index(
    path: Path, public_key: Ed25519PublicKey
) -> tuple[dict[str, int], tuple[int, str, str] | None, list[str]]:
    """The listed segments (segment -> 1-based line), the first bad line (line, kind, detail; kind one of
    edited, inserted, deleted, reordered) and warnings."""
    lines = Lines.read(path)
    warnings = (
        ["the index's last line is torn (a writer stopped while writing it): ignored"] if lines.torn else []
    )
    expected_key, listed = keys.key_id(public_key), {}
    prev = GENESIS
    for number, raw in enumerate(lines.complete):
        try:
            entry = SignedIndexEntry.model_validate_json(raw)
        except ValidationError:
            return listed, (number + 1, "edited", "not a signed index line"), warnings
        if entry.key_id != expected_key or not keys.signature_valid(
            public_key, entry.message(), entry.signature
        ):
            return (
                listed,
                (number + 1, "edited", "its signature does not verify with the given key"),
                warnings,
            )
        if entry.seq != number:
            later = {other.seq for other in map(_parsed, lines.complete[number + 1 :]) if other is not None}
            kind = "inserted" if entry.seq < number else "reordered" if number in later else "deleted"
            return listed, (number + 1, kind, f"index line {entry.seq} where line {number} belongs"), warnings
        if entry.prev != prev:
            return listed, (number + 1, "edited", "it does not follow the line before it"), warnings
        if entry.segment in listed:
            return listed, (number + 1, "inserted", f"segment {entry.segment} listed again"), warnings
        listed[entry.segment] = number + 1
        prev = hashlib.sha256(raw).hexdigest()
    return listed, None, warnings


def _parsed(raw: bytes) -> SignedIndexEntry | None:
    try:
        return SignedIndexEntry.model_validate_json(raw)
    except ValidationError:
        return None
