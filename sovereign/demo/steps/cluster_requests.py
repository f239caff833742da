"""Step: the contractors' ClusterRequests submitted with `sovereign request submit`, each decision checked
with `sovereign request status`."""

from __future__ import annotations

import json

import yaml

from operators.manifests import EXAMPLES_DIR
from sovereign.demo.context import DemoContext
from sovereign.demo.scenario import CLUSTER_REQUESTS, ClusterRequestCase
from sovereign.demo.sovereign_cli import run_sovereign

REQUESTS_DIR = EXAMPLES_DIR / "clusterrequests"


def submit_cluster_requests(demo: DemoContext) -> None:
    for case in CLUSTER_REQUESTS:
        _submit(demo, case)


def _submit(demo: DemoContext, case: ClusterRequestCase) -> None:
    region = demo.region(case.region)
    kubeconfig = f"--kubeconfig={region.kubeconfig}"  # its `dev up` onboarded the contractors' namespace
    submitted = run_sovereign("request", "submit", str(REQUESTS_DIR / case.file), kubeconfig)
    metadata = yaml.safe_load((REQUESTS_DIR / case.file).read_text())["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    shown = run_sovereign("request", "status", name, "-n", namespace, kubeconfig, "--timeout=90")
    for line in shown.stdout.splitlines()[:8]:
        demo.report.say(f"[{case.region}] {line}")
    status = run_sovereign("request", "status", name, "-n", namespace, kubeconfig, "--json", "--timeout=5")
    phase = json.loads(status.stdout or "{}").get("phase") if status.stdout.strip().startswith("{") else None
    detail = f"phase {phase}" + (
        "" if submitted.returncode == 0 else f"; submit: {submitted.stderr.strip()[:120]}"
    )
    ok = phase == case.phase and (not case.screening_hit or "DENIED_PARTY" in shown.stdout)
    demo.report.expect(
        f"ClusterRequest {name} {case.phase.lower()}" + (" (screening hit)" if case.screening_hit else ""),
        ok,
        detail,
    )
