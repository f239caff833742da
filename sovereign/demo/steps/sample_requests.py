"""Step: the scenario's sample requests through the official openai client, each answered or refused as
the region's policy says."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from sovereign.demo.context import DemoContext
from sovereign.demo.polling import wait_for
from sovereign.demo.scenario import CHARGED, SAMPLE_REQUESTS, SampleRequest
from sovereign.errors import SovereignError

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

# A 1x1 PNG: the smallest real image an OpenAI client can send.
PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


Caller = tuple[str, str, str]  # tenant, region, model, as the serving metrics label them
# Callers with a token series, and callers with tokens counted since it appeared: chargeback's input.
COUNTED = "sovereign_prompt_tokens_total"
CHARGEABLE = "region_cluster_model_tenant:sovereign_tokens:increase1h > 0"


def send_sample_requests(demo: DemoContext) -> None:
    callers = {_caller(demo, r) for r in CHARGED}
    _introduce_callers(demo, callers)
    for request in SAMPLE_REQUESTS:
        _send(demo, request)
    try:
        _wait_scraped(demo, "the sample requests' tokens", CHARGEABLE, callers)
        failure = ""
    except SovereignError as exc:  # a replica that stopped before its next scrape took its tokens along
        failure = str(exc)
    demo.report.expect("Prometheus has every caller's tokens to charge", not failure, failure)


def _caller(demo: DemoContext, request: SampleRequest) -> Caller:
    assert request.tenant is not None
    deployment = demo.region(request.region).plan.deployment(request.deployment)
    return request.tenant, request.region, deployment.model


def _introduce_callers(demo: DemoContext, callers: set[Caller]) -> None:
    """One token per caller and deployment first, scraped before the sample requests: a caller's token
    series appears with its first request, and Prometheus takes a series first seen already counting as no
    increase, so the sample requests' tokens would be missing from chargeback and `sovereign report`."""
    for request in CHARGED:
        _client(demo, replace(request, prompt="hello", max_tokens=1, with_image=False))()
    _wait_scraped(demo, "the callers' token counters", COUNTED, callers)


def _wait_scraped(demo: DemoContext, what: str, expr: str, callers: set[Caller]) -> None:
    """Until `expr` has a series for every caller; on timeout the error says what each target whose last
    scrape failed answered."""
    prometheus = demo.prometheus
    assert prometheus is not None

    def found() -> bool:
        rows = prometheus.query(expr)
        return callers <= {(r["metric"]["tenant"], r["metric"]["region"], r["metric"]["model"]) for r in rows}

    try:
        wait_for(f"Prometheus to scrape {what}", found, 60)
    except SovereignError as exc:
        failing = "; ".join(f"{target}: {error}" for target, error in prometheus.scrape_errors().items())
        raise SovereignError(f"{exc}; failing scrape targets: {failing or 'none'}") from exc


def _client(demo: DemoContext, request: SampleRequest) -> Callable[[], ChatCompletion]:
    """Sends `request` to its region's deployment as its caller, through the official openai client."""
    import openai  # the serving extra: needed to run the step, not to import the runner

    region = demo.region(request.region)
    deployment = region.plan.deployment(request.deployment)
    llm = openai.OpenAI(
        base_url=region.endpoint(deployment.name),
        api_key="demo",
        max_retries=0,
        timeout=300 if deployment.is_vision else 120,  # the vision model is the slow one on CPU
    )

    def create() -> ChatCompletion:
        return llm.chat.completions.create(
            model=deployment.model,
            messages=_messages(request),
            max_tokens=request.max_tokens,
            extra_headers={"x-tenant-id": request.tenant} if request.tenant else None,
        )

    return create


def _send(demo: DemoContext, request: SampleRequest) -> None:
    import openai

    create = _client(demo, request)
    if request.refused_with is None:
        answer = create()
        tokens = answer.usage.completion_tokens if answer.usage else "?"
        demo.report.say(f"{request.label} -> {answer.choices[0].message.content!r} ({tokens} tokens)")
        demo.report.expect(
            f"{request.label} request answered",
            answer.usage is not None and answer.usage.completion_tokens > 0,
        )
        return
    expectation = f"{request.label} request refused with {request.refused_with}"
    try:
        create()
    except openai.APIStatusError as exc:
        demo.report.say(f"{request.label} -> HTTP {exc.status_code}: {str(exc.body)[:200]}")
        demo.report.expect(
            expectation, exc.status_code == 403 and request.refused_with in json.dumps(exc.body)
        )
        return
    demo.report.expect(expectation, False, "it was answered")


def _messages(request: SampleRequest) -> list[ChatCompletionMessageParam]:
    if not request.with_image:
        return [{"role": "user", "content": request.prompt}]
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": request.prompt},
                {"type": "image_url", "image_url": {"url": PIXEL}},
            ],
        }
    ]
