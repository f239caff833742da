"""A real Prometheus (Debian's package) on loopback, scraping the given targets with sovereign's rules.

Used by the demo and the end-to-end tests; like every dev component it dies with its parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from sovereign import toolchain
from sovereign.devenv.process import ManagedProcess, free_port

RULES_DIR = toolchain.REPO_ROOT / "infra" / "monitoring" / "rules"
INSTALL_HINT = "install Debian's prometheus package ('make tools' does it as root)"


@dataclass
class ScrapeJob:
    name: str
    targets: list[str]  # ["127.0.0.1:port", ...]
    metrics_path: str = "/metrics"
    # A Pushgateway's series carry the labels their pusher gave them (job, stack): keep those.
    honor_labels: bool = False


@dataclass
class PrometheusConfig:
    state_dir: Path
    jobs: list[ScrapeJob] = field(default_factory=list)
    rule_files: list[Path] = field(default_factory=lambda: sorted(RULES_DIR.glob("*.yml")))
    scrape_interval: str = "2s"
    port: int = 0
    ready_timeout_s: float = 60.0


class PrometheusServer:
    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config
        self.port = config.port or free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        cfg = self.config
        doc = {
            "global": {"scrape_interval": cfg.scrape_interval, "evaluation_interval": cfg.scrape_interval},
            "rule_files": [str(path) for path in cfg.rule_files],
            "scrape_configs": [
                {
                    "job_name": job.name,
                    "metrics_path": job.metrics_path,
                    "honor_labels": job.honor_labels,
                    "static_configs": [{"targets": job.targets}],
                }
                for job in cfg.jobs
            ],
        }
        path = cfg.state_dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def start(self) -> None:
        binary = toolchain.system_binary("prometheus", INSTALL_HINT)
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.write_config()
        self.process = ManagedProcess(
            "prometheus",
            [
                str(binary),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.config.state_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            self.config.state_dir / "prometheus.log",
        )
        self.process.start()
        try:
            self.process.wait_ready(
                lambda: requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200,
                self.config.ready_timeout_s,
                f"GET {self.url}/-/ready",
            )
        except BaseException:
            self.stop()
            raise

    def add_jobs(self, *jobs: ScrapeJob) -> None:
        """Scrape more targets from now on (rewrites the config and asks Prometheus to reload it)."""
        self.config.jobs.extend(jobs)
        self.write_config()
        requests.post(f"{self.url}/-/reload", timeout=5).raise_for_status()

    def query(self, expr: str) -> list[dict[str, Any]]:
        resp = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        resp.raise_for_status()
        return list(resp.json()["data"]["result"])

    def scrape_errors(self) -> dict[str, str]:
        """The last error of each target whose last scrape failed, by job and instance."""
        resp = requests.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=5)
        resp.raise_for_status()
        targets = resp.json()["data"]["activeTargets"]
        return {
            f"{t['labels']['job']} {t['labels']['instance']}": t["lastError"] or t["health"]
            for t in targets
            if t["health"] != "up"
        }

    def stop(self) -> None:
        if self.process:
            self.process.stop()
