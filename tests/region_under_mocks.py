"""SovereignRegion run under Pulumi's mocks: every object it registers, with its inputs and dependencies.

Shared by the component's unit tests (tests/test_pulumi_region.py) and the server-side dry run of an
in-cluster stack against the real API server (tests/test_in_cluster_dry_run.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any

import pulumi

from infra.kube_api import Connection
from infra.kube_object import KubeObject
from infra.region import SovereignRegion, SovereignRegionArgs
from infra.stack_config import Workloads
from sovereign import toolchain
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import load_cluster

KUBE_OBJECT = f"pulumi-python:{KubeObject._resource_type_name}"
CONNECTION = Connection("/tmp/kubeconfig", "", "https://127.0.0.1:6443")
USDEF = load_cluster(toolchain.REPO_ROOT / "clusters" / "usdef-east-1.yaml")


@dataclass
class Registered:
    type: str
    name: str
    parent: str
    dependencies: list[str]
    inputs: dict[str, Any]

    @property
    def manifest(self) -> dict[str, Any]:
        return self.inputs["manifest"]


class RecordingMonitor(pulumi.runtime.mocks.MockMonitor):
    """The SDK's mock monitor, also keeping each registration's parent and dependencies."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if registration := self.resources.get(response.urn):  # the root Stack is not kept
            self.registered.append(
                Registered(
                    request.type, request.name, request.parent, list(request.dependencies), registration.state
                )
            )
        return response


class EchoMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


def deploy(args: SovereignRegionArgs) -> tuple[list[Registered], dict[str, Any]]:
    """Run the component under the mocks; return what it registered and its resolved outputs."""
    monitor = RecordingMonitor(EchoMocks())
    pulumi.runtime.set_mocks(EchoMocks(), project="sovereign", stack="test", preview=False, monitor=monitor)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def run() -> pulumi.Output[Any]:
        region = SovereignRegion(args.region, args)
        both = pulumi.Output.all(region.namespaces, region.endpoints, region.compliance)
        return both.apply(
            lambda values: outputs.update(zip(("namespaces", "endpoints", "compliance"), values, strict=True))
        )

    run()
    return monitor.registered, outputs


def region_args(bundle: SignedBundle, **overrides: Any) -> SovereignRegionArgs:
    values: dict[str, Any] = {
        "region": "us-defense",
        "clusters": [USDEF],
        "connection": CONNECTION,
        "workloads": Workloads.local,
        "bundle": bundle,
        "egress_cidrs": [ip_network("10.20.0.0/16")],
        "dashboards": {"sovereign-gpu.json": "{}"},
        "rules": {"sovereign-alerts.rules.yml": "groups: []\n"},
    }
    return SovereignRegionArgs(**{**values, **overrides})


def in_cluster_args(bundle: SignedBundle, **overrides: Any) -> SovereignRegionArgs:
    """A region whose operator and OPA run in the cluster (KubeRay only where an image is given)."""
    values: dict[str, Any] = {
        "workloads": Workloads.in_cluster,
        "operator_image": "registry.example/sovereign/operator:0.1.0",
        "opa_image": "openpolicyagent/opa:1.10.0-static",
        "webhook_ca": b"-----BEGIN CERTIFICATE-----\n",
    }
    return region_args(bundle, **{**values, **overrides})


def by_kind(registered: list[Registered], kind: str) -> list[Registered]:
    return [r for r in registered if r.type == KUBE_OBJECT and r.manifest["kind"] == kind]
