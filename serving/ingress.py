"""The OpenAI-compatible ingress: every request is read within a size limit, validated, checked by the
guard against this cluster's policy, and only then handed to the model deployment.

Every checked request's judgement is one record of this replica's decision log (sovereign.audit), named
by the id each answer carries in its `x-sovereign-request-id` header.

Endpoints: GET /v1/models, POST /v1/chat/completions, POST /v1/completions (both streaming as
server-sent events when asked), GET /metrics (sovereign_* metrics), GET /sovereign/weights (the verified
weights record of each hosted model). Errors are OpenAI-shaped: {"error": {message, type, param, code}}.

No `from __future__ import annotations`: FastAPI reads the route annotations at runtime.
"""

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from ray import serve
from ray.exceptions import RayTaskError
from ray.serve.handle import DeploymentHandle

from serving import openai_api as oai
from serving.args import ServingArgs
from serving.guard import RequestGuard
from serving.llm import ContentError, GenerationRequest, GenerationResult
from serving.metrics import ServingMetrics
from sovereign.audit.record import Point
from sovereign.audit.trail import AuditTrail, open_log
from sovereign.policy.judgement import Judgement

REQUEST_ID_HEADER = "x-sovereign-request-id"  # the subject of the request's decision record
# Seconds between engine health checks of an idle replica: well inside the alert's 2 minutes.
ENGINE_CHECK_S = 10.0
api = FastAPI(title="sovereign Llama serving", docs_url=None, redoc_url=None, openapi_url=None)
# Each request holds the ingress while its body arrives and while the model generates, but costs it only
# milliseconds of work: at Ray's default of 5 ongoing requests per replica, five slow clients stalled the
# gateway, and under load policy refusals and fail-closed 503s queued in the proxy behind generations
# (benchmarks/load_bench.py: the first 503 came 3.6 s after OPA died). Backpressure on generation stays
# with the model deployment's own limit.
INGRESS_OPTIONS: dict[str, Any] = {
    "name": "SovereignIngress",
    "ray_actor_options": {"num_cpus": 0},
    "max_ongoing_requests": 1000,
}


class _Refusal(Exception):
    """A request answered with an error before any generation: status, code, message, param."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.param, self.extra = status, code, param, extra

    def response(self) -> JSONResponse:
        return oai.error_response(self.status, str(self), self.code, self.param, **self.extra)


def _content_error(exc: RayTaskError) -> _Refusal | Exception:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, ContentError):
        param, _, message = str(cause).partition(": ")
        return _Refusal(400, "invalid_content", f"{param}: {message}", param)
    return exc


@dataclass(frozen=True)
class _Endpoint:
    """What differs between chat and plain completions: the request model and the response objects."""

    request: type[oai.ChatCompletionRequest] | type[oai.CompletionRequest]
    generation: Callable[[Any, int], GenerationRequest]
    whole: Callable[[str, str, str, int, int], dict[str, Any]]
    chunk: Callable[..., dict[str, Any]]
    id_prefix: str
    opens_with_role: bool


def _chat_generation(parsed: oai.ChatCompletionRequest, default_limit: int) -> GenerationRequest:
    return GenerationRequest(
        messages=[m.model_dump(exclude_none=True) for m in parsed.messages],
        max_new_tokens=parsed.token_limit(default_limit),
        temperature=float(parsed.temperature),
        top_p=float(parsed.top_p),
        stop=parsed.stop_list(),
    )


def _completion_generation(parsed: oai.CompletionRequest, default_limit: int) -> GenerationRequest:
    return GenerationRequest(
        prompt=parsed.prompt_text(),
        max_new_tokens=parsed.max_tokens,
        temperature=float(parsed.temperature),
        top_p=float(parsed.top_p),
        stop=parsed.stop_list(),
    )


_CHAT = _Endpoint(
    oai.ChatCompletionRequest, _chat_generation, oai.chat_completion, oai.chat_chunk, "chatcmpl", True
)
_COMPLETION = _Endpoint(
    oai.CompletionRequest, _completion_generation, oai.completion, oai.completion_chunk, "cmpl", False
)


@serve.deployment(**INGRESS_OPTIONS)
@serve.ingress(api)
class OpenAiIngress:
    def __init__(self, args: dict[str, Any], servers: list[DeploymentHandle]) -> None:
        self.args = ServingArgs.model_validate(args)
        model_ids = [c.model_loading_config.model_id for c in self.args.llm_configs]
        self.model_ids = {m.lower(): m for m in model_ids}
        self.servers = dict(zip(self.model_ids, servers, strict=True))
        self.limits = {
            m.lower(): c.engine_kwargs.max_new_tokens
            for m, c in zip(model_ids, self.args.llm_configs, strict=True)
        }
        context = self.args.policy
        self.decisions = open_log("serving")
        self.guard = RequestGuard(context, model_ids, recorder=AuditTrail(self.decisions, Point.SERVING))
        self.metrics = ServingMetrics(
            context.cluster.region, context.cluster.name, model_ids, self.args.max_tenant_labels
        )
        self.created = int(time.time())
        threading.Thread(target=self._check_engine, name="engine-check", daemon=True).start()

    def __del__(self) -> None:
        # Ray Serve calls __del__ when it shuts a replica down gracefully; the actor process then ends
        # without atexit, so the segment is closed here to end with its final signed head.
        if (decisions := getattr(self, "decisions", None)) is not None:  # None: __init__ failed before
            decisions.close()

    def _check_engine(self) -> None:
        """Engine health between requests too: an idle replica still shows an engine that went down or
        came back (requests report it as they are judged)."""
        while True:
            # Asked of the engine, not the judge: a health probe is no decision and leaves no record.
            self.metrics.engine.observe("serving", Judgement.of(self.guard.judge.engine.decide({})))
            time.sleep(ENGINE_CHECK_S)

    # --- reading and checking a request ----------------------------------------------------------------

    async def _read_json(self, request: Request) -> dict[str, Any]:
        limit = self.args.max_request_bytes
        too_large = _Refusal(
            413, "request_too_large", f"the request body is larger than the limit of {limit} bytes"
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                raise too_large
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise _Refusal(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _Refusal(400, "invalid_json", "the request body must be a JSON object")
        return body

    def _validate(self, endpoint: _Endpoint, body: dict[str, Any]) -> Any:
        try:
            return endpoint.request.model_validate(body)
        except ValidationError as exc:
            param, message = oai.describe_validation(exc)
            raise _Refusal(400, "invalid_request", message, param) from None

    def _hosted(self, model: str) -> str:
        if model.lower() not in self.model_ids:
            hosted = ", ".join(sorted(self.model_ids.values()))
            raise _Refusal(
                404,
                "model_not_found",
                f"model {model} is not hosted on this cluster; hosted: {hosted}",
                "model",
            )
        return self.model_ids[model.lower()]

    async def _check(self, body: dict[str, Any], model_id: str, tenant: str | None, request_id: str) -> None:
        # In a worker thread: the content walk is CPU work (bounded, but up to a few ms for a large body)
        # and an OPA server's answer is a blocking call; neither may hold up the replica's other requests.
        answer = await asyncio.to_thread(self.guard.check, body, model_id, tenant, request_id)
        self.metrics.judged(model_id, answer.judgement)
        if not answer.allowed:
            raise _Refusal(
                answer.status,
                answer.codes[0],
                answer.message,
                codes=answer.codes,
                modalities=answer.modalities,
                policy_revision=answer.judgement.policy_revision,
            )

    # --- answering -------------------------------------------------------------------------------------

    async def _answer(self, request: Request, endpoint: _Endpoint) -> Response:
        request_id = uuid.uuid4().hex
        response = await self._answer_as(request, endpoint, request_id)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    async def _answer_as(self, request: Request, endpoint: _Endpoint, request_id: str) -> Response:
        start = time.perf_counter()
        tenant = request.headers.get(self.args.tenant_header)
        model: str | None = None
        try:
            body = await self._read_json(request)
            parsed = self._validate(endpoint, body)
            model = self._hosted(parsed.model)
            await self._check(body, model, tenant, request_id)
            generation = endpoint.generation(parsed, self.limits[model.lower()])
            handle = self.servers[model.lower()]
            if parsed.stream:
                return await self._stream(handle, generation, parsed, endpoint, model, tenant, start)
            try:
                result: GenerationResult = await handle.generate.remote(generation)
            except RayTaskError as exc:
                raise _content_error(exc) from None
        except _Refusal as refusal:
            decision = {503: "unavailable", 403: "deny"}.get(refusal.status, "error")
            seconds = time.perf_counter() - start
            self.metrics.observe(
                model=model, tenant=tenant, decision=decision, code=refusal.code, seconds=seconds
            )
            return refusal.response()
        self.metrics.observe(
            model=model, tenant=tenant, decision="allow", code="ok", seconds=time.perf_counter() - start,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
        )  # fmt: skip
        return JSONResponse(
            endpoint.whole(
                model, result.text, result.finish_reason, result.prompt_tokens, result.completion_tokens
            )
        )

    async def _stream(
        self,
        handle: DeploymentHandle,
        generation: GenerationRequest,
        parsed: Any,
        endpoint: _Endpoint,
        model: str,
        tenant: str | None,
        start: float,
    ) -> Response:
        items = handle.options(stream=True).stream.remote(generation)
        try:
            first = await items.__anext__()  # a bad content part fails here, before the 200 is sent
        except RayTaskError as exc:
            raise _content_error(exc) from None
        include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
        chunk_id = oai.new_id(endpoint.id_prefix)

        async def events() -> AsyncIterator[str]:
            result: GenerationResult | None = None
            code = "ok"
            try:
                if endpoint.opens_with_role:
                    yield oai.sse(endpoint.chunk(chunk_id, model, None, None))
                item: Any = first
                while not isinstance(item, GenerationResult):
                    yield oai.sse(endpoint.chunk(chunk_id, model, item, None))
                    item = await items.__anext__()
                result = item
                yield oai.sse(endpoint.chunk(chunk_id, model, "", result.finish_reason))
                if include_usage:
                    usage = oai.usage(result.prompt_tokens, result.completion_tokens)
                    yield oai.sse(endpoint.chunk(chunk_id, model, "", None, usage))
                yield oai.sse("[DONE]")
            except Exception as exc:  # mid-stream the status is already sent: the error travels as an event
                code = "stream_error"
                yield oai.sse(oai.error_body(500, f"generation failed: {exc}", code))
            finally:
                self.metrics.observe(
                    model=model, tenant=tenant, decision="allow" if code == "ok" else "error", code=code,
                    seconds=time.perf_counter() - start,
                    prompt_tokens=result.prompt_tokens if result else 0,
                    completion_tokens=result.completion_tokens if result else 0,
                )  # fmt: skip

        return StreamingResponse(events(), media_type="text/event-stream")

    # --- routes ----------------------------------------------------------------------------------------

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> Response:
        return await self._answer(request, _CHAT)

    @api.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        return await self._answer(request, _COMPLETION)

    @api.get("/v1/models")
    async def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": model_id, "object": "model", "created": self.created, "owned_by": "sovereign"}
                for model_id in self.model_ids.values()
            ],
        }

    @api.get("/sovereign/weights")
    async def weights(self) -> dict[str, Any]:
        return {"data": [await handle.weights.remote() for handle in self.servers.values()]}

    @api.get("/metrics")
    async def metrics(self) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)
