"""What the demo deploys: one control plane per sovereign region, each with one cluster from clusters/,
re-declared to serve the tiny local checkpoints, and the one non-compliant declaration preview refuses.

The clusters are the repo's examples; only their deployments change, so that every served model is one
a tiny checkpoint stands in for (serving verifies the weights against the declared variant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sovereign import toolchain

CLUSTERS_DIR = toolchain.REPO_ROOT / "clusters"
TEXT_MODEL = "llama-3.1-8b-instruct"  # what the tiny text checkpoint stands in for
VISION_MODEL = "llama-3.2-11b-vision-instruct"  # what the tiny Mllama checkpoint stands in for


@dataclass(frozen=True)
class DemoDeployment:
    name: str
    model: str
    end_use: str
    gpus_per_replica: int = 1

    @property
    def is_vision(self) -> bool:
        return self.model == VISION_MODEL


@dataclass(frozen=True)
class RegionPlan:
    region: str
    cluster_file: str  # from clusters/
    deployments: tuple[DemoDeployment, ...]
    refused_file: str | None = None  # a declaration preview must refuse
    expected_refusal: tuple[str, ...] = field(default_factory=tuple)

    @property
    def cluster(self) -> str:
        return self.cluster_file.removesuffix(".yaml")

    def service(self, deployment: DemoDeployment) -> tuple[str, str]:
        """(namespace, name) of the RayService the operator makes for a deployment."""
        return self.cluster, f"{self.cluster}-{deployment.name}"


REGIONS: tuple[RegionPlan, ...] = (
    RegionPlan(
        "us-defense",
        "usdef-east-1.yaml",
        (
            DemoDeployment("chat", TEXT_MODEL, "defense", 2),
            DemoDeployment("vision", VISION_MODEL, "intelligence", 4),
        ),
    ),
    RegionPlan("five-eyes", "fvey-london-1.yaml", (DemoDeployment("chat", TEXT_MODEL, "public_sector", 2),)),
    RegionPlan(
        "eu-text-only",
        "eu-frankfurt-1.yaml",
        (DemoDeployment("chat", TEXT_MODEL, "commercial", 1),),
        refused_file="eu-rotterdam-1-noncompliant.yaml",
        expected_refusal=("EU_MULTIMODAL_LICENCE", "REGION_MODALITY"),
    ),
)

# The policy change the demo makes: the UK's OFFICIAL tier no longer accredits a Five Eyes cluster, so
# fvey-london-1 (accredited uk-official) falls out of compliance and its RayService is suspended.
POLICY_CHANGE = {
    "file": "data/regions/five-eyes.yaml",
    "description": "five-eyes: GB clusters now need uk-secret (uk-official no longer accepted)",
    "old": "GB: [uk-official, uk-secret]",
    "new": "GB: [uk-secret]",
    "suspended": ("five-eyes", "chat"),
    "code": "ACCREDITATION_MISSING",
}


def write_cluster(plan: RegionPlan, weights: dict[str, Path], folder: Path) -> Path:
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
        }
        for d in plan.deployments
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / plan.cluster_file
    path.write_text(
        f"# Written by `sovereign demo` from clusters/{plan.cluster_file}.\n" + yaml.safe_dump(doc)
    )
    return path


def write_stack(plan: RegionPlan, project: Path, kubeconfig: Path, clusters: list[str]) -> Path:
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
    path = stacks / f"Pulumi.{plan.region}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
