"""In-process policy evaluation keeps working in a process that started Ray after evaluating policy: the
local data plane's driver, the tests, the benchmarks. Ray replaces the fatal-signal handlers wasmtime's
traps need, at start and at shutdown; without the data plane putting them back, the next Wasm
instantiation kills the process with SIGILL."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sovereign.policy.bundle import SignedBundle

pytestmark = pytest.mark.slow  # starts a local Ray

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from serving.dataplane import LocalRay, free_port
    from sovereign.policy.wasm_engine import WasmEngine

    wasm, key = Path(sys.argv[1]), Path(sys.argv[2])
    before = WasmEngine(wasm, key)
    assert before.revision, "the bundle must load"
    ray = LocalRay(num_cpus=1, http_port=free_port())
    ray.start()
    try:
        during = WasmEngine(wasm, key)  # a fresh instantiation, after ray.init
        assert during.revision == before.revision
    finally:
        ray.stop()
    after = WasmEngine(wasm, key)  # and after ray.shutdown
    print("decided", after.decide({})["policy_revision"])
    """
)


def test_a_wasm_engine_can_start_after_ray_in_the_same_process(signed_bundle: SignedBundle) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(signed_bundle.wasm), str(signed_bundle.verification_key)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"decided {signed_bundle.revision}" in done.stdout
