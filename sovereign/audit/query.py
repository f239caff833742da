"""Reading decisions back: every record of every segment in a folder, filtered, in time order.

Reading does not verify (`verify_log` does): a line that is not a record is counted, not shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sovereign.audit.record import DecisionRecord, Point
from sovereign.audit.segment import LOG_SUFFIX, Lines, parse_record, segments_in


@dataclass(frozen=True)
class LoggedRecord:
    record_id: str  # <segment>:<index>, what `prove` takes
    record: DecisionRecord


@dataclass(frozen=True)
class Query:
    region: str | None = None
    cluster: str | None = None
    subject: str | None = None
    code: str | None = None  # a violation or an obligation code
    point: Point | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: DecisionRecord) -> bool:
        return (
            (self.region is None or record.region == self.region)
            and (self.cluster is None or record.cluster == self.cluster)
            and (self.subject is None or record.subject == self.subject)
            and (self.code is None or self.code in record.codes or self.code in record.obligations)
            and (self.point is None or record.point is self.point)
            and (self.since is None or record.time >= self.since)
            and (self.until is None or record.time < self.until)
        )


def read_records(directory: Path, query: Query) -> tuple[list[LoggedRecord], int]:
    """The records matching `query`, oldest first, and how many lines were not records."""
    found, unreadable = [], 0
    for segment in segments_in(directory):
        path = directory / f"{segment}{LOG_SUFFIX}"
        if not path.exists():
            continue
        for line in Lines.read(path).complete:
            parsed = parse_record(line)
            if parsed is None:
                unreadable += 1
            elif query.matches(parsed[1]):
                found.append(LoggedRecord(f"{segment}:{parsed[0]}", parsed[1]))
    found.sort(key=lambda logged: logged.record.time)
    return found, unreadable
