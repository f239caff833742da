"""Shared fixtures. The control plane is real (etcd + kube-apiserver + OPA) and dies with pytest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from sovereign import toolchain
from sovereign.devenv.controlplane import ControlPlane, ControlPlaneConfig
from sovereign.devenv.process import ManagedProcess, free_port
from sovereign.policy.bundle import SignedBundle, ensure_bundle, opa_server_args, repo_sources


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One real control plane for the whole session, owned by this pytest process."""
    plane = ControlPlane(
        ControlPlaneConfig(name="pytest", state_dir=tmp_path_factory.mktemp("controlplane")),
        progress=lambda line: None,
    )
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def kubeconfig(controlplane: ControlPlane) -> Path:
    return controlplane.kubeconfig


@pytest.fixture(scope="session")
def signed_bundle(tmp_path_factory: pytest.TempPathFactory) -> SignedBundle:
    """The real policies/ built and signed once per session, with its own key (never the user's state dir)."""
    return ensure_bundle(repo_sources(), tmp_path_factory.mktemp("policy-bundle"), progress=lambda line: None)


@dataclass
class OpaServer:
    url: str
    process: ManagedProcess


@pytest.fixture(scope="session")
def start_opa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., OpaServer]]:
    """Start a real `opa run --server` on a free loopback port, verifying and serving a signed bundle.

    With ready=True (the default) it waits for /health and raises SovereignError with OPA's last log
    lines when OPA exits instead; with ready=False it returns at once (to watch OPA refuse a bundle).
    """
    started: list[ManagedProcess] = []

    def start(bundle: SignedBundle, ready: bool = True) -> OpaServer:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [str(toolchain.binary("opa")), "run", "--server", f"--addr=127.0.0.1:{port}"]
        argv += ["--log-level=error", "--disable-telemetry", *opa_server_args(bundle)]
        proc = ManagedProcess(f"opa-{port}", argv, tmp_path_factory.mktemp("opa") / "opa.log")
        proc.start()
        started.append(proc)
        if ready:
            proc.wait_ready(
                lambda: requests.get(f"{url}/health?bundles=true", timeout=1).status_code == 200,
                30,
                f"{url}/health",
            )
        return OpaServer(url, proc)

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def opa_server(
    signed_bundle: SignedBundle, start_opa_server: Callable[[SignedBundle], OpaServer]
) -> OpaServer:
    """One OPA server on the session's signed bundle, shared by the tests that only query it."""
    return start_opa_server(signed_bundle)
