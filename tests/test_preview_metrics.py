"""The policy pack's decisions reach a real Pushgateway (Debian's prometheus-pushgateway), once per
LlamaDeployment however many of its policies judge it, and keep counting up across previews of a stack,
each short-lived run counting on from what the gateway holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from test_pulumi_policy_pack import POLICIES, as_preview_sees_it, cluster, engine_at, real_engine, reports

from infra import preview_policy
from infra.preview_metrics import JOB, PreviewDecisions, stack_of
from sovereign.devenv.process import ManagedProcess, free_port
from sovereign.devenv.pushgateway import pushgateway_argv, ready

__all__ = ["engine_at", "real_engine"]  # fixtures of the policy pack's tests, used here


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port, work = free_port(), tmp_path_factory.mktemp("pushgateway")
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess("pushgateway", pushgateway_argv(port, work), work / "pushgateway.log")
    process.start()
    try:
        process.wait_ready(lambda: ready(url), 30, f"{url}/-/ready")
        yield url
    finally:
        process.stop()


def preview(gateway: str | None, monkeypatch: pytest.MonkeyPatch, *args: Any) -> None:
    """One `pulumi preview`: a fresh policy-pack process runs every policy on every resource."""
    monkeypatch.setattr(preview_policy, "DECISIONS", PreviewDecisions(gateway))
    for resource in args:
        for policy in POLICIES.values():
            reports(policy, resource)


def pushed(gateway: str, stack: str) -> dict[tuple[str, ...], float]:
    text = requests.get(f"{gateway}/metrics", timeout=5).text
    return {
        tuple(s.labels[k] for k in ("point", "cluster", "decision", "code")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "sovereign_policy_decisions_total"
        and s.labels.get("job") == JOB
        and s.labels["stack"] == stack
    }


def test_a_urn_names_its_stack() -> None:
    assert (
        stack_of("urn:pulumi:eu-text-only::sovereign::pulumi-python:dynamic:KubeObject::x") == "eu-text-only"
    )


def test_decisions_are_pushed_once_per_deployment_and_add_up_across_previews(
    real_engine: None, pushgateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    urn = "urn:pulumi:{stack}::sovereign::pulumi-python:dynamic:KubeObject::{name}"
    allowed = as_preview_sees_it(cluster(), urn=urn.format(stack="us-defense", name="chat"))
    denied = as_preview_sees_it(cluster(kind="company"), urn=urn.format(stack="us-defense", name="vision"))
    elsewhere = as_preview_sees_it(cluster(), urn=urn.format(stack="five-eyes", name="chat"))

    preview(pushgateway, monkeypatch, allowed)
    assert pushed(pushgateway, "us-defense") == {("preview", "usdef-east-1", "allow", "none"): 1.0}

    preview(pushgateway, monkeypatch, allowed, denied)  # the next preview of the stack counts on
    assert pushed(pushgateway, "us-defense") == {
        ("preview", "usdef-east-1", "allow", "none"): 2.0,
        # one decision, counted once per reason code, as at every point
        ("preview", "usdef-east-1", "deny", "OPERATOR_NOT_ELIGIBLE"): 1.0,
        ("preview", "usdef-east-1", "deny", "END_USE_NOT_PERMITTED"): 1.0,
    }
    preview(pushgateway, monkeypatch, elsewhere)  # another stack: a group of its own
    assert pushed(pushgateway, "five-eyes") == {("preview", "usdef-east-1", "allow", "none"): 1.0}
    assert pushed(pushgateway, "us-defense")[("preview", "usdef-east-1", "allow", "none")] == 2.0


def test_a_gateway_that_does_not_answer_never_fails_a_preview(
    real_engine: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(preview_policy, "DECISIONS", PreviewDecisions(nowhere))
    args = as_preview_sees_it(cluster(kind="company"), urn="urn:pulumi:s::p::t::n")
    violations = reports(POLICIES["sovereign-decision"], args)
    assert any(line.startswith("OPERATOR_NOT_ELIGIBLE") for line in violations)  # decided as ever
    assert f"preview decisions not pushed to {nowhere}" in capsys.readouterr().err


def test_without_a_gateway_nothing_leaves_the_process(
    real_engine: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preview_policy, "DECISIONS", PreviewDecisions(None))
    monkeypatch.setattr("infra.preview_metrics.push_to_gateway", pytest.fail)
    monkeypatch.setattr("infra.preview_metrics.requests.get", pytest.fail)
    assert (
        reports(POLICIES["sovereign-decision"], as_preview_sees_it(cluster(), urn="urn:pulumi:s::p::t::n"))
        == []
    )
