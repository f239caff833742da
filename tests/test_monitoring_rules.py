"""The Prometheus rules pass `promtool check rules`, and their unit tests pass `promtool test rules`
(Debian's Prometheus 2.42), file by file; a malformed rules file is caught by the same check."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sovereign import toolchain

MONITORING = Path(__file__).resolve().parent.parent / "infra" / "monitoring"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yml"))
TEST_FILES = sorted((MONITORING / "tests").glob("*.test.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = toolchain.system_binary("promtool", "run 'make tools' (installs Debian's prometheus package)")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)


def test_there_are_rules_and_tests() -> None:
    assert [p.name for p in RULE_FILES] == ["sovereign-alerts.rules.yml", "sovereign-recording.rules.yml"]
    assert [p.name for p in TEST_FILES] == ["alerts.test.yml", "recording.test.yml"]


@pytest.mark.parametrize("rules", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(rules: Path) -> None:
    done = promtool("check", "rules", str(rules))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("tests", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(tests: Path) -> None:
    done = promtool("test", "rules", str(tests))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test() -> None:
    import yaml

    alerts = {
        rule["alert"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for path in TEST_FILES
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts - tested == set()


def test_a_malformed_rules_file_is_refused_naming_the_problem(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(
        "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up\n"
    )
    done = promtool("check", "rules", str(broken))
    assert done.returncode != 0
    assert "broken.rules.yml" in done.stdout + done.stderr
    assert "parse error" in done.stdout + done.stderr
