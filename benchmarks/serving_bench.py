"""Serving latency and throughput with and without the per-request guard, side by side in one run.

Two applications on one local Ray from the same ServingArgs (same model, same weights, same code): the
served app (`serving.app:build_app`) and an unguarded twin whose ingress skips only the guard. The same
requests go to both, interleaved, so drift on a shared machine hits both alike:

- latency: sequential requests, alternating between the apps (p50/p90/p99);
- throughput: rounds of concurrent requests, alternating app by round (requests/s);
- the guard alone, in-process: RequestGuard.check on the real engine, with and without its memo;
- under attack: the same sequential latency while another client posts 1 MB adversarial bodies to the
  guarded app (guarded / unguarded ratio: a stalled guard would show in the guarded app alone).

The device is chosen by the model deployment (CUDA when present, else CPU) and printed.

    .venv/bin/python benchmarks/serving_bench.py [--requests 300] [--concurrency 4] [--max-tokens 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import yaml
from ray import serve
from ray.serve import Application

from serving.app import build_with_ingress
from serving.args import PolicyContext, ServingArgs
from serving.ingress import INGRESS_OPTIONS, OpenAiIngress
from sovereign import toolchain
from sovereign.policy import subjects
from sovereign.policy.clusters import load_cluster

MODEL = "llama-3.1-8b-instruct"


class _UnguardedIngress(OpenAiIngress.func_or_class):  # type: ignore[name-defined,misc]
    """The served ingress minus the guard: everything else (parsing, limits, metrics) is the same."""

    async def _check(self, body: dict[str, Any], model_id: str, tenant: str | None, request_id: str) -> None:
        return None


UnguardedIngress = serve.deployment(**INGRESS_OPTIONS)(_UnguardedIngress)


def build_unguarded_app(args: dict[str, Any]) -> Application:
    return build_with_ingress(ServingArgs.model_validate(args), UnguardedIngress)


def serving_args(model_source: Path, max_new_tokens: int) -> ServingArgs:
    cluster = subjects.facts_of(load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-frankfurt-1.yaml"))
    return ServingArgs.model_validate(
        {
            "llm_configs": [
                {
                    "model_loading_config": {"model_id": MODEL, "model_source": str(model_source)},
                    "engine_kwargs": {"max_new_tokens": max_new_tokens},
                    "deployment_config": {"ray_actor_options": {"num_cpus": 0.5}},
                }
            ],
            "policy": {"cluster": cluster.model_dump(), "end_use": "commercial"},
        }
    )


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def request_body(i: int, max_tokens: int) -> dict[str, Any]:
    # Varied text (so nothing is cached on the way) of a realistic shape: system + user turn.
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for a sovereign cluster."},
            {"role": "user", "content": f"Question {i}: what is the capital of France? Answer briefly."},
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
    }


def _latencies(
    session: requests.Session, urls: dict[str, str], n: int, max_tokens: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in urls}
    for i in range(n):
        order = list(urls.items()) if i % 2 == 0 else list(reversed(urls.items()))
        for name, url in order:
            start = time.perf_counter()
            reply = session.post(url, json=request_body(i, max_tokens), headers={"x-tenant-id": "bench"})
            times[name].append((time.perf_counter() - start) * 1000)
            reply.raise_for_status()
    return times


def _under_attack(urls: dict[str, str], n: int, max_tokens: int) -> dict[str, Any]:
    """Sequential latency of ordinary requests to both apps while a second client keeps posting 1 MB
    adversarial bodies (base64-looking segments, the shape that cost ~35 s of guard CPU before) to the
    guarded app: a guard that stalled its replica would show in the guarded app's latency alone."""
    from guard_bench import b64_segments  # beside this script

    attack = json.dumps(b64_segments(200)(1_000_000))
    stop, answers = threading.Event(), []

    def attacker() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                start = time.perf_counter()
                reply = session.post(
                    urls["guarded"], data=attack, headers={"content-type": "application/json"}, timeout=120
                )
                answers.append((reply.status_code, (time.perf_counter() - start) * 1000))

    thread = threading.Thread(target=attacker, daemon=True)
    thread.start()
    try:
        with requests.Session() as session:
            times = _latencies(session, urls, n, max_tokens)
    finally:
        stop.set()
        thread.join(timeout=180)
    return {
        "times": times,
        "attack_requests": len(answers),
        "attack_statuses": sorted({status for status, _ in answers}),
        "attack_p50_ms": statistics.median(ms for _, ms in answers) if answers else None,
    }


def _throughput(
    urls: dict[str, str], n: int, concurrency: int, rounds: int, max_tokens: int
) -> dict[str, float]:
    done: dict[str, int] = dict.fromkeys(urls, 0)
    spent: dict[str, float] = dict.fromkeys(urls, 0.0)
    sessions = [requests.Session() for _ in range(concurrency)]

    def one(args: tuple[int, str]) -> None:
        i, url = args
        session = sessions[i % concurrency]
        session.post(
            url, json=request_body(i, max_tokens), headers={"x-tenant-id": "bench"}
        ).raise_for_status()

    with ThreadPoolExecutor(concurrency) as pool:
        for r in range(rounds * 2):
            name = list(urls)[r % 2] if (r // 2) % 2 == 0 else list(urls)[1 - r % 2]
            start = time.perf_counter()
            list(pool.map(one, [(i, urls[name]) for i in range(n)]))
            spent[name] += time.perf_counter() - start
            done[name] += n
    return {name: done[name] / spent[name] for name in urls}


def _guard_alone(n: int) -> dict[str, float]:
    """Microseconds at p50 for the guard and its parts, in-process on the real engine."""
    from serving.guard import RequestGuard
    from serving.modalities import request_modalities

    cluster = subjects.facts_of(load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-frankfurt-1.yaml"))
    guard = RequestGuard(PolicyContext(cluster=cluster, end_use="commercial"), [MODEL])
    bodies = [request_body(i, 1) for i in range(n)]
    inputs = [guard.decision_input(MODEL, request_modalities(b), "bench") for b in bodies]
    parts = {
        "guard_check": lambda i: guard.check(bodies[i], MODEL, "bench"),
        "modalities": lambda i: request_modalities(bodies[i]),
        "engine_decide_unmemoised": lambda i: guard.judge.engine.decide(inputs[i]),
    }
    results = {}
    for label, call in parts.items():
        times = []
        for i in range(n):
            start = time.perf_counter()
            call(i)
            times.append((time.perf_counter() - start) * 1e6)
        results[f"{label}_p50_us"] = statistics.median(times)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per app (latency)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--throughput-requests", type=int, default=100, help="requests per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per app")
    parser.add_argument("--max-tokens", type=int, default=1, help="tokens generated per request")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument(
        "--attack-requests", type=int, default=100, help="sequential requests per app under the 1 MB attack"
    )
    options = parser.parse_args(argv)

    from serving.dataplane import DataPlane, LocalRay, free_port
    from serving.manifest import rayservice
    from sovereign.models.tiny import build_all, models_dir
    from sovereign.policy.screening_source import SCREENING_LIST_ENV, install_dev_sample

    if not os.environ.get(SCREENING_LIST_ENV):
        install_dev_sample()  # the guard screens every request: against the dev sample, as after `dev up`
    source = next(folder for model, folder, _ in build_all(models_dir()) if model.name == "tiny-llama-text")
    args = serving_args(source, max(options.max_tokens, 1))
    guarded = rayservice("bench", "guarded", args)
    # The twin's builder lives here, beside this script: its workers find it through PYTHONPATH.
    here = str(Path(__file__).resolve().parent)
    unguarded = rayservice("bench", "unguarded", args, runtime_env={"env_vars": {"PYTHONPATH": here}})
    config = yaml.safe_load(unguarded["spec"]["serveConfigV2"])
    config["applications"][0]["import_path"] = "serving_bench:build_unguarded_app"
    unguarded["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    ray = LocalRay(num_cpus=options.num_cpus, http_port=free_port())
    ray.start()
    try:
        plane = DataPlane(ray, progress=lambda line: None)
        deadline = time.monotonic() + 300
        while not all(
            s["serviceStatus"] == "Running" for s in plane.reconcile([guarded, unguarded]).values()
        ):
            if time.monotonic() > deadline:
                raise SystemExit(f"the apps did not start: {json.dumps(ray.applications(), indent=1)}")
            time.sleep(1)
        urls = {name: f"{ray.url}/bench/{name}/v1/chat/completions" for name in ("guarded", "unguarded")}
        device = requests.get(f"{ray.url}/bench/guarded/sovereign/weights", timeout=30).json()["data"][0][
            "device"
        ]
        session = requests.Session()
        _latencies(session, urls, 20, options.max_tokens)  # warm-up: connections, compiled paths, memo
        latency = _latencies(session, urls, options.requests, options.max_tokens)
        rps = _throughput(
            urls, options.throughput_requests, options.concurrency, options.rounds, options.max_tokens
        )
        attacked = _under_attack(urls, options.attack_requests, options.max_tokens)
        guard = _guard_alone(2000)
    finally:
        ray.stop()

    p50 = {name: statistics.median(times) for name, times in latency.items()}
    report = {
        "device": device,
        "requests_per_app": options.requests,
        "max_tokens": options.max_tokens,
        "concurrency": options.concurrency,
        **{
            f"{name}_p{q}_ms": round(percentile(times, q), 3)
            for name, times in latency.items()
            for q in (50, 90, 99)
        },
        **{f"{name}_rps": round(value, 2) for name, value in rps.items()},
        "guard_overhead_p50_ms": round(p50["guarded"] - p50["unguarded"], 3),
        "guard_latency_ratio_p50": round(p50["guarded"] / p50["unguarded"], 4),
        "guard_throughput_loss_pct": round(100 * (1 - rps["guarded"] / rps["unguarded"]), 2),
        **{key: round(value, 1) for key, value in guard.items()},
        **{
            f"under_attack_{name}_p50_ms": round(statistics.median(times), 3)
            for name, times in attacked["times"].items()
        },
        "under_attack_latency_ratio_p50": round(
            statistics.median(attacked["times"]["guarded"])
            / statistics.median(attacked["times"]["unguarded"]),
            4,
        ),
        "attack_requests": attacked["attack_requests"],
        "attack_statuses": attacked["attack_statuses"],
        "attack_p50_ms": attacked["attack_p50_ms"] and round(attacked["attack_p50_ms"], 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
