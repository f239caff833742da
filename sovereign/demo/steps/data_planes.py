"""Step: the local data plane per region (`sovereign serve --watch` on a local Ray) serving the admitted
RayServices, each deployment's serving metrics scraped by Prometheus."""

from __future__ import annotations

import requests

from sovereign.demo.context import DemoContext, Region
from sovereign.demo.polling import wait_for
from sovereign.demo.scenario import DemoDeployment
from sovereign.demo.sovereign_cli import SOVEREIGN
from sovereign.devenv.process import free_port
from sovereign.devenv.prometheus import ScrapeJob


def start_data_planes(demo: DemoContext) -> None:
    for region in demo.regions:
        region.serve_port = free_port()
        demo.spawn(
            f"dataplane-{region.plan.region}",
            [
                *SOVEREIGN,
                "serve",
                "--watch",
                f"--kubeconfig={region.kubeconfig}",
                f"--port={region.serve_port}",
                "--num-cpus=4",  # logical CPUs for Ray's scheduler: one per model replica
                # the GPUs the region's deployments declare; no device here, so they run on CPU
                f"--num-gpus={sum(d.gpus_per_replica for d in region.plan.deployments)}",
            ],
            env={"PYTHONUNBUFFERED": "1"},
        )
    # Every region's Ray starts at once; only then is each deployment waited for.
    jobs = [_serving(demo, region, d) for region in demo.regions for d in region.plan.deployments]
    assert demo.prometheus is not None
    demo.prometheus.add_jobs(*jobs)


def _serving(demo: DemoContext, region: Region, deployment: DemoDeployment) -> ScrapeJob:
    """Wait until the deployment answers; the scrape job for its serving metrics."""
    url = region.endpoint(deployment.name)
    wait_for(f"{url}/models", lambda: requests.get(f"{url}/models", timeout=5).ok, 600)
    if not deployment.is_vision:  # the model replica, not just the ingress, answers
        probe = {"model": deployment.model, "prompt": "ping", "max_tokens": 1}
        wait_for(
            f"a completion from {url}",
            lambda: requests.post(f"{url}/completions", json=probe, timeout=30).ok,
            600,
        )
    demo.report.say(f"[{region.plan.region}] serving {deployment.model} at {url}")
    namespace, name = region.plan.service(deployment)
    return ScrapeJob(f"serving-{name}", [f"127.0.0.1:{region.serve_port}"], f"/{namespace}/{name}/metrics")
