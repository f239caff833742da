"""One decision as the audit log keeps it: where and when it was made, on what, and what it said.

The record names the input by its digest rather than carrying it: an auditor holding the input (from the
object, the request, the matrix) can show it is the one judged, and the log carries no request content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Verdict = Literal["allowed", "denied", "undecided", "unjudgeable"]


class Point(StrEnum):
    """The enforcement point that judged."""

    PREVIEW = "preview"  # the Pulumi policy pack
    ADMISSION = "admission"  # the operator's validating webhook
    RECONCILE = "reconcile"
    DRIFT = "drift"  # re-judged after a bundle revision changed or an accreditation expired
    CLUSTER_REQUEST = "cluster_request"
    SERVING = "serving"  # a serving request, or a replica's weights check
    DECIDE = "decide"  # `sovereign decide` and the matrix


class DecisionRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    time: AwareDatetime
    point: Point
    region: str | None
    cluster: str | None
    subject: str = Field(min_length=1)  # the object (kind/namespace/name) or the request id
    tenant: str | None = None  # the namespace deploying or requesting
    input_digest: Sha256Hex | None  # None: no input could be formed (unjudgeable)
    allow: bool
    verdict: Verdict
    codes: tuple[str, ...] = ()  # violation codes, sorted and unique
    obligations: tuple[str, ...] = ()  # obligation codes, sorted and unique
    policy_revision: str | None = None
    engine: str | None = None
    weights_digest: Sha256Hex | None = None


class JudgementLike(Protocol):
    """What `sovereign.policy.judgement.Judgement` offers; the log depends on no engine or judge."""

    @property
    def verdict(self) -> str: ...
    @property
    def violations(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def obligations(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def policy_revision(self) -> str | None: ...
    @property
    def engine(self) -> str | None: ...
    @property
    def input(self) -> Mapping[str, Any] | None: ...


def input_digest(doc: Mapping[str, Any]) -> str:
    """SHA-256 of the policy input as canonical JSON (sorted keys, no spaces): equal inputs, equal digests."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _codes(items: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    return tuple(sorted({str(item.get("code")) for item in items}))


def record_of(
    judgement: JudgementLike,
    *,
    point: Point | str,
    subject: str,
    tenant: str | None = None,
    region: str | None = None,
    cluster: str | None = None,
    weights_digest: str | None = None,
    time: datetime | None = None,
) -> DecisionRecord:
    """The record of `judgement`, made at `point` about `subject`. Region, cluster and tenant default to
    what the judged input says (`cluster.region`, `cluster.name`, `namespace`)."""
    doc = judgement.input
    facts = doc.get("cluster") if doc else None
    facts = facts if isinstance(facts, Mapping) else {}
    verdict = str(judgement.verdict)
    return DecisionRecord(
        time=time or datetime.now(UTC),
        point=Point(point),
        region=region if region is not None else facts.get("region"),
        cluster=cluster if cluster is not None else facts.get("name"),
        subject=subject,
        tenant=tenant if tenant is not None else (doc or {}).get("namespace"),
        input_digest=input_digest(doc) if doc is not None else None,
        allow=verdict == "allowed",
        verdict=verdict,  # type: ignore[arg-type]  # validated against the Verdict literal
        codes=_codes(judgement.violations),
        obligations=_codes(judgement.obligations),
        policy_revision=judgement.policy_revision,
        engine=judgement.engine,
        weights_digest=weights_digest,
    )
