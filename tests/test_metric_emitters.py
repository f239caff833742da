"""Every metric the monitoring stack reads has exactly one emitter in production code, named in METRICS.md.

Read = every PromQL expression in the rules and alerts, the dashboards (panels and variables) and
`sovereign top`, parsed with promql-parser; a recording rule's output stands for the metrics of its own
expression. Emitter = the one production module (sovereign/, operators/, serving/, infra/) that uses
prometheus-client and defines the metric's name (for a counter without `_total`, for a histogram without
`_bucket`/`_sum`/`_count`). The check runs on a repository root, so it can be shown to fail on a copy.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

import promql_parser
import yaml

REPO = Path(__file__).resolve().parent.parent
PRODUCTION = ("sovereign", "operators", "serving", "infra")
MONITORING = Path("infra") / "monitoring"
SUFFIXES = ("_total", "_bucket", "_sum", "_count")
# What Grafana substitutes before a dashboard expression reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$region": ".*", "$cluster": ".*"}


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


def _top_queries(root: Path) -> dict[str, str]:
    """The QUERIES `sovereign top` and `sovereign fleet status` read back, from their source (so a scratch
    copy is read, not the installed one)."""
    tree = ast.parse((root / "sovereign" / "exporter" / "readback.py").read_text())
    [queries] = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["QUERIES"]
    ]
    return {f"sovereign top: {column}": expr for column, expr in ast.literal_eval(queries).items()}


def reads(root: Path) -> dict[str, set[str]]:
    """Each metric read (recording-rule outputs resolved to their sources) -> where it is read."""
    rules = _rules(root)
    recorded = {rule["record"]: metric_names(rule["expr"]) for rule in rules if "record" in rule}
    exprs = {f"rule {rule.get('alert') or rule['record']}": rule["expr"] for rule in rules}
    exprs |= _dashboard_exprs(root) | _top_queries(root)

    def sources(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if name not in recorded:
            return {name}
        assert name not in seen, f"recording rules loop through {name}"
        return set().union(*(sources(n, seen | {name}) for n in recorded[name]))

    found: dict[str, set[str]] = defaultdict(set)
    for where, expr in exprs.items():
        for name in metric_names(expr):
            for source in sources(name):
                found[source].add(where)
    return dict(found)


def emitters(root: Path) -> dict[str, set[str]]:
    """String constants of the production modules that use prometheus-client -> those modules."""
    found: dict[str, set[str]] = defaultdict(set)
    for package in PRODUCTION:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            imported = {
                node.module if isinstance(node, ast.ImportFrom) else alias.name
                for node in ast.walk(tree)
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names
            }
            if not any(str(name).startswith("prometheus_client") for name in imported):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found[node.value].add(str(path.relative_to(root)))
    return dict(found)


def documented(root: Path) -> dict[str, str]:
    """METRICS.md: each metric of a table row (first column) -> the text of that row."""
    rows = {}
    for line in (root / MONITORING / "METRICS.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > 1:
            for name in re.findall(r"`([A-Za-z_:][A-Za-z0-9_:]*)`", cells[0]):
                rows[name] = line
    return rows


def problems(root: Path) -> list[str]:
    defined, docs, found = emitters(root), documented(root), []
    for metric, where in sorted(reads(root).items()):
        names = [metric, *(metric.removesuffix(s) for s in SUFFIXES if metric.endswith(s))]
        modules = set().union(*(defined.get(name, set()) for name in names))
        read_by = "; ".join(sorted(where))
        if len(modules) != 1:
            found.append(f"{metric} (read by {read_by}) has {len(modules)} emitters: {sorted(modules)}")
            continue
        [module] = modules
        row = next((docs[name] for name in names if name in docs), None)
        if row is None or f"`{module}`" not in row:
            found.append(f"{metric}: infra/monitoring/METRICS.md has no row naming its emitter `{module}`")
    return found


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


def test_an_alert_on_a_metric_nothing_emits_fails_the_check(tmp_path: Path) -> None:
    for part in (MONITORING, Path("sovereign"), Path("operators"), Path("serving")):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    alerts = tmp_path / MONITORING / "rules" / "sovereign-alerts.rules.yml"
    doc = yaml.safe_load(alerts.read_text())
    doc["groups"][0]["rules"].append(
        {"alert": "SovereignMadeUp", "expr": "sum by (cluster) (sovereign_made_up_total) > 0"}
    )
    alerts.write_text(yaml.safe_dump(doc))
    assert problems(tmp_path) == ["sovereign_made_up_total (read by rule SovereignMadeUp) has 0 emitters: []"]


def test_a_second_emitter_or_an_undocumented_one_fails_the_check(tmp_path: Path) -> None:
    for part in (MONITORING, Path("sovereign"), Path("operators"), Path("serving")):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "serving" / "twin.py").write_text(
        'from prometheus_client import Gauge\n\nGauge("sovereign_gpu_quota", "again", ["cluster"])\n'
    )
    metrics_md = tmp_path / MONITORING / "METRICS.md"
    metrics_md.write_text(
        metrics_md.read_text().replace("`sovereign/exporter/compliance.py`", "the operator")
    )
    found = problems(tmp_path)
    assert any(p.startswith("sovereign_gpu_quota (read by") and "2 emitters" in p for p in found)
    assert any(p.startswith("sovereign_deployment_compliant: ") for p in found)
