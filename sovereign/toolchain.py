"""Where the pinned external tools live: the per-user cache that `make tools` (tools/install.sh) fills."""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path

from sovereign.errors import ToolMissing

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = REPO_ROOT / "tools" / "versions.env"

# binary name -> (cache entry name, versions.env key)
_BINARIES = {
    "opa": ("opa", "OPA_VERSION"),
    "etcd": ("etcd", "ETCD_VERSION"),
    "kube-apiserver": ("kubernetes", "KUBERNETES_VERSION"),
    "kubectl": ("kubernetes", "KUBERNETES_VERSION"),
    "kube-controller-manager": ("kubernetes", "KUBERNETES_VERSION"),
    "pulumi": ("pulumi", "PULUMI_VERSION"),
}


@cache
def versions() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


def tools_dir() -> Path:
    if explicit := os.environ.get("SOVEREIGN_TOOLS_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sovereign" / "tools"


def _entry(name: str, version_key: str) -> Path:
    version = versions()[version_key]
    entry = tools_dir() / f"{name}-{version}"
    if not (entry / ".complete").is_file():
        raise ToolMissing(f"{name} {version} is not installed in {tools_dir()}: run 'make tools'")
    return entry


def binary(name: str) -> Path:
    """Path of a pinned binary, e.g. binary('opa'); raises ToolMissing with the fix when absent."""
    entry_name, key = _BINARIES[name]
    path = _entry(entry_name, key) / "bin" / name
    if not os.access(path, os.X_OK):
        raise ToolMissing(f"{path} is not executable: remove {path.parent.parent} and run 'make tools'")
    return path


def kuberay_crds() -> list[Path]:
    """KubeRay's own CRD manifests (ray.io/v1), copied from its Go module at the pinned version."""
    return sorted((_entry("kuberay-crds", "KUBERAY_VERSION") / "crds").glob("*.yaml"))


def kuberay_operator_manifests() -> list[Path]:
    """KubeRay's operator (RBAC, the manager Deployment) as its Go module's kustomize base declares it."""
    return sorted((_entry("kuberay-operator", "KUBERAY_VERSION") / "operator").glob("*.yaml"))


def system_binary(name: str, install_hint: str) -> Path:
    """A binary taken from the system PATH (Debian's prometheus/promtool)."""
    found = shutil.which(name)
    if not found:
        raise ToolMissing(f"{name} not found on PATH: {install_hint}")
    return Path(found)
