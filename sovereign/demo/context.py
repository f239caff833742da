"""What the steps share: the regions with what has been brought up for each, the processes started, the
Prometheus server, the built weights and the report of outcomes. Each step reads what earlier steps set."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from sovereign.demo.report import DemoReport
from sovereign.demo.scenario import REGIONS, DemoRegion
from sovereign.devenv.process import ManagedProcess
from sovereign.devenv.prometheus import PrometheusServer
from sovereign.devenv.state import state_root
from sovereign.vocabulary import DEPLOYMENTS, GROUP, VERSION

# Set in the environment of everything the demo starts, and so of what those fork: Ray renames its
# processes (ray::DashboardAgent), so a marker in the environment is what finds them for `demo down`.
MEMBER_ENV = "SOVEREIGN_DEMO_MEMBER"


def demo_root() -> Path:
    return state_root() / "demo"


@dataclass
class Region:
    """One region's plan and, as the steps bring them up, its control plane, exporter, operator and Ray."""

    plan: DemoRegion
    kubeconfig: Path = Path()
    opa_url: str = ""
    pki: Path = Path()
    serve_port: int = 0
    exporter_port: int = 0
    operator_metrics_port: int = 0
    api: client.ApiClient | None = None

    def endpoint(self, deployment_name: str) -> str:
        namespace = self.plan.cluster
        return f"http://127.0.0.1:{self.serve_port}/{namespace}/{namespace}-{deployment_name}/v1"

    def objects(self) -> client.CustomObjectsApi:
        assert self.api is not None, "the region's control plane is not up"
        return client.CustomObjectsApi(self.api)

    def llama_deployments(self) -> list[dict[str, Any]]:
        """The LlamaDeployments in the region's cluster namespace, as the API server has them."""
        listed = self.objects().list_namespaced_custom_object(GROUP, VERSION, self.plan.cluster, DEPLOYMENTS)
        return list(listed["items"])


@dataclass
class DemoContext:
    report: DemoReport
    regions: list[Region] = field(default_factory=lambda: [Region(plan) for plan in REGIONS])
    processes: list[ManagedProcess] = field(default_factory=list)
    prometheus: PrometheusServer | None = None
    pushgateway_url: str | None = None  # where each stack's preview pushes its decisions
    weights: dict[str, Path] = field(default_factory=dict)  # by the model a tiny checkpoint stands in for
    matrix_html: Path | None = None
    fleet_file: Path | None = (
        None  # the three regions, for `sovereign fleet status`, `whatif`, `bundle publish`
    )

    @property
    def root(self) -> Path:
        return demo_root()

    @property
    def weights_mount(self) -> str:
        """`--weights-mount` for what reads the model store here: the local data plane runs Ray on this
        host, so the pods' path of the store is the host's."""
        store = os.path.commonpath([str(folder.parent) for folder in self.weights.values()])
        return f"--weights-mount={store}={store}"

    def region(self, name: str) -> Region:
        return next(r for r in self.regions if r.plan.region == name)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
        """Start a background process that dies with the demo and that `demo down` can find."""
        env = {**(env or {}), MEMBER_ENV: str(self.root)}
        proc = ManagedProcess(name, argv, self.root / "logs" / f"{name}.log", env=env)
        proc.start()
        self.processes.append(proc)
        return proc
