"""Step: one detached control plane (etcd, kube-apiserver, OPA) per region, and a client for each."""

from __future__ import annotations

from pathlib import Path

from kubernetes import config

from sovereign.demo.context import DemoContext
from sovereign.devenv import lifecycle


def start_control_planes(demo: DemoContext) -> None:
    for region in demo.regions:
        name = region.plan.region
        state = lifecycle.up(name, progress=lambda line, n=name: demo.report.say(f"[{n}] {line}"))
        region.kubeconfig = Path(state["kubeconfig"])
        region.opa_url = str(state["opa_url"])
        region.pki = Path(state["ca_file"]).parent
        region.api = config.new_client_from_config(config_file=str(region.kubeconfig))
        demo.report.say(f"[{name}] API {state['apiserver_url']}  OPA {region.opa_url}")
