"""What a user of a demo left running needs: each region's kubeconfig, OPA and model endpoints, Prometheus,
the matrix, and how to stop it all."""

from __future__ import annotations

from sovereign.demo.context import DemoContext
from sovereign.vocabulary import DEPLOYMENTS


def show_endpoints(demo: DemoContext) -> None:
    say = demo.report.say
    demo.report.title("The demo is up")
    for region in demo.regions:
        say(f"[{region.plan.region}] KUBECONFIG={region.kubeconfig}  OPA {region.opa_url}")
        for deployment in region.plan.deployments:
            say(f"    {deployment.model}: {region.endpoint(deployment.name)}")
    if demo.prometheus:
        say(f"Prometheus {demo.prometheus.url}   try: sovereign top --prometheus {demo.prometheus.url}")
    if demo.fleet_file:
        say(f"fleet file {demo.fleet_file}   try: sovereign fleet status --fleet {demo.fleet_file}")
    if demo.matrix_html:
        say(f"compliance matrix: {demo.matrix_html}")
    say(f"kubectl --kubeconfig {demo.regions[0].kubeconfig} get {DEPLOYMENTS} -A")
    say("stop everything: make demo-down (or Ctrl-C here)")
