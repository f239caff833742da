"""Step: the sovereign operator per region, on its own ServiceAccount credentials and admission webhook,
its admission-decision metrics scraped by Prometheus."""

from __future__ import annotations

import requests

from sovereign.demo.context import DemoContext, Region
from sovereign.demo.polling import wait_for
from sovereign.demo.sovereign_cli import SOVEREIGN, run_sovereign
from sovereign.devenv.process import free_port
from sovereign.devenv.prometheus import ScrapeJob
from sovereign.errors import SovereignError
from sovereign.fleet.fleetfile import FleetFile, FleetRegion, write_fleet


def start_operators(demo: DemoContext) -> None:
    for region in demo.regions:
        _start_operator(demo, region)
    assert demo.prometheus is not None
    demo.prometheus.add_jobs(
        *(
            ScrapeJob(f"operator-{r.plan.region}", [f"127.0.0.1:{r.operator_metrics_port}"])
            for r in demo.regions
        )
    )
    _write_fleet_file(demo)


def _write_fleet_file(demo: DemoContext) -> None:
    """The fleet the operators now watch over: each region's kubeconfig, and the Prometheus they share."""
    assert demo.prometheus is not None
    fleet = FleetFile(
        regions={
            r.plan.region: FleetRegion(kubeconfig=r.kubeconfig, prometheus=demo.prometheus.url)
            for r in demo.regions
        }
    )
    demo.fleet_file = write_fleet(demo.root / "fleet.yaml", fleet)
    demo.report.say(f"fleet file {demo.fleet_file}: try sovereign fleet status --fleet {demo.fleet_file}")


def _start_operator(demo: DemoContext, region: Region) -> None:
    name = region.plan.region
    credentials = demo.root / "operators" / name
    done = run_sovereign(
        "operator",
        "setup",
        f"--out={credentials}",
        f"--ca-dir={region.pki}",
        f"--webhook-port={free_port()}",
        f"--kubeconfig={region.kubeconfig}",
    )
    if done.returncode != 0:
        raise SovereignError(f"operator setup for {name} failed: {done.stderr.strip()}")
    region.operator_metrics_port = free_port()
    health = free_port()
    # The operator verifies each checkpoint's facts and signature where the replicas will load it.
    demo.spawn(
        f"operator-{name}",
        [
            *SOVEREIGN,
            "operator",
            "run",
            f"--credentials={credentials}",
            "--drift-interval=2",
            f"--metrics-port={region.operator_metrics_port}",
            f"--liveness=http://127.0.0.1:{health}/healthz",
            demo.weights_mount,
        ],
        # The operator screens against the dated sample `sovereign dev up` installed (its default).
        env={"SOVEREIGN_OPA_URL": region.opa_url, "PYTHONUNBUFFERED": "1"},
    )
    wait_for(
        f"the {name} operator", lambda: requests.get(f"http://127.0.0.1:{health}/healthz", timeout=1).ok, 120
    )
    demo.report.say(f"[{name}] operator live; its metrics on :{region.operator_metrics_port}/metrics")
