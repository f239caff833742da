"""Bounded label values: a label fed by requests (tenants, reason codes, model names) must not grow a
new time series per distinct value, or one noisy client can take Prometheus down."""

from __future__ import annotations

import threading
from collections.abc import Iterable

OTHER = "other"
UNKNOWN = "unknown"


class BoundedLabel:
    """Allowed values always pass; other values pass first come, first served, until `limit` distinct
    values are in use; every value after that is reported as `other`. Missing values are `unknown`."""

    def __init__(self, limit: int, allowed: Iterable[str] = ()) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self._allowed = frozenset(allowed)
        self._admitted: set[str] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        if not value:
            return UNKNOWN
        if value in self._allowed:
            return value
        with self._lock:
            if value in self._admitted:
                return value
            if len(self._admitted) < self._limit:
                self._admitted.add(value)
                return value
        return OTHER
