"""The Containerfiles (images/), read instruction by instruction with dockerfile-parse as a builder reads
them, and linted with hadolint: pinned bases, a non-root user, every package from the lock with
--require-hashes, OCI labels; the serving image carries what `import_path` needs, and the stacks name images
that `make images` tags and the regions admit. No image is built here (no container builder on this
machine): the builder's absence is reported in one line."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from typer.testing import CliRunner

from infra import region_objects, stack_config
from serving.args import IMPORT_PATH
from serving.manifest import RAY_IMAGE
from sovereign import cli, toolchain
from sovereign.errors import ToolMissing
from sovereign.policydata import load_policy_data
from sovereign.supply.images import IMAGES, ImageSpec, find_builder
from sovereign.supply.lock import read_lock

ROOT = toolchain.REPO_ROOT
HADOLINT = Path(sys.executable).with_name("hadolint")
SPECS = sorted(IMAGES.values(), key=lambda s: s.name)
PROJECT_PACKAGES = ("sovereign", "operators", "serving", "infra")
# Modules of the serving extra's packages that the base does not also bring (Pillow comes with matplotlib).
SERVING_EXTRA_MODULES = {"torch", "transformers", "tokenizers", "ray", "openai", "filetype"}


def _parser(spec: ImageSpec) -> DockerfileParser:
    # Given the file's bytes: with a path, the parser looks for a file named Dockerfile in it.
    return DockerfileParser(fileobj=io.BytesIO((ROOT / spec.containerfile).read_bytes()))


def _parsed(spec: ImageSpec) -> list[dict[str, str]]:
    return _parser(spec).structure


def _values(spec: ImageSpec, instruction: str) -> list[str]:
    return [i["value"] for i in _parsed(spec) if i["instruction"] == instruction]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_hadolint_finds_nothing(spec: ImageSpec) -> None:
    done = subprocess.run([str(HADOLINT), str(ROOT / spec.containerfile)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_base_is_pinned_by_digest_or_exact_version_tag(spec: ImageSpec) -> None:
    bases = _values(spec, "FROM")
    assert bases
    for base in bases:
        image = base.split()[0]
        if "@sha256:" in image:
            assert re.fullmatch(r".+@sha256:[0-9a-f]{64}", image), image
            continue
        _, _, tag = image.rpartition(":")
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{spec.containerfile}: {image} is not an exact version tag"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_it_runs_as_a_numeric_non_root_user(spec: ImageSpec) -> None:
    user = _values(spec, "USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 1000, user  # numeric: the kubelet checks runAsNonRoot on it
    assert not gid or (gid.isdigit() and int(gid) != 0), user


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_package_comes_from_the_lock_with_require_hashes(spec: ImageSpec) -> None:
    copied = {v.split()[-1]: v.split()[-2] for v in _values(spec, "COPY")}
    installs = [
        part.strip() for run in _values(spec, "RUN") for part in run.split("&&") if "pip install" in part
    ]
    assert len(installs) == 1, installs  # one install: the lock, nothing else unpinned
    (install,) = installs
    assert "--require-hashes" in install.split() and "--no-deps" in install.split()
    words = install.split()
    lock_in_image = words[words.index("-r") + 1]
    assert copied[lock_in_image] == spec.lock
    assert read_lock(ROOT / spec.lock)  # a lock the image can install: every pin hashed (test_supply_lock)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_oci_labels_name_source_revision_and_licences(spec: ImageSpec) -> None:
    labels = _parser(spec).labels
    assert labels["org.opencontainers.image.source"].startswith("https://")
    # The revision is the build argument (`make images` passes the commit), "unknown" when none is given.
    assert labels["org.opencontainers.image.revision"] == "unknown"
    assert 'org.opencontainers.image.revision="${REVISION}"' in (ROOT / spec.containerfile).read_text()
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"] == f"sovereign-{spec.name}"
    assert "ARG REVISION=unknown" in (ROOT / spec.containerfile).read_text()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_build_context_holds_every_copied_path(spec: ImageSpec) -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for value in _values(spec, "COPY"):
        source = next(part for part in value.split() if not part.startswith("--"))
        assert any(source == a or source.startswith(a + "/") for a in allowed), source
        assert (ROOT / source).exists(), source


@pytest.mark.slow
def test_the_serving_image_is_the_pinned_ray_image_plus_what_import_path_imports() -> None:
    serving = IMAGES["serving"]
    assert _values(serving, "FROM") == [RAY_IMAGE]
    ray_version = RAY_IMAGE.split(":")[1].split("-")[0]
    assert read_lock(ROOT / serving.lock)["ray"].version == ray_version  # the lock keeps the image's Ray
    # The project's packages the import path loads, found by importing it in this venv, as Ray's workers do.
    module, _, builder = IMPORT_PATH.partition(":")
    probe = (
        f"import importlib, sys; m = importlib.import_module({module!r}); assert callable(m.{builder}); "
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & {set(PROJECT_PACKAGES)!r}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    needed = json.loads(done.stdout.replace("'", '"'))
    assert module.split(".")[0] in needed
    workdir = _values(serving, "WORKDIR")[-1]
    env = " ".join(_values(serving, "ENV"))
    assert f"PYTHONPATH={workdir}" in env
    copied = {v.split()[-1] for v in _values(serving, "COPY")}
    assert set(needed) <= copied, f"the image lacks {set(needed) - copied}"
    for package in needed:
        assert (ROOT / package / "__init__.py").is_file()


@pytest.mark.slow
def test_the_operator_image_holds_what_its_command_imports() -> None:
    # `python -m sovereign operator run` (the image's entrypoint and command): every project package it
    # loads, and the files the project reads beside its code, are copied into the image.
    probe = (
        "import sys, sovereign.cli, operators.sovereign_operator.runner\n"
        "import operators.sovereign_operator.runtime, operators.sovereign_operator.admission\n"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    operator = IMAGES["operator"]
    copied = {v.split()[-1] for v in _values(operator, "COPY")}
    assert loaded & set(PROJECT_PACKAGES) <= copied
    # The image installs the base dependencies only (locks/operator.txt): nothing of the serving extra.
    assert not SERVING_EXTRA_MODULES & set(read_lock(ROOT / operator.lock))
    assert not loaded & SERVING_EXTRA_MODULES, loaded & SERVING_EXTRA_MODULES
    assert {"policies/data", "tools/versions.env"} <= copied  # policydata's catalogue, toolchain's pins
    assert _values(operator, "ENTRYPOINT") == ['["python", "-m", "sovereign"]']
    assert _values(operator, "CMD") == ['["operator", "run", "--credentials", "/credentials"]']


def test_the_operator_deployment_runs_its_image_non_root_with_a_read_only_root() -> None:
    operator = IMAGES["operator"]
    uid = int(_values(operator, "USER")[-1].split(":")[0])
    deployment, _ = region_objects.operator_workload(
        "registry.example/sovereign/operator:0.1.0",
        "sovereign-operator",
        "registry.example/sovereign/serving:0.1.0",
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
    assert container["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    # What it writes has volumes of its own: the state dir the image names, and /tmp.
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert f"SOVEREIGN_STATE_DIR={env['SOVEREIGN_STATE_DIR']}" in " ".join(_values(operator, "ENV"))
    mounts = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert mounts == {env["SOVEREIGN_STATE_DIR"], "/tmp"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        volumes["state"]["persistentVolumeClaim"]["claimName"] == "sovereign-operator-state"
    )  # the log stays
    # The audit key: copied 0600 by the operator's own user from its Secret into memory, read from there.
    (copy_key,) = pod["initContainers"]
    assert (
        copy_key["securityContext"] == container["securityContext"]
        and copy_key["image"] == container["image"]
    )
    assert copy_key["command"][:3] == ["install", "-m", "0600"]
    assert env["SOVEREIGN_AUDIT_KEY"] == copy_key["command"][-1] == "/audit-key/audit-log.key"
    assert volumes["audit-key"]["emptyDir"] == {"medium": "Memory"}
    assert volumes["audit-key-secret"]["secret"]["secretName"] == "sovereign-audit-key"
    args = container["args"]
    assert args[args.index("--ray-image") + 1] == "registry.example/sovereign/serving:0.1.0"


IN_CLUSTER = [s for s in stack_config.stacks(ROOT) if stack_config.load(ROOT, s).workloads == "in-cluster"]


@pytest.mark.parametrize("stack", IN_CLUSTER)
def test_each_stack_names_the_built_images_and_its_region_admits_the_serving_one(stack: str) -> None:
    config = stack_config.load(ROOT, stack)
    registry = config.serving_image.split("/sovereign/")[0]
    assert config.operator_image == IMAGES["operator"].reference(registry)
    assert config.serving_image == IMAGES["serving"].reference(registry)
    allowed = load_policy_data().regions[config.region].workloads.images
    assert any(config.serving_image.startswith(prefix) for prefix in allowed), allowed


def test_without_a_builder_images_build_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker, podman or buildah on it
    found = find_builder()
    assert isinstance(found, str) and "install podman or buildah" in found and "\n" not in found
    done = CliRunner().invoke(cli.app, ["images", "build"])
    assert isinstance(done.exception, ToolMissing) and done.exception.exit_code == 2
    assert str(done.exception) == found


def test_docker_without_a_daemon_is_no_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real docker client, pointed at a socket no daemon listens on.
    docker = shutil.which("docker") or pytest.fail("the docker client is part of this machine's kind")
    (tmp_path / "docker").symlink_to(docker)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    found = find_builder()
    assert isinstance(found, str) and "docker is installed but `docker info` fails (no daemon)" in found
