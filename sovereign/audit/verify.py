"""Verify log segments: every signed head's signature and sequence, every record's inclusion in the last
signed head, consistency between successive heads, and, when something does not hold, the first bad
record and what was done to it (edited, inserted, deleted, reordered, truncated). `verify_log` also checks
the folder's signed segment index (index.py) against the segments there: one deleted whole, or added.

What a crash leaves is reported, not refused: records fsynced after the last signed head (unsealed: the
writer did not shut down cleanly) and a torn last line. Neither can be authenticated, so a segment whose
final head (written by close()) is present admits neither: anything after it was added.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pymerkle import InvalidChallenge, InvalidProof, verify_consistency

from sovereign.audit.index import INDEX_FILE, read_index
from sovereign.audit.keys import key_id, signature_valid
from sovereign.audit.segment import (
    HEADS_SUFFIX,
    LOG_SUFFIX,
    Entry,
    Lines,
    SignedHead,
    chain_fields,
    genesis,
    parse_head,
    segments_in,
)
from sovereign.audit.tree import ALGORITHM, LeafHashes, leaf_hash


class Kind(StrEnum):
    EDITED = "edited"
    INSERTED = "inserted"
    DELETED = "deleted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"


@dataclass(frozen=True)
class Finding:
    kind: Kind
    file: Path
    line: int  # 1-based; for missing records, the line where they belong
    record: int | None  # the record's index in the segment; None when a signed head is at fault
    detail: str

    def describe(self) -> str:
        if self.file.name == INDEX_FILE:
            what = "segment index"
        else:
            what = f"record {self.record}" if self.record is not None else "signed heads"
        return f"{what} ({self.file.name} line {self.line}): {self.kind}: {self.detail}"


@dataclass(frozen=True)
class SegmentReport:
    segment: str
    records: int  # complete record lines in the log file
    sealed: int  # records covered by the last signed head
    heads: int
    closed: bool  # the final head is there: the writer shut down cleanly
    finding: Finding | None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.finding is None

    @property
    def status(self) -> str:
        if self.finding is not None:
            return "tampered"
        return "ok" if self.closed and not self.warnings else "unsealed"

    def to_json(self) -> dict[str, Any]:
        finding = self.finding
        return {
            "segment": self.segment,
            "status": self.status,
            "records": self.records,
            "sealed": self.sealed,
            "heads": self.heads,
            "closed": self.closed,
            "finding": None
            if finding is None
            else {
                "kind": finding.kind.value,
                "file": str(finding.file),
                "line": finding.line,
                "record": finding.record,
                "detail": finding.detail,
            },
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class LogReport:
    directory: Path
    segments: list[SegmentReport]
    index: Finding | None = None  # the segment index's: a segment gone or unlisted, or the index tampered
    index_warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.index is None and all(segment.ok for segment in self.segments)


def verify_log(directory: Path, public_key: Ed25519PublicKey, *, subset: bool = False) -> LogReport:
    """Every segment in `directory`, and the segment index against them. `subset`: the folder holds some
    of the index's segments on purpose (an evidence pack's region), so a listed one absent is no finding;
    an unlisted one still is."""
    present = segments_in(directory)
    finding, warnings = _index_finding(directory, public_key, present, subset)
    return LogReport(
        directory,
        [verify_segment(directory, name, public_key) for name in present],
        finding,
        tuple(warnings),
    )


def _index_finding(
    directory: Path, public_key: Ed25519PublicKey, present: list[str], subset: bool
) -> tuple[Finding | None, list[str]]:
    path = directory / INDEX_FILE
    if not path.exists():
        if not present:
            return None, []
        return _head_finding(Kind.DELETED, path, 1, "the segment index is missing"), []
    listed, problem, warnings = read_index(path, public_key)
    if problem is not None:
        line, kind, detail = problem
        return _head_finding(Kind(kind), path, line, detail), warnings
    if present and not listed:
        return _head_finding(
            Kind.DELETED, path, 1, f"the index lists no segment, yet {len(present)} are here: it was emptied"
        ), warnings
    for segment in present:
        if segment not in listed:
            return _head_finding(
                Kind.INSERTED,
                path,
                len(listed) + 1,
                f"segment {segment} is not in the signed index (every writer lists its segment first)",
            ), warnings
    if not subset:
        for segment, line in sorted(listed.items(), key=lambda item: item[1]):
            if segment not in present:
                return _head_finding(
                    Kind.DELETED,
                    path,
                    line,
                    f"segment {segment} is listed but neither of its files is here: it was deleted",
                ), warnings
    return None, warnings


def verify_segment(directory: Path, segment: str, public_key: Ed25519PublicKey) -> SegmentReport:
    heads_path, log_path = directory / f"{segment}{HEADS_SUFFIX}", directory / f"{segment}{LOG_SUFFIX}"
    heads, finding, warnings = _signed_heads(heads_path, segment, public_key)
    if finding is not None:  # also when there is no head at all
        return SegmentReport(segment, _count_lines(log_path), 0, len(heads), False, finding, tuple(warnings))
    last = heads[-1]
    if not log_path.exists():
        if last.size:
            finding = Finding(
                Kind.TRUNCATED,
                log_path,
                1,
                0,
                f"the log file is missing; signed head {last.seq} covers {last.size} records",
            )
        else:
            warnings.append("no log file: the writer stopped before its first record")
        return SegmentReport(segment, 0, last.size, len(heads), last.final, finding, tuple(warnings))
    lines = Lines.read(log_path)
    finding = _RecordCheck(log_path, segment, heads, lines).finding(warnings)
    return SegmentReport(
        segment, len(lines.complete), last.size, len(heads), last.final, finding, tuple(warnings)
    )


def _count_lines(path: Path) -> int:
    return len(Lines.read(path).complete) if path.exists() else 0


def _signed_heads(
    path: Path, segment: str, public_key: Ed25519PublicKey
) -> tuple[list[SignedHead], Finding | None, list[str]]:
    """The heads of a segment, checked one by one: signed by the key, of this segment, numbered 0, 1, 2...,
    nothing after the final one."""
    if not path.exists():
        return (
            [],
            _head_finding(
                Kind.DELETED,
                path,
                1,
                "the heads file is missing (head 0 is written before any record, so it was removed)",
            ),
            [],
        )
    lines = Lines.read(path)
    warnings = (
        ["the last signed head is torn (the writer stopped while writing it): ignored"] if lines.torn else []
    )
    expected_key = key_id(public_key)
    heads: list[SignedHead] = []
    for number, raw in enumerate(lines.complete):
        line = number + 1
        head = parse_head(raw)
        problem: tuple[Kind, str] | None = None
        if head is None:
            problem = Kind.EDITED, "not a signed tree head"
        elif head.key_id != expected_key:
            problem = (
                Kind.EDITED,
                (
                    f"signed by key {head.key_id[:16]}…, not by the given public key {expected_key[:16]}…: "
                    "verify with the public key of the key that wrote it (--key)"
                ),
            )
        elif not signature_valid(public_key, head.message(), head.signature):
            problem = (
                Kind.EDITED,
                f"signed head {head.seq}: the signature does not verify (changed after signing)",
            )
        elif head.segment != segment:
            problem = Kind.INSERTED, f"signed head of segment {head.segment}, not of this one"
        elif heads and heads[-1].final:
            problem = Kind.INSERTED, f"signed head {head.seq} follows the final head"
        elif head.seq != number:
            problem = _misplaced_head(number, head.seq, lines.complete[number + 1 :])
        if problem is not None:
            return heads, _head_finding(problem[0], path, line, problem[1]), warnings
        assert head is not None
        heads.append(head)
    if not heads:
        return (
            [],
            _head_finding(Kind.TRUNCATED, path, 1, "no signed head (head 0 is written first)"),
            warnings,
        )
    return heads, None, warnings


def _misplaced_head(number: int, seq: int, rest: list[bytes]) -> tuple[Kind, str]:
    if seq < number:
        return Kind.INSERTED, f"signed head {seq} again"
    later = {head.seq for head in map(parse_head, rest) if head is not None}
    if number in later:
        return Kind.REORDERED, f"signed head {seq} where head {number} belongs"
    return Kind.DELETED, f"signed heads {number}..{seq - 1} are missing"


def _head_finding(kind: Kind, path: Path, line: int, detail: str) -> Finding:
    return Finding(kind, path, line, None, detail)


class _RecordCheck:
    """The records of one segment against its verified heads."""

    def __init__(self, path: Path, segment: str, heads: list[SignedHead], lines: Lines) -> None:
        self.path = path
        self.segment = segment
        self.heads = heads
        self.last = heads[-1]
        self.torn = lines.torn
        self.entries = [Entry(raw, leaf_hash(raw), *chain_fields(raw)) for raw in lines.complete]
        self.tree = LeafHashes(entry.hash for entry in self.entries)

    def finding(self, warnings: list[str]) -> Finding | None:
        misfit = self._first_misfit()
        if misfit is not None:
            return self._classify(misfit)
        count, sealed = len(self.entries), self.last.size
        if count < sealed:
            torn = " (its last line is torn)" if self.torn else ""
            return self._at(
                Kind.TRUNCATED,
                count,
                f"records {count}..{sealed - 1} are missing: signed head "
                f"{self.last.seq} covers {sealed}, the log ends after {count}{torn}",
            )
        if (problem := self._tree_problem()) is not None:
            return problem
        if count > sealed:
            if self.last.final:
                return self._at(Kind.INSERTED, sealed, "after the final signed head")
            warnings.append(
                f"unsealed: {count - sealed} records after the last signed head (writer did not shut down "
                "cleanly); they are not authenticated"
            )
        elif not self.last.final:
            warnings.append(
                f"no final head (writer did not shut down cleanly); all {count} records are sealed"
            )
        if self.torn:
            if self.last.final:
                return self._at(Kind.INSERTED, count, "bytes after the final signed head")
            warnings.append(f"torn last line (a partial write at line {count + 1}): ignored")
        return None

    def _at(self, kind: Kind, index: int, detail: str) -> Finding:
        return Finding(kind, self.path, index + 1, index, detail)

    def _first_misfit(self) -> int | None:
        """The first record that is not where the chain says: its seq is not its position, or its prev is
        not the leaf hash of the line before it."""
        prev = genesis(self.segment)
        for index, entry in enumerate(self.entries):
            if entry.seq != index or entry.prev != prev:
                return index
            prev = entry.hash.hex()
        return None

    def _tree_problem(self) -> Finding | None:
        """With the chain intact: the records against the last head's root, and every head against the
        one before it (an RFC 9162 consistency proof over the records: what the writer signed only grew)."""
        if self.tree.get_root(self.last.size).hex() != self.last.root:
            return self._unmatched_head()
        for prior, later in pairwise(self.heads):
            if prior.size == 0:
                continue  # the empty tree is a prefix of every tree
            try:
                proof = self.tree.prove_consistency(prior.size, later.size)
                verify_consistency(
                    bytes.fromhex(prior.root),
                    bytes.fromhex(later.root),
                    proof,
                    prior_size=prior.size,
                    later_size=later.size,
                    algorithm=ALGORITHM,
                )
            except (InvalidProof, InvalidChallenge) as exc:  # InvalidChallenge: the later head is smaller
                return _head_finding(
                    Kind.EDITED,
                    self.path.with_suffix(HEADS_SUFFIX),
                    later.seq + 1,
                    f"signed head {later.seq} is not consistent with head {prior.seq} ({exc}): the writer "
                    "rewrote what it had signed",
                )
        return None

    def _unmatched_head(self) -> Finding:
        """The chain holds but a signed root does not: the first head that fails names the records."""
        prior = 0
        for head in self.heads:
            if self.tree.get_root(head.size).hex() != head.root:
                if head.size == len(self.entries):
                    # Every record but the last is vouched for by the next one's prev.
                    return self._at(Kind.EDITED, head.size - 1, f"does not match signed head {head.seq}")
                return self._at(
                    Kind.EDITED,
                    prior,
                    f"records {prior}..{head.size - 1} do not match signed head "
                    f"{head.seq}: they were rewritten along with their chain",
                )
            prior = head.size
        raise AssertionError("called only when the last head does not match")

    def _classify(self, index: int) -> Finding:
        """What was done at the first misfit, for one edit, insertion, deletion, reordering or truncation
        (the first bad record of anything more)."""
        entry, entries = self.entries[index], self.entries
        # Past the final head nothing may follow, unless a record inserted earlier pushed a real one there.
        beyond = self.last.final and index >= self.last.size
        if entry.seq is None or entry.prev is None or entry.seq < 0:
            if beyond:
                return self._at(Kind.INSERTED, index, "after the final signed head")
            return self._at(Kind.EDITED, index, "not a record line")
        expected = entries[index - 1].hash.hex() if index else genesis(self.segment)
        after = entries[index + 1] if index + 1 < len(entries) else None
        real_one_follows = after is not None and after.seq == index and after.prev == expected
        if entry.prev == expected and not beyond:
            if real_one_follows:
                return self._at(
                    Kind.INSERTED, index, f"claims to be record {entry.seq}; record {index} follows"
                )
            return self._at(Kind.EDITED, index, f"its seq says {entry.seq}")
        if entry.seq < index:
            return self._repeated(index)
        if beyond:
            return self._at(Kind.INSERTED, index, "after the final signed head")
        if entry.seq == index:
            return self._broken_link(index, real_one_follows)
        return self._out_of_place(index)

    def _broken_link(self, index: int, real_one_follows: bool) -> Finding:
        """Record `index` is numbered right but does not chain to the record before it."""
        entry, after = self.entries[index], self.entries[index + 1] if index + 1 < len(self.entries) else None
        if real_one_follows:
            return self._at(
                Kind.INSERTED, index, f"a second record {index}, before the one the log goes on from"
            )
        if index == 0:
            return self._at(Kind.EDITED, 0, "its prev is not this segment's genesis")
        if after is not None:
            intact = after.prev == entry.hash.hex()  # the next record vouches for this one
        else:
            # The last record: the signed root says whether its prev names the original of the one before.
            hashes = [e.hash for e in self.entries]
            try:
                hashes[index - 1] = bytes.fromhex(entry.prev or "")
            except ValueError:
                return self._at(Kind.EDITED, index, "its prev is not a leaf hash")
            intact = self._root_matches(hashes)
        if intact:
            return self._at(
                Kind.EDITED,
                index - 1,
                f"record {index} names a different record before it (prev {entry.prev})",
            )
        return self._at(Kind.EDITED, index, f"its prev does not name record {index - 1}")

    def _repeated(self, index: int) -> Finding:
        """Record `index` claims the seq of a record already seen: one of the two was inserted."""
        entry = self.entries[index]
        assert entry.seq is not None
        twin = self.entries[entry.seq]
        if twin.hash != entry.hash:
            vouched = self._vouched()
            entry_known, twin_known = entry.hash.hex() in vouched, twin.hash.hex() in vouched
            without_twin = [e.hash for i, e in enumerate(self.entries) if i != entry.seq]
            if (entry_known and not twin_known) or (
                not entry_known and not twin_known and self._root_matches(without_twin)
            ):
                return self._at(Kind.INSERTED, entry.seq, f"record {entry.seq} is at line {index + 1}")
        return self._at(
            Kind.INSERTED, index, f"a second record {entry.seq} (the first at line {entry.seq + 1})"
        )

    def _out_of_place(self, index: int) -> Finding:
        """Record `index` holds a later seq: records were deleted, moved, or one claiming a later seq was
        inserted."""
        entry = self.entries[index]
        assert entry.seq is not None
        seqs = Counter(e.seq for e in self.entries)
        later = next((i for i in range(index + 1, len(self.entries)) if self.entries[i].seq == index), None)
        if later is None:
            missing = [seq for seq in range(index, entry.seq) if seq not in seqs]
            span = (
                f"record {missing[0]} is" if len(missing) == 1 else f"records {missing[0]}..{missing[-1]} are"
            )
            return self._at(Kind.DELETED, index, f"{span} missing before line {index + 1}")
        last_seq = self.last.size - 1 if self.last.final else max(s for s in seqs if s is not None)
        if (
            seqs[entry.seq] > 1
            or entry.seq > last_seq
            or (entry.seq != last_seq and entry.hash.hex() not in self._vouched())
        ):
            return self._at(Kind.INSERTED, index, f"claims to be record {entry.seq}, which is not this log's")
        return self._at(
            Kind.REORDERED, index, f"holds record {entry.seq}; record {index} is at line {later + 1}"
        )

    def _vouched(self) -> set[str]:
        """Leaf hashes some record names as its predecessor: records of this log."""
        return {entry.prev for entry in self.entries if entry.prev is not None}

    def _root_matches(self, hashes: list[bytes]) -> bool:
        return (
            len(hashes) >= self.last.size
            and LeafHashes(hashes).get_root(self.last.size).hex() == self.last.root
        )
