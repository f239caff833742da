"""Step: the scenario's sample requests through the official openai client, each answered or refused as
the region's policy says."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from sovereign.demo.context import DemoContext
from sovereign.demo.polling import wait_for
from sovereign.demo.scenario import SAMPLE_REQUESTS, SampleRequest

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

# A 1x1 PNG: the smallest real image an OpenAI client can send.
PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def send_sample_requests(demo: DemoContext) -> None:
    _introduce_callers(demo)
    for request in SAMPLE_REQUESTS:
        _send(demo, request)


def _introduce_callers(demo: DemoContext) -> None:
    """One token per caller and deployment first, scraped before the sample requests: a caller's token
    series appears with its first request, and Prometheus takes a series first seen already counting as no
    increase, so the sample requests' tokens would be missing from chargeback and `sovereign report`."""
    answered = [r for r in SAMPLE_REQUESTS if r.refused_with is None and r.tenant]
    for request in answered:
        _client(demo, replace(request, prompt="hello", max_tokens=1, with_image=False))()
    prometheus = demo.prometheus
    assert prometheus is not None
    callers = {
        (r.tenant, r.region, demo.region(r.region).plan.deployment(r.deployment).model) for r in answered
    }

    def scraped() -> set[tuple[str, str, str]]:
        found = prometheus.query("sovereign_prompt_tokens_total")
        return {
            (str(m.get("tenant")), str(m.get("region")), str(m.get("model")))
            for m in (r["metric"] for r in found)
        }

    wait_for("Prometheus to scrape the callers' token counters", lambda: callers <= scraped(), 60)


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
