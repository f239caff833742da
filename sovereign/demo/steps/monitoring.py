"""Step: a sovereign exporter per region, a Pushgateway for the previews' decisions, and the Prometheus
that scrapes them (later steps add jobs)."""

from __future__ import annotations

from sovereign.demo.context import DemoContext
from sovereign.demo.sovereign_cli import SOVEREIGN
from sovereign.devenv.process import free_port
from sovereign.devenv.prometheus import PrometheusConfig, PrometheusServer, ScrapeJob
from sovereign.devenv.pushgateway import pushgateway_argv, ready
from sovereign.exporter.gpu_trace import H100_TRACE


def start_monitoring(demo: DemoContext) -> None:
    jobs = []
    for region in demo.regions:
        region.exporter_port = free_port()
        demo.spawn(
            f"exporter-{region.plan.region}",
            [
                *SOVEREIGN,
                "exporter",
                "--addr=127.0.0.1",
                f"--port={region.exporter_port}",
                f"--region={region.plan.region}",
                f"--cluster={region.plan.cluster}",
                f"--kubeconfig={region.kubeconfig}",
                f"--gpu-trace={H100_TRACE}",
                "--interval=2",
                f"--node=node-{region.plan.cluster}",
            ],
        )
        jobs.append(ScrapeJob(f"exporter-{region.plan.region}", [f"127.0.0.1:{region.exporter_port}"]))
    gateway_port = free_port()
    gateway = demo.spawn("pushgateway", pushgateway_argv(gateway_port, demo.root / "logs"))
    demo.pushgateway_url = f"http://127.0.0.1:{gateway_port}"
    gateway.wait_ready(lambda: ready(demo.pushgateway_url or ""), 30, f"{demo.pushgateway_url}/-/ready")
    jobs.append(ScrapeJob("sovereign-preview", [f"127.0.0.1:{gateway_port}"], honor_labels=True))
    demo.prometheus = PrometheusServer(PrometheusConfig(state_dir=demo.root / "prometheus", jobs=jobs))
    demo.prometheus.start()
    demo.report.say(
        f"Prometheus {demo.prometheus.url} (GPU samples replay a real H100 NVML trace: no GPU here)"
    )
