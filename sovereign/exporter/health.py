"""What the exporter could read on its last attempt, per source: `sovereign_exporter_source_up{source}`.

A source that fails is reported down with its reason (logged once per change, not on every scrape);
the other sources keep being served.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("sovereign.exporter")


class SourceHealth(Collector):
    def __init__(self) -> None:
        self._reasons: dict[str, str | None] = {}  # source -> None when up, else why it is down
        self._lock = threading.Lock()

    def up(self, source: str) -> None:
        self._set(source, None)

    def down(self, source: str, reason: str) -> None:
        self._set(source, reason)

    def _set(self, source: str, reason: str | None) -> None:
        with self._lock:
            changed = source not in self._reasons or self._reasons[source] != reason
            self._reasons[source] = reason
        if changed:
            if reason is None:
                log.info("source %s is up", source)
            else:
                log.warning("source %s is down: %s", source, reason)

    def missing(self) -> dict[str, str]:
        """Each source that is down, with why."""
        with self._lock:
            return {source: reason for source, reason in self._reasons.items() if reason is not None}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "sovereign_exporter_source_up",
            "1 when the exporter read this source on its last attempt, 0 when it could not.",
            labels=["source"],
        )
        with self._lock:
            for source, reason in sorted(self._reasons.items()):
                family.add_metric([source], 0 if reason else 1)
        yield family
