"""Write a region's transfer folder (sovereign.airgap.layout) and sign its manifest: the only code of the
air-gap path that signs. Everything is gathered from what is already built and verified here (the bundle
in force, the configured screening list, signed checkpoints, the locks); nothing is built or signed anew
except the manifest."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra import stack_config
from sovereign import toolchain
from sovereign.airgap import layout
from sovereign.audit import keys
from sovereign.audit.signed_manifest import MANIFEST, SIGNATURE, signed
from sovereign.errors import BadInput
from sovereign.models.signing import SIGNATURE_FILE, carried_signatures
from sovereign.policy.bundle import SignedBundle, configured_bundle
from sovereign.policy.screening import ScreeningList
from sovereign.policy.screening_source import configured_list
from sovereign.supply.images import BUILT_FILE, IMAGES, Builder, find_builder
from sovereign.supply.lock import PYTHON_PLATFORM, PYTHON_VERSION
from sovereign.supply.sbom import image_sbom

Progress = Callable[[str], None]
# PEP 513/571/599's names for the manylinux glibc versions PEP 600 spells manylinux_2_<minor>.
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
_FROM = re.compile(r"^FROM\s+(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class ExportOptions:
    stack: str  # the region's stack (infra/stacks/<stack>.yaml): its images and clusters
    models: Path | None = None  # a folder of signed checkpoints (each a folder with model.sig)
    screening_list: Path | None = None  # default: the configured one ($SOVEREIGN_SCREENING_LIST)
    wheels: bool = True  # pip download every locked distribution (needs the package index)
    archives: bool = True  # save each image as an OCI archive (needs a container builder)
    today: date | None = None


def _file_facts(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        sha = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"size": path.stat().st_size, "sha256": sha}


def _copy(source: Path, staging: Path, member: str) -> None:
    target = staging / member
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _write(staging: Path, member: str, data: bytes) -> None:
    target = staging / member
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _images(
    config: stack_config.StackConfig, staging: Path, archives: bool, root: Path, progress: Progress
) -> list[dict[str, Any]]:
    """images.json's entries: the stack's references, each with its digest and archive where made here."""
    built_file = root / BUILT_FILE
    built = json.loads(built_file.read_text()) if built_file.is_file() else {}
    named = {"operator": config.operator_image, "serving": config.serving_image}
    builder: Builder | str = find_builder() if archives else "not asked for (--no-images)"
    if isinstance(builder, str):
        progress(f"images: no OCI archives in this transfer: {builder}")
    entries: list[dict[str, Any]] = []
    for spec in IMAGES.values():
        reference = named[spec.name] or spec.reference()
        recorded = built.get(spec.name, {})
        entries.append(
            {
                "name": spec.name,
                "reference": reference,
                "containerfile": spec.containerfile,
                "base": _FROM.findall((root / spec.containerfile).read_text())[-1],
                "lock": spec.lock,
                "digest": recorded.get("digest") if recorded.get("reference") == reference else None,
            }
        )
    # What the stack runs besides the project's images: OPA, and KubeRay's operator where it installs it.
    for name, reference in (("opa", config.opa_image), ("kuberay-operator", config.kuberay_image)):
        if reference:
            entries.append({"name": name, "reference": reference, "third_party": True, "digest": None})
    for entry in entries:
        if isinstance(builder, Builder):
            entry |= _archive(builder, entry, staging)
        else:
            entry |= {"archive": None, "not_archived": builder}
        progress(
            f"  {entry['name']}: {entry['reference']} digest {entry['digest'] or 'unknown (not built here)'}"
        )
    return entries


def _archive(builder: Builder, entry: dict[str, Any], staging: Path) -> dict[str, Any]:
    """Save the image as an OCI archive (another project's pulled first); its archive and digest."""
    reference, archive = entry["reference"], f"images/{entry['name']}.oci.tar"
    (staging / "images").mkdir(parents=True, exist_ok=True)
    steps = [builder.pull_command(reference)] if entry.get("third_party") else []
    for command in [*steps, builder.archive_command(reference, staging / archive)]:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise BadInput(
                f"{builder.tool} cannot save {reference} ({done.stderr.strip()}): build the project's images "
                "first with `make images` and the registry the stack names; others must be pullable here"
            )
    digest = subprocess.run(builder.digest_command(reference), capture_output=True, text=True)
    return {"archive": archive, "digest": digest.stdout.strip() or entry["digest"]}


def wheel_platforms(platform: str = PYTHON_PLATFORM) -> list[str]:
    """Every manylinux tag a system of the locks' target runs (x86_64-manylinux_2_28: glibc 2.28 down to
    2.5), for pip download, which takes --platform literally: given only the newest it finds no wheel of a
    package built for an older glibc (measured: blake3's)."""
    arch, _, manylinux = platform.partition("-")
    newest = int(manylinux.rsplit("_", 1)[1])
    tags = []
    for minor in range(newest, 4, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in _LEGACY_MANYLINUX:
            tags.append(f"{_LEGACY_MANYLINUX[minor]}_{arch}")
    return tags


def download_wheels(target: Path, locks: list[Path], progress: Progress) -> None:
    """Every distribution `locks` name, for the locks' target, into `target`, hash-checked by pip."""
    for lock in locks:
        progress(f"wheels: pip download --require-hashes -r {lock.name}")
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--require-hashes", "--no-deps", "--only-binary=:all:",
            *(arg for tag in wheel_platforms() for arg in ("--platform", tag)),
            "--python-version", PYTHON_VERSION, "--implementation", "cp", "--dest", str(target),
            "--requirement", str(lock),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BadInput(
                f"pip download for {lock.name} failed (it needs the package index; --no-wheels leaves the "
                f"wheels out): {last}"
            )


def _screening(explicit: Path | None, today: date, staging: Path) -> dict[str, Any]:
    setting = configured_list(explicit, enforcing=True)
    assert setting.path is not None  # enforcing: a BadInput naming the setting when there is none
    listed = ScreeningList.read(setting.path)
    # A stale list would make every decision in the region undecided: refuse to carry one across.
    listed.check_current(today, allow_sample=setting.allow_sample)
    _copy(setting.path, staging, layout.SCREENING)
    return {
        "file": layout.SCREENING,
        "sample": listed.sample,
        "sources": [{"source": title, "last_updated": updated} for title, updated in listed.sources],
    }


def _models(models: Path | None, staging: Path, progress: Progress) -> list[str]:
    """Each signed checkpoint's signature (the digest of every file it covers) and the signers' keys."""
    folders = {path.name: path for path in models.iterdir() if path.is_dir()} if models else {}
    carried = carried_signatures(folders)
    for name, signature in carried.signatures.items():
        _copy(signature, staging, f"models/{name}/{SIGNATURE_FILE}")
    for identity, public in carried.signers.items() if carried.signatures else ():
        _copy(public, staging, f"{layout.SIGNERS}/{identity}.pem")
    progress(f"models: {len(carried.signatures)} signed checkpoints' signatures")
    return list(carried.signatures)


def _gather(
    region: str,
    options: ExportOptions,
    config: stack_config.StackConfig,
    bundle: SignedBundle,
    staging: Path,
    root: Path,
    today: date,
    progress: Progress,
) -> dict[str, Any]:
    """Write every member into `staging`; the manifest's document, but for the signer."""
    progress(f"transfer for region {region} (stack {options.stack})")
    images = _images(config, staging, options.archives, root, progress)
    _write(staging, layout.IMAGES, (json.dumps(images, indent=2) + "\n").encode())
    for spec in IMAGES.values():
        _copy(root / spec.lock, staging, spec.lock)
        _write(staging, f"sbom/{spec.name}.cdx.json", image_sbom(spec.name, root).encode())
    if options.wheels:
        download_wheels(staging / "wheels", [root / spec.lock for spec in IMAGES.values()], progress)
    _copy(bundle.rego, staging, layout.POLICY_BUNDLE)
    _copy(bundle.wasm, staging, layout.POLICY_WASM)
    _copy(bundle.verification_key, staging, layout.POLICY_ANCHOR)
    screening = _screening(options.screening_list, today, staging)
    models = _models(options.models, staging, progress)
    _copy(config_path := stack_config.stack_file(root, options.stack), staging, f"stack/{config_path.name}")
    for cluster in config.cluster_files(root):
        _copy(cluster, staging, f"clusters/{cluster.name}")
    return {
        "format": layout.FORMAT,
        "region": region,
        "stack": options.stack,
        "created": datetime.now(UTC).isoformat(),
        "policy_revision": bundle.revision,
        "screening": screening,
        "models": models,
        "images": [{k: image[k] for k in ("name", "reference", "digest", "archive")} for image in images],
        "wheels": options.wheels,
        "members": {name: _file_facts(path) for name, path in layout.members_of(staging).items()},
    }


def export_transfer(
    region: str,
    out: Path,
    options: ExportOptions,
    *,
    key: Ed25519PrivateKey | None = None,
    root: Path = toolchain.REPO_ROOT,
    progress: Progress = print,
) -> dict[str, Any]:
    """Write `region`'s transfer into the new folder `out`; returns the signed manifest's document."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"--out {out}: exists and is not an empty folder: name a new one")
    key = key or keys.load_signing_key()
    today = options.today or datetime.now(UTC).date()
    config = stack_config.load(root, options.stack)
    if config.region != region:
        raise BadInput(f"--stack {options.stack} deploys region {config.region}, not {region}")
    bundle = configured_bundle()  # verified with the trust anchor: an unverified bundle is not exported
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        doc = _gather(region, options, config, bundle, staging, root, today, progress)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-written is left to be carried
        raise
    signer = keys.key_id(key.public_key())
    manifest, signature = signed(doc | {"signer_key_id": signer}, key)
    _write(staging, MANIFEST, manifest)
    _write(staging, SIGNATURE, signature)
    if out.exists():
        out.rmdir()
    staging.rename(out)  # a half-written transfer never has the final name
    progress(f"transfer: {out} ({len(doc['members'])} members, signed with audit key {signer})")
    return json.loads(manifest)
