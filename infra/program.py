"""The Pulumi program: one stack = one sovereign region (SovereignRegion), its config in infra/stacks/."""

from __future__ import annotations

from pathlib import Path

import pulumi
from pulumi.runtime.config import CONFIG

from infra import stack_config
from infra.monitoring.dashboards import dashboards
from infra.region import SovereignRegion, SovereignRegionArgs
from infra.region_plan import RegionPlan, plan
from infra.stack_config import StackConfig
from sovereign.errors import SovereignError
from sovereign.policy.bundle import SignedBundle, configured_bundle

RULES_DIR = Path(__file__).resolve().parent / "monitoring" / "rules"


def prometheus_rules() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(RULES_DIR.glob("*.rules.yml"))}


def region_args(config: StackConfig, region_plan: RegionPlan, bundle: SignedBundle) -> SovereignRegionArgs:
    """What the stack's region is made of: its planned clusters and connection, the stack's images, the
    verified bundle, and the project's dashboards and rules."""
    return SovereignRegionArgs(
        region=config.region,
        clusters=region_plan.clusters,
        connection=region_plan.connection,
        workloads=config.workloads,
        bundle=bundle,
        egress_cidrs=list(config.egress_cidrs),
        operator_image=config.operator_image,
        serving_image=config.serving_image,
        opa_image=config.opa_image,
        kuberay_image=config.kuberay_image,
        webhook_ca=region_plan.webhook_ca,
        dashboards=dashboards(),
        rules=prometheus_rules(),
    )


def sovereign_program(project_dir: Path) -> None:
    """Deploy the stack's region. Bad input stops the program before any resource is registered."""
    try:
        # CONFIG holds every key Pulumi passed (the SDK has no public call listing them): unknown keys
        # must be refused, not ignored.
        config = stack_config.from_pulumi(dict(CONFIG.get()), f"stack {pulumi.get_stack()}")
        region_plan = plan(config, project_dir)
        # The bundle is built on purpose beforehand (`sovereign bundle build`), never here; verified before
        # it is shipped.
        region = SovereignRegion(config.region, region_args(config, region_plan, configured_bundle()))
    except SovereignError as exc:
        # RunError: Pulumi prints the message alone, without a traceback.
        raise pulumi.RunError(str(exc)) from None
    pulumi.export("region", config.region)
    pulumi.export("namespaces", region.namespaces)
    pulumi.export("endpoints", region.endpoints)
    pulumi.export("compliance", region.compliance)
