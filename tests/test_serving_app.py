"""The Serve app on a real local Ray: the official openai client, the guard, weights checks, statuses.

One Ray for the module (starting it is slow), serving four RayServices as the local data plane does:
an EU text-only cluster with the tiny text model, a US-defense cluster with the tiny vision model, an
EU cluster whose policy engine is unreachable, and one whose weights contradict its declared variant.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from PIL import Image

from serving.args import ServingArgs
from serving.dataplane import DataPlane, LocalRay, free_port
from serving.manifest import rayservice
from serving.rayservice import RayServiceKey
from sovereign import toolchain
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import load_cluster

pytestmark = pytest.mark.slow
TEXT_8B, VISION_11B = "llama-3.1-8b-instruct", "llama-3.2-11b-vision-instruct"


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 30)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


PNG = _png()
IMAGE_CHAT = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is it?"},
            {"type": "image_url", "image_url": {"url": PNG}},
        ],
    }
]


def _service(
    name: str, cluster: str, model: str, source: Path, end_use: str, env: dict | None = None
) -> dict:
    args = ServingArgs.model_validate(
        {
            "llm_configs": [
                {
                    "model_loading_config": {"model_id": model, "model_source": str(source)},
                    "engine_kwargs": {"max_new_tokens": 12},
                    "deployment_config": {"ray_actor_options": {"num_cpus": 0.25}},
                }
            ],
            "policy": {
                "cluster": subjects.facts_of(
                    load_cluster(toolchain.REPO_ROOT / "clusters" / f"{cluster}.yaml")
                ).model_dump(),
                "end_use": end_use,
            },
            "max_request_bytes": 64 * 1024,
        }
    )
    obj = rayservice("default", name, args, runtime_env={"env_vars": env} if env else None)
    obj["metadata"]["generation"] = 1
    return obj


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    signed_bundle: SignedBundle,
    start_opa_server: Callable[..., Any],
    tiny_models: dict[str, Path],
) -> Iterator[dict[str, Any]]:
    text, vision = tiny_models["tiny-llama-text"], tiny_models["tiny-mllama-vision"]
    with pytest.MonkeyPatch.context() as patch:
        # Before Ray starts: its workers inherit the environment (the session's state dir and bundle).
        patch.delenv("SOVEREIGN_OPA_URL", raising=False)
        # "down" judges through its own OPA server, which a test stops once the service runs: the
        # replica's weights are judged at start (no engine, no start), every request after that.
        opa = start_opa_server(signed_bundle)
        objects = {
            "eu": _service("eu", "eu-frankfurt-1", TEXT_8B, text, "commercial"),
            "usdef": _service("usdef", "usdef-east-1", VISION_11B, vision, "defense"),
            "down": _service(
                "down",
                "eu-frankfurt-1",
                TEXT_8B,
                text,
                "commercial",
                {"SOVEREIGN_OPA_URL": opa.url},
            ),
            "badweights": _service("badweights", "eu-frankfurt-1", TEXT_8B, vision, "commercial"),
        }
        ray = LocalRay(num_cpus=2, http_port=free_port())
        started = datetime.now(UTC)
        ray.start()
        try:
            plane = DataPlane(ray, progress=lambda line: None)
            deadline = time.monotonic() + 240
            while True:
                statuses = plane.reconcile(list(objects.values()))
                ready = {k.name for k, s in statuses.items() if s["serviceStatus"] == "Running"}
                failed = statuses[RayServiceKey("default", "badweights")]["activeServiceStatus"]
                settled = failed["applicationStatuses"].get("llm", {}).get("status") == "DEPLOY_FAILED"
                weighed = all(len(s["conditions"]) == 3 for k, s in statuses.items() if k.name in ready)
                if ready == {"eu", "usdef", "down"} and settled and weighed:
                    break
                assert time.monotonic() < deadline, json.dumps(
                    {str(k): s for k, s in statuses.items()}, indent=1
                )
                time.sleep(1)
            yield {
                "ray": ray,
                "plane": plane,
                "objects": objects,
                "statuses": statuses,
                "models": tiny_models,
                "opa": opa,
                "started": started,  # what this module's replicas logged is after it
            }
        finally:
            ray.stop()


def url(served: dict[str, Any], name: str) -> str:
    return f"{served['ray'].url}/default/{name}"


def client(served: dict[str, Any], name: str, tenant: str = "acme") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=url(served, name) + "/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"x-tenant-id": tenant},
    )


def post(
    served: dict[str, Any], name: str, body: Any, path: str = "/v1/chat/completions", **kw: Any
) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(
        url(served, name) + path, data=data, headers={"content-type": "application/json"}, timeout=60, **kw
    )


# --- statuses ------------------------------------------------------------------------------------------


def test_served_services_report_ready_with_their_weights_digests(served: dict[str, Any]) -> None:
    status = served["statuses"][RayServiceKey("default", "eu")]
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "NonZeroServeEndpoints")
    assert status["numServeEndpoints"] == 1 and status["serviceStatus"] == "Running"
    app = status["activeServiceStatus"]["applicationStatuses"]["llm"]
    assert app["status"] == "RUNNING"
    assert set(app["serveDeploymentStatuses"]) == {"SovereignIngress", f"LlamaServer-{TEXT_8B}"}
    digest = hashlib.sha256(
        (served["models"]["tiny-llama-text"] / "model.safetensors").read_bytes()
    ).hexdigest()
    weights = status["conditions"][2]
    assert weights["type"] == "sovereign.dev/WeightsVerified"
    assert weights["message"] == f"{TEXT_8B}: model.safetensors sha256={digest}"


def test_weights_that_contradict_the_declared_variant_never_serve(served: dict[str, Any]) -> None:
    status = served["statuses"][RayServiceKey("default", "badweights")]
    ready = status["conditions"][0]
    assert ready["status"] == "False" and status["numServeEndpoints"] == 0
    assert "WEIGHTS_MISMATCH" in ready["message"]  # the policy refused them, with its code
    deployment = status["activeServiceStatus"]["applicationStatuses"]["llm"]["serveDeploymentStatuses"]
    assert deployment[f"LlamaServer-{TEXT_8B}"]["status"] == "DEPLOY_FAILED"


# --- the OpenAI API, answered by the tiny model -----------------------------------------------------------


def test_chat_with_the_openai_client_gets_real_tokens(served: dict[str, Any]) -> None:
    reply = client(served, "eu").chat.completions.create(
        model=TEXT_8B,
        messages=[{"role": "user", "content": "Hello, who are you?"}],
        max_tokens=8,
        temperature=0,
    )
    assert reply.object == "chat.completion" and reply.model == TEXT_8B
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert 1 <= reply.usage.completion_tokens <= 8 and reply.usage.prompt_tokens > 5


def test_streaming_chat_yields_the_same_text_as_the_whole_reply(served: dict[str, Any]) -> None:
    api = client(served, "eu")
    messages = [{"role": "user", "content": "Count from one to ten"}]
    whole = api.chat.completions.create(model=TEXT_8B, messages=messages, max_tokens=10, temperature=0)
    stream = api.chat.completions.create(
        model=TEXT_8B, messages=messages, max_tokens=10, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completions_whole_and_streamed(served: dict[str, Any]) -> None:
    api = client(served, "eu")
    whole = api.completions.create(model=TEXT_8B, prompt="Paris is", max_tokens=6, temperature=0)
    assert whole.object == "text_completion" and 1 <= whole.usage.completion_tokens <= 6
    streamed = "".join(c.choices[0].text for c in api.completions.create(
        model=TEXT_8B, prompt="Paris is", max_tokens=6, temperature=0, stream=True
    ))  # fmt: skip
    assert streamed == whole.choices[0].text


def test_models_lists_the_hosted_model(served: dict[str, Any]) -> None:
    assert [m.id for m in client(served, "eu").models.list()] == [TEXT_8B]


# --- the guard -----------------------------------------------------------------------------------------


def test_image_request_to_the_eu_text_only_cluster_is_refused_with_region_modality(
    served: dict[str, Any],
) -> None:
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client(served, "eu").chat.completions.create(model=TEXT_8B, messages=IMAGE_CHAT, max_tokens=4)
    error = refused.value.body
    assert refused.value.status_code == 403 and error["type"] == "permission_error"
    assert error["code"] == "REGION_MODALITY", error


def test_requests_held_open_by_slow_clients_do_not_hold_up_the_guards_answer_to_others(
    served: dict[str, Any],
) -> None:
    # More requests whose bodies never finish arriving than Ray's default limit of ongoing requests per
    # replica (5): each one holds the ingress while it waits for the rest of its body. At that limit, every
    # other request waited in the proxy behind them (and behind generations: under load, the first 503
    # after OPA died came 3.6 s late; benchmarks/load_bench.py).
    ray = served["ray"]
    head = (
        f"POST /default/eu/v1/chat/completions HTTP/1.1\r\nHost: {ray.host}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    held = [socket.create_connection((ray.host, ray.http_port), timeout=10) for _ in range(8)]
    try:
        for sock in held:
            sock.sendall(head.encode())
        time.sleep(2)  # the proxy hands each to the ingress, which waits for the rest of its body
        start = time.monotonic()
        with pytest.raises(openai.PermissionDeniedError):
            client(served, "eu").with_options(timeout=20).chat.completions.create(
                model=TEXT_8B, messages=IMAGE_CHAT, max_tokens=4
            )
        assert time.monotonic() - start < 10
    finally:
        for sock in held:
            sock.close()


def test_the_same_image_request_is_answered_on_the_us_defense_cluster(served: dict[str, Any]) -> None:
    reply = client(served, "usdef").chat.completions.create(
        model=VISION_11B, messages=IMAGE_CHAT, max_tokens=6, temperature=0
    )
    assert 1 <= reply.usage.completion_tokens <= 6
    # The image's tokens are in the prompt: more than the same text alone.
    text_only = client(served, "usdef").chat.completions.create(
        model=VISION_11B, messages=[{"role": "user", "content": "What is it?"}], max_tokens=1
    )
    assert reply.usage.prompt_tokens > text_only.usage.prompt_tokens


@pytest.mark.parametrize(
    "content",
    [
        [
            {
                "type": "input_audio",
                "input_audio": {
                    "data": "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=",
                    "format": "wav",
                },
            }
        ],
        "see " + PNG.split(",", 1)[1],
        "as a data URI: " + PNG,
        [
            {"type": "text", "text": "x"},
            [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
        ],
        [
            {
                "type": "file",
                "file": {"file_data": base64.b64encode(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj").decode()},
            }
        ],
    ],
)
def test_smuggled_content_is_refused_over_http(served: dict[str, Any], content: Any) -> None:
    reply = post(served, "eu", {"model": TEXT_8B, "messages": [{"role": "tool", "content": content}]})
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["type"] == "permission_error"


def test_each_request_is_one_record_of_the_replicas_decision_log(served: dict[str, Any]) -> None:
    """The answer names its request (x-sovereign-request-id); the replica's segment holds its judgement, as
    the loading replicas' hold the judgement of the weights they load."""
    from operators.localrun import wait_until
    from serving.ingress import REQUEST_ID_HEADER
    from sovereign.audit.location import audit_dir
    from sovereign.audit.query import Query, read_records
    from sovereign.audit.record import Point

    text = {"model": TEXT_8B, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    image = {"model": TEXT_8B, "messages": IMAGE_CHAT}
    answers = {"allowed": post(served, "eu", text), "denied": post(served, "eu", image)}
    for verdict, reply in answers.items():
        subject = f"request {reply.headers[REQUEST_ID_HEADER]}"
        found = wait_until(
            lambda subject=subject: read_records(audit_dir(), Query(subject=subject))[0] or None, 30, subject
        )
        (logged,) = found
        assert logged.record.point is Point.SERVING and logged.record.verdict == verdict
        assert logged.record.region == "eu-text-only" and logged.record.policy_revision
    assert "REGION_MODALITY" in logged.record.codes
    loads = [r.record for r in read_records(audit_dir(), Query(point=Point.SERVING))[0]]
    assert any(r.subject.startswith("weights ") and r.allow and r.weights_digest for r in loads)


def test_policy_engine_down_means_503_never_served(served: dict[str, Any]) -> None:
    served["opa"].process.stop()  # the service runs; its policy engine goes away
    with pytest.raises(openai.InternalServerError) as refused:
        client(served, "down").chat.completions.create(
            model=TEXT_8B, messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    assert refused.value.status_code == 503
    assert refused.value.body["code"] == "ENGINE_UNAVAILABLE"
    assert refused.value.body["type"] == "service_unavailable_error"
    text = requests.get(url(served, "down") + "/metrics", timeout=10).text
    up = _samples(text, "sovereign_policy_engine_up")
    assert up[frozenset({("point", "serving"), ("engine", "opa-rest")})] == 0  # as the replica acts
    decisions = _samples(text, "sovereign_policy_decisions_total")
    assert any(
        ("code", "ENGINE_UNAVAILABLE") in labels and ("point", "serving") in labels for labels in decisions
    )


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (b'{"model": "x", "messages": [', 400, "invalid_json", None),
        ('["not", "an", "object"]', 400, "invalid_json", None),
        (
            {"model": TEXT_8B, "messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"},
            400,
            "invalid_request",
            "max_tokens",
        ),
        (
            {"model": TEXT_8B, "messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
            400,
            "invalid_request",
            "stream",
        ),
        (
            {"model": TEXT_8B, "messages": [{"role": "wizard", "content": "hi"}]},
            400,
            "invalid_request",
            "messages[0].role",
        ),
        ({"messages": [{"role": "user", "content": "hi"}]}, 400, "invalid_request", "model"),
        (
            {"model": "llama-9-1t", "messages": [{"role": "user", "content": "hi"}]},
            404,
            "model_not_found",
            "model",
        ),
        (
            {"model": TEXT_8B, "messages": [{"role": "user", "content": "x" * 70_000}]},
            413,
            "request_too_large",
            None,
        ),
    ],
)
def test_bad_input_gets_an_openai_error_naming_the_problem(served, body, status, code, param) -> None:
    reply = post(served, "eu", body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"] and error["type"]
    if param:
        assert param.split("[")[0] in error["message"]


def test_a_remote_image_url_is_refused_not_fetched(served: dict[str, Any]) -> None:
    messages = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}],
        }
    ]
    reply = post(served, "usdef", {"model": VISION_11B, "messages": messages})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == "messages[0].content[0].image_url.url"


def test_the_server_keeps_serving_after_bad_input(served: dict[str, Any]) -> None:
    for _ in range(3):
        post(served, "eu", b"\xff\xfe garbage")
    reply = client(served, "eu").chat.completions.create(
        model=TEXT_8B, messages=[{"role": "user", "content": "still there?"}], max_tokens=2
    )
    assert reply.usage.completion_tokens >= 1


# --- metrics -------------------------------------------------------------------------------------------


def _samples(text: str, name: str) -> dict[frozenset, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        frozenset(s.labels.items()): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_sovereign_metrics_count_decisions_and_tokens_with_bounded_labels(served: dict[str, Any]) -> None:
    api = client(served, "eu", tenant="metrics-tenant")
    api.chat.completions.create(model=TEXT_8B, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    post(served, "eu", {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})
    text = requests.get(url(served, "eu") + "/metrics", timeout=10).text
    requests_total = _samples(text, "sovereign_requests_total")
    base = {("region", "eu-text-only"), ("cluster", "eu-frankfurt-1")}
    allowed = frozenset(
        base | {("model", TEXT_8B), ("tenant", "metrics-tenant"), ("decision", "allow"), ("code", "ok")}
    )
    assert requests_total[allowed] == 1
    unknown = [labels for labels in requests_total if ("code", "model_not_found") in labels]
    assert unknown and all(("model", "_unknown") in labels for labels in unknown)
    denied = [labels for labels in requests_total if ("decision", "deny") in labels]
    assert denied, "the refused image requests are counted"
    tokens = _samples(text, "sovereign_completion_tokens_total")
    assert tokens[frozenset(base | {("model", TEXT_8B), ("tenant", "metrics-tenant")})] >= 1
    assert _samples(text, "sovereign_prompt_tokens_total")
    assert _samples(text, "sovereign_request_duration_seconds_count")
    # The guard's judgements, as every enforcement point counts them, and the engine that made them.
    decisions = _samples(text, "sovereign_policy_decisions_total")
    judged = frozenset(
        base | {("point", "serving"), ("model", TEXT_8B), ("decision", "allow"), ("code", "none")}
    )
    assert decisions[judged] >= 1
    assert _samples(text, "sovereign_policy_engine_up") == {
        frozenset({("point", "serving"), ("engine", "wasm")}): 1.0
    }


def test_ray_exports_its_own_serve_metrics(served: dict[str, Any]) -> None:
    deadline = time.monotonic() + 60
    while True:
        text = requests.get(f"http://127.0.0.1:{served['ray'].metrics_port}/metrics", timeout=10).text
        if "ray_serve_num_http_requests_total" in text:
            break
        assert time.monotonic() < deadline, "Ray's Serve metrics never appeared on its metrics port"
        time.sleep(2)


# --- lifecycle -----------------------------------------------------------------------------------------


def test_a_suspended_service_is_removed_and_reports_suspended(served: dict[str, Any]) -> None:
    objects = served["objects"]
    objects["badweights"]["spec"]["rayClusterConfig"]["suspend"] = True
    statuses = served["plane"].reconcile(list(objects.values()))
    status = statuses[RayServiceKey("default", "badweights")]
    kinds = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert kinds["Suspended"] == ("True", "SuspendComplete") and kinds["Ready"][0] == "False"
    assert "activeServiceStatus" not in status
    deadline = time.monotonic() + 90
    while [name for name in served["ray"].applications() if name.startswith("default.badweights.")]:
        assert time.monotonic() < deadline, "the suspended service's application was never removed"
        time.sleep(1)
    # The others keep serving through the change.
    eu = served["plane"].reconcile(list(objects.values()))[RayServiceKey("default", "eu")]
    assert eu["serviceStatus"] == "Running", eu
    reply = client(served, "eu").chat.completions.create(
        model=TEXT_8B, messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert reply.usage.completion_tokens >= 1


def test_a_replica_shut_down_ends_its_segment_with_a_final_signed_head(served: dict[str, Any]) -> None:
    """Ray Serve calls a replica's __del__ when it shuts the replica down, and no atexit runs after: the
    ingress's and the model server's segments of a suspended service verify as sealed, not unsealed."""
    from operators.localrun import wait_until
    from sovereign.audit import keys
    from sovereign.audit.location import audit_dir
    from sovereign.audit.query import Query, read_records
    from sovereign.audit.verify import verify_segment

    objects = served["objects"]
    reply = client(served, "usdef").chat.completions.create(
        model=VISION_11B, messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert reply.usage.completion_tokens >= 1

    def replicas_segments() -> set[str] | None:
        """The segments this module's Ray wrote about usdef-east-1 (served by this service alone): its
        ingress's (requests) and its model server's (weights), once both have a record."""
        logged = read_records(audit_dir(), Query(cluster="usdef-east-1", since=served["started"]))[0]
        segments = {r.record_id.rpartition(":")[0] for r in logged if r.record_id.startswith("serving")}
        kinds = {r.record.subject.split(" ")[0] for r in logged}
        return segments if {"request", "weights"} <= kinds else None

    segments = wait_until(replicas_segments, 30, "the usdef replicas' records")
    assert len(segments) == 2, segments
    objects["usdef"]["spec"]["rayClusterConfig"]["suspend"] = True
    served["plane"].reconcile(list(objects.values()))
    public = keys.load_public_key()

    def closed() -> list[str] | None:
        reports = [verify_segment(audit_dir(), segment, public) for segment in sorted(segments)]
        return [r.status for r in reports] if all(r.closed for r in reports) else None

    assert wait_until(closed, 90, "the suspended replicas' final heads") == ["ok", "ok"]
