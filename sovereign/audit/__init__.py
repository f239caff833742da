"""The tamper-evident decision log: every judgement at every enforcement point, one record each, in an
append-only Merkle log (RFC 9162 trees by pymerkle) per writer process, with tree heads signed by the audit
key.

    log = DecisionLog.open(writer="serving")           # once per process
    log.append(record_of(judgement, point=Point.SERVING, subject=request_id))
    log.close()                                          # also at interpreter exit

`verify_log` checks a folder of segments and its signed segment index (index.py: which segments exist);
`prove` and `check_proof` give and check one record's inclusion proof, against the last signed head or an
earlier, published one. `sovereign audit` is the command line.
"""

from sovereign.audit.location import AUDIT_DIR_ENV, audit_dir
from sovereign.audit.proof import ProofInvalid, RecordProof, check_proof, prove
from sovereign.audit.record import DecisionRecord, Point, input_digest, record_of
from sovereign.audit.verify import Finding, Kind, LogReport, SegmentReport, verify_log, verify_segment
from sovereign.audit.writer import AuditLogClosed, DecisionLog

__all__ = [
    "AUDIT_DIR_ENV",
    "AuditLogClosed",
    "DecisionLog",
    "DecisionRecord",
    "Finding",
    "Kind",
    "LogReport",
    "Point",
    "ProofInvalid",
    "RecordProof",
    "SegmentReport",
    "audit_dir",
    "check_proof",
    "input_digest",
    "prove",
    "record_of",
    "verify_log",
    "verify_segment",
]
