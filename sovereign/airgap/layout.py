"""A transfer folder's layout, shared by the exporter and the verifier.

manifest.json, manifest.sig   every other file's path, size and SHA-256, signed with the audit key
images/images.json            each image: the reference the region's stack names, its Containerfile,
                              base image, lock, and the digest and OCI archive when a builder made them
images/<name>.oci.tar         the image, where a container builder exists (say so when not)
locks/<name>.txt              the hash-pinned locks the images install
sbom/<name>.cdx.json          CycloneDX SBOM of each image, from its lock
wheels/*.whl                  every locked distribution (pip download --require-hashes), unless --no-wheels
policy/bundle.tar.gz, policy/bundle.wasm.tar.gz   the signed policy bundle in force
trust/policy-bundle.pem       the bundle's trust anchor; trust/weights-signers/<id>.pem the checkpoints'
screening/consolidated.json   the denied-party list snapshot (its date in the manifest)
models/<name>/model.sig       each signed checkpoint's OpenSSF model signature: every weights file's digest
stack/<stack>.yaml, clusters/<name>.yaml   the region's stack and the clusters it declares
"""

from __future__ import annotations

from pathlib import Path

FORMAT = "sovereign-airgap/1"
IMAGES = "images/images.json"
POLICY_BUNDLE = "policy/bundle.tar.gz"
POLICY_WASM = "policy/bundle.wasm.tar.gz"
POLICY_ANCHOR = "trust/policy-bundle.pem"
SIGNERS = "trust/weights-signers"
SCREENING = "screening/consolidated.json"


def members_of(folder: Path) -> dict[str, Path]:
    """Every file below `folder` by its POSIX path relative to it (links included, to be refused)."""
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_symlink() or path.is_file()
    }
