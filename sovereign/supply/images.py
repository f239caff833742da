"""The project's two container images, built from images/*.Containerfile and the hash-pinned locks.

    operator  the kopf operator and every `sovereign` command (locks/operator.txt: base only)
    serving   the Ray image the operator writes into RayServices, plus the project's `serving` package and
              its serving extra (locks/serving.txt), so `import_path: serving.app:build_app` resolves

`make images` (`sovereign images build`) builds them with the first builder that works here: docker with a
daemon that answers, podman, or buildah; none: one line naming what to install (exit 2). Each image is
tagged `REGISTRY/sovereign/NAME:VERSION`; its Containerfile labels it with its source, licences and the
revision passed as a build argument (OCI annotations); the digest each build produced is printed and
written to images/built.json (not tracked).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sovereign import __version__, toolchain
from sovereign.errors import SovereignError, ToolMissing

DEFAULT_REGISTRY = "registry.example"
BUILT_FILE = "images/built.json"


@dataclass(frozen=True)
class ImageSpec:
    name: str
    containerfile: str  # relative to the repository root, the build context
    lock: str  # the lock the image installs with --require-hashes
    description: str

    def reference(self, registry: str = DEFAULT_REGISTRY, version: str = __version__) -> str:
        return f"{registry}/sovereign/{self.name}:{version}"


IMAGES = {
    "operator": ImageSpec(
        "operator",
        "images/operator.Containerfile",
        "locks/operator.txt",
        "sovereign: the operator (admission, reconcile, drift, ClusterRequests) and CLI",
    ),
    "serving": ImageSpec(
        "serving",
        "images/serving.Containerfile",
        "locks/serving.txt",
        "sovereign: Ray with the serving app (serving.app:build_app) the operator's RayServices run",
    ),
}


@dataclass(frozen=True)
class Builder:
    tool: str  # docker, podman or buildah
    path: str

    def build_command(self, spec: ImageSpec, tag: str, revision: str) -> list[str]:
        """Build `spec` as `tag`; its OCI labels are the Containerfile's, the revision this build argument."""
        verb = "bud" if self.tool == "buildah" else "build"
        return [
            self.path,
            verb,
            "--file",
            spec.containerfile,
            "--build-arg",
            f"REVISION={revision}",
            "--tag",
            tag,
            ".",
        ]

    def archive_command(self, tag: str, out: Path) -> list[str]:
        """Save `tag` as an OCI archive (what a disconnected region loads)."""
        if self.tool == "buildah":
            return [self.path, "push", tag, f"oci-archive:{out}"]
        if self.tool == "podman":
            return [self.path, "save", "--format", "oci-archive", "--output", str(out), tag]
        return [self.path, "save", "--output", str(out), tag]

    def pull_command(self, reference: str) -> list[str]:
        return [self.path, "pull", reference]

    def digest_command(self, tag: str) -> list[str]:
        return [self.path, "image", "inspect", "--format", "{{.Id}}", tag]


def _answers(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_builder() -> Builder | str:
    """The first container builder that works here, or why none does (one line naming what to install)."""
    notes = []
    for tool, probe in (("docker", ["info"]), ("podman", ["info"]), ("buildah", ["version"])):
        path = shutil.which(tool)
        if path is None:
            continue
        if _answers([path, *probe]):
            return Builder(tool, path)
        notes.append(
            f"{tool} is installed but `{tool} {probe[0]}` fails" + (" (no daemon)" * (tool == "docker"))
        )
    found = f" ({'; '.join(notes)})" if notes else ""
    return (
        f"no container builder here{found}: install podman or buildah (`apt-get install podman`), or "
        "start a docker daemon, then run `make images` again"
    )


def git_revision(root: Path = toolchain.REPO_ROOT) -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def require_builder() -> Builder:
    found = find_builder()
    if isinstance(found, str):
        raise ToolMissing(found)
    return found


def build_images(
    registry: str = DEFAULT_REGISTRY,
    root: Path = toolchain.REPO_ROOT,
    progress: Callable[[str], None] = print,
) -> dict[str, dict[str, str]]:
    """Build every image; {name: {reference, digest}}, also written to images/built.json."""
    builder = require_builder()
    revision = git_revision(root)
    built: dict[str, dict[str, str]] = {}
    for spec in IMAGES.values():
        tag = spec.reference(registry)
        progress(f"{builder.tool}: building {tag} from {spec.containerfile} ({spec.lock})")
        # The builder's own output goes to the console as it builds; a failure is named in one line after it.
        if (code := subprocess.run(builder.build_command(spec, tag, revision), cwd=root).returncode) != 0:
            raise SovereignError(
                f"{builder.tool} could not build {tag} from {spec.containerfile} (exit {code})"
            )
        digest = subprocess.run(
            builder.digest_command(tag), cwd=root, capture_output=True, text=True
        ).stdout.strip()
        built[spec.name] = {"reference": tag, "digest": digest}
        progress(f"  {tag} {digest}")
    (root / BUILT_FILE).write_text(json.dumps(built, indent=2, sort_keys=True) + "\n")
    return built
