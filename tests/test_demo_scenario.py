"""The demo's scenario is data about this repo: it must name clusters, requests, codes and policy text that
exist, and the README's transcript must show the runner's step titles."""

from __future__ import annotations

import re

import yaml

from sovereign import toolchain
from sovereign.demo.runner import STEPS
from sovereign.demo.scenario import CLUSTER_REQUESTS, POLICY_CHANGE, REGIONS, SAMPLE_REQUESTS
from sovereign.demo.steps.cluster_requests import REQUESTS_DIR
from sovereign.demo.steps.stacks import CLUSTERS_DIR

ROOT = toolchain.REPO_ROOT
PLANS = {plan.region: plan for plan in REGIONS}
CODES = {c["code"] for c in yaml.safe_load((ROOT / "policies" / "data" / "codes.yaml").read_text())["codes"]}


def test_readme_transcript_shows_the_runner_step_titles() -> None:
    shown = re.findall(r"^── (\d+)\. (.+) ──$", (ROOT / "README.md").read_text(), re.MULTILINE)
    assert shown
    for number, title in shown:
        assert STEPS[int(number) - 1].title == title


def test_each_region_declares_clusters_that_exist_and_refusals_the_policy_knows() -> None:
    for plan in REGIONS:
        assert (CLUSTERS_DIR / plan.cluster_file).is_file()
        if plan.refused_file:
            assert (CLUSTERS_DIR / plan.refused_file).is_file()
            assert set(plan.expected_refusal) <= CODES


def test_sample_requests_go_to_planned_deployments() -> None:
    for request in SAMPLE_REQUESTS:
        deployment = PLANS[request.region].deployment(request.deployment)
        if request.with_image and request.refused_with is None:
            assert deployment.is_vision
        assert request.refused_with is None or request.refused_with in CODES


def test_cluster_requests_are_examples_for_their_region() -> None:
    for case in CLUSTER_REQUESTS:
        doc = yaml.safe_load((REQUESTS_DIR / case.file).read_text())
        assert case.region in PLANS
        assert doc["spec"]["region"] == case.region


def test_policy_change_applies_to_the_policies_and_a_planned_deployment() -> None:
    assert POLICY_CHANGE.old in (ROOT / "policies" / POLICY_CHANGE.file).read_text()
    PLANS[POLICY_CHANGE.region].deployment(POLICY_CHANGE.deployment)
    assert POLICY_CHANGE.code in CODES
