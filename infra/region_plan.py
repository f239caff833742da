"""Everything a region's stack needs before any object is created, each check naming what to fix.

`sovereign up|preview` runs this before Pulumi starts (bad input: exit 2, nothing created); the program
runs it again from Pulumi's config, so a plain `pulumi up` refuses the same inputs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from infra.kube_api import Connection, connect
from infra.stack_config import PROJECT, StackConfig
from sovereign.errors import BadInput
from sovereign.policy.clusters import ClusterSpec, load_cluster


@dataclass(frozen=True)
class RegionPlan:
    config: StackConfig
    clusters: list[ClusterSpec]
    connection: Connection
    webhook_ca: bytes | None


def load_clusters(config: StackConfig, project_dir: Path) -> list[ClusterSpec]:
    clusters, files = [], config.cluster_files(project_dir)
    for path in files:
        spec = load_cluster(path)  # BadInput naming the file and field
        if spec.region != config.region:
            raise BadInput(
                f"{path}: region {spec.region!r} is not this stack's region {config.region!r}: "
                f"deploy it from the {spec.region} stack, or remove it from {PROJECT}:clusters"
            )
        clusters.append(spec)
    if repeated := sorted(name for name, n in Counter(c.name for c in clusters).items() if n > 1):
        raise BadInput(f"{PROJECT}:clusters: cluster names must be unique; repeated: {', '.join(repeated)}")
    return clusters


def connect_stack(config: StackConfig) -> Connection:
    return connect(config.kubeconfig, config.context, f"{PROJECT}:kubeconfig / {PROJECT}:context")


def plan(config: StackConfig, project_dir: Path) -> RegionPlan:
    """Clusters first (no network needed to refuse a bad file), then the API server."""
    clusters, webhook_ca = load_clusters(config, project_dir), config.webhook_ca(project_dir)
    return RegionPlan(config, clusters, connect_stack(config), webhook_ca)
