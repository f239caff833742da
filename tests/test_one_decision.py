"""Every enforcement point gives the same answer for the same deployment.

Cluster files declare deployments chosen to exercise the facts points used to disagree on: GPUs
already held by the deployments declared before (a quota overrun), weights stored in another country,
a model the catalogue does not know, a namespace the cluster does not admit as a tenant (a cluster
file's deployments are made in the namespace named after it; the second cluster admits another). Each
point then judges each deployment from its own source form, through its own code path: the cluster file
with `sovereign decide --deployment`, the compliance matrix, the Pulumi preview pack, the admission
webhook (the LlamaDeployment, and the RayService the operator would write for it, submitted as is), the
reconciler, and the serving guard on that RayService's serving args. Allow and violation codes must be
identical everywhere.
"""

from __future__ import annotations

import re
import sys
from datetime import date
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from pulumi_policy import ResourceValidationArgs

from infra import decisions, preview_policy
from operators.sovereign_operator import rayservice
from operators.sovereign_operator.admission import Admission
from operators.sovereign_operator.facts import claims_by_cluster, judge_deployments
from operators.sovereign_operator.reconcile import resolve
from serving.args import ServingArgs
from serving.guard import RequestGuard
from sovereign import cli
from sovereign.matrix.grid import compute_matrix, load_clusters
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import ClusterSpec, load_cluster
from sovereign.policy.judgement import Judge, Mode
from sovereign.policy.wasm_engine import WasmEngine
from sovereign.policydata import load_policy_data

AS_OF = date.today().isoformat()
IMAGE = "rayproject/ray:2.60.0-py311"  # an image the region's workloads allowance admits
CLUSTER = {
    "name": "parity-east-1",
    "region": "us-defense",
    "country": "US",
    "weights_country": "US",
    "gpu_quota": 10,
    "enforcement": "enforce",
    "operator": {
        "name": "Lattice Federal Systems Inc.",
        "country": "US",
        "kind": "government_contractor",
        "sponsor_country": "US",
    },
    "accreditations": [{"scheme": "dod-il5", "expires": "2099-12-31"}],
    "deployments": [
        {"name": "chat", "model": "llama-3.1-8b-instruct", "end_use": "defense", "gpus_per_replica": 4},
        {
            "name": "abroad",
            "model": "llama-3.1-8b-instruct",
            "end_use": "defense",
            "gpus_per_replica": 2,
            "weights_country": "DE",
        },
        {
            "name": "vision",
            "model": "llama-3.2-11b-vision-instruct",
            "end_use": "intelligence",
            "gpus_per_replica": 4,
        },
        {"name": "typo", "model": "llama-3.1-8b-instrct", "end_use": "defense", "gpus_per_replica": 0},
        {"name": "over", "model": "llama-3.1-8b-instruct", "end_use": "defense", "gpus_per_replica": 2},
    ],
}
# Its one tenant is not the namespace its deployments are made in: every deployment there is foreign.
FOREIGN = {
    **{key: value for key, value in CLUSTER.items() if key != "deployments"},
    "name": "parity-west-1",
    "tenants": ["team-elsewhere"],
    "deployments": [
        {"name": "foreign", "model": "llama-3.1-8b-instruct", "end_use": "defense", "gpus_per_replica": 1}
    ],
}
CODES = {entry.code for entry in load_policy_data().codes.values()}
Answer = tuple[bool, list[str]]


@pytest.fixture(scope="module")
def cluster_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clusters")
    for declared in (CLUSTER, FOREIGN):
        (folder / f"{declared['name']}.yaml").write_text(yaml.safe_dump(declared))
    return sorted(folder.glob("*.yaml"))


@pytest.fixture(scope="module")
def judge(signed_bundle: SignedBundle) -> Judge:
    return Judge(WasmEngine(signed_bundle.wasm, signed_bundle.verification_key))


def _objects(spec: ClusterSpec) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The SovereignCluster and LlamaDeployments as the API server holds them once all run, created in
    declaration order."""
    cluster = subjects.sovereign_cluster(spec)
    deployments = []
    for index, declared in enumerate(spec.deployments):
        obj = subjects.llama_deployment(spec, declared, spec.name)
        obj["metadata"].update(uid=f"uid-{index}", creationTimestamp=f"2026-01-01T00:00:{index:02d}Z")
        obj["status"] = {"phase": "Running"}
        deployments.append(obj)
    return cluster, deployments


def _codes_in(message: str) -> list[str]:
    return sorted(set(re.findall(r"\b[A-Z][A-Z_]+[A-Z]\b", message)) & CODES)


def by_decide(cluster_file: Path, name: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Answer:
    monkeypatch.setattr(
        sys, "argv", ["sovereign", "decide", "--cluster", str(cluster_file), "--deployment", name]
    )
    with pytest.raises(SystemExit):
        cli.main()
    decision = yaml.safe_load(capsys.readouterr().out)
    return decision["allow"], sorted({v["code"] for v in decision["violations"]})


def by_matrix(folder: Path, judge: Judge) -> dict[str, Answer]:
    matrix = compute_matrix(load_clusters(folder), judge, load_policy_data(), date.fromisoformat(AS_OF))
    cells = {d.deployment.name: matrix.deployment_cell(d) for d in matrix.deployments}
    return {name: (cell.allowed, sorted(set(cell.violation_codes))) for name, cell in cells.items()}


def by_preview(spec: ClusterSpec, index: int, judge: Judge, monkeypatch: pytest.MonkeyPatch) -> Answer:
    monkeypatch.setattr(decisions, "judge", lambda: judge)
    decisions._judge_json.cache_clear()
    cluster = subjects.sovereign_cluster(spec)
    deployments = [subjects.llama_deployment(spec, d, spec.name) for d in spec.deployments]
    props = {
        "manifest": deployments[index],
        "policy_context": decisions.policy_context(cluster, deployments, index),
    }
    args = ResourceValidationArgs(preview_policy.KUBE_OBJECT_TYPE, props, "urn:x", "d", None, None)  # type: ignore[arg-type]
    found: list[str] = []
    for policy in preview_policy.POLICIES[:2]:  # the decision's violations (obligations are advisory)
        policy.validate(args, lambda message, urn=None: found.append(message))
    return not found, _codes_in(" ".join(found))


def by_admission(spec: ClusterSpec, index: int, judge: Judge) -> Answer:
    cluster, deployments = _objects(spec)
    body = deployments[index]
    try:
        Admission(judge).review_deployment(body, None, {spec.name: cluster}, claims_by_cluster(deployments))
    except kopf.AdmissionError as refused:
        return False, _codes_in(str(refused))
    return True, []


def by_reconcile(spec: ClusterSpec, index: int, judge: Judge) -> Answer:
    cluster, deployments = _objects(spec)
    (judgement,) = judge_deployments(
        judge, [deployments[index]], {spec.name: cluster}, claims_by_cluster(deployments)
    )
    resolution = resolve(judgement, Mode.ENFORCE)
    return bool(resolution.allowed), sorted({v["code"] for v in resolution.violations})


def _written(spec: ClusterSpec, index: int, judge: Judge) -> dict[str, Any]:
    """The RayService the operator writes for deployment `index`: it carries the facts judged."""
    cluster, deployments = _objects(spec)
    (judgement,) = judge_deployments(
        judge, [deployments[index]], {spec.name: cluster}, claims_by_cluster(deployments)
    )
    judged = resolve(judgement, Mode.DRYRUN).judged
    assert judged is not None
    return rayservice.desired(deployments[index], cluster, judged, IMAGE)


def by_rayservice_admission(spec: ClusterSpec, index: int, judge: Judge) -> Answer:
    """The same RayService submitted as it is (a RayService is judged as the deployments it declares)."""
    cluster, deployments = _objects(spec)
    written = _written(spec, index, judge)
    try:
        Admission(judge).review_rayservice(
            written, None, {spec.name: cluster}, claims_by_cluster(deployments)
        )
    except kopf.AdmissionError as refused:
        return False, _codes_in(str(refused))
    return True, []


def by_guard(spec: ClusterSpec, index: int, judge: Judge) -> Answer:
    written = _written(spec, index, judge)
    args = ServingArgs.model_validate(
        yaml.safe_load(written["spec"]["serveConfigV2"])["applications"][0]["args"]
    )
    model = args.llm_configs[0].model_loading_config.model_id
    guard = RequestGuard(args.policy, [model], engine=judge.engine)
    answer = guard.check({"model": model, "messages": [{"role": "user", "content": "hi"}]}, model, None)
    return answer.allowed, answer.codes


@pytest.mark.slow
def test_every_enforcement_point_gives_the_same_answer(
    cluster_files: list[Path],
    judge: Judge,
    cli_state: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    matrix = by_matrix(cluster_files[0].parent, judge)
    answers: dict[str, dict[str, Answer]] = {}
    for cluster_file in cluster_files:
        spec = load_cluster(cluster_file)
        for index, declared in enumerate(spec.deployments):
            answers[declared.name] = {
                "decide": by_decide(cluster_file, declared.name, monkeypatch, capsys),
                "matrix": matrix[declared.name],
                "preview": by_preview(spec, index, judge, monkeypatch),
                "admission": by_admission(spec, index, judge),
                "admission (RayService)": by_rayservice_admission(spec, index, judge),
                "reconcile": by_reconcile(spec, index, judge),
                "guard": by_guard(spec, index, judge),
            }
    for name, by_point in answers.items():
        assert len(set(map(repr, by_point.values()))) == 1, f"{name}: {by_point}"
    # The set exercises what the points used to disagree on: each fact decides one deployment.
    outcome = {name: by_point["decide"] for name, by_point in answers.items()}
    assert outcome["chat"] == (True, []) and outcome["vision"] == (True, [])
    assert "DATA_RESIDENCY" in outcome["abroad"][1]
    assert outcome["over"] == (False, ["GPU_QUOTA_EXCEEDED"])
    assert outcome["typo"] == (False, ["UNKNOWN_MODEL"])
    # The guard re-checks the tenant too: the serving args carry the namespace the deployment was judged in.
    assert outcome["foreign"] == (False, ["TENANT_NOT_ALLOWED"])
