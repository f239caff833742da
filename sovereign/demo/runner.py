"""`sovereign demo`: the whole mission on real parts, one step after another, each outcome checked.

Every step runs what a user would run (the `sovereign` CLI, the pinned Pulumi CLI, kubectl-equivalent API
calls, the official `openai` client); nothing is simulated. Background processes (operators, data planes,
exporters, Prometheus) are children of this process and die with it; the per-region control planes are
detached supervisors that `shutdown.stop` (and `sovereign demo down`) take down.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from sovereign.demo import shutdown
from sovereign.demo.context import DemoContext
from sovereign.demo.endpoints import show_endpoints
from sovereign.demo.report import DemoReport
from sovereign.demo.scenario import POLICY_CHANGE
from sovereign.demo.steps.cluster_requests import submit_cluster_requests
from sovereign.demo.steps.compliance_matrix import write_matrix
from sovereign.demo.steps.control_planes import start_control_planes
from sovereign.demo.steps.data_planes import start_data_planes
from sovereign.demo.steps.evidence_packs import export_evidence
from sovereign.demo.steps.models import build_models
from sovereign.demo.steps.monitoring import start_monitoring
from sovereign.demo.steps.operators import start_operators
from sovereign.demo.steps.policy_change import change_policy
from sovereign.demo.steps.prometheus_readback import read_prometheus
from sovereign.demo.steps.sample_requests import send_sample_requests
from sovereign.demo.steps.stacks import deploy_stacks
from sovereign.demo.steps.summary import summarise
from sovereign.errors import SovereignError


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[DemoContext], None]


# In this order, numbered from 1: the README's transcript shows these titles.
STEPS: tuple[Step, ...] = (
    Step("Tiny local Llama checkpoints (no download) and the signed policy bundle", build_models),
    Step(
        "One Kubernetes control plane per sovereign region (etcd, kube-apiserver, OPA)", start_control_planes
    ),
    Step("Prometheus, and a sovereign exporter per region", start_monitoring),
    Step(
        "`sovereign up` of each region's Pulumi stack (the real Pulumi CLI, policy pack at preview)",
        deploy_stacks,
    ),
    Step(
        "The sovereign operator per region (its own ServiceAccount token, admission webhook)", start_operators
    ),
    Step("The local data plane: admitted RayServices served on a local Ray per region", start_data_planes),
    Step("What each region admitted and refused", summarise),
    Step("Sample requests through the official openai client", send_sample_requests),
    Step("Government contractors' ClusterRequests", submit_cluster_requests),
    Step("The compliance matrix (every variant x every cluster x every end use)", write_matrix),
    Step(f"A policy change: {POLICY_CHANGE.description}", change_policy),
    Step("GPU allocation, GPU-hours and decisions, read back from Prometheus", read_prometheus),
    Step("An evidence pack per region, verified offline as an auditor would", export_evidence),
)


def run(console: Console, *, stay_up: bool) -> bool:
    """Run every step, then (with `stay_up`, after a clean run) show the endpoints and wait for Ctrl-C or
    `sovereign demo down`; stop everything; tally the outcomes. True when none failed."""
    demo = DemoContext(DemoReport(console))

    def interrupt(*_: object) -> None:  # `demo down` or a service manager: stop wherever it is
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    failure: str | None = None
    try:
        _run_steps(demo)
    except SovereignError as exc:
        failure = str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    try:
        if failure is None and stay_up:
            show_endpoints(demo)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the clean-up short
        console.rule("stopping")
        shutdown.stop(demo)
    if failure:
        demo.report.expect("demo ran to the end", False, failure)
    demo.report.tally()
    return demo.report.failed == 0


def _run_steps(demo: DemoContext) -> None:
    (demo.root / "logs").mkdir(parents=True, exist_ok=True)
    shutdown.record_running(demo)
    for number, step in enumerate(STEPS, start=1):
        demo.report.title(f"{number}. {step.title}")
        step.run(demo)
