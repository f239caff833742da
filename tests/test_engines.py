"""The two engines: identical decisions on generated scenarios, one batched evaluation, and fail closed."""

from __future__ import annotations

import copy
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sovereign import toolchain
from sovereign.devenv.process import ManagedProcess, free_port
from sovereign.errors import BadInput
from sovereign.policy import subjects
from sovereign.policy.bundle import PolicySources, SignedBundle, build_bundle
from sovereign.policy.clusters import load_cluster
from sovereign.policy.engine import engine_from_env
from sovereign.policy.rest_engine import RestEngine
from sovereign.policy.wasm_engine import WasmEngine
from sovereign.policydata import END_USES, OPERATOR_KINDS, load_policy_data

DATA = load_policy_data()
# The deliberately non-compliant example is left out: these are the declarations meant to be allowed.
CLUSTERS = sorted(
    p for p in (toolchain.REPO_ROOT / "clusters").glob("*.yaml") if "-noncompliant" not in p.name
)
# Each declared deployment is a realistic starting point; the strategy then changes some of its facts.
EXAMPLES = [
    inp.policy_input({"performed": True, "hits": []})
    for spec in map(load_cluster, CLUSTERS)
    for inp in subjects.declared_inputs(spec, "2026-06-01").values()
]
MODELS = [m.id for m in DATA.models] + [
    DATA.models[0].hf_repo,
    "Meta-Llama/LLAMA-3.3-70B-INSTRUCT",
    "llama-9-1t",
]
REGIONS = [*DATA.regions, "atlantis"]
SCHEMES = [*DATA.accreditation_schemes, "iso-27001"]
COUNTRIES = [
    "US",
    "GB",
    "CA",
    "AU",
    "NZ",
    "DE",
    "FR",
    "IE",
    "NL",
    "CH",
    "NO",
    "JP",
    "IN",
    "BR",
    "CN",
    "RU",
    "IR",
    "KP",
]
DATES = st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 12, 31))
# The months the licences' §2 count, and one no licence counts.
MONTHS = sorted({family.deciding_month for family in DATA.licences.values()} | {"2026-01"})
HIT = st.fixed_dictionaries(
    {
        "name": st.just("Northwind Aerospace Industries Co., Ltd."),
        "source": st.sampled_from(["EL", "SDN"]),
        "score": st.integers(90, 100),
    }
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A declared deployment with a few facts changed: the mix reaches both allows and many kinds of deny."""
    inp = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    cluster, operator = inp["cluster"], inp["cluster"]["operator"]
    changes: dict[str, Callable[[], None]] = {
        "model": lambda: inp.update(model=draw(st.sampled_from(MODELS))),
        "end_use": lambda: inp.update(end_use=draw(st.sampled_from(END_USES))),
        "region": lambda: cluster.update(region=draw(st.sampled_from(REGIONS))),
        "country": lambda: cluster.update(country=draw(st.sampled_from(COUNTRIES))),
        "weights": lambda: cluster.update(weights_country=draw(st.sampled_from(COUNTRIES))),
        "kind": lambda: operator.update(kind=draw(st.sampled_from(OPERATOR_KINDS))),
        "op_country": lambda: operator.update(country=draw(st.sampled_from(COUNTRIES))),
        "sponsor": lambda: operator.update(sponsor_country=draw(st.sampled_from(COUNTRIES))),
        "mau": lambda: operator.update(monthly_active_users=draw(st.integers(0, 2_000_000_000))),
        "grant": lambda: operator.update(llama_licence_grant=draw(st.booleans())),
        "seat": lambda: operator.update(principal_place_of_business=draw(st.sampled_from(COUNTRIES))),
        "mau_by_month": lambda: operator.update(
            mau_by_month=draw(st.dictionaries(st.sampled_from(MONTHS), st.integers(0, 2 * 10**9), max_size=3))
        ),
        "accreditations": lambda: cluster.update(
            accreditations=[
                {"scheme": draw(st.sampled_from(SCHEMES)), "expires": draw(DATES).isoformat()}
                for _ in range(draw(st.integers(0, 2)))
            ]
        ),
        "as_of": lambda: inp.update(as_of=draw(DATES).isoformat()),
        "gpus": lambda: inp.update(gpus=draw(st.integers(0, 128))),
        "quota": lambda: cluster.update(
            gpu_quota=draw(st.integers(0, 128)), gpus_in_use=draw(st.integers(0, 128))
        ),
        "screening": lambda: inp.update(screening={"hits": draw(st.lists(HIT, max_size=2))}),
    }
    for name in draw(st.lists(st.sampled_from(sorted(changes)), max_size=3, unique=True)):
        changes[name]()
    return inp


def _without_engine(decision: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in decision.items() if key != "engine"}


def _codes(decision: dict[str, Any]) -> list[str]:
    return [v["code"] for v in decision["violations"]]


@pytest.fixture(scope="module")
def wasm(signed_bundle: SignedBundle) -> WasmEngine:
    return WasmEngine(signed_bundle.wasm, signed_bundle.verification_key)


@pytest.fixture(scope="module")
def rest(opa_server: Any) -> RestEngine:
    return RestEngine(opa_server.url)


@pytest.mark.slow
def test_rest_and_wasm_decide_identically(
    rest: RestEngine, wasm: WasmEngine, signed_bundle: SignedBundle
) -> None:
    seen: list[dict[str, Any]] = []
    outcomes: list[bool] = []

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(scenarios())
    def same_decision(inp: dict[str, Any]) -> None:
        over_rest, in_process = rest.decide(inp), wasm.decide(inp)
        assert over_rest["engine"] == "opa-rest" and in_process["engine"] == "wasm"
        assert _without_engine(over_rest) == _without_engine(in_process), inp
        assert in_process["policy_revision"] == signed_bundle.revision
        assert not {"ENGINE_UNAVAILABLE", "BUNDLE_UNVERIFIED"} & set(_codes(in_process)), in_process
        seen.append(inp)
        outcomes.append(in_process["allow"])

    same_decision()
    assert len(seen) >= 200
    # The scenarios must exercise the policy, not one corner of it.
    assert 0.1 < sum(outcomes) / len(outcomes) < 0.9

    # One batched evaluation per engine gives, in order, exactly the one-by-one decisions.
    batch = seen[:120]
    one_by_one = [_without_engine(wasm.decide(inp)) for inp in batch]
    assert [_without_engine(d) for d in wasm.decide_many(batch)] == one_by_one
    assert [_without_engine(d) for d in rest.decide_many(batch)] == one_by_one


def test_declared_example_deployments_are_allowed(wasm: WasmEngine) -> None:
    for inp in EXAMPLES:
        decision = wasm.decide(inp)
        assert decision["allow"] is True, (inp["cluster"]["name"], decision["violations"])


@pytest.mark.slow
def test_killing_the_server_mid_run_means_deny_never_an_exception(
    signed_bundle: SignedBundle, start_opa_server: Callable[..., Any]
) -> None:
    server = start_opa_server(signed_bundle)
    engine = RestEngine(server.url, timeout_s=0.5)
    record: list[tuple[float, float, dict[str, Any]]] = []  # (started, finished, decision)
    errors: list[BaseException] = []
    stop = threading.Event()

    def keep_deciding() -> None:
        try:
            while not stop.is_set():
                started = time.monotonic()
                decision = engine.decide(EXAMPLES[0])
                record.append((started, time.monotonic(), decision))
        except BaseException as exc:  # the assertion below shows it
            errors.append(exc)

    worker = threading.Thread(target=keep_deciding)
    worker.start()
    while len(record) < 20:
        time.sleep(0.01)
    kill_sent = time.monotonic()
    server.process.popen.send_signal(signal.SIGKILL)
    server.process.popen.wait()
    killed_at = time.monotonic()
    time.sleep(0.5)
    stop.set()
    worker.join(timeout=10)

    assert errors == []
    before = [d for _, finished, d in record if finished < kill_sent]
    after = [d for started, _, d in record if started > killed_at]
    assert before and all(d["allow"] is True for d in before)
    assert after and all(d["allow"] is False and _codes(d) == ["ENGINE_UNAVAILABLE"] for d in after)
    assert all(d["policy_revision"] is None for d in after)
    assert [_codes(d) for d in engine.decide_many(EXAMPLES)] == [["ENGINE_UNAVAILABLE"]] * len(EXAMPLES)


@pytest.mark.slow
def test_a_hung_server_times_out_to_deny(
    signed_bundle: SignedBundle, start_opa_server: Callable[..., Any]
) -> None:
    server = start_opa_server(signed_bundle)
    os.kill(server.process.pid, signal.SIGSTOP)  # accepts connections, never answers
    try:
        started = time.monotonic()
        decision = RestEngine(server.url, timeout_s=0.3).decide(EXAMPLES[0])
        assert time.monotonic() - started < 2
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert decision["allow"] is False and _codes(decision) == ["ENGINE_UNAVAILABLE"]
    assert "Timeout" in decision["violations"][0]["message"]


def test_a_server_without_a_signed_bundle_is_refused(tmp_path: Path) -> None:
    port = free_port()
    proc = ManagedProcess(
        "opa-unsigned",
        [str(toolchain.binary("opa")), "run", "--server", f"--addr=127.0.0.1:{port}", str(tmp_path)],
        tmp_path / "opa.log",
    )
    (tmp_path / "allow.rego").write_text(
        'package sovereign.decision\n\nresult := {"allow": true, "violations": [], "obligations": []}\n'
    )
    proc.start()
    try:
        url = f"http://127.0.0.1:{port}"
        proc.wait_ready(lambda: requests.get(f"{url}/health", timeout=1).status_code == 200, 30, "/health")
        decision = RestEngine(url).decide(EXAMPLES[0])
    finally:
        proc.stop()
    assert decision["allow"] is False and _codes(decision) == ["BUNDLE_UNVERIFIED"]


UNDEFINED_FOR_UNKNOWN = """package sovereign.decision

result := {"allow": true, "violations": [], "obligations": []} if data.sovereign.models[input.model]

result := {"allow": "yes", "violations": [], "obligations": []} if input.model == "malformed"
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "message"),
    [("m1", None), ("unknown", "undefined"), ("malformed", "malformed result")],
)
def test_undefined_or_malformed_results_deny_on_both_engines(
    tiny_policy: Callable[..., PolicySources],
    start_opa_server: Callable[..., Any],
    tmp_path: Path,
    model: str,
    message: str | None,
) -> None:
    sources = tiny_policy({"sovereign": {"models": {"m1": {}}}}, decision_rego=UNDEFINED_FOR_UNKNOWN)
    bundle = build_bundle(sources, tmp_path / "out", progress=lambda line: None)
    engines = [
        WasmEngine(bundle.wasm, bundle.verification_key),
        RestEngine(start_opa_server(bundle).url, bundle=bundle),
    ]
    for engine in engines:
        for decision in [engine.decide({"model": model}), *engine.decide_many([{"model": model}])]:
            if message is None:
                assert decision["allow"] is True, decision
            else:
                assert decision["allow"] is False and _codes(decision) == ["ENGINE_UNAVAILABLE"], decision
                assert message in decision["violations"][0]["message"]
                assert decision["policy_revision"] == bundle.revision


def test_one_wasm_engine_serves_concurrent_callers(wasm: WasmEngine) -> None:
    inputs = [EXAMPLES[i % len(EXAMPLES)] | {"model": MODELS[i % len(MODELS)]} for i in range(200)]
    sequential = [wasm.decide(inp) for inp in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(wasm.decide, inputs))
    assert concurrent == sequential


@pytest.mark.slow
def test_engine_from_env_picks_rest_when_a_url_is_set(
    monkeypatch: pytest.MonkeyPatch, signed_bundle: SignedBundle
) -> None:
    monkeypatch.setenv("SOVEREIGN_OPA_URL", "http://127.0.0.1:8181")
    assert engine_from_env().name == "opa-rest"
    monkeypatch.setenv("SOVEREIGN_OPA_URL", "localhost:8181")
    with pytest.raises(BadInput, match="SOVEREIGN_OPA_URL"):
        engine_from_env()

    monkeypatch.delenv("SOVEREIGN_OPA_URL")
    engine = engine_from_env()  # the built bundle, found in the state dir
    assert engine.name == "wasm"
    assert engine.decide(EXAMPLES[0])["policy_revision"] == signed_bundle.revision


@pytest.mark.slow
def test_a_batch_past_one_evaluations_limits_is_decided_in_chunks(wasm: WasmEngine) -> None:
    """A fleet-sized batch (over the 1 MB input limit of one evaluation) is decided in-process, each
    decision equal to its single call: none fails closed."""
    batch = [EXAMPLES[i % len(EXAMPLES)] for i in range(3000)]
    assert len(json.dumps({"items": batch})) > 1_000_000
    decisions = wasm.decide_many(batch)
    assert not [d for d in decisions if d["engine"] != "wasm" or d["policy_revision"] is None]
    singles = [wasm.decide(inp) for inp in EXAMPLES]
    assert decisions[: len(EXAMPLES)] == singles and decisions[len(EXAMPLES) :][: len(EXAMPLES)] == singles


def test_in_process_guest_calls_take_the_direct_path(wasm: WasmEngine) -> None:
    """The engine routes opa-py-wasm's guest calls through sovereign.policy.wasm_calls (the measured speed
    depends on it); the decisions it gives are the REST engine's (test_rest_and_wasm_decide_identically)."""
    from opapywasm import abi, evaluator

    from sovereign.policy import wasm_calls

    assert abi.OpaAbi._call is wasm_calls._call
    assert evaluator.Evaluator.evaluate is wasm_calls._evaluate_in_one_call
    assert wasm.decide(EXAMPLES[0])["engine"] == "wasm"


@pytest.mark.slow
def test_a_decision_is_one_guest_call_and_decides_as_the_librarys_own_path(
    signed_bundle: SignedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, a decision calls the guest once (opa_eval, the input written past the data) and gives
    what opa-py-wasm's five-call path gives, on every example, on 300 evaluations in a row (each overwrites
    the last's input and heap), and on an input too large for the instance's free memory, which takes the
    library's path and grows the memory."""
    from opapywasm import abi, evaluator

    from sovereign.policy import wasm_calls

    calls: list[str] = []

    def counted(self: Any, name: str, *args: int) -> int:
        calls.append(name)
        return wasm_calls._call(self, name, *args)

    padded = {**EXAMPLES[0], "padding": "x" * 400_000}  # past the ~150 KB left after the data
    inputs = [*EXAMPLES * (300 // len(EXAMPLES) + 1), padded]
    # One instance, made and its data loaded before counting; its memory as first sized.
    wasm = WasmEngine(signed_bundle.wasm, signed_bundle.verification_key, pool_size=1)
    wasm.decide(EXAMPLES[0])
    monkeypatch.setattr(abi.OpaAbi, "_call", counted)
    fast = [wasm.decide(inp) for inp in inputs]
    # Every input that fits: opa_eval alone. The padded one: the library's five calls around its opa_eval.
    library = ["opa_heap_ptr_set", "opa_malloc", "opa_heap_ptr_get", "opa_eval", "opa_heap_ptr_set"]
    assert calls == ["opa_eval"] * (len(inputs) - 1) + library
    monkeypatch.setattr(evaluator.Evaluator, "evaluate", wasm_calls._library_evaluate)
    assert [wasm.decide(inp) for inp in inputs] == fast
    assert not [d for d in fast if d["engine"] != "wasm" or d["policy_revision"] != wasm.revision]
    wasm.close()


@pytest.mark.slow
def test_a_result_past_its_size_limit_is_an_error_and_one_at_it_is_read(signed_bundle: SignedBundle) -> None:
    """The result is read in place up to its NUL, bounded by the configured limit: one byte over the limit
    is opa-py-wasm's typed memory error (a deny in the engine), a result exactly at it is parsed whole."""
    from opapywasm import PolicyConfig
    from opapywasm.errors import OpaMemoryError

    from sovereign.policy.bundle import verify_built
    from sovereign.policy.wasm_engine import policy_from_wasm

    files = verify_built(signed_bundle.wasm, signed_bundle.verification_key).files
    expected = WasmEngine(signed_bundle.wasm, signed_bundle.verification_key)._policy.evaluate(  # type: ignore[union-attr]
        EXAMPLES[0], "sovereign/decision/result"
    )
    size = len(json.dumps([{"result": expected}], separators=(",", ":"), ensure_ascii=False).encode())
    for limit, fits in ((size, True), (size - 1, False)):
        policy = policy_from_wasm(files["policy.wasm"], PolicyConfig(pool_size=1, max_result_bytes=limit))
        policy.set_data(files["data.json"])
        if fits:
            assert policy.evaluate(EXAMPLES[0], "sovereign/decision/result") == expected
        else:
            with pytest.raises(OpaMemoryError, match=f"over {limit} bytes"):
                policy.evaluate(EXAMPLES[0], "sovereign/decision/result")
        policy.close()


@pytest.mark.slow
def test_one_caller_at_a_time_is_served_by_the_instance_returned_last(signed_bundle: SignedBundle) -> None:
    """The pool hands out the instance returned last: sequential decisions build and use one instance of
    the four allowed; two held at once are two instances, and the next borrow gets the one returned last."""
    engine = WasmEngine(signed_bundle.wasm, signed_bundle.verification_key, pool_size=4)
    policy = engine._policy
    assert policy is not None
    decisions = [engine.decide(EXAMPLES[i % len(EXAMPLES)]) for i in range(40)]
    assert policy.instances_created == 1 and decisions[:1] == [engine.decide(EXAMPLES[0])]
    with policy._pool.borrow() as first, policy._pool.borrow() as second:
        held = (first.instance, second.instance)
    assert held[0] is not held[1] and policy.instances_created == 2
    with policy._pool.borrow() as again:
        assert again.instance is held[0]  # released last: the outer loan's block ends after the inner's
    engine.close()


def test_the_memory_a_module_declares_is_read_past_its_other_imports() -> None:
    """The engine starts instances at the pages the module's env.memory import asks for, read from the
    module itself (_declared_memory_pages): a module with no such import, or a cut one, asks for none."""
    import wasmtime

    from sovereign.policy.wasm_engine import _declared_memory_pages

    imports = '(import "a" "t" (table 1 5 funcref)) (import "b" "g" (global i32)) (import "env" "f" (func))'
    module = wasmtime.wat2wasm(f'(module {imports} (import "env" "memory" (memory 7 9)) (func (export "x")))')
    assert _declared_memory_pages(module) == 7
    assert _declared_memory_pages(wasmtime.wat2wasm('(module (import "env" "memory" (memory 300)))')) == 300
    assert _declared_memory_pages(wasmtime.wat2wasm(f"(module {imports})")) == 0
    assert _declared_memory_pages(module[:40]) == 0


@pytest.mark.slow
def test_an_evaluation_past_its_time_limit_is_a_deny_and_the_engine_recovers(
    signed_bundle: SignedBundle,
) -> None:
    """An epoch interrupt inside the guest surfaces through the direct call path as a timeout: the decisions
    fail closed, and the engine answers again on its next call."""
    engine = WasmEngine(signed_bundle.wasm, signed_bundle.verification_key, pool_size=1, timeout_s=0.001)
    decisions = engine.decide_many([EXAMPLES[i % len(EXAMPLES)] for i in range(200)])
    assert {d["violations"][0]["code"] for d in decisions} == {"ENGINE_UNAVAILABLE"}
    assert "time limit" in decisions[0]["violations"][0]["message"]
    # Its one instance was poisoned and replaced: a single decision fits the millisecond (tries absorb load).
    assert any(engine.decide(EXAMPLES[0])["allow"] is True for _ in range(5))
