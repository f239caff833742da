"""What the operator and admission benchmarks share: a dev state of their own, and the operator running
as processes on a fresh local control plane, as `sovereign dev up` and `sovereign operator run` would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from operators.localrun import LocalOperator
from sovereign.audit.keys import ensure_key as ensure_audit_key
from sovereign.devenv.controlplane import ControlPlane, ControlPlaneConfig
from sovereign.policy.bundle import BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV, SignedBundle
from sovereign.policy.clusters import ClusterSpec
from sovereign.policy.screening_source import SCREENING_LIST_ENV, install_dev_sample

# region -> (country, operator kind, accreditation scheme, end uses its profile allows)
REGIONS = {
    "us-defense": ("US", "government_agency", "dod-il5", ["defense", "intelligence", "research"]),
    "five-eyes": ("GB", "government_agency", "uk-official", ["public_sector", "intelligence", "defense"]),
    "eu-text-only": ("DE", "company", "bsi-c5", ["commercial", "research", "public_sector"]),
}
# The namespaces deployments are made in: "bench", and fifty teams', each a tenant of every cluster.
TENANTS = ["bench", *(f"tenant-{team}" for team in range(50))]


def bench_cluster(index: int, region: str, quota: int | None) -> ClusterSpec:
    """A cluster of `region` accredited for a year, `quota` GPUs (None: no quota), every tenant's."""
    country, kind, scheme, _ = REGIONS[region]
    expires = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
    return ClusterSpec.model_validate(
        {
            "name": f"bench-{region}-{index}",
            "region": region,
            "country": country,
            "gpu_quota": quota,
            "operator": {"name": f"Bench Operator {index}", "country": country, "kind": kind},
            "accreditations": [{"scheme": scheme, "expires": expires}],
            "tenants": TENANTS,
        }
    )


def dev_state(root: Path) -> None:
    """Point this process (and what it starts) at a state dir under `root`, as after `sovereign dev up`:
    the control plane's OPA and the engines find the bundle built there, enforcement points screen against
    the dated sample and record decisions with the audit key made there."""
    os.environ["SOVEREIGN_STATE_DIR"] = str(root)
    for name in (BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV, SCREENING_LIST_ENV):
        os.environ.pop(name, None)
    install_dev_sample()
    ensure_audit_key()


@contextmanager
def running_operator(
    workdir: Path, bundle: SignedBundle, run_args: list[str] | None = None, in_process: bool = False
) -> Iterator[tuple[ControlPlane, LocalOperator]]:
    """etcd, kube-apiserver (KubeRay CRDs), an OPA server on `bundle` and `sovereign operator run` under its
    ServiceAccount, judging through that server or, `in_process`, with the bundle in-process (Wasm); all
    as processes, stopped in reverse order."""
    plane = ControlPlane(
        ControlPlaneConfig(name="bench", state_dir=workdir / "controlplane"), progress=lambda _: None
    )
    plane.start()
    operator = LocalOperator(
        plane.kubeconfig, plane.pki_dir, workdir / "operator", bundle, run_args, in_process
    )
    try:
        operator.setup()
        operator.start_opa()
        operator.start()
        yield plane, operator
    finally:
        operator.close()
        plane.stop()
