"""Have the policy judge the weights on disk before serving them.

The checkpoint's facts (sovereign.models.checkpoint: input modalities, parameter count, stand-in, and the
signer's OpenSSF signature over every file) go into the decision input as `weights`; the Rego rules
`weights_match` (WEIGHTS_MISMATCH: not the declared catalogue variant) and `weights_signature`
(WEIGHTS_SIGNATURE_INVALID: not signed by the named signer) decide. A checkpoint that cannot even be read
has no facts to form an input from: it is UNJUDGEABLE (the judgement API's answer when no input can be
formed, recorded like any judgement, as admission's weights check answers it), never a reason of its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sovereign.errors import SovereignError
from sovereign.models.checkpoint import CheckpointUnreadable, WeightsFacts, inspect_weights, weights_fact
from sovereign.models.signing import SIGNATURE_FILE, verify_checkpoint
from sovereign.policy.decision_input import DecisionInput
from sovereign.policy.judgement import Judge, Judgement, Subject
from sovereign.policydata import load_policy_data
from sovereign.vocabulary import REASON_WEIGHTS_UNREADABLE


class WeightsRefused(SovereignError):
    """The weights on disk are not the declared variant: the server must not start."""


@dataclass(frozen=True)
class VerifiedWeights:
    model_id: str
    facts: WeightsFacts
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> digest

    def record(self) -> dict[str, Any]:
        """What the deployment logs and reports: the declared variant and the digest of every file."""
        return {
            "model_id": self.model_id,
            "source": str(self.facts.folder),
            "model_type": self.facts.model_type,
            "input_modalities": self.facts.input_modalities,
            "parameters": self.facts.parameters,
            "stand_in_for": self.facts.stand_in_for,
            "files": [{"name": name, "sha256": digest} for name, digest in sorted(self.sha256.items())],
        }


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_weights(folder: Path, judge: Judge, judged: DecisionInput) -> VerifiedWeights:
    """The verified record of `folder` as the deployment `judged` declares it, or WeightsRefused with the
    policy's every reason (code, message, citation).

    The cheap header facts are judged first: a mismatched 140 GB checkpoint is refused in milliseconds.
    Then, when the deployment names a signer, its signature over every file is verified (hashing them all)
    and the whole is judged again with that fact; digests are taken last.
    """
    # The record names the checkpoint by its signature's digest: the signature binds every file's digest.
    signature_file = folder / SIGNATURE_FILE
    subject = Subject(
        f"weights {judged.model} at {folder}",
        weights_digest=_sha256(signature_file) if signature_file.is_file() else None,
    )
    try:
        facts = inspect_weights(folder)
    except CheckpointUnreadable as exc:
        unreadable = Judgement.unjudgeable(REASON_WEIGHTS_UNREADABLE, f"model_source: {exc}")
        judge.record(unreadable, subject)
        raise WeightsRefused(
            f"refusing to serve {folder} as {judged.model}: it cannot be judged: {unreadable.message}"
        ) from None
    # The header facts alone (the signature not gathered yet: no signer expected in this first judgement).
    unsigned = judged.model_copy(update={"weights_signer": None})
    judgement = judge.judge(unsigned, subject=subject, weights=weights_fact(facts))
    if judgement.allowed and judged.weights_signer is not None:
        signature = verify_checkpoint(folder, judged.weights_signer).fact()
        judgement = judge.judge(
            judged, subject=subject, weights={**weights_fact(facts), "signature": signature}
        )
    if not judgement.allowed:
        reasons = [
            f"  - {v.get('code')}: {v.get('message')} [{v.get('citation')}]" for v in judgement.violations
        ]
        raise WeightsRefused(f"refusing to serve {folder} as {judged.model}:\n" + "\n".join(reasons))
    variant = load_policy_data().model(judged.model)
    model_id = variant.id if variant else judged.model
    return VerifiedWeights(model_id, facts, {path.name: _sha256(path) for path in facts.files})
