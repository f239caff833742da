"""`sovereign report`'s HTML page as its tests read it: sections, figures (by id, with the SVGs in each and
the queries and values each carries, data-plotted) and table rows by table id; and the check that every
value a figure drew is Prometheus's own answer. Shared by the unit test (tests/test_report.py) and the
end-to-end ones on a real Prometheus (tests/test_monitoring_e2e.py, tests/test_demo.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
import requests

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


# An instant query: the PromQL expression and the Unix time to answer it at.
Query = Callable[[str, float], list[dict[str, Any]]]


def prometheus_query(url: str) -> Query:
    def query(expr: str, at: float) -> list[dict[str, Any]]:
        body = requests.get(f"{url}/api/v1/query", params={"query": expr, "time": at}, timeout=5).json()
        assert body["status"] == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    return query


def answers(query: Query, plotted: dict[str, Any]) -> dict[str, Any]:
    """Prometheus's own answers to what a figure drew, read as the figure was: at each of its instants
    (added up), or at each step of its range (a range query is an instant query per step)."""
    by = plotted["by"]

    def key(result: dict[str, Any]) -> str:
        return " / ".join(result["metric"].get(k, "") for k in by)

    if "step" in plotted:
        return {
            name: [[t, _value(query(plotted["query"], t), by, name)] for t, _ in points]
            for name, points in plotted["values"].items()
        }
    totals: dict[str, float] = {}
    for at in plotted["at"]:
        for result in query(plotted["query"], at):
            totals[key(result)] = totals.get(key(result), 0.0) + float(result["value"][1])
    return totals


def _value(results: list[dict[str, Any]], by: list[str], name: str) -> float:
    (found,) = [
        float(r["value"][1]) for r in results if " / ".join(r["metric"].get(k, "") for k in by) == name
    ]
    return found


def assert_drawn_as_answered(page: ReportPage, query: Query, every_query_answered: bool = True) -> None:
    """Every value a figure drew is Prometheus's answer to the query it names; and, unless told otherwise,
    every query of every figure had an answer to draw."""
    for figure, drawn in page.figures.items():
        for plotted in drawn:
            assert plotted["values"] or not every_query_answered, (figure, plotted["query"])
            expected, what = answers(query, plotted), (figure, plotted["query"])
            if "step" in plotted:  # series: the same instants, the same values
                assert set(expected) == set(plotted["values"]), what
                for name, points in plotted["values"].items():
                    assert [t for t, _ in points] == [t for t, _ in expected[name]], what
                    assert [v for _, v in points] == pytest.approx([v for _, v in expected[name]]), what
            else:
                assert plotted["values"] == pytest.approx(expected), what
