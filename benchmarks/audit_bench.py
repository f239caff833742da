"""The decision log's cost: what logging adds to one request, and how fast `sovereign audit verify` reads.

    .venv/bin/python benchmarks/audit_bench.py [--appends 20000] [--records 100000] [--head-every 1000] \
        [--repeats 3] [--markdown]

Per request (what the serving guard will add): the record of one real serving judgement (`record_of`: the
input's canonical-JSON digest and the validated record) appended to a live DecisionLog, whose writer
thread writes, fsyncs, hashes into the tree and signs heads meanwhile. Timed call by call
(`perf_counter_ns`), interleaved with the baseline, a call that takes the same judgement and logs nothing,
so load drifts hit both alike. `append` alone (a record built beforehand) is shown too.

A guarded request: the serving guard's whole check (content scan, judgement on the in-process engine of the
built bundle) by two guards on the same engine, one recording each judgement in a DecisionLog (as
replicas do) and one not, interleaved call by call.

Evidence: `export_pack` of the us-defense region whose log is the `--records` segment (live state given as
empty: no API server), then `verify_pack` of the result.

Verify: a segment of `--records` records written through DecisionLog with a signed head every
`--head-every` records, then `verify_segment` run `--repeats` times (median); beside it the floor, reading
the file and parsing each line as JSON with nothing checked.
Nothing is asserted: the exit code is non-zero only on error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from report import load, machine, show

from serving.args import PolicyContext
from serving.guard import RequestGuard
from sovereign import toolchain
from sovereign.audit import DecisionLog, Point, record_of, verify_segment
from sovereign.audit.segment import Lines
from sovereign.audit.trail import AuditTrail
from sovereign.evidence.export import export_pack
from sovereign.evidence.live import RegionState
from sovereign.evidence.verify import verify_pack
from sovereign.policy import subjects
from sovereign.policy.bundle import configured_bundle
from sovereign.policy.clusters import load_cluster
from sovereign.policy.judgement import Judgement
from sovereign.policy.wasm_engine import WasmEngine

TARGET_APPEND_P50_MS = 0.2  # issue 15: what an append may add per serving request


def serving_judgement() -> Judgement:
    """A judgement as the serving guard gets one: a declared deployment's input with the request's facts."""
    spec = load_cluster(toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml")
    declared = next(iter(subjects.declared_inputs(spec).values()))
    doc = declared.policy_input({"performed": True, "hits": []})
    doc.update(as_of="2026-11-29", request={"modalities": ["text"], "tenant": spec.name})
    decision = {
        "allow": True,
        "violations": [],
        "obligations": [
            {"code": "BUILT_WITH_LLAMA", "message": "…"},
            {"code": "ACCEPTABLE_USE", "message": "…"},
        ],
        "policy_revision": "4f0c2a1e",
        "engine": "wasm",
    }
    return Judgement.of(decision, doc)


def no_log(judgement: Judgement, subject: str) -> None:
    """The baseline: the call a request makes, without the log."""


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    return ordered[len(ordered) // 2] / 1e6, ordered[int(len(ordered) * 0.99)] / 1e6


def bench_append(folder: Path, key: Ed25519PrivateKey, count: int) -> dict[str, list[int]]:
    judgement = serving_judgement()
    prebuilt = record_of(judgement, point=Point.SERVING, subject="req-0")
    timings: dict[str, list[int]] = {"baseline": [], "record_of + append": [], "append": []}
    with DecisionLog.open(folder, "bench", key=key) as log:

        def logged(judged: Judgement, subject: str) -> None:
            log.append(record_of(judged, point=Point.SERVING, subject=subject))

        calls: dict[str, Callable[[str], None]] = {
            "baseline": lambda subject: no_log(judgement, subject),
            "record_of + append": lambda subject: logged(judgement, subject),
            "append": lambda subject: log.append(prebuilt),
        }
        order = list(calls)
        for number in range(count):
            order.reverse() if number % 2 else None  # alternate which goes first
            for name in order:
                subject = f"req-{number}"
                start = time.perf_counter_ns()
                calls[name](subject)
                timings[name].append(time.perf_counter_ns() - start)
    return timings


def bench_guard(folder: Path, key: Ed25519PrivateKey, count: int) -> dict[str, list[int]]:
    """The guard's check of one request, with and without its judgement recorded, interleaved."""
    bundle = configured_bundle()
    engine = WasmEngine(bundle.wasm, bundle.verification_key)
    spec = load_cluster(toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml")
    declared = next(iter(subjects.declared_inputs(spec).values()))
    context = PolicyContext(cluster=declared.cluster, end_use=declared.end_use)
    body = {"model": declared.model, "messages": [{"role": "user", "content": "Summarise the brief."}]}
    timings: dict[str, list[int]] = {"guarded, no log": [], "guarded, logged": []}
    with DecisionLog.open(folder, "guard-bench", key=key) as log:
        guards = {
            "guarded, no log": RequestGuard(context, [declared.model], engine=engine),
            "guarded, logged": RequestGuard(
                context, [declared.model], engine=engine, recorder=AuditTrail(log, Point.SERVING)
            ),
        }
        order = list(guards)
        for number in range(count):
            order.reverse() if number % 2 else None
            for name in order:
                start = time.perf_counter_ns()
                guards[name].check(body, declared.model, "bench-tenant", f"req-{number}")
                timings[name].append(time.perf_counter_ns() - start)
    engine.close()
    return timings


def write_segment(folder: Path, key: Ed25519PrivateKey, records: int, head_every: int) -> tuple[str, float]:
    record = record_of(serving_judgement(), point=Point.SERVING, subject="req-0")
    start = time.perf_counter()
    with DecisionLog.open(folder, "verify-bench", key=key, head_interval=3600) as log:
        for number in range(records):
            log.append(record)
            if (number + 1) % head_every == 0:
                log.checkpoint()
    return log.segment, time.perf_counter() - start


def parse_only(path: Path) -> int:
    return sum(1 for line in Lines.read(path).complete if json.loads(line))


def median_seconds(run: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=20_000, help="timed calls of each kind")
    parser.add_argument("--records", type=int, default=100_000, help="records in the verified segment")
    parser.add_argument("--head-every", type=int, default=1_000, help="records between signed heads")
    parser.add_argument("--repeats", type=int, default=3, help="verify runs (median reported)")
    parser.add_argument("--markdown", action="store_true", help="print the results as a Markdown table")
    args = parser.parse_args(argv)
    key = Ed25519PrivateKey.generate()
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as scratch:
        append_folder, verify_folder = Path(scratch) / "append", Path(scratch) / "verify"
        timings = bench_append(append_folder, key, args.appends)
        segment, write_seconds = write_segment(verify_folder, key, args.records, args.head_every)
        report = verify_segment(verify_folder, segment, key.public_key())
        if not report.ok or report.records != args.records:
            raise SystemExit(f"the benchmark's own segment does not verify: {report}")
        log_path = verify_folder / f"{segment}.log"
        size_mib = log_path.stat().st_size / 2**20
        verify_s = median_seconds(
            lambda: verify_segment(verify_folder, segment, key.public_key()), args.repeats
        )
        parse_s = median_seconds(lambda: parse_only(log_path), args.repeats)
        guard_timings = bench_guard(Path(scratch) / "guard", key, args.appends)
        pack_path = Path(scratch) / "us-defense.tar.gz"
        start = time.perf_counter()
        export_pack(
            "us-defense",
            pack_path,
            kubeconfig=None,
            clusters_dir=toolchain.REPO_ROOT / "clusters",
            log_dir=verify_folder,
            state=RegionState([], [], []),
            key=key,
            progress=lambda line: None,
        )
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        checked = verify_pack(pack_path, key.public_key(), configured_bundle().verification_key)
        pack_verify_s = time.perf_counter() - start
        if not checked.ok:
            raise SystemExit(f"the benchmark's own evidence pack does not verify: {checked.problems}")
        pack_mib = pack_path.stat().st_size / 2**20

    rows = []
    for name, samples in timings.items():
        p50, p99 = percentiles(samples)
        rows.append(
            [f"per request: {name}", f"{len(samples):,} calls", f"p50 {p50:.4f} ms", f"p99 {p99:.4f} ms"]
        )
    for name, samples in guard_timings.items():
        p50, p99 = percentiles(samples)
        rows.append(
            [f"per request: {name}", f"{len(samples):,} calls", f"p50 {p50:.4f} ms", f"p99 {p99:.4f} ms"]
        )
    base50, _ = percentiles(timings["baseline"])
    added50 = percentiles(timings["record_of + append"])[0] - base50
    guard_added50 = (
        percentiles(guard_timings["guarded, logged"])[0] - percentiles(guard_timings["guarded, no log"])[0]
    )
    for name, seconds in [
        ("verify: read + JSON-parse only (floor)", parse_s),
        ("verify: verify_segment", verify_s),
    ]:
        rows.append(
            [
                name,
                f"{args.records:,} records",
                f"{seconds:.2f} s",
                f"{args.records / seconds:,.0f} records/s",
            ]
        )
    rows += [
        [
            "evidence: export_pack",
            f"{args.records:,} records",
            f"{export_s:.2f} s",
            f"{pack_mib:.1f} MiB pack",
        ],
        ["evidence: verify_pack", f"{args.records:,} records", f"{pack_verify_s:.2f} s", "ok"],
    ]
    rows.append(
        [
            "writer: append + write + fsync + sign",
            f"{args.records:,} records",
            f"{write_seconds:.2f} s",
            f"{args.records / write_seconds:,.0f} records/s",
        ]
    )
    facts = [
        *machine(),
        ("load average before / after", f"{load_before} / {load()}"),
        ("verified segment", f"{args.records:,} records, {report.heads} signed heads, {size_mib:.1f} MiB"),
    ]
    met = "met" if added50 <= TARGET_APPEND_P50_MS else "NOT met"
    guard_met = "met" if guard_added50 <= TARGET_APPEND_P50_MS else "NOT met"
    targets = [
        f"logging adds ≤ {TARGET_APPEND_P50_MS} ms at p50 per request: {met} "
        f"({added50:.4f} ms over baseline)",
        f"the guarded request with its record, against without (same run): {guard_met} "
        f"({guard_added50:+.4f} ms at p50)",
    ]
    show(
        facts,
        ["measure", "n", "time", "rate / tail"],
        rows,
        targets,
        title="decision log",
        markdown=args.markdown,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
