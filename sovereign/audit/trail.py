"""An enforcement point's trail: each judgement its `Judge` makes becomes one record of the process's log.

    log = open_log("operator")                       # one segment per process
    judge = Judge(engine, screening, recorder=AuditTrail(log, Point.ADMISSION))

A log that can no longer be written (its disk full, its writer dead) does not stop decisions: the trail
says so once, loudly, and the gap shows when the log is verified (the segment ends, unsealed). The
decision itself never depends on the evidence being kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sovereign.audit.record import Point, record_of
from sovereign.audit.writer import AuditLogClosed, DecisionLog
from sovereign.policy.judgement import Judgement, Subject

_log = logging.getLogger(__name__)


def open_log(writer: str, directory: Path | None = None) -> DecisionLog:
    """The process's decision log: its own segment under `directory` ($SOVEREIGN_AUDIT_DIR, else the state
    dir's audit/), signed with the audit key. Without that key: BadInput naming `sovereign audit keygen`."""
    return DecisionLog.open(directory, writer)


class AuditTrail:
    """A `Recorder` (sovereign.policy.judgement) writing one point's judgements into `log`."""

    def __init__(self, log: DecisionLog, point: Point) -> None:
        self.log = log
        self.point = point
        self._warned = False

    def __call__(self, judgement: Judgement, subject: Subject) -> None:
        record = record_of(
            judgement,
            point=self.point,
            subject=subject.name,
            tenant=subject.tenant,
            weights_digest=subject.weights_digest,
        )
        try:
            self.log.append(record)
        except AuditLogClosed as exc:
            if not self._warned:
                self._warned = True
                _log.error("decisions at %s are no longer recorded: %s", self.point, exc)
