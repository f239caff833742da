"""`sovereign audit keygen | verify | show | heads | prove | check-proof`: the tamper-evident decision log.

Exit codes: 0 verified (an unsealed tail is a warning), 1 tampered or a proof that does not check out,
2 bad input (no log folder, no key, a malformed record id or time).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from sovereign.audit import keys
from sovereign.audit.location import AUDIT_DIR_ENV, existing_log_dir
from sovereign.audit.proof import check_proof, prove
from sovereign.audit.query import Query, read_records
from sovereign.audit.record import Point
from sovereign.audit.segment import segments_in, signed_heads
from sovereign.audit.verify import SegmentReport, verify_log, verify_segment
from sovereign.errors import BadInput

app = typer.Typer(
    no_args_is_help=True,
    help="The decision log: every judgement at every enforcement point, signed and tamper-evident.",
)
_out = Console(soft_wrap=True, highlight=False)
_err = Console(stderr=True, soft_wrap=True, highlight=False)

DirArg = Annotated[
    Path | None,
    typer.Argument(
        help=f"The log folder (default: ${AUDIT_DIR_ENV}, else the state dir's audit/).", show_default=False
    ),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help=f"The audit PEM public key (default: ${keys.PUBLIC_KEY_ENV}, else the state dir's "
        "trust/audit-log.pem).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON instead of a table.")]


@app.command()
def keygen() -> None:
    """Create the audit key that writers sign tree heads with, and its public half for verifiers.

    Kept apart from the policy bundle's key; refused when one exists.
    """
    private, public = keys.create_key()
    print(f"audit key (private, 0600)  {private}")
    print(f"audit public key           {public}")
    print(f"writers read {keys.PRIVATE_KEY_ENV}, verifiers {keys.PUBLIC_KEY_ENV} (default: these paths)")


def _public_key(key: Path | None, folder: Path) -> Ed25519PublicKey:
    path = (key or keys.public_key_path()).resolve()
    if path.is_relative_to(folder.resolve()):
        raise BadInput(
            f"the audit public key {path} is inside the log folder {folder}: whoever can rewrite the log "
            "could replace it; keep it elsewhere (--key)"
        )
    return keys.load_public_key(path)


def _status_line(report: SegmentReport) -> str:
    counts = f"{report.records} records, {report.sealed} sealed by {report.heads} signed heads"
    if report.finding is not None:
        return f"[bold red]TAMPERED[/] {escape(report.segment)}: {escape(report.finding.describe())}"
    colour = "green" if report.status == "ok" else "yellow"
    line = f"[{colour}]{report.status}[/] {escape(report.segment)}: {counts}"
    return line + "".join(f"\n  [yellow]warning:[/] {escape(w)}" for w in report.warnings)


@app.command()
def verify(directory: DirArg = None, key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Verify every segment: head signatures, every record's inclusion, consistency between heads; and the
    signed segment index: no segment deleted whole, none added.

    Names the first bad record of a tampered segment and what was done to it (edited, inserted, deleted,
    reordered, truncated). Exit 0 verified, 1 tampered, 2 bad input.
    """
    folder = existing_log_dir(directory)
    report = verify_log(folder, _public_key(key, folder))
    if as_json:
        print(
            json.dumps(
                {
                    "directory": str(folder),
                    "ok": report.ok,
                    "index": None if report.index is None else report.index.describe(),
                    "index_warnings": list(report.index_warnings),
                    "segments": [s.to_json() for s in report.segments],
                },
                indent=2,
            )
        )
    else:
        if report.index is not None:
            _out.print(f"[bold red]TAMPERED[/] {escape(report.index.describe())}")
        for warning in report.index_warnings:
            _out.print(f"[yellow]warning:[/] {escape(warning)}")
        for segment in report.segments:
            _out.print(_status_line(segment))
        records = sum(s.records for s in report.segments)
        verdict = "[green]verified[/]" if report.ok else "[bold red]tampered[/]"
        _out.print(f"{len(report.segments)} segments, {records} records in {escape(str(folder))}: {verdict}")
    raise typer.Exit(0 if report.ok else 1)


def utc_time(value: str | None, option: str) -> datetime | None:
    """`value` of `option` as a UTC time (a date, or a time without zone, is taken as UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"{option} {value!r}: expected an ISO date or time, e.g. 2026-11-29 or 2026-11-29T08:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
def show(
    directory: DirArg = None,
    region: Annotated[str | None, typer.Option(help="Only this region.")] = None,
    cluster: Annotated[str | None, typer.Option(help="Only this cluster.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only this subject (object or request id).")] = None,
    code: Annotated[
        str | None, typer.Option(help="Only decisions with this violation or obligation code.")
    ] = None,
    point: Annotated[Point | None, typer.Option(help="Only this enforcement point.")] = None,
    since: Annotated[str | None, typer.Option(help="From this UTC time on (ISO date or time).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this UTC time (ISO date or time).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The logged decisions, oldest first, filtered. Shows, does not verify: run `verify` for that."""
    folder = existing_log_dir(directory)
    query = Query(
        region, cluster, subject, code, point, utc_time(since, "--since"), utc_time(until, "--until")
    )
    found, unreadable = read_records(folder, query)
    if unreadable:
        _err.print(
            f"[yellow]warning:[/] {unreadable} lines are not records: `sovereign audit verify` says why"
        )
    if as_json:
        print(json.dumps([{"id": f.record_id, **f.record.model_dump(mode="json")} for f in found], indent=2))
        return
    columns = ("time", "point", "region", "cluster", "subject", "tenant", "verdict", "codes", "record")
    table = Table(*(Column(name, overflow="fold") for name in columns))  # folded, never cut short
    for logged in found:
        r = logged.record
        table.add_row(
            r.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            r.point.value,
            r.region or "-",
            r.cluster or "-",
            r.subject,
            r.tenant or "-",
            r.verdict,
            ", ".join(r.codes) or "-",
            logged.record_id,
            style=None if r.allow else "red",
        )
    out = Console(highlight=False)  # sized now: the terminal's width (or $COLUMNS) at this call
    out.print(table)
    out.print(f"{len(found)} decisions")


@app.command("prove")
def prove_record(
    record: Annotated[str, typer.Argument(help="SEGMENT:INDEX, as `show` lists it.")],
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help=f"The log folder (default: ${AUDIT_DIR_ENV}).", show_default=False),
    ] = None,
    head: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Prove against this signed head of the segment (its seq, as `heads` lists them), e.g. one "
            "already published; default: the last.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the inclusion proof of RECORD in a signed head of its segment (JSON).

    A third party checks it with the audit public key alone: `sovereign audit check-proof FILE --key PUB`.
    """
    print(prove(existing_log_dir(directory), record, head).model_dump_json(indent=2))


@app.command()
def heads(
    directory: DirArg = None,
    key: KeyOpt = None,
    segment: Annotated[
        str | None, typer.Option(help="Only this segment's heads.", show_default=False)
    ] = None,
    last: Annotated[bool, typer.Option("--last", help="Only each segment's last signed head.")] = False,
) -> None:
    """Print the signed tree heads, one JSON line each, exactly as signed: what to publish elsewhere, so
    that a rollback of the log is seen, and what `prove --head` proves against.

    Only heads of segments that verify are printed; exit 1 naming a tampered segment, 2 bad input.
    """
    folder = existing_log_dir(directory)
    public = _public_key(key, folder)
    names = segments_in(folder) if segment is None else [segment]
    if segment is not None and segment not in segments_in(folder):
        raise BadInput(
            f"--segment {segment}: no such segment in {folder} (`sovereign audit verify` lists them)"
        )
    tampered = False
    for name in names:
        report = verify_segment(folder, name, public)
        if report.finding is not None:
            _err.print(
                f"[bold red]TAMPERED[/] {escape(name)}: {escape(report.finding.describe())}: no heads printed"
            )
            tampered = True
            continue
        signed = signed_heads(folder, name)
        for head in signed[-1:] if last else signed:
            print(head.line().decode())
    raise typer.Exit(1 if tampered else 0)


@app.command("check-proof")
def check_proof_file(
    file: Annotated[Path, typer.Argument(help="A proof from `prove` ('-': standard input).")],
    key: KeyOpt = None,
) -> None:
    """Check an inclusion proof without the log: the head's signature and the record's audit path.

    Exit 0 and the record when it holds, 1 when it does not, 2 bad input.
    """
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        document = json.loads(text)
    except OSError as exc:
        raise BadInput(f"{file}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise BadInput(f"{file}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise BadInput(f"{file}: expected the JSON object `sovereign audit prove` prints")
    record = check_proof(document, keys.load_public_key(key))
    head = document["head"]
    _out.print(f"[green]included[/] in signed head {head['seq']} of {escape(head['segment'])}")
    print(record.model_dump_json(indent=2))
