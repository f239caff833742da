"""Where admission reads a deployment's weights: the operator's read-only mounts of the model store.

Ray pods load a checkpoint from `spec.weights.path` (default /models/<model>). The operator sees the same
store where it mounts it: `--weights-mount /models=/mnt/models` (the local data plane runs pods on the host,
so there it is `/=/`). With a mount, admission gathers the checkpoint's facts and its signer's signature
there (sovereign.models.checkpoint) and judges them exactly as the replica will at load: a tampered file or
another signer is refused before anything is created. A deployment whose weights lie outside every mount,
or cannot be read, cannot be judged, and is refused. Without any mount admission judges the declaration
only, and the replica alone checks the weights, at load.

Hashing a checkpoint costs one read of every file, so a verified result is kept while no file of the folder
changes (size, mtime, inode): re-admitting an unchanged checkpoint costs a `stat` per file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sovereign import vocabulary as k8s
from sovereign.errors import BadInput
from sovereign.models.checkpoint import CheckpointUnreadable, checkpoint_fact
from sovereign.models.signing import signer_key
from sovereign.policy.judgement import Judgement


def weights_path(spec: Mapping[str, Any]) -> str:
    """Where the Ray pods load the deployment's checkpoint from (what the operator writes as model_source)."""
    return (spec.get("weights") or {}).get("path") or f"/models/{spec.get('model')}"


Fingerprint = tuple[tuple[str, int, int, int], ...]


def _fingerprint(folder: Path, signer: str | None) -> Fingerprint:
    """Every file of the checkpoint, and the signer's published key: a change to any is a new verification."""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    if signer is not None and (key := signer_key(signer)).is_file():
        files.append(key)
    stats = ((str(path), path.stat()) for path in files)
    return tuple((name, st.st_size, st.st_mtime_ns, st.st_ino) for name, st in stats)


@dataclass(frozen=True)
class WeightsMounts:
    """Pod path prefix -> where the operator has that part of the model store mounted (read-only)."""

    mounts: tuple[tuple[PurePosixPath, Path], ...] = ()
    # Facts of checkpoints that passed (unsigned, or signed by their signer), by folder, signer, fingerprint;
    # a failure is gathered again each time, so a fix is seen at once.
    _passed: dict[tuple[Path, str | None, Fingerprint], dict[str, Any]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def parse(cls, values: Sequence[str]) -> WeightsMounts:
        mounts = []
        for value in values:
            pod, sep, local = value.partition("=")
            if not sep or not pod.startswith("/") or not local:
                raise BadInput(
                    f"--weights-mount {value!r}: expected POD_PATH=OPERATOR_PATH, e.g. /models=/mnt/models "
                    "(the pods' path of the model store, and where the operator mounts it read-only)"
                )
            if not Path(local).is_dir():
                raise BadInput(f"--weights-mount {value!r}: {local} is not a folder the operator can read")
            mounts.append((PurePosixPath(pod), Path(local)))
        # The longest prefix wins: /models/eu may be mounted apart from /models.
        return cls(tuple(sorted(mounts, key=lambda m: len(m[0].parts), reverse=True)))

    def locate(self, pod_path: str) -> Path | None:
        path = PurePosixPath(pod_path)
        for pod, local in self.mounts:
            if path == pod or pod in path.parents:
                return local / path.relative_to(pod)
        return None

    def fact(self, deployment: Mapping[str, Any]) -> dict[str, Any] | Judgement | None:
        """`input.weights` for the deployment's checkpoint; the UNJUDGEABLE judgement when admission must
        judge its weights and cannot read them; None when no store is mounted (the replica checks alone)."""
        if not self.mounts:
            return None
        spec = deployment.get("spec") or {}
        pod_path = weights_path(spec)
        folder = self.locate(pod_path)
        if folder is None:
            mounted = ", ".join(str(pod) for pod, _ in self.mounts)
            return Judgement.unjudgeable(
                k8s.REASON_WEIGHTS_UNREADABLE,
                f"spec.weights.path {pod_path} is outside the model store the operator verifies ({mounted}): "
                "put the checkpoint there, or mount its store into the operator (--weights-mount)",
            )
        signer = (spec.get("weights") or {}).get("signer")
        try:
            key = (folder, signer, _fingerprint(folder, signer))
            if (known := self._passed.get(key)) is not None:
                return known
            fact = checkpoint_fact(folder, signer)
        except (CheckpointUnreadable, OSError) as exc:
            return Judgement.unjudgeable(
                k8s.REASON_WEIGHTS_UNREADABLE,
                f"spec.weights.path {pod_path}: the checkpoint cannot be read: {exc}",
            )
        if (fact.get("signature") or {"verified": True}).get("verified") is True:
            self._passed[key] = fact
        return fact
