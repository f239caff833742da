"""Every metric the monitoring stack reads has exactly one emitter in production code, named in METRICS.md
with the labels it is emitted with.

Read = every PromQL expression in the rules and alerts, the dashboards (panels and variables), `sovereign
top`, `sovereign report` (every query its `read` sends) and the demo's read-back, parsed with
promql-parser; a recording rule's output stands for the metrics of its own expression. Emitter = the one
production module (sovereign/, operators/, serving/, infra/) that constructs the metric: a call of one of
prometheus-client's metric classes or metric families, imported from prometheus_client, with the name
(for a counter without `_total`, for a histogram without `_bucket`/`_sum`/`_count`) and label names as
literals or module constants. The check runs on a repository root, so it can be shown to fail on a copy.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PRODUCTION = ("sovereign", "operators", "serving", "infra")
MONITORING = Path("infra") / "monitoring"
SUFFIXES = ("_total", "_bucket", "_sum", "_count")
# What Grafana substitutes before a dashboard expression reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$region": ".*", "$cluster": ".*"}
# What defines a metric: prometheus-client's instrumented metrics (name, documentation, labelnames) and
# the families a custom collector yields (name, documentation, value, labels).
METRICS = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}
# Series Prometheus writes itself, for every alerting rule.
PROMETHEUS_OWN = {"ALERTS", "ALERTS_FOR_STATE"}
FAMILIES = {
    f"{kind}MetricFamily" for kind in ("Counter", "Gauge", "Histogram", "Summary", "Info", "StateSet")
}


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            by_matcher = [m.value for m in node.matchers.matchers if m.name == "__name__"]
            names.update([node.name] if node.name else by_matcher)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def _rules(root: Path) -> list[dict[str, str]]:
    return [
        rule
        for path in sorted((root / MONITORING / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _dashboard_exprs(root: Path) -> dict[str, str]:
    exprs = {}
    for path in sorted((root / MONITORING / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                exprs[f"{path.name}: {panel['title']}"] = target["expr"]
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                selector = re.fullmatch(r"label_values\((.+), \w+\)", variable["query"])
                assert selector, f"{path.name}: variable {variable['name']}: {variable['query']}"
                exprs[f"{path.name}: variable {variable['name']}"] = selector.group(1)
    for variable, value in GRAFANA_VARIABLES.items():
        exprs = {where: expr.replace(variable, value) for where, expr in exprs.items()}
    return exprs


def _literal_queries(root: Path, module: Path, reader: str) -> dict[str, str]:
    """The QUERIES dict of a module, from its source (so a scratch copy is read, not the installed one)."""
    tree = ast.parse((root / module).read_text())
    [queries] = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["QUERIES"]
    ]
    return {f"{reader}: {column}": expr for column, expr in ast.literal_eval(queries).items()}


def _top_queries(root: Path) -> dict[str, str]:
    """What `sovereign top` and `sovereign fleet status` read back."""
    return _literal_queries(root, Path("sovereign") / "exporter" / "readback.py", "sovereign top")


def _demo_queries(root: Path) -> dict[str, str]:
    return _literal_queries(root, Path("sovereign") / "demo" / "steps" / "prometheus_readback.py", "demo")


class _Recorder:
    """A Prometheus that answers nothing and keeps every query asked of it."""

    url = "http://recorder"

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def instant(self, expr: str, at: float | None = None) -> list[Any]:
        self.asked.add(expr)
        return []

    def range(self, expr: str, start: float, end: float, step: float) -> list[Any]:
        self.asked.add(expr)
        return []

    def evaluation_interval_s(self) -> float:
        return 60.0


def _report_queries(root: Path) -> dict[str, str]:
    """Every query `sovereign report` sends for a two-hour window, from the copy of its data module under
    `root`: run, not read, since its queries are made from the window."""
    name = "_report_data_under_test"
    spec = importlib.util.spec_from_file_location(name, root / "sovereign" / "report" / "data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
        recorder = _Recorder()
        module.read(recorder, 7200, end=1_800_000_000.0)
    finally:
        del sys.modules[name]
    return {f"sovereign report: {expr}": expr for expr in recorder.asked}


def reads(root: Path) -> dict[str, set[str]]:
    """Each metric read (recording-rule outputs resolved to their sources) -> where it is read."""
    rules = _rules(root)
    recorded = {rule["record"]: metric_names(rule["expr"]) for rule in rules if "record" in rule}
    exprs = {f"rule {rule.get('alert') or rule['record']}": rule["expr"] for rule in rules}
    exprs |= _dashboard_exprs(root) | _top_queries(root) | _demo_queries(root) | _report_queries(root)

    def sources(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if name not in recorded:
            return {name}
        assert name not in seen, f"recording rules loop through {name}"
        return set().union(*(sources(n, seen | {name}) for n in recorded[name]))

    found: dict[str, set[str]] = defaultdict(set)
    for where, expr in exprs.items():
        for name in metric_names(expr) - PROMETHEUS_OWN:
            for source in sources(name):
                found[source].add(where)
    return dict(found)


@dataclass(frozen=True)
class Emitter:
    module: str
    labels: frozenset[str] | None  # None: not known from the source


class _Module:
    """One production module's metric constructions, its constants resolved."""

    def __init__(self, tree: ast.Module) -> None:
        self.kinds = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus_client")
            for alias in node.names
            if alias.name in METRICS | FAMILIES
        }
        self.assigned: dict[str, list[ast.expr]] = defaultdict(list)
        self.looped: dict[str, tuple[ast.expr, int]] = {}  # for a, b, c in ITERABLE: name -> (ITERABLE, i)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.assigned[target.id].append(node.value)
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Tuple):
                for i, element in enumerate(node.target.elts):
                    if isinstance(element, ast.Name):
                        self.looped[element.id] = (node.iter, i)
        self.tree = tree

    def _constant(self, node: ast.expr) -> ast.expr:
        while isinstance(node, ast.Name) and len(self.assigned.get(node.id, [])) == 1:
            node = self.assigned[node.id][0]
        return node

    def names(self, node: ast.expr) -> list[str]:
        node = self._constant(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.Name) and node.id in self.looped:
            iterable, i = self.looped[node.id]
            rows = self._constant(iterable)
            if isinstance(rows, ast.List | ast.Tuple):
                return [n for row in rows.elts if isinstance(row, ast.Tuple) for n in self.names(row.elts[i])]
        return []

    def labels(self, node: ast.expr | None) -> frozenset[str] | None:
        if node is None:
            return frozenset()
        node = self._constant(node)
        if not isinstance(node, ast.List | ast.Tuple):
            return None
        found: set[str] = set()
        for element in node.elts:
            if isinstance(element, ast.Constant) and isinstance(element.value, str):
                found.add(element.value)
            elif isinstance(element, ast.Starred) and (inner := self.labels(element.value)) is not None:
                found |= inner
            else:
                return None
        return frozenset(found)

    def constructions(self) -> list[tuple[str, frozenset[str] | None]]:
        found = []
        for call in ast.walk(self.tree):
            if not isinstance(call, ast.Call):
                continue
            kind = getattr(call.func, "id", None) or getattr(call.func, "attr", None)
            if kind not in self.kinds:
                continue
            keywords = {k.arg: k.value for k in call.keywords}
            labels_at, labels_kw = (3, "labels") if kind.endswith("MetricFamily") else (2, "labelnames")
            name = call.args[0] if call.args else keywords["name"]
            labels = call.args[labels_at] if len(call.args) > labels_at else keywords.get(labels_kw)
            found += [(metric, self.labels(labels)) for metric in self.names(name)]
        return found


def emitters(root: Path) -> dict[str, list[Emitter]]:
    """Each metric name constructed in production code -> where, and with which label names."""
    found: dict[str, list[Emitter]] = defaultdict(list)
    for package in PRODUCTION:
        for path in sorted((root / package).rglob("*.py")):
            module = _Module(ast.parse(path.read_text()))
            for metric, labels in module.constructions() if module.kinds else []:
                found[metric].append(Emitter(str(path.relative_to(root)), labels))
    return dict(found)


@dataclass(frozen=True)
class Documented:
    row: str
    labels: frozenset[str] | None  # None: the table has no labels column


def documented(root: Path) -> dict[str, Documented]:
    """METRICS.md: each metric of a table row (first column) -> that row and its labels column (backticked
    names, less what parentheses say about their values; `same`: the row above's)."""
    rows: dict[str, Documented] = {}
    header: list[str] = []
    previous: frozenset[str] | None = None
    lines = (root / MONITORING / "METRICS.md").read_text().splitlines()
    for line, following in zip(lines, [*lines[1:], ""], strict=True):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or set(cells[0]) <= {"-"}:
            continue
        if following.startswith("|---"):
            header, previous = cells, None
            continue
        labels = None
        if "labels" in header:
            cell = cells[header.index("labels")]
            named = re.findall(r"`([A-Za-z_]\w*)`", re.sub(r"\([^)]*\)", "", cell))
            labels = previous if cell == "same" else frozenset(named)
            previous = labels
        for name in re.findall(r"`([A-Za-z_:][A-Za-z0-9_:]*)`", cells[0]):
            rows[name] = Documented(line, labels)
    return rows


def problems(root: Path) -> list[str]:
    defined, docs, found = emitters(root), documented(root), []
    for metric, where in sorted(reads(root).items()):
        names = [metric, *(metric.removesuffix(s) for s in SUFFIXES if metric.endswith(s))]
        constructed = [emitter for name in names for emitter in defined.get(name, [])]
        modules = {emitter.module for emitter in constructed}
        read_by = "; ".join(sorted(where))
        if len(modules) != 1:
            found.append(f"{metric} (read by {read_by}) has {len(modules)} emitters: {sorted(modules)}")
            continue
        [module] = modules
        doc = next((docs[name] for name in names if name in docs), None)
        if doc is None or f"`{module}`" not in doc.row:
            found.append(f"{metric}: infra/monitoring/METRICS.md has no row naming its emitter `{module}`")
            continue
        for emitter in constructed:
            if emitter.labels != doc.labels:
                emitted = "unknown" if emitter.labels is None else sorted(emitter.labels)
                documented_as = "none" if doc.labels is None else sorted(doc.labels)
                found.append(f"{metric}: {module} emits labels {emitted}, METRICS.md says {documented_as}")
    return found


@pytest.mark.slow
def test_every_metric_read_has_exactly_one_emitter_named_in_metrics_md() -> None:
    assert problems(REPO) == []


def test_the_reads_cover_rules_alerts_dashboards_and_top() -> None:
    found = reads(REPO)
    assert "sovereign_deployment_compliant" in found  # an alert, a recording rule, panels and top
    compliance = found["sovereign_deployment_compliant"]
    assert {"rule SovereignNonCompliantDeployment", "sovereign top: noncompliant"} <= compliance
    # region_cluster:sovereign_gpu_allocated_per_quota:ratio, read by the quota alerts, is resolved to its
    # sources through two recording rules.
    assert "rule SovereignGpuQuotaExceeded" in found["sovereign_gpu_quota"]
    assert "rule SovereignGpuQuotaExceeded" in found["sovereign_gpu_allocated"]
    assert not any(":" in name for name in found)
    # `sovereign report` is read by running it: queries built from its window are seen as sent.
    assert (
        "sovereign report: sum by (tenant) (increase(sovereign_gpu_hours_total[7200s]))"
        in (found["sovereign_gpu_hours_total"])
    )
    assert (
        "sovereign report: region_cluster_model_tenant:gpu_energy_joules_per_1k_tokens:ratio1h"
        in (found["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"])
    )
    assert "demo: serving requests" in found["sovereign_requests_total"]
    assert "ALERTS" not in found  # Prometheus's own


def _scratch(tmp_path: Path) -> Path:
    for part in (MONITORING, Path("sovereign"), Path("operators"), Path("serving")):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.slow
def test_an_alert_on_a_metric_nothing_emits_fails_the_check(tmp_path: Path) -> None:
    root = _scratch(tmp_path)
    alerts = root / MONITORING / "rules" / "sovereign-alerts.rules.yml"
    doc = yaml.safe_load(alerts.read_text())
    doc["groups"][0]["rules"].append(
        {"alert": "SovereignMadeUp", "expr": "sum by (cluster) (sovereign_made_up_total) > 0"}
    )
    alerts.write_text(yaml.safe_dump(doc))
    assert problems(root) == ["sovereign_made_up_total (read by rule SovereignMadeUp) has 0 emitters: []"]


@pytest.mark.slow
def test_a_dashboard_panel_on_a_metric_nothing_emits_fails_the_check(tmp_path: Path) -> None:
    root = _scratch(tmp_path)
    board_path = root / MONITORING / "dashboards" / "sovereign-gpu.json"
    board = json.loads(board_path.read_text())
    panel = next(p for p in board["panels"] if p.get("targets"))
    panel["targets"][0]["expr"] = "sum by (region) (sovereign_gpu_made_up)"
    board_path.write_text(json.dumps(board))
    assert problems(root) == [
        f"sovereign_gpu_made_up (read by sovereign-gpu.json: {panel['title']}) has 0 emitters: []"
    ]


@pytest.mark.slow
def test_a_top_query_on_a_metric_nothing_emits_fails_the_check(tmp_path: Path) -> None:
    root = _scratch(tmp_path)
    readback = root / "sovereign" / "exporter" / "readback.py"
    text = readback.read_text()
    assert '"quota": "sum by (region, cluster) (sovereign_gpu_quota)"' in text
    readback.write_text(text.replace("(sovereign_gpu_quota)", "(sovereign_gpu_quota_made_up)"))
    assert problems(root) == ["sovereign_gpu_quota_made_up (read by sovereign top: quota) has 0 emitters: []"]


@pytest.mark.slow
def test_a_report_query_on_a_metric_nothing_emits_fails_the_check(tmp_path: Path) -> None:
    root = _scratch(tmp_path)
    data = root / "sovereign" / "report" / "data.py"
    data.write_text(data.read_text().replace("(sovereign_gpu_allocated)", "(sovereign_gpu_held)"))
    assert problems(root) == [
        "sovereign_gpu_held (read by sovereign report: sum by (region) (sovereign_gpu_held)) "
        "has 0 emitters: []"
    ]


@pytest.mark.slow
def test_labels_other_than_metrics_md_says_fail_the_check(tmp_path: Path) -> None:
    root = _scratch(tmp_path)
    metrics_md = root / MONITORING / "METRICS.md"
    row = "| `sovereign_gpu_capacity`, `sovereign_gpu_quota` | gauge | `region`, `cluster` |"
    assert row in metrics_md.read_text()
    metrics_md.write_text(
        metrics_md.read_text().replace(row, row.replace("`cluster`", "`cluster`, `tenant`"))
    )
    assert problems(root) == [
        f"{metric}: sovereign/exporter/accounting.py emits labels ['cluster', 'region'], METRICS.md says "
        "['cluster', 'region', 'tenant']"
        for metric in ("sovereign_gpu_capacity", "sovereign_gpu_quota")
    ]


@pytest.mark.slow
def test_only_a_construction_defines_a_metric(tmp_path: Path) -> None:
    """A module that uses prometheus-client and names a metric in a query or a docstring is no emitter;
    one that constructs it is, with the labels it passes."""
    root = _scratch(tmp_path)
    (root / "serving" / "mentions.py").write_text(
        'from prometheus_client import Gauge\n\nQUERY = "sum(sovereign_gpu_quota)"\n'
    )
    assert problems(root) == []
    (root / "serving" / "twin.py").write_text(
        "from prometheus_client import Gauge\n\n"
        'COMMON = ["region"]\nGauge("sovereign_gpu_quota", "again", [*COMMON, "cluster"])\n'
    )
    assert emitters(root)["sovereign_gpu_quota"][-1] == Emitter(
        "serving/twin.py", frozenset({"region", "cluster"})
    )
    assert any(p.startswith("sovereign_gpu_quota (read by") and "2 emitters" in p for p in problems(root))


@pytest.mark.slow
def test_an_undocumented_emitter_fails_the_check(tmp_path: Path) -> None:
    root = _scratch(tmp_path)
    metrics_md = root / MONITORING / "METRICS.md"
    metrics_md.write_text(
        metrics_md.read_text().replace("`sovereign/exporter/compliance.py`", "the operator")
    )
    found = problems(root)
    assert any(p.startswith("sovereign_deployment_compliant: ") for p in found)
