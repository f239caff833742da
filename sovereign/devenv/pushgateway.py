"""A real Pushgateway (Debian's prometheus-pushgateway) on loopback: where the short-lived policy pack of
each `pulumi preview` pushes its decisions (infra/preview_metrics.py) for Prometheus to scrape.

Used by the demo and the tests; its process is started by the caller, so it dies with its owner.
"""

from __future__ import annotations

from pathlib import Path

import requests

from sovereign import toolchain

INSTALL_HINT = "run 'make tools' (Debian's prometheus-pushgateway)"


def pushgateway_argv(port: int, work: Path) -> list[str]:
    binary = toolchain.system_binary("prometheus-pushgateway", INSTALL_HINT)
    return [
        str(binary),
        f"--web.listen-address=127.0.0.1:{port}",
        # Debian's build persists to /var/lib/prometheus by default: this gateway keeps to its own folder.
        f"--persistence.file={work / 'pushgateway.data'}",
        "--log.level=warn",
    ]


def ready(url: str) -> bool:
    return requests.get(f"{url}/-/ready", timeout=1).ok
