"""Step: `sovereign up` of each region's Pulumi stack in a scratch project, after a preview that must refuse
the region's non-compliant declaration, if it has one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from infra.preview_metrics import PUSHGATEWAY_ENV
from infra.workspace import pulumi_dir
from sovereign import toolchain
from sovereign.demo.context import DemoContext, Region
from sovereign.demo.scenario import DemoRegion
from sovereign.demo.sovereign_cli import run_sovereign
from sovereign.models.signing import DEV_SIGNER

CLUSTERS_DIR = toolchain.REPO_ROOT / "clusters"


def deploy_stacks(demo: DemoContext) -> None:
    # The control planes are new each run, so the stacks' Pulumi state must be too.
    shutil.rmtree(pulumi_dir(), ignore_errors=True)
    project = _project(demo.root / "project")
    for region in demo.regions:
        _write_cluster(region.plan, demo.weights, project / "clusters")
        if region.plan.refused_file:
            _preview_refuses(demo, region, project)
        _up(demo, region, project)


def _project(project: Path) -> Path:
    """A Pulumi project of the repo's program whose clusters/ and stacks are the demo's own."""
    shutil.rmtree(project, ignore_errors=True)
    (project / "infra").mkdir(parents=True)
    shutil.copy(toolchain.REPO_ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "infra" / "__main__.py").symlink_to(toolchain.REPO_ROOT / "infra" / "__main__.py")
    return project


def _preview_refuses(demo: DemoContext, region: Region, project: Path) -> None:
    plan = region.plan
    assert plan.refused_file is not None
    shutil.copy(CLUSTERS_DIR / plan.refused_file, project / "clusters" / plan.refused_file)
    _write_stack(
        plan, project, region.kubeconfig, [f"clusters/{plan.cluster_file}", f"clusters/{plan.refused_file}"]
    )
    refused = run_sovereign("preview", plan.region, "--project-dir", str(project), env=_pushing(demo))
    text = refused.stdout + refused.stderr
    codes = [code for code in plan.expected_refusal if code in text]
    for line in text.splitlines():
        if "refused by the policy" in line or any(code in line for code in plan.expected_refusal):
            demo.report.say(f"[{plan.region}] {line.strip()[:220]}")
    demo.report.expect(
        f"{plan.region}: preview refuses {plan.refused_file}",
        refused.returncode == 1 and len(codes) == len(plan.expected_refusal),
        ", ".join(codes),
    )


def _up(demo: DemoContext, region: Region, project: Path) -> None:
    plan = region.plan
    _write_stack(plan, project, region.kubeconfig, [f"clusters/{plan.cluster_file}"])
    done = run_sovereign("up", plan.region, "--project-dir", str(project), env=_pushing(demo))
    (demo.root / "logs" / f"pulumi-up-{plan.region}.log").write_text(done.stdout + done.stderr)
    summary = [line.strip() for line in done.stdout.splitlines() if " created" in line and "+ " in line]
    demo.report.say(f"[{plan.region}] {summary[-1] if summary else done.stderr.strip()[-300:]}")
    created = region.llama_deployments()
    demo.report.expect(
        f"{plan.region}: stack up",
        done.returncode == 0 and len(created) == len(plan.deployments),
        f"{len(created)} LlamaDeployments in {plan.cluster}",
    )


def _pushing(demo: DemoContext) -> dict[str, str]:
    """The policy pack pushes each preview's decisions to the demo's Pushgateway, for Prometheus."""
    return {PUSHGATEWAY_ENV: demo.pushgateway_url} if demo.pushgateway_url else {}


def _write_cluster(plan: DemoRegion, weights: dict[str, Path], folder: Path) -> None:
    """The region's cluster file with the demo's deployments, served from the tiny checkpoints."""
    doc: dict[str, Any] = yaml.safe_load((CLUSTERS_DIR / plan.cluster_file).read_text())
    doc["deployments"] = [
        {
            "name": d.name,
            "model": d.model,
            "end_use": d.end_use,
            "replicas": 1,
            "gpus_per_replica": d.gpus_per_replica,
            "weights": str(weights[d.model]),
            "weights_signer": DEV_SIGNER,  # `sovereign models build` signed them as that identity
        }
        for d in plan.deployments
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / plan.cluster_file).write_text(
        f"# Written by `sovereign demo` from clusters/{plan.cluster_file}.\n" + yaml.safe_dump(doc)
    )


def _write_stack(plan: DemoRegion, project: Path, kubeconfig: Path, clusters: list[str]) -> None:
    """The region's stack file: local workloads, the region's control plane, the given cluster files."""
    stacks = project / "infra" / "stacks"
    stacks.mkdir(parents=True, exist_ok=True)
    doc = {
        "config": {
            "sovereign:kubeconfig": str(kubeconfig),
            "sovereign:region": plan.region,
            "sovereign:clusters": clusters,
            "sovereign:workloads": "local",
            "sovereign:egressCidrs": ["127.0.0.0/8"],
        }
    }
    (stacks / f"{plan.region}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
