"""Build and sign the policy bundle from policies/ on purpose, and find the built one without building.

`build_bundle` (`sovereign bundle build`, `make bundle`) is the only code that signs. One staging folder
(the Rego files, minus tests, and the compiled data.json) is built twice with the same revision and key:
a Wasm-target bundle for the in-process engine, and a Rego-target bundle for the OPA server, because the
pinned OPA binary has no Wasm runtime and refuses to serve a Wasm bundle. Every bundle also carries the
OPA server's API authorisation (opa_authz.rego as system.authz, see opa_token.py), so it is signed with
the policy. The revision is a hash of the staged content, so it changes exactly when any of it changes.

Consumers (the engines, the dev control plane's OPA, the Pulumi program) never build, sign or create
anything: they read the bundle folder ($SOVEREIGN_POLICY_BUNDLE_DIR) and verify it with the trust anchor
($SOVEREIGN_POLICY_TRUST_ANCHOR), a public key configured apart from the bundle, so that whoever can
replace the bundle cannot also replace the key it is checked against. Under the state dir:

    signing/policy-bundle.key   the signing key (0600), read only by the builder
    policy-bundle/              the two signed targets and the build stamp
    policy-bundle/bundles/<revision>/bundle.tar.gz
                                every revision built or installed there, kept: decisions name the revision
                                they were taken on, and an evidence pack carries each one
    trust/policy-bundle.pem     the local trust anchor, written by the first build
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sovereign import toolchain
from sovereign.errors import SovereignError
from sovereign.policy.bundle_signature import (
    SIGNING_ALG,
    BundleUnverified,
    VerifiedBundle,
    read_tarball,
    verify_bundle,
)
from sovereign.state_dir import state_root

DECISION_ENTRYPOINT = "sovereign/decision/result"
BATCH_ENTRYPOINT = "sovereign/batch/results"
BUNDLE_DIR_ENV = "SOVEREIGN_POLICY_BUNDLE_DIR"
TRUST_ANCHOR_ENV = "SOVEREIGN_POLICY_TRUST_ANCHOR"
BUILD_COMMAND = "sovereign bundle build"
REVISIONS = "bundles"  # in a bundle folder: every revision built or installed there (keep_revision)
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Who may use an OPA server serving the bundle; staged into every bundle where OPA looks for it.
# -O=1 partially evaluates the entrypoints against the bundle's data: the same decisions (the engines'
# agreement is tested, and checked by every policy_bench run) from ~20 % less guest work per in-process
# decision. -O=2 did not finish here (7 GB of memory after 15 min). Part of the build stamp, so a change
# rebuilds.
WASM_BUILD = ("--target", "wasm", "-O=1")
AUTHZ_REGO = Path(__file__).with_name("opa_authz.rego")
AUTHZ_STAGED = Path("system") / "authz.rego"
Progress = Callable[[str], None]


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _compiled_policy_data(data: Path) -> dict[str, Any]:
    from sovereign.policydata import load_policy_data  # the data compiler; imported only when building

    return load_policy_data(data).opa_document()


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
        """Hash of every file that can change the bundle: cheap, so checked on every build."""
        digest = hashlib.sha256()
        watched = [*sorted(self.root.rglob("*")), *self.also_watch, AUTHZ_REGO]
        for path in (path for path in watched if path.is_file()):
            digest.update(str(path).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


def folder_sources(root: Path) -> PolicySources:
    """A policies/ folder laid out as the repository's (Rego, and data/ for the data compiler)."""
    return PolicySources(
        root=root,
        load_data=lambda: _compiled_policy_data(root / "data"),
        also_watch=(toolchain.REPO_ROOT / "sovereign" / "policydata.py",),
    )


def repo_sources() -> PolicySources:
    return folder_sources(toolchain.REPO_ROOT / "policies")


def bundle_dir() -> Path:
    """Where the built bundle is: written by the builder, read by every consumer."""
    if explicit := os.environ.get(BUNDLE_DIR_ENV):
        return Path(explicit)
    return state_root() / "policy-bundle"


def trust_anchor_path() -> Path:
    """The PEM public key every consumer verifies the bundle with, configured apart from the bundle."""
    if explicit := os.environ.get(TRUST_ANCHOR_ENV):
        return Path(explicit)
    return state_root() / "trust" / "policy-bundle.pem"


def signing_key_path() -> Path:
    return state_root() / "signing" / "policy-bundle.key"


class BundleMissing(BundleUnverified):
    """No built bundle, or no trust anchor, where this consumer is configured to look."""

    exit_code = 2


@dataclass(frozen=True)
class SignedBundle:
    wasm: Path  # evaluated in-process
    rego: Path  # served by `opa run --server`
    verification_key: Path  # the trust anchor that verifies both: never a file of the bundle's folder
    revision: str

    @classmethod
    def at(cls, out_dir: Path, revision: str, verification_key: Path) -> SignedBundle:
        return cls(
            wasm=out_dir / "bundle.wasm.tar.gz",
            rego=out_dir / "bundle.tar.gz",
            verification_key=verification_key,
            revision=revision,
        )


def kept_revision(folder: Path, revision: str) -> Path:
    """Where the bundle folder `folder` keeps the OPA target of `revision` (see `keep_revision`)."""
    if not _REVISION.match(revision):
        raise SovereignError(f"policy revision {revision!r} cannot name a folder: not one this builder makes")
    return folder / REVISIONS / revision / "bundle.tar.gz"


def keep_revision(bundle: SignedBundle, folder: Path) -> None:
    """Keep `bundle`'s signed OPA target (its signature is inside it) under `folder` by revision: the
    folder's own targets are replaced by the next build or install, but a decision taken on this revision
    must stay provable. The Rego target is kept, not the Wasm one: it is what an auditor reads."""
    kept = kept_revision(folder, bundle.revision)
    if kept.is_file():
        return  # a revision is a hash of the bundle's content: the same revision, the same policy
    kept.parent.mkdir(parents=True, exist_ok=True)
    partial = kept.with_name(f".{kept.name}.new")
    shutil.copyfile(bundle.rego, partial)
    os.replace(partial, kept)


def verify_built(bundle: Path, trust_anchor: Path) -> VerifiedBundle:
    """`bundle` once verified with the key in `trust_anchor`; BundleMissing, naming the command that
    builds one, when either file is missing; BundleUnverified when the signature does not check out."""
    if trust_anchor.resolve().parent == bundle.resolve().parent:
        raise BundleUnverified(
            f"the trust anchor {trust_anchor} lies beside the bundle it would verify: whoever replaces the "
            f"bundle could replace it too; keep it elsewhere ({TRUST_ANCHOR_ENV})"
        )
    if not bundle.is_file():
        raise BundleMissing(
            f"no signed policy bundle at {bundle}: build and sign one with `{BUILD_COMMAND}` "
            f"(make bundle), or point {BUNDLE_DIR_ENV} at a built one"
        )
    try:
        key = trust_anchor.read_bytes()
    except OSError:
        raise BundleMissing(
            f"no trust anchor (the bundle signer's public key) at {trust_anchor}: `{BUILD_COMMAND}` sets up "
            f"local signing and writes it there, or point {TRUST_ANCHOR_ENV} at the PEM public key your "
            "bundles are signed with"
        ) from None
    return verify_bundle(bundle, key)


def unverified_message(exc: BundleUnverified) -> str:
    """Why a consumer refuses its bundle, and the fix: build one when missing, rebuild a bad one."""
    if isinstance(exc, BundleMissing):
        return str(exc)
    return f"refusing the policy bundle: {exc} (rebuild it from policies/ with: {BUILD_COMMAND} --force)"


def configured_bundle() -> SignedBundle:
    """The built bundle this process is configured with, its Rego target verified with the trust anchor.

    Never builds: BundleMissing (exit 2) when there is none, BundleUnverified when it does not verify.
    """
    bundle = SignedBundle.at(bundle_dir(), "", trust_anchor_path())
    return replace(bundle, revision=verify_built(bundle.rego, bundle.verification_key).revision)


def opa_server_args(bundle: SignedBundle) -> list[str]:
    """Arguments after `opa run --server --addr ...` that make OPA verify and serve the signed bundle, and
    answer only requests bearing its token (its environment needs opa_token.opa_server_env())."""
    return [
        "--authentication=token",
        "--authorization=basic",
        f"--verification-key={bundle.verification_key}",
        f"--signing-alg={SIGNING_ALG}",
        "--bundle",
        str(bundle.rego),
    ]


def _public_pem(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _new_key(path: Path, key_size: int) -> rsa.RSAPrivateKey:
    """A new RSA signing key, written to `path` (which must not exist) readable by its owner only."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return key


def _signing_key(progress: Progress) -> tuple[Path, bytes]:
    """The signing key's path and its public half as PEM; the key is created on the first build."""
    path = signing_key_path()
    if path.is_file():
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise SovereignError(f"the bundle signing key {path} is not an RSA key ({SIGNING_ALG} needs one)")
        return path, _public_pem(private.public_key())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _new_key(path, key_size=3072)
    progress(f"created the bundle signing key {path} (private: it stays with whoever builds bundles)")
    return path, _public_pem(key.public_key())


def _set_up_trust(public: bytes, key_path: Path, out_dir: Path, progress: Progress) -> Path:
    """The trust anchor, written from the signing key when there is none yet; refused when it belongs to
    another key, since every consumer configured with it would refuse what this build signs."""
    anchor = trust_anchor_path()
    if anchor.resolve().parent == out_dir.resolve():
        raise SovereignError(
            f"the trust anchor {anchor} must not be kept beside the bundle in {out_dir} ({TRUST_ANCHOR_ENV})"
        )
    if not anchor.exists():
        anchor.parent.mkdir(parents=True, exist_ok=True)
        anchor.write_bytes(public)
        progress(
            f"trust anchor (the public key consumers verify bundles with) written to {anchor}; "
            f"consumers elsewhere read it from {TRUST_ANCHOR_ENV}"
        )
        return anchor
    try:
        trusted = serialization.load_pem_public_key(anchor.read_bytes())
    except ValueError:
        raise SovereignError(f"the trust anchor {anchor} is not a PEM public key") from None
    if not isinstance(trusted, rsa.RSAPublicKey) or _public_pem(trusted) != public:
        raise SovereignError(
            f"the trust anchor {anchor} is not the public half of the signing key {key_path}: every "
            "consumer configured with it would refuse this bundle; point "
            f"{TRUST_ANCHOR_ENV} elsewhere, or remove {anchor} to trust this key"
        )
    return anchor


def _stage(sources: PolicySources, staging: Path) -> str:
    """Copy the Rego and OPA's authz policy, write data.json into `staging`; return the revision (a hash
    of what was staged)."""
    digest = hashlib.sha256()
    staged = [(path, path.relative_to(sources.root)) for path in sources.rego_files()]
    for path, relative in [*staged, (AUTHZ_REGO, AUTHZ_STAGED)]:
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, staging / relative)
        digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    data = json.dumps(sources.load_data(), sort_keys=True, separators=(",", ":")).encode()
    (staging / "data.json").write_bytes(data)
    digest.update(b"data.json\0" + data)
    return digest.hexdigest()[:16]


def _opa_build(staging: Path, key: Path | None, revision: str, output: Path, wasm: bool) -> None:
    """`opa build` of `staging`, signed with `key` (None: unsigned, the what-if's own build only)."""
    argv = [str(toolchain.binary("opa")), "build", "--bundle", "."]
    if wasm:
        argv += [*WASM_BUILD, "-e", DECISION_ENTRYPOINT, "-e", BATCH_ENTRYPOINT]
    if key is not None:
        argv += [f"--signing-key={key}", f"--signing-alg={SIGNING_ALG}"]
    argv += [f"--revision={revision}", "-o", str(output)]
    done = subprocess.run(argv, cwd=staging, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        target = "wasm" if wasm else "rego"
        raise SovereignError(f"opa build ({target} target) failed:\n{done.stderr.strip()}")


def _build(
    sources: PolicySources, out_dir: Path, key: Path, anchor: Path, stamp: dict[str, str]
) -> SignedBundle:
    """Stage, build both targets and sign them; files are replaced atomically, the stamp written last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        staging = Path(tmp) / "src"
        staging.mkdir()
        revision = _stage(sources, staging)
        built_wasm, built_rego = Path(tmp) / "wasm.tar.gz", Path(tmp) / "rego.tar.gz"
        _opa_build(staging, key, revision, built_wasm, wasm=True)
        _opa_build(staging, key, revision, built_rego, wasm=False)
        bundle = SignedBundle.at(out_dir, revision, anchor)
        os.replace(built_wasm, bundle.wasm)
        os.replace(built_rego, bundle.rego)
    keep_revision(bundle, out_dir)
    (out_dir / "stamp.json").write_text(json.dumps({**stamp, "revision": revision}))
    return bundle


def _stamp(sources: PolicySources, public: bytes) -> dict[str, str]:
    """What a bundle was built from: its sources, the OPA that compiled it and the key that signed it."""
    return {
        "fingerprint": sources.fingerprint(),
        "opa": toolchain.versions()["OPA_VERSION"],
        "wasm_build": " ".join(WASM_BUILD),
        "key": hashlib.sha256(public).hexdigest(),
    }


def _current(stamp: dict[str, str], out_dir: Path, anchor: Path) -> SignedBundle | None:
    try:
        built = json.loads((out_dir / "stamp.json").read_text())
        bundle = SignedBundle.at(out_dir, str(built.pop("revision")), anchor)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    fresh = built == stamp and bundle.wasm.is_file() and bundle.rego.is_file()
    return bundle if fresh else None


@contextmanager
def _one_builder() -> Iterator[None]:
    # Two builds at once (the demo and a user, say) would race to create the key and replace the files.
    folder = signing_key_path().parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class WhatIfPolicy:
    """A policies/ folder compiled for one what-if and never signed: its files are held in memory by the
    what-if alone (`WasmEngine.for_whatif`), so nothing a consumer reads (a bundle folder, verified with the
    trust anchor) can ever be one, and nothing built here can be published."""

    revision: str  # the one `build_bundle` would give the same sources
    files: dict[str, bytes]  # policy.wasm, data.json, ... by path in the bundle


def build_for_whatif(sources: PolicySources, folder: Path) -> WhatIfPolicy:
    """The Wasm target of `sources`, unsigned, for a what-if only (built in `folder`, a temporary one)."""
    staging = folder / "src"
    staging.mkdir()
    revision = _stage(sources, staging)
    built = folder / "whatif.wasm.tar.gz"
    _opa_build(staging, None, revision, built, wasm=True)
    return WhatIfPolicy(revision, read_tarball(built))


def install_bundle(bundle: SignedBundle, folder: Path) -> SignedBundle:
    """`bundle`'s two signed targets copied into `folder`, each replaced in one step (as a ConfigMap volume
    swaps its files), so a reader never sees half a bundle; its build stamp goes with them, so a later
    `sovereign bundle build` rebuilds exactly when the installed bundle is not that of policies/; its
    revision is kept beside the ones installed before (`keep_revision`)."""
    installed = SignedBundle.at(folder, bundle.revision, bundle.verification_key)
    folder.mkdir(parents=True, exist_ok=True)
    for source, target in ((bundle.rego, installed.rego), (bundle.wasm, installed.wasm)):
        shutil.copyfile(source, target.with_name(f".{target.name}.new"))
        os.replace(target.with_name(f".{target.name}.new"), target)
    keep_revision(installed, folder)
    stamp = bundle.wasm.with_name("stamp.json")
    if stamp.resolve() != (folder / "stamp.json").resolve():
        if stamp.is_file():
            shutil.copyfile(stamp, folder / "stamp.json")
        else:
            (folder / "stamp.json").unlink(missing_ok=True)
    return installed


def build_bundle(
    sources: PolicySources | None = None,
    out_dir: Path | None = None,
    progress: Progress = to_stderr,
    force: bool = False,
) -> SignedBundle:
    """Build and sign the bundle when missing, stale or `force`d: what `sovereign bundle build` runs,
    and the only code that signs. The first build creates the signing key and the local trust anchor."""
    sources = sources or repo_sources()
    out_dir = out_dir or bundle_dir()
    with _one_builder():
        key, public = _signing_key(progress)
        anchor = _set_up_trust(public, key, out_dir, progress)
        stamp = _stamp(sources, public)  # taken first: an edit during the build means stale
        if not force and (current := _current(stamp, out_dir, anchor)):
            keep_revision(current, out_dir)  # a folder built before revisions were kept starts keeping now
            return current
        progress(f"building and signing the policy bundle from {sources.root} into {out_dir}")
        built = _build(sources, out_dir, key, anchor, stamp)
        progress(f"policy bundle revision {built.revision} signed")
        return built
