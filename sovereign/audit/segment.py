"""A log segment on disk: one writer process's records and the tree heads it signed over them.

    <segment>.log     one record a line, canonical JSON: the DecisionRecord fields plus `seq` (0, 1, 2...:
                      the record's leaf index) and `prev` (the leaf hash of the record before it; the first
                      record's is `genesis(segment)`)
    <segment>.heads   one signed tree head a line: segment, seq (0, 1, 2...), size (records covered), root,
                      time, final (written by close(): nothing follows), key_id, algorithm, signature

`<segment>` is `<writer>-<host>-<pid>-<UTC start time>`: a process appends to its own segment only, so
segments never interleave. Each line is canonical JSON (sorted keys, no spaces, ASCII) and hashed as the
exact bytes written: a verifier never re-encodes. Head 0 (size 0) is written before any record, so every
log file has a heads file. The tree authenticates the records; `prev` chains each record to the one before
so that a verifier can name the first record that was edited, inserted, deleted or moved, which a root
alone cannot say.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from sovereign.audit.record import DecisionRecord
from sovereign.audit.tree import ALGORITHM

LOG_SUFFIX = ".log"
HEADS_SUFFIX = ".heads"
_HEAD_DOMAIN = b"sovereign-audit-tree-head/v1\n"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


def segment_id(writer: str, pid: int, started: datetime) -> str:
    host = _UNSAFE.sub("_", socket.gethostname()) or "host"
    return f"{_UNSAFE.sub('_', writer) or 'writer'}-{host}-{pid}-{started.strftime('%Y%m%dT%H%M%S%fZ')}"


def genesis(segment: str) -> str:
    """The `prev` of a segment's first record: ties it to its segment, so it cannot open another one."""
    return hashlib.sha256(b"sovereign-audit-genesis/v1\n" + segment.encode()).hexdigest()


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def record_line(record: DecisionRecord, seq: int, prev: str) -> bytes:
    return canonical({**record.model_dump(mode="json"), "seq": seq, "prev": prev})


class SignedDocument(BaseModel):
    """A document the audit key signs, one canonical JSON line in its file (a tree head, an index line)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    # Each kind's own prefix of the signed bytes, so no other signed document can pass as one.
    DOMAIN: ClassVar[bytes]

    def message(self) -> bytes:
        """The bytes the audit key signs: the domain, then the document without its signature."""
        return self.DOMAIN + canonical(self.model_dump(mode="json", exclude={"signature"}))

    def line(self) -> bytes:
        return canonical(self.model_dump(mode="json"))


class TreeHead(SignedDocument):
    DOMAIN: ClassVar[bytes] = _HEAD_DOMAIN

    segment: str
    seq: int = Field(ge=0)
    size: int = Field(ge=0)
    root: str = Field(pattern=r"^[0-9a-f]{64}$")
    time: AwareDatetime
    final: bool
    key_id: str
    algorithm: Literal["sha256"] = ALGORITHM


class SignedHead(TreeHead):
    signature: str


@dataclass(frozen=True)
class Lines:
    """A file's complete lines (without newlines) and what follows the last newline: bytes of a line whose
    write was cut short (empty when the file ends cleanly)."""

    complete: list[bytes]
    torn: bytes

    @classmethod
    def read(cls, path: Path) -> Lines:
        *complete, torn = path.read_bytes().split(b"\n")
        return cls(complete, torn)


def parse_head(line: bytes) -> SignedHead | None:
    try:
        return SignedHead.model_validate_json(line)
    except ValidationError:
        return None


def signed_heads(directory: Path, segment: str) -> list[SignedHead]:
    """The heads of `segment` that parse, in file order, unchecked: verify the segment first to trust them."""
    path = directory / f"{segment}{HEADS_SUFFIX}"
    return [head for head in map(parse_head, Lines.read(path).complete) if head is not None]


@dataclass(frozen=True)
class Entry:
    """One record line as a verifier reads it: its leaf hash and the `seq` and `prev` it claims (None when
    the line is not a record line)."""

    raw: bytes
    hash: bytes
    seq: int | None
    prev: str | None


def chain_fields(line: bytes) -> tuple[int | None, str | None]:
    try:
        doc = json.loads(line.decode())  # decoded first: json.loads would sniff the encoding of bytes
    except ValueError:  # UnicodeDecodeError included
        return None, None
    if not isinstance(doc, dict):
        return None, None
    seq, prev = doc.get("seq"), doc.get("prev")
    if type(seq) is not int or not isinstance(prev, str):
        return None, None
    return seq, prev


def parse_record(line: bytes) -> tuple[int, DecisionRecord] | None:
    """The seq and record of a record line; None when it is not one."""
    try:
        doc = json.loads(line)
        seq = doc.pop("seq")
        doc.pop("prev")
        return int(seq), DecisionRecord.model_validate(doc)
    except (ValueError, KeyError, TypeError, AttributeError, ValidationError):
        return None


def segments_in(directory: Path) -> list[str]:
    """Every segment with a log or a heads file in `directory`, sorted."""
    return sorted({path.stem for path in directory.iterdir() if path.suffix in (LOG_SUFFIX, HEADS_SUFFIX)})
