"""`sovereign report`'s HTML page as its tests read it: sections, figures (by id, with the SVGs in each and
the queries and values each carries, data-plotted) and table rows by table id. Shared by the unit test
(tests/test_report.py) and the end-to-end one on a real Prometheus (tests/test_monitoring_e2e.py)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

# Every plot of the report, by the id of its figure, in page order.
FIGURES = ("plot-allocation", "plot-tenants", "plot-cost", "plot-compliance", "plot-alerts")


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


class ReportPage(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.svgs = 0
        self.figures: dict[str, list[dict[str, Any]]] = {}  # figure id -> what it plotted
        self.svgs_in: dict[str, int] = {}  # figure id -> inline SVGs in it
        self.rows: dict[str, list[list[str]]] = {}
        self._figure: str | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "svg":
            self.svgs += 1
            if self._figure:
                self.svgs_in[self._figure] += 1
        elif tag == "figure":
            self._figure = str(attributes["id"])
            self.figures[self._figure] = json.loads(str(attributes["data-plotted"]))
            self.svgs_in[self._figure] = 0
        elif tag == "h2":
            self._in = "h2"
            self.sections.append("")
        elif tag == "table":
            self._table = attributes.get("id")
            self.rows[str(self._table)] = []
        elif tag == "tr" and self._table:
            self.rows[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._figure = None
        elif tag == "h2":
            self._in = None
        elif tag in ("td", "th") and self._table and self._cell is not None:
            self.rows[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._in == "h2":
            self.sections[-1] += data
        if self._cell is not None:
            self._cell.append(data)

    def plotted(self, figure: str, query: str) -> dict[str, Any]:
        """What `figure` drew with `query`: its values and when they were read."""
        (found,) = [p for p in self.figures[figure] if p["query"] == query]
        return found
