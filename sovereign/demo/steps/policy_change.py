"""Step: the scenario's policy change, made to a copy of policies/ and re-signed into the bundle every
region's OPA watches; the operator must then suspend the deployment it takes out of compliance."""

from __future__ import annotations

import shutil

from sovereign import toolchain
from sovereign.demo.context import DemoContext
from sovereign.demo.polling import wait_for
from sovereign.demo.scenario import POLICY_CHANGE
from sovereign.errors import SovereignError
from sovereign.policy.bundle import PolicySources, build_bundle, bundle_dir
from sovereign.policydata import load_policy_data
from sovereign.vocabulary import DEPLOYMENTS, GROUP, RAY_GROUP, RAY_VERSION, RAYSERVICES, VERSION


def change_policy(demo: DemoContext) -> None:
    change = POLICY_CHANGE
    changed = demo.root / "policies-changed"
    shutil.rmtree(changed, ignore_errors=True)
    shutil.copytree(toolchain.REPO_ROOT / "policies", changed)
    target = changed / change.file
    text = target.read_text()
    if change.old not in text:
        raise SovereignError(f"the demo's policy change no longer applies: {change.old!r} not in {target}")
    target.write_text(text.replace(change.old, change.new))
    sources = PolicySources(root=changed, load_data=lambda: load_policy_data(changed / "data").opa_document())
    bundle = build_bundle(sources, bundle_dir(), progress=demo.report.say, force=True)
    demo.report.say(f"re-signed bundle revision {bundle.revision}; every region's OPA reloads it (--watch)")

    region = demo.region(change.region)
    namespace, name = region.plan.service(region.plan.deployment(change.deployment))
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
    demo.report.say(f"[{change.region}] {name}: RayService suspended={ok}, violations {codes}")
    demo.report.expect(f"policy change suspends {name} ({change.code})", ok and change.code in codes)
