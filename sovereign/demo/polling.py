"""Waiting for something the demo started to come up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sovereign.errors import SovereignError

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T], timeout: float) -> T:
    """Poll `probe` once a second until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if result := probe():
                return result
        except Exception as exc:  # not there yet: the thing being waited for is still starting
            last = exc
        time.sleep(1.0)
    raise SovereignError(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f" ({last})" if last else "")
    )
