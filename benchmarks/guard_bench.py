"""The serving guard's content scan on 1 MB bodies: plain prose (the baseline) against adversarial shapes.

    .venv/bin/python benchmarks/guard_bench.py [--size 1000000] [--repeats 5] [--old prose b64-200] \
        [--markdown]

Each body is built once, parsed once (as the ingress does) and scanned once to warm up, then
`request_modalities` runs on it `--repeats` times in-process; CPU time (`time.process_time`) per request is
reported as the median and the worst. The scan's work units (serving.modalities `_COSTS`) and its answer are
shown beside it: an adversarial body must cost little and be answered conservatively (with a non-text
modality). The shapes named by `--old` are then run, once each, through the scan as it was before the work
budget (commit OLD_REF, loaded from git into a temporary module), and the ratio old/new is shown.
Nothing is asserted: the exit code is non-zero only on error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from report import load, machine, show

from serving.modalities import ContentScan, non_text
from sovereign import toolchain

OLD_REF = "2b69213eaf5c61e5eed354f9d3780b49de477aab"  # the last commit with the unbounded scan
TARGET_MS = 5.0  # per 1 MB adversarial body
B64 = string.ascii_letters + string.digits + "+/"
PROSE = (
    "the committee met on a grey morning to weigh the harvest figures against last year and agreed that "
    "the river had risen too early for the northern fields while the orchards on the southern slopes did "
    "better than anyone expected"
)


PROSE_WORDS = PROSE.split()


def chat(content: Any) -> dict[str, Any]:
    return {"model": "llama-3.1-8b-instruct", "messages": [{"role": "user", "content": content}]}


def filled(size: int, piece: Callable[[random.Random], str], separator: str) -> str:
    """Pieces joined by the separator up to `size` characters."""
    rng, pieces, length = random.Random(0), [], 0
    while length < size:
        pieces.append(piece(rng))
        length += len(pieces[-1]) + len(separator)
    return separator.join(pieces)


def prose(size: int) -> dict[str, Any]:
    return chat(filled(size, lambda rng: rng.choice(PROSE_WORDS), " "))


def b64_segments(length: int) -> Callable[[int], dict[str, Any]]:
    def body(size: int) -> dict[str, Any]:
        return chat(filled(size, lambda rng: "".join(rng.choices(B64, k=length)), "="))

    return body


def tiny_parts(size: int) -> dict[str, Any]:
    part = {"type": "text", "text": "a"}
    return chat([part] * (size // len(json.dumps(part))))


def deep_nesting(size: int) -> dict[str, Any]:
    depth = 400  # well inside json's own nesting limit, which the ingress parses with
    nested: Any = "x"
    for _ in range(depth):
        nested = [nested]
    return chat([nested] * (size // (2 * depth + 5)))


def uuids(size: int) -> dict[str, Any]:
    return chat(filled(size, lambda rng: str(uuid.UUID(int=rng.getrandbits(128))), ", "))


def data_uris(size: int) -> dict[str, Any]:
    return chat("data:," * (size // len("data:,")))


SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {
    "prose": prose,
    "b64-64": b64_segments(64),
    "b64-200": b64_segments(200),
    "b64-250": b64_segments(250),
    "b64-1000": b64_segments(1000),
    "tiny-parts": tiny_parts,
    "deep-nesting": deep_nesting,
    "uuids": uuids,
    "data-uris": data_uris,
}


def old_scan() -> Callable[[Any], set[str]]:
    """`request_modalities` as it was at OLD_REF, loaded from git."""
    source = subprocess.run(
        ["git", "show", f"{OLD_REF}:serving/modalities.py"],
        cwd=toolchain.REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "old_modalities.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("old_modalities", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.request_modalities  # type: ignore[no-any-return]


def cpu_ms(scan: Callable[[Any], object], body: Any) -> float:
    started = time.process_time()
    scan(body)
    return (time.process_time() - started) * 1000


def measure(name: str, body: Any, repeats: int) -> tuple[list[str], float]:
    """The shape's row without the old scan's columns, and its median CPU ms."""
    times, scan, answer = [], ContentScan(), set()
    for _ in range(repeats):
        scan = ContentScan()
        started = time.process_time()
        answer = scan.modalities(body)
        times.append((time.process_time() - started) * 1000)
    used = " ".join(f"{unit}={count}" for unit, count in scan.budget.used.items() if count)
    new = statistics.median(times)
    row = [name, f"{len(json.dumps(body)) / 1024:,.0f}", f"{new:.2f}", f"{max(times):.2f}", used]
    return [*row, ",".join(sorted(answer))], new


def with_old(row: list[str], new_ms: float, old_ms: float | None) -> list[str]:
    return [*row, "-", "-"] if old_ms is None else [*row, f"{old_ms:,.1f}", f"{old_ms / new_ms:,.0f}x"]


def conservative(row: list[str]) -> bool:
    return bool(non_text(set(row[5].split(","))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="characters of content per body")
    parser.add_argument("--repeats", type=int, default=5, help="scans of each body (median and worst shown)")
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument(
        "--old",
        nargs="*",
        choices=SHAPES,
        default=["prose", "b64-200"],
        help="shapes also run through the old scan",
    )
    parser.add_argument("--markdown", action="store_true", help="print the results as a Markdown table")
    args = parser.parse_args(argv)

    load_before = load()
    old = old_scan() if args.old else None
    # Parsed from bytes, as the ingress has them; each scanned once first, as a serving process's allocator
    # is warm (the first megabyte-sized buffers of a process cost page faults that later ones do not).
    bodies = {name: json.loads(json.dumps(SHAPES[name](args.size))) for name in args.shapes}
    for body in bodies.values():
        ContentScan().modalities(body)
    measured = {name: measure(name, body, args.repeats) for name, body in bodies.items()}
    # The old scan after all new measurements: its seconds of CPU churn leave nothing behind them.
    old_ms = {name: cpu_ms(old, bodies[name]) for name in args.old if old and name in bodies}
    rows = [with_old(row, new_ms, old_ms.get(name)) for name, (row, new_ms) in measured.items()]
    load_after = load()

    header = [
        "shape",
        "body KiB",
        "CPU ms p50",
        "CPU ms max",
        "work units used",
        "answer",
        "old CPU ms",
        "old/new",
    ]
    adversarial = [row for row in rows if row[0] != "prose"]
    typical = max((float(row[2]) for row in adversarial), default=0.0)
    worst = max((float(row[3]) for row in adversarial), default=0.0)
    targets = [
        f"every adversarial body ≤ {TARGET_MS} ms CPU at p50 (highest p50 {typical:.2f} ms, worst one scan "
        f"{worst:.2f} ms): " + ("met" if typical <= TARGET_MS else "missed"),
        "adversarial bodies answered with a non-text modality or as plain text they are: "
        + ", ".join(f"{row[0]} {'non-text' if conservative(row) else 'text'}" for row in adversarial),
    ]
    facts = [*machine(), ("load average (1 5 15 min)", f"before {load_before}, after {load_after}")]
    show(
        facts,
        header,
        rows,
        targets,
        title=f"request_modalities on {args.size:,}-character bodies, baseline = prose",
        markdown=args.markdown,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
