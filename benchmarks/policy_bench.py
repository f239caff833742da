"""Policy engine benchmark: in-process Wasm vs OPA REST, single calls vs one batched query, and the matrix.

    .venv/bin/python benchmarks/policy_bench.py [--repeats 3] [--markdown]

The workload is the compliance matrix of clusters/ (every variant x cluster x end use, >= 1,000 inputs).
Each input is decided one call at a time by each engine, then all of them in one batched query per engine,
then `sovereign matrix` runs end to end in memory (cluster files -> decisions -> Markdown and HTML).
An OPA server (the real binary, on loopback) serves the same signed bundle and dies with this script.
The bundle is the built one (`sovereign bundle build` first), verified with the configured trust anchor.
Targets are reported as met or missed, never asserted: the exit code is non-zero only on error.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import requests
from report import load, machine, show

from sovereign import toolchain
from sovereign.devenv.process import ManagedProcess, free_port
from sovereign.errors import SovereignError
from sovereign.matrix.grid import compute_matrix, load_clusters, matrix_inputs
from sovereign.matrix.html_page import render_html
from sovereign.matrix.markdown import render_markdown
from sovereign.policy.bundle import SignedBundle, configured_bundle, opa_server_args
from sovereign.policy.decision_input import DecisionInput
from sovereign.policy.engine import PolicyEngine
from sovereign.policy.judgement import Judge
from sovereign.policy.opa_token import opa_server_env
from sovereign.policy.rest_engine import RestEngine
from sovereign.policy.wasm_engine import WasmEngine
from sovereign.policydata import load_policy_data

SINGLE_SPEEDUP_TARGET = 10.0  # issue 17: one in-process decision against one OPA REST call
BATCH_SPEEDUP_TARGET = 10.0  # issue 4: a batched query against sequential REST calls
IN_PROCESS_BATCH_TARGET = 20.0  # issue 17: the in-process batch against sequential REST calls
LAYER_OVERHEAD_TARGET = 0.05
AS_OF = date(2026, 6, 1)  # fixed, so every run decides the same cells
WARMUP_CALLS = 200


@dataclass(frozen=True)
class Result:
    mode: str
    decisions: int  # per run
    seconds: list[float]  # one per decision (single calls) or one per run (batched)
    per_decision: bool

    @property
    def total_s(self) -> float:
        """Time for all `decisions` once: the sum of single calls, the median run of a batch."""
        return sum(self.seconds) if self.per_decision else statistics.median(self.seconds)

    def quantile_ms(self, q: float) -> float:
        """Latency per decision at quantile q: of single calls, or of runs divided by their size."""
        samples = sorted(s if self.per_decision else s / self.decisions for s in self.seconds)
        return samples[min(len(samples) - 1, round(q * (len(samples) - 1)))] * 1000


@contextmanager
def opa_server(bundle: SignedBundle, log_dir: Path) -> Iterator[str]:
    """`opa run --server` on a free loopback port verifying the signed bundle; killed on exit and with us."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(toolchain.binary("opa")), "run", "--server", f"--addr=127.0.0.1:{port}"]
    argv += ["--log-level=error", "--disable-telemetry", *opa_server_args(bundle)]
    process = ManagedProcess(f"opa-{port}", argv, log_dir / "opa.log", env=opa_server_env())
    process.start()
    try:
        process.wait_ready(
            lambda: requests.get(f"{url}/health?bundles=true", timeout=1).status_code == 200,
            30,
            f"{url}/health",
        )
        yield url
    finally:
        process.stop()


def singles(engines: dict[str, PolicyEngine], inputs: list[dict[str, Any]]) -> list[Result]:
    """Each input decided once by each engine, interleaved call by call (alternating which goes first) so
    that load drifts hit every engine alike."""
    for engine in engines.values():
        for inp in inputs[:WARMUP_CALLS]:
            engine.decide(inp)
    seconds: dict[str, list[float]] = {mode: [] for mode in engines}
    order = list(engines.items())
    for index, inp in enumerate(inputs):
        for mode, engine in order if index % 2 else reversed(order):
            started = time.perf_counter()
            engine.decide(inp)
            seconds[mode].append(time.perf_counter() - started)
    return [Result(mode, len(inputs), seconds[mode], per_decision=True) for mode in engines]


def layer_overhead(wasm: WasmEngine, inputs: list[DecisionInput]) -> tuple[Result, Result]:
    """The judgement API against the engine call it wraps, interleaved call by call on the same inputs so
    that load drifts hit both alike. The baseline is what callers did before the layer: form the policy
    document from the input and call the engine; the layer adds screening facts, `as_of`, the typed
    `Judgement` and its verdict."""
    judge = Judge(wasm, today=lambda: AS_OF)
    screening = {"performed": False, "hits": []}
    for inp in inputs[:WARMUP_CALLS]:
        judge.judge(inp)
    raw: list[float] = []
    judged: list[float] = []
    for index, inp in enumerate(inputs):
        calls = [
            (raw, lambda inp=inp: wasm.decide(inp.policy_input(screening))),
            (judged, lambda inp=inp: judge.judge(inp)),
        ]
        for timings, call in calls if index % 2 else reversed(calls):
            started = time.perf_counter()
            call()
            timings.append(time.perf_counter() - started)
    return (
        Result(
            "in-process Wasm, engine call (before the judgement API)", len(inputs), raw, per_decision=True
        ),
        Result(
            "in-process Wasm, through the judgement API (Judge.judge)", len(inputs), judged, per_decision=True
        ),
    )


def runs(mode: str, count: int, repeats: int, once: Callable[[], object]) -> Result:
    once()  # warm-up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        once()
        seconds.append(time.perf_counter() - started)
    return Result(mode, count, seconds, per_decision=False)


def main(argv: list[str] | None = None) -> int:
    try:
        return bench(argv)
    except SovereignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def bench(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each batched mode (median reported)")
    parser.add_argument("--clusters", type=Path, default=toolchain.REPO_ROOT / "clusters")
    parser.add_argument("--markdown", action="store_true", help="print the results as a Markdown table")
    args = parser.parse_args(argv)
    bundle = configured_bundle()
    data = load_policy_data()
    clusters = load_clusters(args.clusters)
    _, cells = matrix_inputs(clusters, data, AS_OF)
    screening = {"performed": False, "hits": []}
    inputs = [cell.policy_input(screening) for cell in cells]
    n = len(inputs)
    load_before = load()
    wasm = WasmEngine(bundle.wasm, bundle.verification_key)
    with tempfile.TemporaryDirectory(prefix="policy-bench-") as tmp, opa_server(bundle, Path(tmp)) as url:
        rest = RestEngine(url, timeout_s=60)  # a batch of ~2,000 inputs takes far longer than one
        # Timing wrong answers would be meaningless: both engines must decide, and identically.
        answers = [[{**d, "engine": None} for d in engine.decide_many(inputs)] for engine in (wasm, rest)]
        failed = [d for d in answers[0] + answers[1] if d["policy_revision"] != bundle.revision]
        if failed or answers[0] != answers[1]:
            raise SovereignError(f"the engines disagree or failed on bundle {bundle.revision}: {failed[:1]}")

        def end_to_end(engine: PolicyEngine) -> Callable[[], object]:
            def run() -> tuple[str, str]:
                matrix = compute_matrix(
                    load_clusters(args.clusters), Judge(engine), load_policy_data(), AS_OF
                )
                return render_markdown(matrix), render_html(matrix)

            return run

        rest_singles, wasm_singles = singles(
            {"OPA REST, one call per decision": rest, "in-process Wasm, one call per decision": wasm}, inputs
        )
        results = [
            rest_singles,
            wasm_singles,
            runs("OPA REST, one batched query", n, args.repeats, lambda: rest.decide_many(inputs)),
            runs("in-process Wasm, one batched query", n, args.repeats, lambda: wasm.decide_many(inputs)),
            runs("`sovereign matrix` end to end, Wasm", n, args.repeats, end_to_end(wasm)),
            runs("`sovereign matrix` end to end, OPA REST", n, args.repeats, end_to_end(rest)),
        ]
        engine_call, judged_call = layer_overhead(wasm, cells)
        results += [engine_call, judged_call]
        rest.close()
    wasm.close()
    load_after = load()

    baseline = rest_singles.total_s
    header = [
        "mode",
        "decisions",
        "total ms",
        "decisions/s",
        "p50 ms/decision",
        "p99 ms/decision",
        "vs baseline",
    ]
    rows = [
        [
            r.mode,
            str(r.decisions),
            f"{r.total_s * 1000:.1f}",
            f"{r.decisions / r.total_s:,.0f}",
            f"{r.quantile_ms(0.5):.3f}",
            f"{r.quantile_ms(0.99):.3f}",
            "1.0x (baseline)" if r is rest_singles else f"{baseline / r.total_s:.1f}x",
        ]
        for r in results
    ]
    single_p50 = rest_singles.quantile_ms(0.5) / wasm_singles.quantile_ms(0.5)
    single_total = baseline / wasm_singles.total_s
    speedups = {r.mode: baseline / r.total_s for r in results[2:4]}
    layer = judged_call.total_s / engine_call.total_s - 1
    layer_p50 = judged_call.quantile_ms(0.5) / engine_call.quantile_ms(0.5) - 1
    targets = [
        f"the judgement API adds <= {LAYER_OVERHEAD_TARGET:.0%} to an in-process decision: "
        f"{layer:+.1%} in total, {layer_p50:+.1%} at p50 (same run, interleaved), "
        + ("met" if max(layer, layer_p50) <= LAYER_OVERHEAD_TARGET else "missed"),
        f"one in-process decision >= {SINGLE_SPEEDUP_TARGET:.0f}x faster than one OPA REST call (same run, "
        f"interleaved): {single_p50:.1f}x at p50, {single_total:.1f}x in total, "
        + ("met" if min(single_p50, single_total) >= SINGLE_SPEEDUP_TARGET else "missed"),
        *(
            f"{mode} >= {target:.0f}x faster than sequential REST calls: {speedup:.1f}x, "
            + ("met" if speedup >= target else "missed")
            for (mode, speedup), target in zip(
                speedups.items(), (BATCH_SPEEDUP_TARGET, IN_PROCESS_BATCH_TARGET), strict=True
            )
        ),
    ]
    facts = [
        *machine(),
        ("opa", toolchain.versions()["OPA_VERSION"]),
        ("opa-py-wasm / wasmtime", f"{version('opa-py-wasm')} / {version('wasmtime')}"),
        ("load average (1 5 15 min)", f"before {load_before}, after {load_after}"),
    ]
    facts.append(
        ("workload", f"{n} decisions: {len(data.models)} variants x {len(clusters)} clusters x 6 end uses")
    )

    show(
        facts,
        header,
        rows,
        targets,
        title=f"policy decisions, {n} matrix inputs, baseline = sequential OPA REST calls",
        markdown=args.markdown,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
