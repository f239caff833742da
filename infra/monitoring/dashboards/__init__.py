"""The committed Grafana dashboards, for whoever ships them (Pulumi puts them in ConfigMaps).

Reading the committed JSON keeps grafana-foundation-sdk a development dependency: only
generate.py, which writes these files, needs it.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def dashboards() -> dict[str, str]:
    """File name (e.g. sovereign-gpu.json) -> dashboard JSON text."""
    return {path.name: path.read_text() for path in sorted(HERE.glob("*.json"))}
