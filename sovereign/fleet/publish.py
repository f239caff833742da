"""Publishing a candidate bundle to the fleet: the what-if first, then the bundle every OPA watches.

Refused (nothing written) while the what-if says it would suspend a running deployment the publisher did not
name, leave undecided what the policy in force decides, or could not judge a region at all. The candidate
is copied aside before the what-if, so what is installed is exactly what was judged.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from operators.sovereign_operator.whatif import Outcome
from sovereign.errors import BadInput, SovereignError
from sovereign.fleet.fleetfile import FleetFile
from sovereign.fleet.whatif import FleetWhatIf, live_engine, verified_candidate, whatif_fleet
from sovereign.policy.bundle import SignedBundle, bundle_dir, install_bundle
from sovereign.policy.judgement import ScreeningFacts
from sovereign.policy.wasm_engine import WasmEngine


class PublishRefused(SovereignError):
    """The what-if forbids publishing as asked: the message says what it would do and how to go ahead."""


def names(accepted: str, ident: str) -> bool:
    """Whether `accepted` (NAME, NAMESPACE/NAME or REGION/NAMESPACE/NAME) names the subject `ident`."""
    parts = accepted.strip("/").split("/")
    return len(parts) <= 3 and ident.split("/")[-len(parts) :] == parts


def check_publishable(result: FleetWhatIf, accepted: Sequence[str]) -> None:
    """Nothing when the what-if allows publishing with `accepted` suspensions; BadInput when a name in
    `accepted` is not one it would suspend; PublishRefused otherwise."""
    suspended = [(region.ident(r), r) for region, r in result.suspensions()]
    listed = ", ".join(ident for ident, _ in suspended) or "nothing"
    if unknown := [name for name in accepted if not any(names(name, ident) for ident, _ in suspended)]:
        raise BadInput(
            f"--accept-suspensions {','.join(unknown)}: the what-if would suspend no such running deployment "
            f"(it would suspend: {listed}); name exactly the deployments it would suspend"
        )
    problems = [
        f"region {region.region} could not be judged ({region.problem}): what runs there is unknown; "
        "make it reachable or take it out of the fleet file"
        for region in result.unreachable()
    ]
    if undecided := result.newly_undecided():
        held = ", ".join(
            f"{region.ident(r)} ({', '.join(Outcome.of(r.new).codes)})" for region, r in undecided
        )
        problems.append(f"the new policy decides nothing about {held}: publishing it would hold them")
    unaccepted = [(ident, r) for ident, r in suspended if not any(names(name, ident) for name in accepted)]
    if unaccepted:
        each = ", ".join(f"{ident} ({', '.join(Outcome.of(r.new).codes)})" for ident, r in unaccepted)
        problems.append(
            f"it would suspend {len(unaccepted)} running deployment(s): {each}; to go ahead, name them: "
            f"--accept-suspensions {','.join(r.subject.name for _, r in unaccepted)}"
        )
    if problems:
        raise PublishRefused(
            f"refusing to publish policy revision {result.new_revision}: " + "; ".join(problems)
        )


def publish(
    folder: Path,
    fleet: FleetFile,
    accepted: Sequence[str],
    screening: ScreeningFacts | None,
    show: Callable[[FleetWhatIf], None],
) -> SignedBundle:
    """Judge the fleet under the candidate in `folder` (`show` the what-if), then install it where every
    consumer finds the bundle, or refuse (see `check_publishable`)."""
    live = bundle_dir()
    if folder.resolve() == live.resolve():
        raise BadInput(
            f"{folder} is the published bundle's own folder: build the candidate elsewhere (--out)"
        )
    candidate = verified_candidate(folder)
    with tempfile.TemporaryDirectory(prefix="sovereign-publish-") as tmp:
        staged = verified_candidate(install_bundle(candidate, Path(tmp)).wasm.parent)
        current, new = live_engine(), WasmEngine(staged.wasm, staged.verification_key)
        try:
            result = whatif_fleet(fleet, current, new, screening)
        finally:
            current.close()
            new.close()
        show(result)
        check_publishable(result, accepted)
        return install_bundle(staged, live)
