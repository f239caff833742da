"""The `sovereign` CLI as the demo runs it: what a user would type, in a child process."""

from __future__ import annotations

import os
import subprocess
import sys

SOVEREIGN = [sys.executable, "-m", "sovereign"]


def run_sovereign(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`sovereign ARGS`, in the demo's environment plus `env`."""
    full = {**os.environ, **(env or {})}
    return subprocess.run([*SOVEREIGN, *args], capture_output=True, text=True, timeout=timeout, env=full)
