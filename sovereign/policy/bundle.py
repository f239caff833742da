"""Build and sign the policy bundle from policies/, and keep it current.

One staging folder (the Rego files, minus tests, and the compiled data.json) is built twice with the same
revision and key: a Wasm-target bundle for the in-process engine, and a Rego-target bundle for the OPA
server, because the pinned OPA binary has no Wasm runtime and refuses to serve a Wasm bundle. The
revision is a hash of the staged content, so it changes exactly when the policy or its data change.
The signing key is generated once under the user's state dir and never leaves it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sovereign import toolchain
from sovereign.devenv.state import state_root
from sovereign.errors import SovereignError
from sovereign.policy.bundle_signature import SIGNING_ALG

DECISION_ENTRYPOINT = "sovereign/decision/result"
BATCH_ENTRYPOINT = "sovereign/batch/results"
Progress = Callable[[str], None]


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _compiled_policy_data() -> dict[str, Any]:
    from sovereign.policydata import load_policy_data  # the data compiler; imported only when building

    return load_policy_data().opa_document()


@dataclass(frozen=True)
class PolicySources:
    """What a bundle is built from: the Rego under `root` and the data document `load_data` compiles."""

    root: Path
    load_data: Callable[[], dict[str, Any]]
    # Files outside `root` whose change must also trigger a rebuild (the data compiler itself).
    also_watch: tuple[Path, ...] = field(default_factory=tuple)

    def rego_files(self) -> list[Path]:
        return sorted(
            path
            for path in self.root.rglob("*.rego")
            if path.is_file() and not path.name.endswith("_test.rego")
        )

    def fingerprint(self) -> str:
        """Hash of every file that can change the bundle: cheap, so checked on every use."""
        digest = hashlib.sha256()
        watched = [*sorted(self.root.rglob("*")), *self.also_watch]
        for path in (path for path in watched if path.is_file()):
            digest.update(str(path).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


def repo_sources() -> PolicySources:
    return PolicySources(
        root=toolchain.REPO_ROOT / "policies",
        load_data=_compiled_policy_data,
        also_watch=(toolchain.REPO_ROOT / "sovereign" / "policydata.py",),
    )


@dataclass(frozen=True)
class SignedBundle:
    wasm: Path  # evaluated in-process
    rego: Path  # served by `opa run --server`
    verification_key: Path
    revision: str

    @classmethod
    def at(cls, out_dir: Path, revision: str) -> SignedBundle:
        return cls(
            wasm=out_dir / "bundle.wasm.tar.gz",
            rego=out_dir / "bundle.tar.gz",
            verification_key=out_dir / "verification-key.pem",
            revision=revision,
        )


def bundle_dir() -> Path:
    return state_root() / "policy-bundle"


def opa_server_args(bundle: SignedBundle) -> list[str]:
    """Arguments after `opa run --server --addr ...` that make OPA verify and serve the signed bundle."""
    return [
        f"--verification-key={bundle.verification_key}",
        f"--signing-alg={SIGNING_ALG}",
        "--bundle",
        str(bundle.rego),
    ]


def _ensure_signing_key(out_dir: Path) -> Path:
    private = out_dir / "signing-key.pem"
    public = out_dir / "verification-key.pem"
    if private.is_file() and public.is_file():
        return private
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private


def _stage(sources: PolicySources, staging: Path) -> str:
    """Copy the Rego and write data.json into `staging`; return the revision (hash of what was staged)."""
    digest = hashlib.sha256()
    for path in sources.rego_files():
        relative = path.relative_to(sources.root)
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, staging / relative)
        digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    data = json.dumps(sources.load_data(), sort_keys=True, separators=(",", ":")).encode()
    (staging / "data.json").write_bytes(data)
    digest.update(b"data.json\0" + data)
    return digest.hexdigest()[:16]


def _opa_build(staging: Path, key: Path, revision: str, output: Path, wasm: bool) -> None:
    argv = [str(toolchain.binary("opa")), "build", "--bundle", "."]
    if wasm:
        argv += ["--target", "wasm", "-e", DECISION_ENTRYPOINT, "-e", BATCH_ENTRYPOINT]
    argv += [
        f"--signing-key={key}",
        f"--signing-alg={SIGNING_ALG}",
        f"--revision={revision}",
        "-o",
        str(output),
    ]
    done = subprocess.run(argv, cwd=staging, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        target = "wasm" if wasm else "rego"
        raise SovereignError(f"opa build ({target} target) failed:\n{done.stderr.strip()}")


def build_bundle(sources: PolicySources, out_dir: Path) -> SignedBundle:
    """Stage, build both targets and sign them; files are replaced atomically, the stamp written last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key = _ensure_signing_key(out_dir)
    stamp = _stamp(sources, SignedBundle.at(out_dir, ""))  # taken first: an edit during the build means stale
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        staging = Path(tmp) / "src"
        staging.mkdir()
        revision = _stage(sources, staging)
        built_wasm, built_rego = Path(tmp) / "wasm.tar.gz", Path(tmp) / "rego.tar.gz"
        _opa_build(staging, key, revision, built_wasm, wasm=True)
        _opa_build(staging, key, revision, built_rego, wasm=False)
        bundle = SignedBundle.at(out_dir, revision)
        os.replace(built_wasm, bundle.wasm)
        os.replace(built_rego, bundle.rego)
    (out_dir / "stamp.json").write_text(json.dumps({**stamp, "revision": revision}))
    return bundle


def _stamp(sources: PolicySources, bundle: SignedBundle) -> dict[str, str]:
    """What a bundle was built from: its sources, the OPA that compiled it and the key that signed it."""
    return {
        "fingerprint": sources.fingerprint(),
        "opa": toolchain.versions()["OPA_VERSION"],
        "key": hashlib.sha256(bundle.verification_key.read_bytes()).hexdigest(),
    }


def _current(sources: PolicySources, out_dir: Path) -> SignedBundle | None:
    try:
        stamp = json.loads((out_dir / "stamp.json").read_text())
        bundle = SignedBundle.at(out_dir, str(stamp.pop("revision")))
        fresh = stamp == _stamp(sources, bundle) and bundle.wasm.is_file() and bundle.rego.is_file()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return bundle if fresh else None


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    # The CLI, the operator and the serving guard may all ask for the bundle at once: build it only once.
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_bundle(
    sources: PolicySources | None = None,
    out_dir: Path | None = None,
    progress: Progress = to_stderr,
    force: bool = False,
) -> SignedBundle:
    """The current signed bundle, (re)built and signed first when missing, stale or `force`d."""
    sources = sources or repo_sources()
    out_dir = out_dir or bundle_dir()
    with _locked(out_dir):
        if not force and (current := _current(sources, out_dir)):
            return current
        progress(f"building and signing the policy bundle from {sources.root} into {out_dir}")
        built = build_bundle(sources, out_dir)
        progress(f"policy bundle revision {built.revision} signed")
        return built
