"""Step: the scenario's policy change, made to a copy of policies/ and signed as a candidate bundle; the
what-if shows the fleet what it would change before any OPA serves it, publishing refuses until the
suspension it predicts is accepted by name, and the operator must then suspend exactly that deployment."""

from __future__ import annotations

import shutil
from pathlib import Path

from sovereign import toolchain
from sovereign.demo.context import DemoContext
from sovereign.demo.polling import wait_for
from sovereign.demo.scenario import POLICY_CHANGE
from sovereign.demo.sovereign_cli import run_sovereign
from sovereign.errors import SovereignError
from sovereign.vocabulary import DEPLOYMENTS, GROUP, RAY_GROUP, RAY_VERSION, RAYSERVICES, VERSION


def _changed_policies(demo: DemoContext) -> Path:
    change = POLICY_CHANGE
    changed = demo.root / "policies-changed"
    shutil.rmtree(changed, ignore_errors=True)
    shutil.copytree(toolchain.REPO_ROOT / "policies", changed)
    target = changed / change.file
    text = target.read_text()
    if change.old not in text:
        raise SovereignError(f"the demo's policy change no longer applies: {change.old!r} not in {target}")
    target.write_text(text.replace(change.old, change.new))
    return changed


def change_policy(demo: DemoContext) -> None:
    change, say = POLICY_CHANGE, demo.report.say
    region = demo.region(change.region)
    namespace, name = region.plan.service(region.plan.deployment(change.deployment))
    candidate, fleet = demo.root / "policy-candidate", f"--fleet={demo.fleet_file}"
    built = run_sovereign("bundle", "build", f"--policies={_changed_policies(demo)}", f"--out={candidate}")
    if built.returncode != 0:
        raise SovereignError(f"the candidate bundle did not build: {built.stderr.strip()}")
    say(f"candidate bundle signed into {candidate}; no OPA serves it yet")

    whatif = run_sovereign("whatif", f"--bundle={candidate}", fleet)
    for line in whatif.stdout.splitlines():
        say(line)
    changed = [line for line in whatif.stdout.splitlines() if f" {namespace}/{name} " in line]
    predicted = f"would suspend: {change.region}/{namespace}/{name}" in whatif.stdout.splitlines()
    demo.report.expect(
        f"what-if predicts {name} suspended ({change.code}), and nothing else",
        whatif.returncode == 1 and predicted and any(change.code in line for line in changed),
        whatif.stderr.strip(),
    )

    refused = run_sovereign("bundle", "publish", str(candidate), fleet)
    say(refused.stderr.strip().splitlines()[-1] if refused.stderr.strip() else "(publish said nothing)")
    demo.report.expect(
        f"publishing refuses until {name} is named", refused.returncode == 1 and name in refused.stderr
    )
    published = run_sovereign("bundle", "publish", str(candidate), fleet, f"--accept-suspensions={name}")
    for line in published.stdout.splitlines()[-2:]:
        say(line)
    demo.report.expect(
        f"published with --accept-suspensions {name}", published.returncode == 0, published.stderr.strip()
    )

    objects = region.objects()

    def suspended() -> bool:
        svc = objects.get_namespaced_custom_object(RAY_GROUP, RAY_VERSION, namespace, RAYSERVICES, name)
        return bool(svc["spec"].get("rayClusterConfig", {}).get("suspend") or svc["spec"].get("suspend"))

    try:
        wait_for(f"RayService {namespace}/{name} suspended", suspended, 120)
        ok = True
    except SovereignError:
        ok = False
    ld = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, DEPLOYMENTS, name)
    codes = [v["code"] for v in (ld.get("status") or {}).get("violations") or []]
    say(f"[{change.region}] {name}: RayService suspended={ok}, violations {codes}, as the what-if predicted")
    demo.report.expect(f"policy change suspends {name} ({change.code})", ok and change.code in codes)
