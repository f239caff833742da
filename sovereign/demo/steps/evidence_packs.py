"""Step: one evidence pack per region (`sovereign evidence export`), each checked offline
(`sovereign evidence verify`) as an auditor would, with the public keys alone."""

from __future__ import annotations

from sovereign.demo.context import DemoContext
from sovereign.demo.sovereign_cli import run_sovereign


def export_evidence(demo: DemoContext) -> None:
    folder = demo.root / "evidence"
    folder.mkdir(parents=True, exist_ok=True)
    clusters = demo.root / "project" / "clusters"  # the cluster files the stacks deployed
    for region in demo.regions:
        name = region.plan.region
        out = folder / f"{name}.evidence.tar.gz"
        exported = run_sovereign(
            "evidence",
            "export",
            f"--region={name}",
            f"--out={out}",
            f"--kubeconfig={region.kubeconfig}",
            f"--clusters={clusters}",
            demo.weights_mount,  # the checkpoints' signatures are packed from where the operator reads them
        )
        checked = run_sovereign("evidence", "verify", str(out))
        verdict = (checked.stdout.strip().splitlines() or [checked.stderr.strip()])[-1]
        demo.report.say(f"[{name}] {verdict.replace(str(out), out.name)}")
        demo.report.say(f"evidence pack: {out}")
        ok = exported.returncode == 0 and checked.returncode == 0
        why = "" if ok else (exported.stderr or checked.stdout).strip()[-300:]
        demo.report.expect(f"{name}: evidence pack exported and verified offline", ok, why)
