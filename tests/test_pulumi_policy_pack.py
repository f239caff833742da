"""The preview-time policies, called as the policy pack's analyzer calls them, on the real OPA server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy

from infra import decisions, preview_policy
from sovereign import toolchain
from sovereign.devenv.process import free_port
from sovereign.policy import subjects
from sovereign.policy.clusters import ClusterSpec, load_cluster

USDEF = load_cluster(toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml")
POLICIES = {policy.name: policy for policy in preview_policy.POLICIES}


@pytest.fixture
def engine_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def point_at(url: str) -> None:
        monkeypatch.setenv("SOVEREIGN_OPA_URL", url)
        decisions.judge.cache_clear()
        decisions._judge_json.cache_clear()

    yield point_at
    decisions.judge.cache_clear()
    decisions._judge_json.cache_clear()


@pytest.fixture
def real_engine(opa_server: Any, engine_at: Any) -> None:
    engine_at(opa_server.url)


def cluster(enforcement: str = "enforce", kind: str = "government_contractor") -> ClusterSpec:
    raw = USDEF.model_dump(mode="json")
    raw.update(enforcement=enforcement)
    raw["operator"]["kind"] = kind
    return ClusterSpec.model_validate(raw)


def as_preview_sees_it(
    spec: ClusterSpec, with_context: bool = True, urn: str = "urn:x"
) -> ResourceValidationArgs:
    """A LlamaDeployment KubeObject's props as the analyzer gets them: numbers as doubles."""
    deployment = subjects.llama_deployment(spec, spec.deployments[0], spec.name)
    deployment["spec"] = {k: float(v) if isinstance(v, int) else v for k, v in deployment["spec"].items()}
    props: dict[str, Any] = {"manifest": deployment, "connection": {}}
    if with_context:
        cluster_obj = subjects.sovereign_cluster(spec)
        cluster_obj["spec"]["gpu"]["quota"] = float(cluster_obj["spec"]["gpu"]["quota"])
        props["policy_context"] = {"cluster": cluster_obj, "gpusInUse": 0.0}
    return ResourceValidationArgs(
        preview_policy.KUBE_OBJECT_TYPE,
        props,
        urn,
        "d",
        None,
        None,  # type: ignore[arg-type]
    )


def reports(policy: ResourceValidationPolicy, args: ResourceValidationArgs) -> list[str]:
    found: list[str] = []
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def test_levels_are_mandatory_for_decisions_and_advisory_for_the_rest() -> None:
    levels = {name: policy.enforcement_level for name, policy in POLICIES.items()}
    assert levels == {
        "sovereign-decision": EnforcementLevel.MANDATORY,
        "sovereign-decision-reported": EnforcementLevel.ADVISORY,
        "sovereign-obligations": EnforcementLevel.ADVISORY,
    }


def test_allowed_deployment_passes_with_its_obligations_advised(real_engine: None) -> None:
    args = as_preview_sees_it(cluster())
    assert reports(POLICIES["sovereign-decision"], args) == []
    obligations = reports(POLICIES["sovereign-obligations"], args)
    assert any(line.startswith("BUILT_WITH_LLAMA: ") for line in obligations)


def test_denied_deployment_on_an_enforcing_cluster_is_a_mandatory_violation_with_citation(
    real_engine: None,
) -> None:
    args = as_preview_sees_it(cluster(kind="company"))
    violations = reports(POLICIES["sovereign-decision"], args)
    assert any(line.startswith("OPERATOR_NOT_ELIGIBLE: ") and "https://" in line for line in violations)
    assert reports(POLICIES["sovereign-decision-reported"], args) == []


def test_warn_mode_reports_without_blocking(real_engine: None) -> None:
    args = as_preview_sees_it(cluster(enforcement="warn", kind="company"))
    assert reports(POLICIES["sovereign-decision"], args) == []
    assert any(
        line.startswith("OPERATOR_NOT_ELIGIBLE")
        for line in reports(POLICIES["sovereign-decision-reported"], args)
    )


def test_a_deployment_without_its_cluster_cannot_be_judged_so_it_is_refused(real_engine: None) -> None:
    args = as_preview_sees_it(cluster(), with_context=False)
    (violation,) = reports(POLICIES["sovereign-decision"], args)
    assert violation.startswith("cannot be judged: no policy_context")  # no decision, no invented code


def test_other_objects_are_not_judged(real_engine: None) -> None:
    namespace = {"manifest": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}}
    args = ResourceValidationArgs(preview_policy.KUBE_OBJECT_TYPE, namespace, "u", "n", None, None)  # type: ignore[arg-type]
    assert all(reports(policy, args) == [] for policy in POLICIES.values())


def test_unreachable_engine_fails_closed(engine_at: Any) -> None:
    engine_at(f"http://127.0.0.1:{free_port()}")
    (violation,) = reports(POLICIES["sovereign-decision"], as_preview_sees_it(cluster()))
    assert violation.startswith("ENGINE_UNAVAILABLE: ")
