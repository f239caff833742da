"""What every benchmark here prints besides its own numbers: the machine, its load, and the results as a
Markdown block for RESULTS.md or as a terminal table."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from rich.console import Console
from rich.table import Table


def machine() -> list[tuple[str, str]]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown",
    )
    return [("cpu", f"{cpu}, {os.cpu_count()} logical cores"), ("python", platform.python_version())]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def show(
    facts: list[tuple[str, str]],
    header: list[str],
    rows: list[list[str]],
    targets: list[str],
    *,
    title: str,
    markdown: bool,
) -> None:
    """The run's facts, its table and how it fares against each target."""
    if markdown:
        print("\n".join(f"- {name}: {value}" for name, value in facts))
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()
        print("\n".join(f"- target {line}" for line in targets))
        return
    out = Console()
    for name, value in facts:
        out.print(f"{name}: {value}", highlight=False)
    table = Table(*header, title=title)
    for row in rows:
        table.add_row(*row)
    out.print(table)
    for line in targets:
        out.print(f"target {line}", highlight=False)
