"""Shared fixtures. The control plane is real (etcd + kube-apiserver + OPA) and dies with pytest."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from selection import deselected_whole

from infra import decisions
from sovereign import toolchain
from sovereign.audit.keys import ensure_key as ensure_audit_key
from sovereign.commands import decide, matrix
from sovereign.devenv.controlplane import ControlPlane, ControlPlaneConfig, running_controlplane
from sovereign.devenv.pki import CertPair
from sovereign.devenv.process import ManagedProcess, free_port
from sovereign.policy.bundle import (
    BUNDLE_DIR_ENV,
    TRUST_ANCHOR_ENV,
    PolicySources,
    SignedBundle,
    build_bundle,
    bundle_dir,
    opa_server_args,
    trust_anchor_path,
)
from sovereign.policy.engine import PolicyEngine, engine_from_env
from sovereign.policy.opa_token import TOKEN_ENV, opa_server_env, server_token
from sovereign.policy.screening import ALLOW_SAMPLE_ENV, MAX_AGE_ENV, SAMPLE_LIST
from sovereign.policy.screening_source import SCREENING_LIST_ENV, install_dev_sample
from sovereign.policy.wasm_engine import WasmEngine


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A module that -m deselects whole is not imported (see selection.py): collecting the Ray and serving
    modules cost every `make test-fast` worker about 10 s of imports, for tests it then deselected."""
    expression = config.getoption("markexpr")
    if not expression or not collection_path.name.startswith("test_") or collection_path.suffix != ".py":
        return None
    return True if deselected_whole(collection_path, expression) else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on the real control plane is marked `controlplane` from the fixtures it uses, and one on the
    tiny checkpoints `slow`, so `make test-fast` (-m "not controlplane and not slow") leaves it out without
    anyone remembering to mark it.

    Then whole modules are ordered slow first (a longer allowed timeout first: the demo), control-plane
    next: `make test`'s workers (pytest-xdist, whole modules each) start the longest modules first instead
    of finishing on one of them."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "controlplane" in fixtures:
            item.add_marker(pytest.mark.controlplane)
        if "tiny_models" in fixtures:  # torch builds the checkpoints: some 10 s before the first such test
            item.add_marker(pytest.mark.slow)
    rank: dict[str, tuple[int, float]] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        kind = 0 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("controlplane") else 2
        timeout = item.get_closest_marker("timeout")
        weight = (kind, -float(timeout.args[0]) if timeout else 0.0)
        rank[module] = min(rank.get(module, weight), weight)
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])


SLOW_S = 1.0  # a test-fast run names an unmarked test past this, so the inner loop stays under a minute


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """When a run leaves out `slow` tests (`make test-fast`), name those it ran that took longer than
    SLOW_S: each belongs in `make test` alone, marked slow."""
    if "not slow" not in (config.getoption("markexpr") or ""):
        return
    durations: dict[str, float] = {}
    for report in terminalreporter.getreports("passed") + terminalreporter.getreports("failed"):
        durations[report.nodeid] = durations.get(report.nodeid, 0.0) + report.duration
    late = sorted((seconds, nodeid) for nodeid, seconds in durations.items() if seconds > SLOW_S)
    if late:
        terminalreporter.section(f"over {SLOW_S:.0f} s and not marked slow (mark them: pytest.mark.slow)")
        for seconds, nodeid in reversed(late):
            terminalreporter.write_line(f"{seconds:5.1f} s  {nodeid}")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with pytest's own exit status once everything is reported (the last hook of the run).

    The session loads Ray's core worker, gRPC and torch into this process; their native threads have been
    seen to crash the interpreter's teardown (SIGSEGV after "N passed" in CI), turning a green run red
    with nothing to fix in the code under test. The status below is the session's: failures stay failures.
    Workers of pytest-xdist leave normally (their controller reads their results over the channel).
    """
    if hasattr(config, "workerinput"):
        return
    status = getattr(config, "_sovereign_exitstatus", None)
    if status is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(status))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._sovereign_exitstatus = exitstatus  # type: ignore[attr-defined]


@pytest.fixture(scope="session", autouse=True)
def session_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The state dir (SOVEREIGN_STATE_DIR) of every test and its children, never the user's own: the
    bundle, its signing key and trust anchor, the OPA token and the dev screening sample are found there
    unless a test says otherwise."""
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOVEREIGN_STATE_DIR", str(state))
        for name in (BUNDLE_DIR_ENV, TRUST_ANCHOR_ENV, SCREENING_LIST_ENV, ALLOW_SAMPLE_ENV, TOKEN_ENV):
            patch.delenv(name, raising=False)
        # As `sovereign dev up` does: enforcement points screen against the sample by default, every OPA
        # server the tests start requires the token consumers find there, and every enforcement point
        # records its decisions in a log signed with the audit key made there.
        install_dev_sample()
        server_token()
        ensure_audit_key()
        yield state


@pytest.fixture(scope="session")
def signed_bundle(session_state: Path) -> SignedBundle:
    """The real policies/ built and signed once per session, as `sovereign bundle build` does, into the
    session's state dir: every consumer of the session finds it there by default."""
    return build_bundle(progress=lambda line: None)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny signed checkpoints (`sovereign models build`), built once per session: {name: folder}.
    Read-only for tests: a test that changes a checkpoint changes a copy."""
    from sovereign.models.tiny import build_all

    return {model.name: folder for model, folder, _ in build_all(tmp_path_factory.mktemp("models"))}


@pytest.fixture(scope="session")
def bundle_env(signed_bundle: SignedBundle) -> dict[str, str]:
    """How a consumer with a state dir of its own is configured to use the session's bundle."""
    return {
        BUNDLE_DIR_ENV: str(signed_bundle.wasm.parent),
        TRUST_ANCHOR_ENV: str(signed_bundle.verification_key),
    }


@pytest.fixture(scope="session")
def controlplane(
    tmp_path_factory: pytest.TempPathFactory, signed_bundle: SignedBundle
) -> Iterator[ControlPlane]:
    """One real control plane for the whole session, owned by this pytest process; its OPA serves the
    session's bundle."""
    config = ControlPlaneConfig(name="pytest", state_dir=tmp_path_factory.mktemp("controlplane"))
    with running_controlplane(config) as plane:
        yield plane


@pytest.fixture
def kubeconfig(controlplane: ControlPlane) -> Path:
    return controlplane.kubeconfig


@pytest.fixture(scope="session")
def session_engine(signed_bundle: SignedBundle) -> WasmEngine:
    """The session bundle's in-process engine, loaded once: read-only for tests (never closed)."""
    return WasmEngine(signed_bundle.wasm, signed_bundle.verification_key)


def _files_as_built(bundle: SignedBundle) -> list[tuple[Path, int, int]] | None:
    """Where each file an engine loads is, when it was last written and its size; None if one is missing."""
    try:
        stats = [(path.resolve(), path.stat()) for path in (bundle.wasm, bundle.verification_key)]
    except OSError:
        return None
    return [(path, stat.st_mtime_ns, stat.st_size) for path, stat in stats]


@pytest.fixture
def cli_state(
    monkeypatch: pytest.MonkeyPatch,
    session_state: Path,
    signed_bundle: SignedBundle,
    session_engine: WasmEngine,
) -> Path:
    """The CLI (in this process or a child) finds the session's bundle, and no OPA server or screening
    list.

    In this process `decide` and `matrix` judge with the session's engine for as long as the environment
    still names exactly that bundle, unchanged, and no OPA server: the same verified bundle, compiled once
    instead of on every command (~0.7 s of CPU each, most of an in-process `decide`). Any other setting (a
    tampered copy, a missing bundle, an OPA URL) is loaded by the real engine_from_env."""
    for name in ("SOVEREIGN_OPA_URL", SCREENING_LIST_ENV, ALLOW_SAMPLE_ENV, MAX_AGE_ENV):
        monkeypatch.delenv(name, raising=False)
    as_built = _files_as_built(signed_bundle)

    def engine() -> PolicyEngine:
        configured = SignedBundle.at(bundle_dir(), "", trust_anchor_path())
        if "SOVEREIGN_OPA_URL" not in os.environ and _files_as_built(configured) == as_built:
            return session_engine
        return engine_from_env()

    for command in (decide, matrix):
        monkeypatch.setattr(command, "engine_from_env", engine)
    return session_state


@dataclass
class OpaServer:
    url: str
    process: ManagedProcess


@pytest.fixture(scope="session")
def start_opa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., OpaServer]]:
    """Start a real `opa run --server` on a free loopback port, verifying and serving a signed bundle to
    requests bearing the session's token.

    With ready=True (the default) it waits for /health and raises SovereignError with OPA's last log
    lines when OPA exits instead; with ready=False it returns at once (to watch OPA refuse a bundle).
    `env` replaces what OPA is given in its environment (the token); `tls` (a serving certificate for
    127.0.0.1 and the CA file that issued it) makes it serve HTTPS only; `watch` makes it reload the
    bundle file when it changes, as the dev control plane's OPA does.
    """
    started: list[ManagedProcess] = []

    def start(
        bundle: SignedBundle,
        ready: bool = True,
        env: dict[str, str] | None = None,
        tls: tuple[CertPair, Path] | None = None,
        watch: bool = False,
    ) -> OpaServer:
        port = free_port()
        url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        argv = [str(toolchain.binary("opa")), "run", "--server", f"--addr=127.0.0.1:{port}"]
        argv += ["--log-level=error", "--disable-telemetry", *(["--watch"] if watch else [])]
        argv += opa_server_args(bundle)
        if tls:
            argv += [f"--tls-cert-file={tls[0].cert}", f"--tls-private-key-file={tls[0].key}"]
        log = tmp_path_factory.mktemp("opa") / "opa.log"
        proc = ManagedProcess(f"opa-{port}", argv, log, env=opa_server_env() if env is None else env)
        proc.start()
        started.append(proc)
        if ready:
            verify = str(tls[1]) if tls else True
            proc.wait_ready(
                lambda: (
                    requests.get(f"{url}/health?bundles=true", timeout=1, verify=verify).status_code == 200
                ),
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


@pytest.fixture
def pulumi_policy_engine(opa_server: OpaServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The Pulumi program's decisions come from the session's OPA server, with nothing cached across tests."""
    monkeypatch.setenv("SOVEREIGN_OPA_URL", opa_server.url)
    decisions.judge.cache_clear()
    decisions._judge_json.cache_clear()
    yield
    decisions.judge.cache_clear()
    decisions._judge_json.cache_clear()


TINY_DECISION_REGO = """package sovereign.decision

default result := {"allow": false, "violations": [], "obligations": []}

result := {"allow": true, "violations": [], "obligations": []} if data.sovereign.models[input.model]
"""
TINY_BATCH_REGO = """package sovereign.batch

results := [r | some item in input.items; r := data.sovereign.decision.result with input as item]
"""


@pytest.fixture
def tiny_policy(tmp_path: Path) -> Callable[..., PolicySources]:
    """A two-file policy honouring the entrypoint contract, for bundle and engine mechanics.

    tiny_policy(data, decision_rego=...) writes it under tmp_path/policies (with a _test.rego that must
    stay out of the bundle) and returns its sources; data.json there is re-read on every build.
    """

    def write(data: dict[str, Any], decision_rego: str = TINY_DECISION_REGO) -> PolicySources:
        root = tmp_path / "policies"
        (root / "sovereign").mkdir(parents=True, exist_ok=True)
        (root / "sovereign" / "decision.rego").write_text(decision_rego)
        (root / "sovereign" / "batch.rego").write_text(TINY_BATCH_REGO)
        (root / "sovereign" / "decision_test.rego").write_text(
            "package sovereign.decision_test\n\ntest_t if true\n"
        )
        data_file = root / "data.json"
        data_file.write_text(json.dumps(data))
        return PolicySources(root=root, load_data=lambda: json.loads(data_file.read_text()))

    return write


@pytest.fixture(scope="session")
def defense_banned_policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of policies/ with `defense` taken out of the us-defense region's end uses: a policy change
    that denies every defence deployment there."""
    root = tmp_path_factory.mktemp("policy-change") / "policies"
    shutil.copytree(toolchain.REPO_ROOT / "policies", root)
    profile = root / "data" / "regions" / "us-defense.yaml"
    doc = yaml.safe_load(profile.read_text())
    doc["end_uses"]["allowed"] = [use for use in doc["end_uses"]["allowed"] if use != "defense"]
    profile.write_text(yaml.safe_dump(doc))
    return root


# --- screening lists -------------------------------------------------------------------------------------
def write_current_screening_list(path: Path) -> Path:
    """The shipped sample's parties as a current production list at `path`: not marked as a sample, every
    source updated today, so screening accepts it without SOVEREIGN_SCREENING_ALLOW_SAMPLE."""
    doc = json.loads(SAMPLE_LIST.read_text())
    for key in ("sample", "note"):
        doc.pop(key)
    today = datetime.now(UTC).replace(microsecond=0).isoformat()
    for source in doc["sources_used"]:
        source["source_last_updated"] = today
    path.write_text(json.dumps(doc, indent=2))
    return path


@pytest.fixture(scope="session")
def current_screening_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_current_screening_list(tmp_path_factory.mktemp("screening") / "csl.json")


# --- the sovereign operator (operators/, issue 5) ----------------------------------------------------------
# One `sovereign operator run` process per session, shared by tests/test_operator*.py, test_webhook*.py,
# test_cluster_request*.py and test_rbac*.py; a test that stops or restarts it leaves it running as found.
@pytest.fixture(scope="session")
def sovereign_operator(
    controlplane: ControlPlane,
    signed_bundle: SignedBundle,
    tmp_path_factory: pytest.TempPathFactory,
    current_screening_list: Path,
) -> Iterator[Any]:
    """`sovereign operator setup`, an OPA server on the session's signed bundle, and the operator itself,
    checking the policy revision every second."""
    from operators.localrun import LocalOperator

    operator = LocalOperator(
        controlplane.kubeconfig,
        controlplane.pki_dir,
        tmp_path_factory.mktemp("operator"),
        signed_bundle,
        ["--drift-interval=1", f"--screening-list={current_screening_list}"],
    )
    try:
        operator.setup()
        operator.start_opa()
        operator.start()
        yield operator
    finally:
        operator.close()
