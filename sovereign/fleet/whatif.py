"""What a new policy would change across the fleet, judged before any OPA serves it.

The policy in force is the configured signed bundle (`$SOVEREIGN_POLICY_BUNDLE_DIR`, verified with the trust
anchor): the one `sovereign bundle build` and `sovereign bundle publish` write and every OPA of the fleet
watches. The new one is a signed candidate bundle, verified with the same anchor, or a policies/ folder
built for the what-if alone, unsigned and held in memory (`bundle.build_for_whatif`,
`WasmEngine.for_whatif`). Both are evaluated in-process, on the same inputs, so every difference is the
policy's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from operators.sovereign_operator.whatif import Change, Outcome, Rejudged, rejudge_region
from sovereign.errors import BadInput
from sovereign.fleet.fleetfile import FleetFile, RegionUnreachable
from sovereign.policy.bundle import (
    SignedBundle,
    build_for_whatif,
    bundle_dir,
    folder_sources,
    trust_anchor_path,
    verify_built,
)
from sovereign.policy.bundle_signature import BundleUnverified
from sovereign.policy.judgement import Judge, ScreeningFacts, Verdict, utc_today
from sovereign.policy.wasm_engine import WasmEngine


@dataclass(frozen=True)
class RegionResult:
    region: str
    rejudged: list[Rejudged] = field(default_factory=list)
    in_force: tuple[str, ...] = ()  # policy revisions the region's operator last judged with
    problem: str | None = None  # why the region could not be judged (nothing else is known of it)

    def ident(self, rejudged: Rejudged) -> str:
        """REGION/NAMESPACE/NAME: how reports and --accept-suspensions name a subject in full."""
        return f"{self.region}/{rejudged.subject.namespace}/{rejudged.subject.name}"


@dataclass(frozen=True)
class FleetWhatIf:
    current_revision: str | None
    new_revision: str | None
    regions: list[RegionResult]

    def each(self) -> Iterator[tuple[RegionResult, Rejudged]]:
        return ((region, r) for region in self.regions for r in region.rejudged)

    def suspensions(self) -> list[tuple[RegionResult, Rejudged]]:
        return [(region, r) for region, r in self.each() if r.would_suspend]

    def newly_undecided(self) -> list[tuple[RegionResult, Rejudged]]:
        """Subjects the policy in force decides and the new one cannot: publishing it would hold them."""
        return [
            (region, r)
            for region, r in self.each()
            if r.change is Change.UNDECIDED and Outcome.of(r.current).verdict is not Verdict.UNDECIDED
        ]

    def unreachable(self) -> list[RegionResult]:
        return [region for region in self.regions if region.problem is not None]

    def as_json(self) -> dict[str, Any]:
        def outcome(judgements: tuple[Any, ...]) -> dict[str, Any]:
            found = Outcome.of(judgements)
            return {"verdict": found.verdict.value, "codes": found.codes, "obligations": found.obligations}

        return {
            "current_revision": self.current_revision,
            "new_revision": self.new_revision,
            "would_suspend": [region.ident(r) for region, r in self.suspensions()],
            "regions": [
                {
                    "region": region.region,
                    "reachable": region.problem is None,
                    "problem": region.problem,
                    "in_force": list(region.in_force),
                    "subjects": [
                        {
                            "kind": r.subject.kind,
                            "namespace": r.subject.namespace,
                            "name": r.subject.name,
                            "cluster": r.subject.cluster,
                            "mode": r.subject.mode.value,
                            "running": r.subject.running,
                            "change": r.change.value,
                            "would_suspend": r.would_suspend,
                            "current": outcome(r.current),
                            "new": outcome(r.new),
                        }
                        for r in region.rejudged
                    ],
                }
                for region in self.regions
            ],
        }


def whatif_fleet(
    fleet: FleetFile,
    current: WasmEngine,
    new: WasmEngine,
    screening: ScreeningFacts | None,
    today: Callable[[], date] = utc_today,
) -> FleetWhatIf:
    """Every region of `fleet` judged under `current` and `new`: one batch per region and policy. A region
    that cannot be read is reported with why, never skipped in silence."""
    judges = Judge(current, screening, today), Judge(new, screening, today)
    regions = []
    for name, region in fleet.regions.items():
        try:
            found = region.read(lambda kube: rejudge_region(kube, *judges))
        except RegionUnreachable as exc:
            regions.append(RegionResult(name, problem=str(exc)))
        else:
            regions.append(RegionResult(name, found.rejudged, found.in_force))
    return FleetWhatIf(current.revision, new.revision, regions)


def live_engine() -> WasmEngine:
    """The policy in force: the configured bundle (undecided throughout when there is none)."""
    anchor = trust_anchor_path()
    return WasmEngine(SignedBundle.at(bundle_dir(), "", anchor).wasm, anchor)


def verified_candidate(folder: Path) -> SignedBundle:
    """A candidate bundle folder (as `sovereign bundle build --out FOLDER` writes it) whose two targets verify
    with the trust anchor and carry one revision; BadInput naming the fix otherwise."""
    candidate = SignedBundle.at(folder, "", trust_anchor_path())
    build = f"sovereign bundle build --policies DIR --out {folder}"
    try:
        revisions = {
            verify_built(target, candidate.verification_key).revision
            for target in (candidate.rego, candidate.wasm)
        }
    except BundleUnverified as exc:
        raise BadInput(
            f"{folder}: not a candidate bundle this fleet can trust: {exc}; build one with `{build}`"
        ) from None
    if len(revisions) != 1:
        raise BadInput(f"{folder}: its two targets carry different revisions; rebuild it with `{build}`")
    return SignedBundle.at(folder, revisions.pop(), candidate.verification_key)


@contextmanager
def candidate_engine(bundle: Path | None, policies: Path | None) -> Iterator[WasmEngine]:
    """The engine of the new policy: a verified candidate bundle, or a policies/ folder built (unsigned) for
    this what-if only, in a temporary folder removed afterwards."""
    if (bundle is None) == (policies is None):
        raise BadInput("give the new policy as --bundle FOLDER (a signed candidate) or --policies FOLDER")
    with ExitStack() as stack:
        if bundle is not None:
            candidate = verified_candidate(bundle)
            engine = WasmEngine(candidate.wasm, candidate.verification_key)
        else:
            assert policies is not None
            if not (policies / "data").is_dir():
                raise BadInput(f"--policies {policies}: no data/ folder: give a folder laid out as policies/")
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sovereign-whatif-"))
            engine = WasmEngine.for_whatif(build_for_whatif(folder_sources(policies), Path(tmp)))
        stack.callback(engine.close)
        yield engine
