"""The what-if without a control plane: how a change is classified, what a drift pass would suspend, when
publishing is refused, and one region's objects judged under the real policy and a changed one."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_operator_drift import direct_rayservice, usdef_cluster

from operators.sovereign_operator.whatif import (
    Change,
    Outcome,
    Rejudged,
    RejudgedSubject,
    classify,
    rejudge_region,
)
from sovereign import toolchain
from sovereign import vocabulary as k8s
from sovereign.errors import BadInput
from sovereign.fleet.publish import PublishRefused, check_publishable, names
from sovereign.fleet.whatif import FleetWhatIf, RegionResult, candidate_engine
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle, build_for_whatif, repo_sources
from sovereign.policy.bundle_signature import SIGNATURES_FILE
from sovereign.policy.clusters import ClusterSpec, Deployment
from sovereign.policy.judgement import Judge, Judgement, Mode, Verdict
from sovereign.policy.screening_source import Screening
from sovereign.policy.wasm_engine import WasmEngine

ALLOWED, DENIED, UNDECIDED = Verdict.ALLOWED, Verdict.DENIED, Verdict.UNDECIDED


def outcome(verdict: Verdict, codes: tuple[str, ...] = (), obligations: tuple[str, ...] = ()) -> Outcome:
    return Outcome(verdict, codes, obligations)


@pytest.mark.parametrize(
    ("current", "new", "change"),
    [
        (outcome(ALLOWED), outcome(DENIED, ("END_USE_NOT_PERMITTED",)), Change.NEWLY_DENIED),
        (outcome(DENIED, ("END_USE_NOT_PERMITTED",)), outcome(ALLOWED), Change.NEWLY_ALLOWED),
        (outcome(UNDECIDED, ("ENGINE_UNAVAILABLE",)), outcome(DENIED, ("X",)), Change.NEWLY_DENIED),
        (outcome(UNDECIDED, ("ENGINE_UNAVAILABLE",)), outcome(ALLOWED), Change.NEWLY_ALLOWED),
        # Undecided under the new policy is never read as allowed (nor as unchanged).
        (outcome(ALLOWED), outcome(UNDECIDED, ("BUNDLE_UNVERIFIED",)), Change.UNDECIDED),
        (outcome(UNDECIDED, ("X",)), outcome(UNDECIDED, ("X",)), Change.UNDECIDED),
        (outcome(DENIED, ("A",)), outcome(DENIED, ("A", "B")), Change.VIOLATIONS_CHANGED),
        (outcome(ALLOWED, (), ("BUILT_WITH_LLAMA",)), outcome(ALLOWED), Change.OBLIGATIONS_CHANGED),
        (outcome(DENIED, ("A",), ("O",)), outcome(DENIED, ("A",), ("O",)), Change.UNCHANGED),
        (
            outcome(Verdict.UNJUDGEABLE, ("ClusterNotFound",)),
            outcome(Verdict.UNJUDGEABLE, ("ClusterNotFound",)),
            Change.UNCHANGED,
        ),
    ],
)
def test_classify(current: Outcome, new: Outcome, change: Change) -> None:
    assert classify(current, new) is change


def judgement(allow: bool, *codes: str, obligations: tuple[str, ...] = ()) -> Judgement:
    return Judgement.of(
        {
            "allow": allow,
            "violations": [{"code": c, "message": c, "citation": "-"} for c in codes],
            "obligations": [{"code": o, "message": o, "citation": "-"} for o in obligations],
        }
    )


def test_an_outcome_reads_several_judgements_as_the_strictest_with_every_code() -> None:
    mixed = Outcome.of([judgement(True, obligations=("O1",)), judgement(False, "A"), judgement(False, "B")])
    assert mixed == Outcome(DENIED, ("A", "B"), ("O1",))
    held = Outcome.of([judgement(False, "A"), judgement(False, "SCREENING_UNAVAILABLE")])
    assert held.verdict is UNDECIDED
    gone = Outcome.of([Judgement.unjudgeable(k8s.REASON_CLUSTER_NOT_FOUND, "no cluster")])
    assert gone == Outcome(Verdict.UNJUDGEABLE, (k8s.REASON_CLUSTER_NOT_FOUND,), ())


def rejudged(
    name: str,
    new: Judgement,
    mode: Mode = Mode.ENFORCE,
    running: bool = True,
    current: Judgement | None = None,
) -> Rejudged:
    subject = RejudgedSubject(k8s.LLAMA_DEPLOYMENT, "ns", name, "c-1", mode, running)
    return Rejudged(subject, (current or judgement(True),), (new,))


@pytest.mark.parametrize(
    ("case", "suspends"),
    [
        (rejudged("a", judgement(False, "X")), True),
        (rejudged("a", judgement(False, "X"), mode=Mode.WARN), False),  # warn mode keeps it running
        (rejudged("a", judgement(False, "X"), mode=Mode.DRYRUN), False),
        (rejudged("a", judgement(False, "X"), running=False), False),  # nothing running to suspend
        (rejudged("a", judgement(False, "SCREENING_UNAVAILABLE")), False),  # undecided holds
        (rejudged("a", judgement(True)), False),
    ],
)
def test_would_suspend_only_what_runs_and_the_enforcement_mode_refuses(
    case: Rejudged, suspends: bool
) -> None:
    assert case.would_suspend is suspends


def fleet_whatif(*regions: RegionResult) -> FleetWhatIf:
    return FleetWhatIf("old", "new", list(regions))


def test_names_match_by_name_namespace_or_region_whole_segments_only() -> None:
    ident = "five-eyes/fvey-london-1/fvey-london-1-chat"
    for name in ("fvey-london-1-chat", "fvey-london-1/fvey-london-1-chat", ident):
        assert names(name, ident)
    for name in ("london-1-chat", "chat", "eu/fvey-london-1/fvey-london-1-chat", f"x/{ident}"):
        assert not names(name, ident)


def test_publishing_is_refused_until_every_suspension_is_named_and_only_those() -> None:
    region = RegionResult(
        "eu",
        [
            rejudged("a", judgement(False, "X")),
            rejudged("b", judgement(False, "Y")),
            rejudged("c", judgement(True)),
        ],
    )
    result = fleet_whatif(region)
    with pytest.raises(PublishRefused) as refused:
        check_publishable(result, [])
    assert "it would suspend 2 running deployment(s): eu/ns/a (X), eu/ns/b (Y)" in str(refused.value)
    assert "--accept-suspensions a,b" in str(refused.value)
    with pytest.raises(PublishRefused, match=r"1 running deployment\(s\): eu/ns/b \(Y\)"):
        check_publishable(result, ["a"])
    with pytest.raises(BadInput, match=r"--accept-suspensions c: the what-if would suspend no such"):
        check_publishable(result, ["a", "b", "c"])
    check_publishable(result, ["ns/a", "eu/ns/b"])  # accepted: nothing raised


def test_publishing_is_refused_when_a_region_is_unjudged_or_a_decision_is_lost() -> None:
    with pytest.raises(PublishRefused, match="region gone could not be judged \\(refused\\)"):
        check_publishable(fleet_whatif(RegionResult("gone", problem="refused")), [])
    lost = RegionResult("eu", [rejudged("a", judgement(False, "ENGINE_UNAVAILABLE"))])
    with pytest.raises(PublishRefused, match="decides nothing about eu/ns/a \\(ENGINE_UNAVAILABLE\\)"):
        check_publishable(fleet_whatif(lost), [])
    already = RegionResult(
        "eu",
        [
            rejudged(
                "a", judgement(False, "ENGINE_UNAVAILABLE"), current=judgement(False, "ENGINE_UNAVAILABLE")
            )
        ],
    )
    check_publishable(fleet_whatif(already), [])  # nothing decided now is lost


@pytest.mark.parametrize(
    ("bundle", "policies", "message"),
    [
        (False, False, r"give the new policy as --bundle FOLDER \(a signed candidate\) or --policies FOLDER"),
        (True, True, r"give the new policy as --bundle FOLDER \(a signed candidate\) or --policies FOLDER"),
        (False, True, r"no data/ folder: give a folder laid out as policies/"),
    ],
)
def test_the_new_policy_given_wrongly_is_bad_input(
    tmp_path: Path, bundle: bool, policies: bool, message: str
) -> None:
    with (
        pytest.raises(BadInput, match=message),
        candidate_engine(tmp_path if bundle else None, tmp_path if policies else None),
    ):
        pass


def test_an_unsigned_candidate_is_bad_input_naming_the_build(
    tmp_path: Path, signed_bundle: SignedBundle
) -> None:
    (tmp_path / "bundle.tar.gz").write_bytes(signed_bundle.rego.read_bytes())
    with (
        pytest.raises(
            BadInput, match=r"not a candidate bundle this fleet can trust.*bundle build --policies"
        ),
        candidate_engine(tmp_path, None),
    ):
        pass


@pytest.mark.slow
def test_a_policies_folder_is_judged_unsigned(tmp_path: Path, signed_bundle: SignedBundle) -> None:
    """`whatif --policies` signs nothing: no key, no anchor, no signed bundle anywhere; its engine judges
    with the revision `sovereign bundle build` would give the same sources."""
    built = build_for_whatif(repo_sources(), tmp_path)
    assert SIGNATURES_FILE not in built.files
    assert not [p for p in tmp_path.rglob("*") if p.suffix in {".key", ".pem"}]
    engine = WasmEngine.for_whatif(built)
    try:
        assert engine.revision == signed_bundle.revision
        assert engine.decide({})["policy_revision"] == signed_bundle.revision
    finally:
        engine.close()


# --- one region, judged for real --------------------------------------------------------------------


class ListedKube:
    """The one call the what-if makes of the API server: list every object of a kind."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects

    def list_all(
        self, plural: str, group: str = k8s.GROUP, version: str = k8s.VERSION
    ) -> list[dict[str, Any]]:
        return copy.deepcopy(self.objects.get(plural, []))


def deployment(spec: ClusterSpec, name: str, end_use: str, phase: str, age: int) -> dict[str, Any]:
    declared = Deployment.model_validate({"name": name, "model": "llama-3.1-8b-instruct", "end_use": end_use})
    obj = subjects.llama_deployment(spec, declared, "wi")
    obj["metadata"] |= {"uid": f"uid-{name}", "creationTimestamp": f"2026-01-01T00:00:{age:02d}Z"}
    obj["status"] = {"phase": phase}
    return obj


def pending_request() -> dict[str, Any]:
    path = toolchain.REPO_ROOT / "operators" / "examples" / "clusterrequests" / "clusterrequest-approved.yaml"
    request = yaml.safe_load(path.read_text())
    request["metadata"] |= {"uid": "uid-request", "generation": 1}
    return request


@pytest.mark.slow
def test_a_region_is_rejudged_under_both_policies_as_the_operator_judges_it(
    signed_bundle: SignedBundle, defense_banned_policies: Path
) -> None:
    enforce = usdef_cluster("wi", datetime.now(UTC).date() + timedelta(days=365))
    warn = enforce.model_copy(update={"name": "wi-warn", "enforcement": Mode.WARN})
    kube = ListedKube(
        {
            k8s.CLUSTERS: [subjects.sovereign_cluster(enforce), subjects.sovereign_cluster(warn)],
            k8s.DEPLOYMENTS: [
                deployment(enforce, "defense", "defense", k8s.PHASE_RUNNING, 1),
                deployment(enforce, "research", "research", k8s.PHASE_RUNNING, 2),
                deployment(enforce, "stopped", "defense", k8s.PHASE_SUSPENDED, 3),
                deployment(warn, "defense", "defense", k8s.PHASE_RUNNING, 4),
            ],
            k8s.RAYSERVICES: [direct_rayservice(enforce, "wi", "direct")],
            k8s.REQUESTS: [pending_request()],
        }
    )
    screening = Screening.enforcing()  # the dev sample, as the operators screen with
    current = WasmEngine(signed_bundle.wasm, signed_bundle.verification_key)
    with candidate_engine(None, defense_banned_policies) as new:
        found = rejudge_region(kube, Judge(current, screening), Judge(new, screening))
    current.close()
    by_name = {(r.subject.kind, r.subject.name): r for r in found.rejudged}
    assert set(by_name) == {
        (k8s.LLAMA_DEPLOYMENT, "wi-1-defense"),
        (k8s.LLAMA_DEPLOYMENT, "wi-1-research"),
        (k8s.LLAMA_DEPLOYMENT, "wi-1-stopped"),
        (k8s.LLAMA_DEPLOYMENT, "wi-warn-defense"),
        (k8s.RAY_SERVICE, "wi-1-direct"),
        (k8s.CLUSTER_REQUEST, "lattice-usdef-approved"),
    }
    changes = {key: (r.change, Outcome.of(r.new).codes, r.would_suspend) for key, r in by_name.items()}
    denied = ("END_USE_NOT_PERMITTED",)
    assert changes == {
        (k8s.LLAMA_DEPLOYMENT, "wi-1-defense"): (Change.NEWLY_DENIED, denied, True),
        (k8s.LLAMA_DEPLOYMENT, "wi-1-research"): (Change.UNCHANGED, (), False),
        (k8s.LLAMA_DEPLOYMENT, "wi-1-stopped"): (Change.NEWLY_DENIED, denied, False),  # not running
        (k8s.LLAMA_DEPLOYMENT, "wi-warn-defense"): (Change.NEWLY_DENIED, denied, False),  # warn mode
        (k8s.RAY_SERVICE, "wi-1-direct"): (Change.NEWLY_DENIED, denied, True),
        (k8s.CLUSTER_REQUEST, "lattice-usdef-approved"): (Change.NEWLY_DENIED, denied, False),
    }
    # Each subject was judged under both on the same input: the revisions differ, nothing else does.
    research = by_name[(k8s.LLAMA_DEPLOYMENT, "wi-1-research")]
    assert research.current[0].input == research.new[0].input
    assert research.current[0].policy_revision == signed_bundle.revision != research.new[0].policy_revision
    assert len(by_name[(k8s.CLUSTER_REQUEST, "lattice-usdef-approved")].new) == 2  # one per model asked for


@pytest.mark.slow
def test_a_decided_request_is_not_rejudged(signed_bundle: SignedBundle) -> None:
    request = pending_request()
    request["status"] = {"phase": k8s.PHASE_APPROVED, "observedGeneration": 1}
    engine = WasmEngine(signed_bundle.wasm, signed_bundle.verification_key)
    judge = Judge(engine)
    assert rejudge_region(ListedKube({k8s.REQUESTS: [request]}), judge, judge).rejudged == []
    engine.close()
