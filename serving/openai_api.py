"""The OpenAI wire format: request models, error bodies and response objects.

Known fields are type-checked strictly (a wrong type is a 400 naming the field); fields this server does
not use are accepted, as OpenAI-compatible servers do, and still walked by the guard.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

Number = StrictInt | StrictFloat


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class StreamOptions(_Lenient):
    include_usage: StrictBool = False


class _Sampling(_Lenient):
    model: Annotated[StrictStr, Field(min_length=1)]
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[Number, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[Number, Field(gt=0, le=1)] = 1.0
    n: Annotated[StrictInt, Field(ge=1, le=1, description="only one choice per request")] = 1
    stop: StrictStr | Annotated[list[StrictStr], Field(max_length=4)] | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    # Parts are checked by the guard and the model, not here: whatever a client nests in a content list
    # must reach the guard, which refuses non-text content with the policy's code (403), not a 400.
    content: StrictStr | list[Any] | None = None


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None

    def token_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class CompletionRequest(_Sampling):
    prompt: StrictStr | Annotated[list[StrictStr], Field(min_length=1, max_length=1)]
    max_tokens: Annotated[StrictInt, Field(ge=1)] = 16

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


_ERROR_TYPES = {
    400: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    500: "server_error",
    503: "service_unavailable_error",
}


def error_body(
    status: int, message: str, code: str, param: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code,
            **extra,
        }
    }


def error_response(
    status: int, message: str, code: str, param: str | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param, **extra), status_code=status)


def describe_validation(exc: ValidationError) -> tuple[str, str]:
    """(param, message) of the first problem, the param as OpenAI names it: `messages[0].content`."""
    err = exc.errors()[0]
    param = ""
    for part in err["loc"]:
        param += f"[{part}]" if isinstance(part, int) else (f".{part}" if param else str(part))
    detail = "field required: add it" if err["type"] == "missing" else err["msg"]
    return param or "(body)", f"{param or 'body'}: {detail}"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_completion(model: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def completion(model: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def _chunk(obj: str, chunk_id: str, model: str, choice: dict[str, Any], usage_: dict | None) -> dict:
    return {
        "id": chunk_id,
        "object": obj,
        "created": int(time.time()),
        "model": model,
        # The usage chunk of `stream_options.include_usage` has no choices, as in OpenAI's API.
        "choices": [] if usage_ is not None else [{"index": 0, **choice}],
        **({"usage": usage_} if usage_ is not None else {}),
    }


def chat_chunk(
    chunk_id: str, model: str, text: str | None, finish: str | None, usage_: dict | None = None
) -> dict:
    """A chat stream chunk: text None opens the stream (the assistant role), "" carries no content."""
    delta: dict[str, Any] = {"role": "assistant", "content": ""} if text is None else {}
    if text:
        delta["content"] = text
    return _chunk("chat.completion.chunk", chunk_id, model, {"delta": delta, "finish_reason": finish}, usage_)


def completion_chunk(
    chunk_id: str, model: str, text: str | None, finish: str | None, usage_: dict | None = None
) -> dict:
    choice = {"text": text or "", "finish_reason": finish, "logprobs": None}
    return _chunk("text_completion", chunk_id, model, choice, usage_)


def sse(payload: dict | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"
