"""What a new policy would change in one region, before any OPA serves it.

Every LlamaDeployment, every RayService made directly and every pending ClusterRequest is judged on the
facts the operator gathers for it (`facts.py`, admission's reading of a RayService, a request's proposal),
each input formed once, then evaluated in one batch under the policy in force and one under the new one.
A subject that runs now and whose new judgements make its cluster's enforcement mode refuse it is one a
drift pass would suspend; nothing here acts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from operators.sovereign_operator.admission import Admission
from operators.sovereign_operator.cluster_requests import approval_documents, is_decided
from operators.sovereign_operator.facts import (
    claim_of,
    claims_by_cluster,
    deployment_documents,
    rayservice_claim,
)
from operators.sovereign_operator.kube import Kube
from sovereign import vocabulary as k8s
from sovereign.errors import BadInput
from sovereign.policy.judgement import Action, Judge, Judgement, Mode, Verdict, strictest
from sovereign.policy.subjects import enforcement_mode, request_proposal

Document = dict[str, Any] | Judgement


class Change(StrEnum):
    """What the new policy changes about a subject's judgement."""

    NEWLY_DENIED = "newly denied"
    NEWLY_ALLOWED = "newly allowed"
    UNDECIDED = "undecided"  # the new policy decides nothing about it: held, never read as allowed
    VIOLATIONS_CHANGED = "violations changed"  # denied before and after, for other reasons
    OBLIGATIONS_CHANGED = "obligations changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Outcome:
    """Several judgements of one subject read together: its verdict and every code they carry."""

    verdict: Verdict
    codes: tuple[str, ...]
    obligations: tuple[str, ...]

    @classmethod
    def of(cls, judgements: Sequence[Judgement]) -> Outcome:
        verdicts = {j.verdict for j in judgements}
        # No decision outweighs a refusal, which outweighs an allowance (as `strictest` orders actions).
        order = (Verdict.UNDECIDED, Verdict.UNJUDGEABLE, Verdict.DENIED, Verdict.ALLOWED)
        verdict = next((v for v in order if v in verdicts), Verdict.ALLOWED)
        codes = {code for j in judgements for code in j.codes} | {
            j.problem[0] for j in judgements if j.problem
        }
        obligations = {str(o.get("code")) for j in judgements for o in j.obligations}
        return cls(verdict, tuple(sorted(codes)), tuple(sorted(obligations)))


def classify(current: Outcome, new: Outcome) -> Change:
    if new.verdict is Verdict.UNDECIDED:
        return Change.UNDECIDED
    if new.verdict is Verdict.ALLOWED:
        if current.verdict is not Verdict.ALLOWED:
            return Change.NEWLY_ALLOWED
    elif current.verdict in (Verdict.ALLOWED, Verdict.UNDECIDED):
        return Change.NEWLY_DENIED
    if new.codes != current.codes:
        return Change.VIOLATIONS_CHANGED
    if new.obligations != current.obligations:
        return Change.OBLIGATIONS_CHANGED
    return Change.UNCHANGED


@dataclass(frozen=True)
class RejudgedSubject:
    """An object the what-if judges again under both policies (what it is, where, and whether it runs)."""

    kind: str  # LlamaDeployment, RayService (made directly) or ClusterRequest
    namespace: str
    name: str
    cluster: str
    mode: Mode  # its cluster's enforcement mode
    running: bool  # holds its GPUs now: only such a subject can be suspended


@dataclass(frozen=True)
class Rejudged:
    subject: RejudgedSubject
    current: tuple[Judgement, ...]  # under the policy in force, one per model it serves or asks for
    new: tuple[Judgement, ...]  # under the new policy, likewise

    @property
    def change(self) -> Change:
        return classify(Outcome.of(self.current), Outcome.of(self.new))

    @property
    def would_suspend(self) -> bool:
        """A drift pass under the new policy would suspend it."""
        mode = self.subject.mode
        return self.subject.running and strictest(j.action(mode) for j in self.new) is Action.REFUSE


@dataclass(frozen=True)
class RegionWhatIf:
    rejudged: list[Rejudged]
    in_force: tuple[str, ...]  # the policy revisions the operator's LlamaDeployment statuses were judged with


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


def _subjects(kube: Kube, judge: Judge) -> tuple[list[RejudgedSubject], list[list[Document]], set[str]]:
    """Every subject of the region and its policy inputs, formed by `judge` as the operator forms them."""
    rayservices = kube.list_all(k8s.RAYSERVICES, k8s.RAY_GROUP, k8s.RAY_VERSION)
    deployments = kube.list_all(k8s.DEPLOYMENTS)
    clusters = {c["metadata"]["name"]: c for c in kube.list_all(k8s.CLUSTERS)}
    requests = kube.list_all(k8s.REQUESTS)
    claims = claims_by_cluster(deployments, rayservices)
    subjects: list[RejudgedSubject] = []
    documents: list[list[Document]] = []
    for deployment, document in zip(
        deployments, deployment_documents(judge, deployments, clusters, claims), strict=True
    ):
        ref = str(deployment["spec"].get("clusterRef"))
        mode = enforcement_mode(clusters.get(ref) or {})
        subjects.append(
            RejudgedSubject(k8s.LLAMA_DEPLOYMENT, *_key(deployment), ref, mode, claim_of(deployment).holds)
        )
        documents.append([document])
    admission = Admission(judge)
    for rs in rayservices:
        if (direct := rayservice_claim(rs)) is None:
            continue
        docs, cluster = admission.rayservice_documents(rs, clusters, claims)
        mode = enforcement_mode(cluster or {})
        subjects.append(RejudgedSubject(k8s.RAY_SERVICE, *_key(rs), direct[0], mode, direct[1].holds))
        documents.append(docs)
    for request in requests:
        if is_decided(request):
            continue
        cluster, proposed = request_proposal(request)
        try:
            docs: list[Document] = list(approval_documents(judge, cluster, proposed))
        except BadInput as exc:
            docs = [Judgement.unjudgeable(k8s.REASON_INVALID_SPEC, str(exc))]
        name = str(cluster["metadata"]["name"])
        subjects.append(RejudgedSubject(k8s.CLUSTER_REQUEST, *_key(request), name, Mode.ENFORCE, False))
        documents.append(docs)
    in_force = {
        str(revision)
        for d in deployments
        if (revision := ((d.get("status") or {}).get("policy") or {}).get("revision"))
    }
    return subjects, documents, in_force


def rejudge_region(kube: Kube, current: Judge, new: Judge) -> RegionWhatIf:
    """Every subject of the region under `current` and `new` (which screen and date alike: the inputs are
    formed once, by `current`), in one batched evaluation each."""
    subjects, documents, in_force = _subjects(kube, current)
    flat = [doc for docs in documents for doc in docs]
    before, after = current.judge_documents(flat), new.judge_documents(flat)
    rejudged, start = [], 0
    for subject, docs in zip(subjects, documents, strict=True):
        end = start + len(docs)
        rejudged.append(Rejudged(subject, tuple(before[start:end]), tuple(after[start:end])))
        start = end
    return RegionWhatIf(rejudged, tuple(sorted(in_force)))
