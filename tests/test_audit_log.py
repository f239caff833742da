"""The decision log (sovereign/audit): what a writer leaves on disk verifies, and any single edit, insertion,
deletion, reordering or truncation of a segment is detected and named, record and kind; a crash leaves a
sealed part that verifies and an unsealed tail that is reported; proofs check with the public key alone."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sovereign import toolchain
from sovereign.audit import (
    AuditLogClosed,
    DecisionLog,
    DecisionRecord,
    Kind,
    Point,
    ProofInvalid,
    SegmentReport,
    check_proof,
    input_digest,
    prove,
    record_of,
    verify_log,
    verify_segment,
)
from sovereign.audit.index import INDEX_FILE
from sovereign.audit.segment import HEADS_SUFFIX, LOG_SUFFIX, genesis, record_line
from sovereign.audit.tree import leaf_hash
from sovereign.audit.writer import close_on_signals
from sovereign.policy.judgement import Judgement

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()
T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
# Each tamper kind runs this many generated cases (the issue asks for at least 1,000).
CASES = 1_000
PROPERTY = settings(
    max_examples=CASES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
# The CASES runs are marked slow (10-30 s of CPU each, hypothesis and one verification per case): `make
# test` runs them; `make test-fast` keeps the fixed tamperings (heads, a segment, the index, a signature).


def decision(number: int, **changes: object) -> DecisionRecord:
    fields: dict[str, object] = {
        "time": T0 + timedelta(seconds=number),
        "point": Point.SERVING if number % 3 else Point.ADMISSION,
        "region": "eu-sovereign" if number % 2 else "us-defense",
        "cluster": f"cluster-{number % 4}",
        "subject": f"req-{number}",
        "tenant": "team-a",
        "input_digest": input_digest({"n": number}),
        "allow": number % 5 != 0,
        "verdict": "allowed" if number % 5 else "denied",
        "codes": () if number % 5 else ("EXPORT_DENIED",),
        "obligations": ("BUILT_WITH_LLAMA",),
        "policy_revision": "rev-1",
        "engine": "wasm",
    }
    return DecisionRecord.model_validate({**fields, **changes})


def write_segment(directory: Path, count: int, checkpoints: tuple[int, ...] = ()) -> DecisionLog:
    """A cleanly closed segment of `count` records, with a signed head after each record count in
    `checkpoints` (and the final head)."""
    with DecisionLog.open(directory, "test", key=KEY, head_interval=3600) as log:
        for number in range(count):
            log.append(decision(number))
            if number + 1 in checkpoints:
                log.checkpoint()
    return log


@dataclass(frozen=True)
class Sample:
    segment: str
    lines: tuple[bytes, ...]  # the record lines, without newlines
    heads: bytes  # the heads file as written

    @property
    def log(self) -> bytes:
        return b"".join(line + b"\n" for line in self.lines)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    """Closed segments of 1 to 30 records with signed heads at different points: a few edge cases, then
    enough that single deletions alone come to over 1,000 cases."""
    layouts = [(1, ()), (2, (1,)), (3, ()), (7, (2, 5)), (12, (12,)), (25, (4, 9, 16, 24))]
    rng = random.Random(15)
    layouts += [
        (count, tuple(sorted(rng.sample(range(1, count + 1), rng.randint(0, 4))))) for count in range(20, 58)
    ]
    made = []
    for count, checkpoints in layouts:
        folder = tmp_path_factory.mktemp("sample")
        log = write_segment(folder, count, checkpoints)
        lines = tuple(log.path.read_bytes().split(b"\n")[:-1])
        made.append(Sample(log.segment, lines, log.heads_path.read_bytes()))
    return made


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tampered")


def verify_tampered(scratch: Path, sample: Sample, log: bytes) -> SegmentReport:
    for path in scratch.iterdir():
        path.unlink()
    (scratch / f"{sample.segment}{LOG_SUFFIX}").write_bytes(log)
    (scratch / f"{sample.segment}{HEADS_SUFFIX}").write_bytes(sample.heads)
    return verify_segment(scratch, sample.segment, PUBLIC)


def joined(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


@pytest.mark.slow
def test_untouched_samples_verify(samples: list[Sample], scratch: Path) -> None:
    for sample in samples:
        report = verify_tampered(scratch, sample, sample.log)
        assert report.ok and report.status == "ok", report
        assert report.records == report.sealed == len(sample.lines) and report.closed


@pytest.mark.slow
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    count=st.integers(0, 40),
    checkpoints=st.lists(st.integers(1, 40), max_size=5).map(tuple),
)
def test_logs_as_written_verify(
    tmp_path_factory: pytest.TempPathFactory, count: int, checkpoints: tuple[int, ...]
) -> None:
    folder = tmp_path_factory.mktemp("written")
    log = write_segment(folder, count, checkpoints)
    report = verify_log(folder, PUBLIC)
    assert [s.segment for s in report.segments] == [log.segment]
    (only,) = report.segments
    assert only.ok and only.status == "ok" and only.records == count
    assert only.heads == 2 + len({c for c in checkpoints if c <= count and c > 0})


# --- single edits ---------------------------------------------------------------------------------------


def _changed_value(draw: st.DrawFn, value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return draw(st.integers(-3, 60).filter(lambda v: v != value))
    if isinstance(value, list):
        return draw(st.sampled_from([[*value, "FORGED"], value[1:], ["OTHER"]]).filter(lambda v: v != value))
    return draw(st.text(min_size=0, max_size=12).filter(lambda v: v != value) | st.none())


@st.composite
def edits(draw: st.DrawFn, samples: list[Sample]) -> tuple[Sample, int, bytes]:
    sample = draw(st.sampled_from(samples))
    index = draw(st.integers(0, len(sample.lines) - 1))
    line = sample.lines[index]
    if draw(st.booleans()):  # a field's value changed, the line re-encoded as the writer would
        doc = json.loads(line)
        key = draw(st.sampled_from(sorted(doc)))
        doc[key] = _changed_value(draw, doc[key])
        edited = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    else:  # one byte overwritten (never with a newline: that would split the line)
        at = draw(st.integers(0, len(line) - 1))
        byte = draw(st.integers(0, 255).filter(lambda b: b not in (line[at], ord("\n"))))
        edited = line[:at] + bytes([byte]) + line[at + 1 :]
    if edited == line:
        edited += b" "
    return sample, index, edited


@pytest.mark.slow
def test_any_single_edit_is_named(samples: list[Sample], scratch: Path) -> None:
    ran: list[None] = []

    @PROPERTY
    @given(edits(samples))
    def check(case: tuple[Sample, int, bytes]) -> None:
        ran.append(None)
        sample, index, edited = case
        lines = list(sample.lines)
        lines[index] = edited
        finding = verify_tampered(scratch, sample, joined(lines)).finding
        assert finding is not None
        assert (finding.kind, finding.record, finding.line) == (Kind.EDITED, index, index + 1), finding

    check()
    assert len(ran) >= CASES  # every generated case ran, none was skipped or deduplicated away


# --- single insertions ----------------------------------------------------------------------------------


@st.composite
def insertions(draw: st.DrawFn, samples: list[Sample]) -> tuple[Sample, int, bytes]:
    sample = draw(st.sampled_from(samples))
    at = draw(st.integers(0, len(sample.lines)))
    kind = draw(st.sampled_from(["copy", "forged-in-chain", "forged"]))
    if kind == "copy":
        return sample, at, draw(st.sampled_from(sample.lines))
    # A forged record: as the writer would make it at this position (the chain computed, as anyone can)...
    prev = leaf_hash(sample.lines[at - 1]).hex() if at else genesis(sample.segment)
    seq = at
    if kind == "forged":  # ...or with any seq and prev a forger might pick
        seq = draw(st.integers(0, len(sample.lines) + 2))
        prev = draw(
            st.sampled_from(
                [prev, genesis(sample.segment), "0" * 64, *(leaf_hash(x).hex() for x in sample.lines)]
            )
        )
    return sample, at, record_line(decision(draw(st.integers(100, 200)), allow=True), seq, prev)


@pytest.mark.slow
def test_any_single_insertion_is_named(samples: list[Sample], scratch: Path) -> None:
    ran: list[None] = []

    @PROPERTY
    @given(insertions(samples))
    def check(case: tuple[Sample, int, bytes]) -> None:
        ran.append(None)
        sample, at, inserted = case
        lines = list(sample.lines)
        lines.insert(at, inserted)
        finding = verify_tampered(scratch, sample, joined(lines)).finding
        assert finding is not None and finding.kind is Kind.INSERTED, finding
        # The named line is the inserted one (or an identical copy of it right beside it).
        assert finding.record is not None and lines[finding.record] == inserted, finding
        assert abs(finding.record - at) <= 1 and finding.line == finding.record + 1

    check()
    assert len(ran) >= CASES  # every generated case ran, none was skipped or deduplicated away


# --- single deletions -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_single_deletion_is_named(samples: list[Sample], scratch: Path) -> None:
    """Every record of every sample deleted in turn: exhaustive rather than drawn, and over 1,000 cases."""
    cases = 0
    for sample in samples:
        for index in range(len(sample.lines)):
            lines = list(sample.lines)
            del lines[index]
            finding = verify_tampered(scratch, sample, joined(lines)).finding
            assert finding is not None, (sample.segment, index)
            # Deleting the last record leaves what truncating it leaves: the same bytes, named a truncation.
            kind = Kind.TRUNCATED if index == len(sample.lines) - 1 else Kind.DELETED
            assert (finding.kind, finding.record, finding.line) == (kind, index, index + 1), finding
            cases += 1
    assert cases >= CASES


# --- single reorderings ---------------------------------------------------------------------------------


@st.composite
def reorderings(draw: st.DrawFn, samples: list[Sample]) -> tuple[Sample, list[bytes]]:
    sample = draw(st.sampled_from(samples))
    first = draw(st.integers(0, len(sample.lines) - 2))
    second = draw(st.integers(first + 1, len(sample.lines) - 1))
    lines = list(sample.lines)
    how = draw(st.sampled_from(["swap", "move-later", "move-earlier"]))
    if how == "swap":
        lines[first], lines[second] = lines[second], lines[first]
    elif how == "move-later":
        lines.insert(second, lines.pop(first))
    else:
        lines.insert(first, lines.pop(second))
    return sample, lines


@pytest.mark.slow
def test_any_single_reordering_is_named(samples: list[Sample], scratch: Path) -> None:
    ran: list[None] = []

    @PROPERTY
    @given(reorderings([s for s in samples if len(s.lines) >= 2]))
    def check(case: tuple[Sample, list[bytes]]) -> None:
        ran.append(None)
        sample, lines = case
        first_moved = next(i for i, (a, b) in enumerate(zip(lines, sample.lines, strict=True)) if a != b)
        finding = verify_tampered(scratch, sample, joined(lines)).finding
        assert finding is not None
        assert (finding.kind, finding.record) == (Kind.REORDERED, first_moved), finding

    check()
    assert len(ran) >= CASES  # every generated case ran, none was skipped or deduplicated away


# --- truncations ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_any_truncation_is_named(samples: list[Sample], scratch: Path) -> None:
    ran: list[None] = []

    @PROPERTY
    @given(st.sampled_from(samples).flatmap(lambda s: st.tuples(st.just(s), st.integers(0, len(s.log) - 1))))
    def check(case: tuple[Sample, int]) -> None:
        ran.append(None)
        sample, length = case
        cut = sample.log[:length]
        kept = cut.count(b"\n")
        finding = verify_tampered(scratch, sample, cut).finding
        assert finding is not None
        assert (finding.kind, finding.record) == (Kind.TRUNCATED, kept), finding
        assert ("torn" in finding.detail) == (not cut.endswith(b"\n") and cut != b"")

    check()
    assert len(ran) >= CASES  # every generated case ran, none was skipped or deduplicated away


# --- beyond the records: heads, what follows the final head, keys ----------------------------------------


def test_records_after_the_final_head_are_inserted(samples: list[Sample], scratch: Path) -> None:
    sample = samples[3]
    extra = record_line(decision(99), len(sample.lines), leaf_hash(sample.lines[-1]).hex())
    finding = verify_tampered(scratch, sample, sample.log + extra + b"\n").finding
    assert finding is not None and (finding.kind, finding.record) == (Kind.INSERTED, len(sample.lines))
    finding = verify_tampered(scratch, sample, sample.log + b'{"seq"').finding
    assert finding is not None and finding.kind is Kind.INSERTED and "bytes after" in finding.detail


def _heads_lines(sample: Sample) -> list[bytes]:
    return sample.heads.split(b"\n")[:-1]


@pytest.mark.parametrize(
    ("tamper", "kind", "line"),
    [
        (lambda heads: [heads[0], heads[1].replace(b'"size":2', b'"size":1'), *heads[2:]], Kind.EDITED, 2),
        (lambda heads: [heads[0], *heads[2:]], Kind.DELETED, 2),
        (lambda heads: [heads[0], heads[2], heads[1], *heads[3:]], Kind.REORDERED, 2),
        (lambda heads: [*heads, heads[1]], Kind.INSERTED, 5),
    ],
    ids=["edited", "deleted", "reordered", "repeated"],
)
def test_tampered_heads_are_named(
    samples: list[Sample], scratch: Path, tamper: Callable[[list[bytes]], list[bytes]], kind: Kind, line: int
) -> None:
    sample = samples[3]  # heads: 0 (size 0), 1 (size 2), 2 (size 5), final (size 7)
    assert len(_heads_lines(sample)) == 4
    verify_tampered(scratch, sample, sample.log)
    (scratch / f"{sample.segment}{HEADS_SUFFIX}").write_bytes(joined(tamper(_heads_lines(sample))))
    finding = verify_segment(scratch, sample.segment, PUBLIC).finding
    assert finding is not None and finding.record is None
    assert (finding.kind, finding.line) == (kind, line), finding


@st.composite
def heads_tamperings(draw: st.DrawFn, samples: list[Sample]) -> tuple[Sample, bytes]:
    """One edit, insertion, deletion, reordering or truncation of a segment's heads file (never a no-op)."""
    sample = draw(st.sampled_from(samples))
    heads = _heads_lines(sample)
    how = draw(st.sampled_from(["edit", "insert", "delete", "reorder", "truncate"]))
    if how == "edit":
        at = draw(st.integers(0, len(sample.heads) - 2))  # any byte but the last newline
        byte = draw(st.integers(0, 255).filter(lambda b: b not in (sample.heads[at], ord("\n"))))
        return sample, sample.heads[:at] + bytes([byte]) + sample.heads[at + 1 :]
    if how == "insert":
        foreign = _heads_lines(draw(st.sampled_from(samples)))  # another segment's heads, or this one's
        line = draw(st.sampled_from([*heads, *foreign, b"{}", b"not a head"]))
        heads.insert(draw(st.integers(0, len(heads))), line)
    elif how == "delete":
        del heads[draw(st.integers(0, len(heads) - 1))]
    elif how == "reorder":
        first = draw(st.integers(0, len(heads) - 2))
        second = draw(st.integers(first + 1, len(heads) - 1))
        if draw(st.booleans()):
            heads.insert(second, heads.pop(first))
        else:
            heads.insert(first, heads.pop(second))
    else:
        return sample, sample.heads[: draw(st.integers(0, len(sample.heads) - 1))]
    return sample, joined(heads)


@pytest.mark.slow
def test_any_single_change_to_the_heads_file_is_detected(samples: list[Sample], scratch: Path) -> None:
    """Found and named as tampered, but for a cut that keeps a prefix of the heads, which a crash leaves
    too: that one is reported unsealed (only a head published elsewhere tells the two apart)."""
    ran: list[None] = []

    @PROPERTY
    @given(heads_tamperings([s for s in samples if len(_heads_lines(s)) >= 2]))
    def check(case: tuple[Sample, bytes]) -> None:
        ran.append(None)
        sample, heads = case
        assert heads != sample.heads
        verify_tampered(scratch, sample, sample.log)
        (scratch / f"{sample.segment}{HEADS_SUFFIX}").write_bytes(heads)
        report = verify_segment(scratch, sample.segment, PUBLIC)
        assert report.status != "ok", (heads, report)
        crash_like = sample.heads.startswith(heads) and heads.count(b"\n") >= 1
        if not crash_like:
            assert report.finding is not None, (heads, report)

    check()
    assert len(ran) >= CASES  # every generated case ran, none was skipped or deduplicated away


def test_a_missing_heads_file_is_a_deletion(samples: list[Sample], scratch: Path) -> None:
    sample = samples[3]
    verify_tampered(scratch, sample, sample.log)
    (scratch / f"{sample.segment}{HEADS_SUFFIX}").unlink()
    report = verify_log(scratch, PUBLIC)
    (segment,) = report.segments
    assert not report.ok and segment.finding is not None and segment.finding.kind is Kind.DELETED


def test_dropping_the_final_head_leaves_an_unsealed_tail_not_a_clean_log(
    samples: list[Sample], scratch: Path
) -> None:
    """Indistinguishable from a crash without a head published elsewhere: reported, never passed as clean."""
    sample = samples[3]
    verify_tampered(scratch, sample, sample.log)
    (scratch / f"{sample.segment}{HEADS_SUFFIX}").write_bytes(joined(_heads_lines(sample)[:-1]))
    report = verify_segment(scratch, sample.segment, PUBLIC)
    assert report.ok and report.status == "unsealed" and not report.closed
    assert report.sealed == 5 and any("unsealed: 2 records" in w for w in report.warnings)


def test_a_signature_in_another_base64_spelling_is_an_edit(samples: list[Sample], scratch: Path) -> None:
    """The last character of an Ed25519 signature's base64 has unused bits: 15 other characters decode to
    the same signature. Only what the writer wrote passes."""
    sample = samples[3]
    heads = _heads_lines(sample)
    head = json.loads(heads[1])
    signature = head["signature"]
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    respelled = [
        spelled
        for char in alphabet.decode()
        if (spelled := signature[:-3] + char + signature[-2:]) != signature
        and base64.b64decode(spelled) == base64.b64decode(signature)
    ]
    assert len(respelled) == 15
    for spelled in respelled:
        verify_tampered(scratch, sample, sample.log)
        edited = heads[1].replace(signature.encode(), spelled.encode())
        (scratch / f"{sample.segment}{HEADS_SUFFIX}").write_bytes(joined([heads[0], edited, *heads[2:]]))
        finding = verify_segment(scratch, sample.segment, PUBLIC).finding
        assert finding is not None and (finding.kind, finding.line) == (Kind.EDITED, 2), finding


def test_another_key_is_named(samples: list[Sample], scratch: Path) -> None:
    sample = samples[0]
    verify_tampered(scratch, sample, sample.log)
    finding = verify_segment(scratch, sample.segment, Ed25519PrivateKey.generate().public_key()).finding
    assert finding is not None and "not by the given public key" in finding.detail


# --- the segment index: whole segments deleted or added ----------------------------------------------


def _three_segments(folder: Path) -> list[DecisionLog]:
    logs = []
    for number in range(3):
        with DecisionLog.open(folder, f"writer{number}", key=KEY, head_interval=3600) as log:
            log.append(decision(number))
        logs.append(log)
    return logs


def test_a_whole_segment_deleted_is_reported_by_the_signed_index(tmp_path: Path) -> None:
    logs = _three_segments(tmp_path)
    assert verify_log(tmp_path, PUBLIC).ok
    gone = logs[1]
    gone.path.unlink()
    gone.heads_path.unlink()
    report = verify_log(tmp_path, PUBLIC)
    assert not report.ok and all(segment.ok for segment in report.segments)  # each left verifies alone
    assert report.index is not None
    assert (report.index.kind, report.index.file.name, report.index.line) == (Kind.DELETED, INDEX_FILE, 2)
    assert gone.segment in report.index.detail
    # A pack of some segments on purpose (an evidence pack's region) misses none.
    assert verify_log(tmp_path, PUBLIC, subset=True).ok


def test_a_segment_not_in_the_index_is_reported_inserted(tmp_path: Path) -> None:
    _three_segments(tmp_path / "here")
    (elsewhere,) = _three_segments(tmp_path / "elsewhere")[:1]  # the same key, another folder
    for path in (elsewhere.path, elsewhere.heads_path):
        (tmp_path / "here" / path.name).write_bytes(path.read_bytes())
    for subset in (False, True):
        report = verify_log(tmp_path / "here", PUBLIC, subset=subset)
        assert report.index is not None and report.index.kind is Kind.INSERTED
        assert elsewhere.segment in report.index.detail


@pytest.mark.parametrize(
    ("tamper", "kind", "line"),
    [
        (lambda lines: [lines[0], *lines[2:]], Kind.DELETED, 2),
        (lambda lines: [lines[1], lines[0], lines[2]], Kind.REORDERED, 1),
        (lambda lines: [*lines, lines[0]], Kind.INSERTED, 4),
        (lambda lines: [lines[0], lines[1].replace(b'"seq":1', b'"seq":7'), lines[2]], Kind.EDITED, 2),
        (lambda lines: [], Kind.DELETED, 1),
    ],
    ids=["deleted", "reordered", "repeated", "edited", "emptied"],
)
def test_the_index_itself_tampered_is_named(
    tmp_path: Path, tamper: Callable[[list[bytes]], list[bytes]], kind: Kind, line: int
) -> None:
    _three_segments(tmp_path)
    index = tmp_path / INDEX_FILE
    index.write_bytes(joined(tamper(index.read_bytes().split(b"\n")[:-1])))
    report = verify_log(tmp_path, PUBLIC)
    assert report.index is not None and (report.index.kind, report.index.line) == (kind, line), report.index


# --- the writer: threads, processes, crashes, forks -----------------------------------------------------


def test_concurrent_appends_from_threads_all_land_once(tmp_path: Path) -> None:
    log = DecisionLog.open(tmp_path, "threads", key=KEY, head_interval=0.01)
    threads = [
        threading.Thread(target=lambda t=t: [log.append(decision(t * 1000 + i)) for i in range(250)])
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    heads = [log.checkpoint() for _ in range(5)]
    for thread in threads:
        thread.join()
    log.close()
    assert [h.size for h in heads] == sorted(h.size for h in heads)
    (report,) = verify_log(tmp_path, PUBLIC).segments
    assert report.ok and report.status == "ok" and report.records == 2000
    subjects = [json.loads(line)["subject"] for line in log.path.read_bytes().splitlines()]
    assert sorted(subjects) == sorted(f"req-{t * 1000 + i}" for t in range(8) for i in range(250))
    with pytest.raises(AuditLogClosed):
        log.append(decision(1))


WRITER = """
import os, sys, time
from pathlib import Path
from sovereign.audit import DecisionLog, DecisionRecord
from sovereign.audit.writer import close_on_signals
record = DecisionRecord.model_validate_json(sys.argv[2])
log = DecisionLog.open(Path(sys.argv[1]), "proc", head_interval=3600)
mode = sys.argv[3]
if mode.startswith("SIG"):
    close_on_signals()
for _ in range(30):
    log.append(record)
if mode == "clean":
    sys.exit(0)  # no close(): the final head is written at interpreter exit
log.checkpoint()
for _ in range(20):
    log.append(record)
log.flush()
print(os.getpid(), flush=True)
while True:
    log.append(record)
"""


def _writer(tmp_path: Path, folder: Path, mode: str) -> subprocess.Popen[str]:
    key = tmp_path / "audit.key"
    if not key.exists():
        pem = KEY.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key.write_bytes(pem)
        key.chmod(0o600)
    env = {**os.environ, "SOVEREIGN_AUDIT_KEY": str(key), "PYTHONPATH": str(toolchain.REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder), decision(1).model_dump_json(), mode],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_closing_on_signals_is_installed_only_from_the_main_thread() -> None:
    """A module that asks for it at import may be imported by a Pulumi language host's worker thread,
    where Python refuses signal handlers: there it installs nothing, and the process keeps its handlers."""
    before = signal.getsignal(signal.SIGTERM)
    failed: list[BaseException] = []

    def in_a_thread() -> None:
        try:
            close_on_signals()
        except BaseException as exc:
            failed.append(exc)

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join()
    assert failed == [] and signal.getsignal(signal.SIGTERM) is before


def test_heads_are_signed_at_the_interval_while_records_arrive(tmp_path: Path) -> None:
    log = DecisionLog.open(tmp_path, "interval", key=KEY, head_interval=0.05)

    def sizes() -> list[int]:
        return [json.loads(line)["size"] for line in log.heads_path.read_bytes().splitlines()]

    for number in range(3):
        log.append(decision(number))
        deadline = time.monotonic() + 10
        while sizes()[-1] != number + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    idle = sizes()
    time.sleep(0.2)  # no new records: no new heads
    assert sizes() == idle == [0, 1, 2, 3]
    log.close()
    (report,) = verify_log(tmp_path, PUBLIC).segments
    assert report.ok and report.heads == 5 and report.closed


@pytest.mark.slow
def test_two_processes_write_two_segments(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    writers = [_writer(tmp_path, folder, "clean") for _ in range(2)]
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    report = verify_log(folder, PUBLIC)
    assert report.ok and len(report.segments) == 2
    assert {s.segment.split("-")[2] for s in report.segments} == {str(w.pid) for w in writers}
    assert all(s.records == 30 and s.status == "ok" for s in report.segments)


def test_a_killed_writer_leaves_a_sealed_part_that_verifies_and_a_reported_tail(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    writer = _writer(tmp_path, folder, "crash")
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == str(writer.pid)  # 30 sealed, 20 more fsynced, appending on
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    (report,) = verify_log(folder, PUBLIC).segments
    assert report.ok and report.status == "unsealed" and not report.closed
    assert report.sealed == 30 and report.records >= 50
    assert any(
        f"unsealed: {report.records - 30} records after the last signed head" in w for w in report.warnings
    )
    # A write cut short by the crash: a torn last line is reported too, and the rest still verifies.
    log = next(folder.glob(f"*{LOG_SUFFIX}"))
    with log.open("ab") as handle:
        handle.write(b'{"allow":tr')
    (report,) = verify_log(folder, PUBLIC).segments
    assert report.ok and any("torn last line" in w for w in report.warnings)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_writer_stopped_by_a_signal_closes_its_segment_when_asked_to(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """What a Pulumi plugin gets before it is killed (the preview's segment, infra/decisions.py)."""
    folder = tmp_path / "audit"
    writer = _writer(tmp_path, folder, stop.name)
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == str(writer.pid)  # appending on
    os.kill(writer.pid, stop)
    # The signal still does what it did: SIGTERM ends the process, SIGINT's KeyboardInterrupt too (an
    # uncaught one ends Python by SIGINT).
    assert writer.wait(timeout=30) == -stop
    (report,) = verify_log(folder, PUBLIC).segments
    assert report.ok and report.status == "ok" and report.closed, report.warnings
    assert report.sealed == report.records >= 50


def test_a_writer_killed_before_any_record_is_reported_unclosed(tmp_path: Path) -> None:
    log = DecisionLog.open(tmp_path, "early", key=KEY)
    heads = log.heads_path.read_bytes()  # what a kill -9 right after open leaves
    log.close()
    log.heads_path.write_bytes(heads)
    (report,) = verify_log(tmp_path, PUBLIC).segments
    assert report.ok and report.status == "unsealed" and (report.records, report.heads) == (0, 1)
    assert report.warnings == ("no final head (writer did not shut down cleanly); all 0 records are sealed",)


def test_a_forked_child_cannot_append_to_its_parents_segment(tmp_path: Path) -> None:
    log = DecisionLog.open(tmp_path, "fork", key=KEY)
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only when append refuses
        try:
            log.append(decision(1))
        except AuditLogClosed:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    log.close()
    assert os.waitstatus_to_exitcode(status) == 0


# --- records and proofs ---------------------------------------------------------------------------------


def test_record_of_a_judgement() -> None:
    inp = {"cluster": {"name": "eu-1", "region": "eu-sovereign"}, "namespace": "team-a", "model": "m"}
    judged = Judgement.of(
        {
            "allow": False,
            "violations": [{"code": "B"}, {"code": "A"}, {"code": "A"}],
            "obligations": [{"code": "O"}],
            "policy_revision": "rev-9",
            "engine": "wasm",
        },
        inp,
    )
    record = record_of(
        judged, point="admission", subject="LlamaDeployment/team-a/chat", weights_digest="f" * 64
    )
    assert (record.region, record.cluster, record.tenant) == ("eu-sovereign", "eu-1", "team-a")
    assert (record.allow, record.verdict, record.codes, record.obligations) == (
        False,
        "denied",
        ("A", "B"),
        ("O",),
    )
    assert record.input_digest == input_digest(
        {"model": "m", "namespace": "team-a", "cluster": inp["cluster"]}
    )
    assert (record.policy_revision, record.engine, record.point) == ("rev-9", "wasm", Point.ADMISSION)
    unjudgeable = record_of(
        Judgement.unjudgeable("ClusterNotFound", "no cluster"), point="reconcile", subject="x"
    )
    assert unjudgeable.input_digest is None and not unjudgeable.allow and unjudgeable.verdict == "unjudgeable"


def test_a_proof_checks_with_the_public_key_alone(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    log = write_segment(folder, 9, (4,))
    document = json.loads(prove(folder, f"{log.segment}:6").model_dump_json())
    for path in folder.iterdir():
        path.unlink()  # the third party has no log
    pem = PUBLIC.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    public = serialization.load_pem_public_key(pem)
    assert isinstance(public, Ed25519PublicKey)
    assert check_proof(document, public).subject == "req-6"

    forged = {**document, "line": document["line"].replace('"subject":"req-6"', '"subject":"req-7"')}
    assert forged != document
    other_head = {**document, "head": {**document["head"], "size": 8}}
    other_path = {
        **document,
        "proof": {**document["proof"], "path": list(reversed(document["proof"]["path"]))},
    }
    other_index = {**document, "index": 5, "record_id": f"{log.segment}:5"}
    for bad in (forged, other_head, other_path, other_index):
        with pytest.raises(ProofInvalid):
            check_proof(bad, public)
    with pytest.raises(ProofInvalid, match="not by the given public key"):
        check_proof(document, Ed25519PrivateKey.generate().public_key())
