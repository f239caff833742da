"""Step: `sovereign matrix`, every variant x every cluster x every end use, written as HTML."""

from __future__ import annotations

from sovereign.demo.context import DemoContext
from sovereign.demo.sovereign_cli import run_sovereign


def write_matrix(demo: DemoContext) -> None:
    out = demo.root / "matrix"
    done = run_sovereign("matrix", f"--out={out}")
    demo.matrix_html = out / "matrix.html"
    demo.report.say((done.stderr.strip().splitlines() or [""])[-1])
    demo.report.expect(
        "compliance matrix written",
        done.returncode == 0 and demo.matrix_html.is_file(),
        str(demo.matrix_html),
    )
