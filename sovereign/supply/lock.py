"""The hash-pinned locks in locks/: the one source of every installed Python package version.

One lock per use, all for CPython 3.11 on linux x86_64 (what the images and the project's machines run):

    locks/dev.txt       base + serving + dev extras: the venv of developers and CI (`make venv-serving`)
    locks/tools.txt     base + dev: the venv without the serving stack (`make venv`: lint, fast tests)
    locks/serving.txt   base + serving: the serving image (Ray Serve replicas)
    locks/operator.txt  base only: the operator image

`make lock` writes them with `uv pip compile --generate-hashes`: dev.txt first, then the others constrained
by it, so a package has the same version in every lock. `check_locks` (`sovereign lock check`, `make lint`)
says, offline, where pyproject.toml and the locks disagree: a requirement the locked version does not
satisfy, a requirement not locked, a package locked as pyproject's that pyproject no longer asks for, a
pin without hashes, a version differing from dev.txt's. Offline means it reads the locks' own `# via`
annotations (uv writes them) for what pyproject asked for directly, instead of resolving again.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from sovereign import toolchain
from sovereign.errors import BadInput, ToolMissing

LOCK_COMMAND = "make lock"
PYTHON_VERSION = "3.11"
# uv's name for the platform the images run on (manylinux_2_28: glibc 2.28 and later, Ray's images' too).
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
# How uv names pyproject.toml in a lock's `# via` annotations when run from the repository root.
PYPROJECT_SOURCE = "sovereign (pyproject.toml)"
# The interpreter the locks are for, for requirement markers (`; sys_platform == "linux"`).
MARKER_ENVIRONMENT = default_environment() | {
    "implementation_name": "cpython",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_version": PYTHON_VERSION,
    "python_full_version": f"{PYTHON_VERSION}.0",
    "sys_platform": "linux",
}


@dataclass(frozen=True)
class LockSpec:
    name: str
    extras: tuple[str, ...]
    use: str

    def path(self, root: Path) -> Path:
        return root / "locks" / f"{self.name}.txt"


# dev first: the others are compiled constrained by it.
LOCKS = {
    "dev": LockSpec("dev", ("serving", "dev"), "the venv of developers and CI"),
    "tools": LockSpec("tools", ("dev",), "the venv without the serving stack"),
    "serving": LockSpec("serving", ("serving",), "the serving image"),
    "operator": LockSpec("operator", (), "the operator image"),
}
ROOT_LOCK = "dev"


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: str
    hashes: tuple[str, ...]  # "sha256:<hex>", one per distribution file of that version
    via: tuple[str, ...]  # who asked for it: PYPROJECT_SOURCE, another pin's name, "-c locks/dev.txt"


_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


def read_lock(path: Path) -> dict[NormalizedName, Pin]:
    """Every pin of a lock written by uv pip compile; BadInput naming the line when it is not one."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the lock ({exc.strerror}): `{LOCK_COMMAND}` writes it") from None
    pins: dict[NormalizedName, Pin] = {}
    current: dict[str, list[str]] | None = None
    name = version = ""

    def close() -> None:
        if current is not None:
            pins[canonicalize_name(name)] = Pin(
                canonicalize_name(name), version, tuple(current["hashes"]), tuple(current["via"])
            )

    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped:
            continue
        if not line[0].isspace() and not stripped.startswith("#"):
            found = _PIN.match(stripped)
            if found is None:
                raise BadInput(f"{path}:{number}: not a `name==version` pin: {stripped}")
            close()
            name, version = found["name"], found["version"]
            current = {"hashes": [], "via": []}
        elif current is not None and (hashed := _HASH.search(stripped)):
            current["hashes"].append(hashed[1])
        elif current is not None and stripped.startswith("# via "):
            current["via"].append(stripped.removeprefix("# via ").strip())
        elif current is not None and stripped.startswith("#   "):
            current["via"].append(stripped.removeprefix("#").strip())
    close()
    return pins


def requirements(pyproject: Path, extras: tuple[str, ...]) -> list[Requirement]:
    """pyproject's requirements for the base and `extras`, those whose markers hold on the locks' target."""
    project = tomllib.loads(pyproject.read_text())["project"]
    texts = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        texts += optional[extra]
    found = []
    for text in texts:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise BadInput(f"{pyproject}: requirement {text!r}: {exc}") from None
        if requirement.marker is None or requirement.marker.evaluate(MARKER_ENVIRONMENT | {"extra": ""}):
            found.append(requirement)
    return found


def check_lock(spec: LockSpec, root: Path, reference: dict[NormalizedName, Pin] | None = None) -> list[str]:
    """Where `spec`'s lock and pyproject.toml disagree, one line each naming the package and the fix."""
    path = spec.path(root)
    rel = path.relative_to(root)
    pins = read_lock(path)
    fix = f"run `{LOCK_COMMAND}`"
    problems = []
    wanted = requirements(root / "pyproject.toml", spec.extras)
    asked = {canonicalize_name(r.name) for r in wanted}
    for requirement in wanted:
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{rel}: {requirement} (pyproject.toml) is not locked: {fix}")
        elif not requirement.specifier.contains(Version(pin.version), prereleases=True):
            problems.append(
                f"{rel}: {pin.name}=={pin.version} does not satisfy pyproject.toml's {requirement}: {fix}"
            )
    for pin in sorted(pins.values(), key=lambda p: p.name):
        if PYPROJECT_SOURCE in pin.via and pin.name not in asked:
            problems.append(
                f"{rel}: {pin.name} is locked for pyproject.toml, which no longer asks for it: {fix}"
            )
        if not pin.hashes:
            problems.append(
                f"{rel}: {pin.name}=={pin.version} has no hash: `pip --require-hashes` refuses it"
            )
        askers = [v for v in pin.via if v == PYPROJECT_SOURCE or canonicalize_name(v) in pins]
        if not askers:
            problems.append(f"{rel}: {pin.name} is locked but nothing locked asks for it: {fix}")
        if reference is not None and (same := reference.get(pin.name)) and same.version != pin.version:
            problems.append(
                f"{rel}: {pin.name}=={pin.version}, but locks/{ROOT_LOCK}.txt has {same.version}: {fix}"
            )
    return problems


def check_locks(root: Path = toolchain.REPO_ROOT) -> list[str]:
    """Every lock against pyproject.toml and against dev.txt's versions."""
    reference = read_lock(LOCKS[ROOT_LOCK].path(root))
    problems = []
    for spec in LOCKS.values():
        problems += check_lock(spec, root, None if spec.name == ROOT_LOCK else reference)
    return problems


def compile_command(spec: LockSpec, uv: str = "uv") -> list[str]:
    """The uv command that writes `spec`'s lock, run from the repository root."""
    command = [
        uv, "pip", "compile", "pyproject.toml", "--quiet", "--generate-hashes",
        "--python-version", PYTHON_VERSION, "--python-platform", PYTHON_PLATFORM,
        "--custom-compile-command", LOCK_COMMAND,
        "--output-file", str(spec.path(Path("."))),
    ]  # fmt: skip
    command += [arg for extra in spec.extras for arg in ("--extra", extra)]
    if spec.name != ROOT_LOCK:
        command += ["--constraint", str(LOCKS[ROOT_LOCK].path(Path(".")))]
    return command


def compile_locks(root: Path = toolchain.REPO_ROOT, progress: Callable[[str], None] = print) -> None:
    """Write every lock (needs the package index): what `make lock` runs after changing pyproject.toml."""
    uv = shutil.which("uv")
    if uv is None:
        raise ToolMissing("uv is not on PATH: `make venv` installs it (the dev extra), or `pip install uv`")
    for spec in LOCKS.values():
        progress(f"locks/{spec.name}.txt: {spec.use} ({' + '.join(('base', *spec.extras))})")
        done = subprocess.run(compile_command(spec, uv), cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            raise BadInput(f"uv pip compile for locks/{spec.name}.txt failed: {done.stderr.strip()}")
