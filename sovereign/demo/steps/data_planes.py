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

# Printed by `sovereign serve --watch` once its Ray and Serve's proxy are up.
_STARTED = "watching RayServices through"


def start_data_planes(demo: DemoContext) -> None:
    for region in demo.regions:
        region.serve_port = free_port()
        plane = demo.spawn(
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
        # One region's Ray at a time: three starting at once on two cores start about a dozen Python
        # processes together, and Ray gives its raylet and dashboard agent a fixed 30 s to come up (all
        # three Rays missed it, every try, with other work on the machine). A Ray that cannot start ends
        # the demo here with its log, not after ten minutes of waiting for a model.
        log = plane.log_path
        plane.wait_ready(lambda log=log: _STARTED in log.read_text(errors="replace"), 300, "its local Ray")
        demo.report.say(f"[{region.plan.region}] local Ray up: Serve on 127.0.0.1:{region.serve_port}")
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
