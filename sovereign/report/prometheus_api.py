"""Prometheus' HTTP query API, as `sovereign top` and `sovereign report` read it: instant and range queries
returning (labels, value) pairs, with every failure a SovereignError that names the fix.

One GET returning JSON each; requests covers it without another client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml

from sovereign.errors import BadInput, NotRunning, SovereignError

Labels = dict[str, str]


@dataclass
class PrometheusApi:
    url: str
    session: requests.Session = field(default_factory=requests.Session)
    setting: str = "--prometheus"  # where the URL came from: what an error tells the user to fix

    @classmethod
    def at(cls, url: str, flag: str = "--prometheus") -> PrometheusApi:
        base = url.rstrip("/")
        parsed = urlsplit(base)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BadInput(f"{flag} {url}: not an http(s) URL: give e.g. http://127.0.0.1:9090")
        return cls(base, setting=flag)

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            response = self.session.get(f"{self.url}{path}", params=params, timeout=10)
        except requests.RequestException as exc:
            why = type(exc).__name__
            raise NotRunning(
                f"Prometheus at {self.url} is unreachable ({why}): start it or fix {self.setting}"
            ) from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise SovereignError(
                f"{self.url} answered HTTP {response.status_code} without JSON: is it Prometheus?"
            ) from exc
        if body.get("status") != "success":
            what = params.get("query", path)
            raise SovereignError(
                f"Prometheus at {self.url} refused {what!r}: {body.get('error', response.status_code)}"
            )
        return body["data"]

    def instant(self, expr: str, at: float | None = None) -> list[tuple[Labels, float]]:
        params: dict[str, Any] = {"query": expr} | ({"time": at} if at is not None else {})
        return [(r["metric"], float(r["value"][1])) for r in self._get("/api/v1/query", params)["result"]]

    def range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[tuple[Labels, list[tuple[float, float]]]]:
        params = {"query": expr, "start": start, "end": end, "step": step}
        return [
            (r["metric"], [(float(t), float(v)) for t, v in r["values"]])
            for r in self._get("/api/v1/query_range", params)["result"]
        ]

    def evaluation_interval_s(self) -> float:
        """The global rule evaluation interval, from the configuration Prometheus runs."""
        config = yaml.safe_load(self._get("/api/v1/status/config", {})["yaml"])
        return parse_duration((config.get("global") or {}).get("evaluation_interval", "1m"))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """A Prometheus duration with one unit (90s, 10m, 24h, 7d), in seconds."""
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit() or int(number) == 0:
        raise BadInput(
            f"{text!r} is not a duration: write a whole number and one unit of s, m, h, d, w (e.g. 24h)"
        )
    return int(number) * _UNITS[unit]
