"""`DecisionLog`: a process's writer of its own log segment, off the request path.

`append` only puts the record on a queue (a few microseconds); one background thread writes what has
queued as a batch, fsyncs it once (group commit), adds the lines to the Merkle tree, and signs a tree head
every `head_interval` seconds when records were added, on `checkpoint()` and on `close()` (also run at
interpreter exit, on the signals `close_on_signals` names, and by a Ray Serve replica's `__del__`). A crash
loses only what was queued or written but not yet fsynced; what was fsynced after the last signed head is
reported by `verify` as unsealed.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, SimpleQueue
from types import FrameType
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovereign.audit import index, keys
from sovereign.audit.location import audit_dir
from sovereign.audit.record import DecisionRecord
from sovereign.audit.segment import (
    HEADS_SUFFIX,
    LOG_SUFFIX,
    SignedHead,
    TreeHead,
    genesis,
    record_line,
    segment_id,
)
from sovereign.audit.tree import LeafHashes
from sovereign.errors import SovereignError

DEFAULT_HEAD_INTERVAL = 5.0  # seconds between signed heads while records arrive


class AuditLogClosed(SovereignError):
    """The log was closed, its writer failed, or this process forked from the one that opened it."""


@dataclass
class _Flush:
    """Queued behind the records to wait for: done once they are fsynced (and a head signed, if `sign`)."""

    sign: bool
    done: threading.Event = field(default_factory=threading.Event)
    head: SignedHead | None = None


_STOP = object()
_open_logs: weakref.WeakSet[DecisionLog] = weakref.WeakSet()


def _open_exclusive(path: Path) -> BinaryIO:
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640), "ab")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DecisionLog:
    """Open one per process with `DecisionLog.open(...)`; thread-safe."""

    def __init__(self, directory: Path, segment: str, key: Ed25519PrivateKey, head_interval: float) -> None:
        self.directory = directory
        self.segment = segment
        self.path = directory / f"{segment}{LOG_SUFFIX}"
        self.heads_path = directory / f"{segment}{HEADS_SUFFIX}"
        self._key = key
        self._key_id = keys.key_id(key.public_key())
        self._interval = head_interval
        self._queue: SimpleQueue[object] = SimpleQueue()
        self._tree = LeafHashes()
        self._prev = genesis(segment)
        self._heads = 0
        self._last_head: SignedHead | None = None
        # Set when appends must stop: a closed log, a failed writer thread, a forked child.
        self._refusal: str | None = None
        # Held to check the refusal and enqueue as one step, so that no record lands behind the stop.
        # Reentrant: a signal handler closing the log (close_on_signals) may run inside an append.
        self._gate = threading.RLock()
        directory.mkdir(parents=True, exist_ok=True)
        # Listed before its first byte exists: a segment deleted whole is then missed by the index.
        index.register(directory, segment, key)
        self._heads_file = _open_exclusive(self.heads_path)
        self._sign_head(final=False)  # head 0 exists before any record: a log without heads is tampered
        self._log_file = _open_exclusive(self.path)
        os.fsync(self._log_file.fileno())
        _fsync_dir(directory)
        self._thread = threading.Thread(target=self._run, name=f"audit-log-{segment}", daemon=True)
        self._thread.start()

    @classmethod
    def open(
        cls,
        directory: Path | None = None,
        writer: str = "sovereign",
        *,
        key: Ed25519PrivateKey | Path | None = None,
        head_interval: float = DEFAULT_HEAD_INTERVAL,
    ) -> DecisionLog:
        """A new segment for this process in `directory` (default: $SOVEREIGN_AUDIT_DIR, else STATE/audit),
        named after `writer` (e.g. "serving", "operator"), signed with `key` (default: the audit key)."""
        signing = key if isinstance(key, Ed25519PrivateKey) else keys.load_signing_key(key)
        log = cls(
            directory or audit_dir(),
            segment_id(writer, os.getpid(), datetime.now(UTC)),
            signing,
            head_interval,
        )
        _open_logs.add(log)
        return log

    def append(self, record: DecisionRecord) -> None:
        """Queue `record`; written, fsynced and sealed by the writer thread. AuditLogClosed once the log is
        closed, its writer failed (the message says why) or in a child forked after it was opened."""
        with self._gate:
            if self._refusal is not None:
                raise AuditLogClosed(self._refusal)
            self._queue.put(record)

    def flush(self) -> None:
        """Return once every record appended before the call is written and fsynced."""
        self._wait(_Flush(sign=False))

    def checkpoint(self) -> SignedHead:
        """Flush, then sign a tree head over every record so far; the head."""
        head = self._wait(_Flush(sign=True)).head
        assert head is not None  # set by the writer thread before `done`
        return head

    def close(self) -> None:
        """Write what is queued, sign the final head and stop. Idempotent."""
        with self._gate:
            if self._refusal is not None:
                return
            self._refusal = f"the audit log {self.path} is closed"
            self._queue.put(_STOP)
        self._thread.join()
        _open_logs.discard(self)

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, request: _Flush) -> _Flush:
        with self._gate:
            if self._refusal is not None:
                raise AuditLogClosed(self._refusal)
            self._queue.put(request)
        while not request.done.wait(timeout=1.0):
            if not self._thread.is_alive():
                raise AuditLogClosed(self._refusal or f"the audit log writer of {self.path} stopped")
        return request

    def _run(self) -> None:
        try:
            self._write_until_stopped()
        except Exception as exc:  # an audit log that stops writing must say so to every appender
            self._refusal = f"the audit log {self.path} stopped writing: {exc}"
            raise

    def _write_until_stopped(self) -> None:
        next_head = time.monotonic() + self._interval
        while True:
            try:
                batch = [self._queue.get(timeout=max(0.0, next_head - time.monotonic()))]
            except Empty:
                batch = []
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except Empty:
                    break
            records = [item for item in batch if isinstance(item, DecisionRecord)]
            if records:
                self._write(records)
            requests = [item for item in batch if isinstance(item, _Flush)]
            stop = _STOP in batch
            if stop or any(r.sign for r in requests) or time.monotonic() >= next_head:
                head = self._sign_head(final=stop)
                next_head = time.monotonic() + self._interval
                for request in requests:
                    request.head = head
            for request in requests:
                request.done.set()
            if stop:
                self._log_file.close()
                self._heads_file.close()
                return

    def _write(self, records: list[DecisionRecord]) -> None:
        lines = []
        for record in records:
            line = record_line(record, self._tree.get_size(), self._prev)
            self._tree.append_entry(line)
            self._prev = self._tree.hashes[-1].hex()
            lines.append(line)
        self._log_file.write(b"\n".join(lines) + b"\n")
        self._log_file.flush()
        os.fsync(self._log_file.fileno())

    def _sign_head(self, final: bool) -> SignedHead:
        """Sign and fsync a head over the records written so far: always when `final`, else only when
        records were added since the last one (the last head is returned then)."""
        size = self._tree.get_size()
        if self._last_head is not None and self._last_head.size == size and not final:
            return self._last_head
        head = TreeHead(
            segment=self.segment,
            seq=self._heads,
            size=size,
            root=self._tree.get_root().hex(),
            time=datetime.now(UTC),
            final=final,
            key_id=self._key_id,
        )
        signed = SignedHead(**head.model_dump(), signature=keys.sign(self._key, head.message()))
        self._heads_file.write(signed.line() + b"\n")
        self._heads_file.flush()
        os.fsync(self._heads_file.fileno())
        self._heads += 1
        self._last_head = signed
        return signed


def _refuse_in_child() -> None:
    for log in list(_open_logs):
        log._gate = threading.RLock()  # another thread of the parent may have held it at the fork
        log._refusal = (
            f"the audit log {log.path} belongs to process {os.getppid()}: open a DecisionLog in this "
            "process (each writer process has its own segment)"
        )
    _open_logs.clear()


def _close_all() -> None:
    for log in list(_open_logs):
        log.close()


def close_on_signals() -> None:
    """Close every open log of this process, signing each one's final head, when SIGINT or SIGTERM arrives,
    then do what that signal did before (a KeyboardInterrupt for SIGINT, exit for SIGTERM). For processes
    stopped by a signal whose exit may not run atexit's close in time (a Pulumi plugin is interrupted,
    then killed). Only the main thread may install signal handlers (Python's rule): elsewhere, e.g. a
    Pulumi program run by a language host's thread, nothing is installed and atexit's close remains."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(number)

        def handler(signum: int, frame: FrameType | None, previous: object = previous) -> None:
            _close_all()
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(number, handler)


os.register_at_fork(after_in_child=_refuse_in_child)
atexit.register(_close_all)
