"""What the operator and admission benchmarks share: a dev state of their own, and the operator running
as processes on a fresh local control plane, as `sovereign dev up` and `sovereign operator run` would."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests
from kubernetes import watch
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from operators.localrun import LocalOperator, wait_until
from sovereign.audit.keys import ensure_key as ensure_audit_key
from sovereign.devenv.controlplane import ControlPlane, ControlPlaneConfig
from sovereign.errors import SovereignError
from sovereign.policy import subjects
from sovereign.policy.bundle import BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV, SignedBundle
from sovereign.policy.clusters import ClusterSpec, Deployment
from sovereign.policy.screening_source import SCREENING_LIST_ENV, install_dev_sample
from sovereign.vocabulary import DEPLOYMENTS, GROUP, PHASE_RUNNING, RAYSERVICES, VERSION

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


def bench_deployments(cluster: ClusterSpec, namespace: str, count: int, end_use: str) -> list[dict[str, Any]]:
    """`count` LlamaDeployments of the 8B text model on `cluster` in `namespace`, named d0000, d0001, ..."""
    return [
        subjects.llama_deployment(
            cluster,
            Deployment.model_validate(
                {"name": f"d{i:04d}", "model": "llama-3.1-8b-instruct", "end_use": end_use}
            ),
            namespace,
        )
        for i in range(count)
    ]


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


def wait_running(operator: LocalOperator, namespace: str, count: int, timeout: float) -> None:
    """Return once `count` LlamaDeployments in `namespace` say Running and as many RayServices exist: one
    list, then a watch of what changes (lists of a thousand objects every moment would load the very API
    server the benchmark measures)."""
    deadline = time.monotonic() + timeout
    running: set[str] = set()
    version = None
    while len(running) < count:
        if time.monotonic() > deadline:
            raise SovereignError(f"{len(running)} of {count} LlamaDeployments running after {timeout:.0f} s")
        if version is None:
            listed = operator.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, DEPLOYMENTS)
            running = {d["metadata"]["name"] for d in listed["items"] if _running(d)}
            version = listed["metadata"]["resourceVersion"]
            continue
        stream = watch.Watch().stream(
            operator.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            DEPLOYMENTS,
            resource_version=version,
            timeout_seconds=30,
        )
        try:
            for event in stream:
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                (running.add if _running(obj) else running.discard)(obj["metadata"]["name"])
                if len(running) >= count:
                    break
        except ApiException as exc:
            if exc.status != 410:  # 410: the version is too old to watch from; list again
                raise
            version = None
    # A status says Running once its RayService is created; counted once, for certain.
    wait_until(lambda: len(operator.list(RAYSERVICES, namespace)) >= count, 60, f"{count} RayServices", 1.0)


def _running(deployment: dict[str, Any]) -> bool:
    return (deployment.get("status") or {}).get("phase") == PHASE_RUNNING


# --- where the machine's time goes -------------------------------------------------------------------------
def component_pids(plane: ControlPlane, operator: LocalOperator) -> dict[str, int]:
    """The processes a benchmark's work runs in: etcd, the API server, the controller manager, the operator
    and its OPA server (the control plane's own OPA server is idle: the operator has its own)."""
    pids = {p.name: p.pid for p in plane.processes if p.pid is not None and p.name != "opa"}
    for name, process in (("operator", operator.process), ("OPA", operator.opa.process)):
        if process is not None and process.pid is not None:
            pids[name] = process.pid
    return pids


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system) each process and its children have used so far."""
    used = {}
    for name, pid in pids.items():
        process = psutil.Process(pid)
        used[name] = sum(sum(p.cpu_times()[:2]) for p in [process, *process.children(recursive=True)])
    return used


def apiserver_metrics(plane: ControlPlane) -> str:
    """The API server's /metrics, read as the administrator."""
    response = requests.get(
        f"{plane.apiserver_url}/metrics",
        headers={"Authorization": f"Bearer {plane.admin_token}"},
        verify=str(plane.pki_dir / "ca.crt"),
        timeout=30,
    )
    response.raise_for_status()
    return response.text


def api_requests(text: str) -> Counter[str]:
    """Requests the API server answered so far, by verb and resource ("POST rayservices", "PATCH
    llamadeployments/status"), from its apiserver_request_total."""
    found: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "apiserver_request_total":
                labels = sample.labels
                resource = "/".join(filter(None, [labels.get("resource"), labels.get("subresource")]))
                found[f"{labels.get('verb')} {resource}"] += sample.value
    return found
