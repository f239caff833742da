"""The Llama model deployment: verified weights, loaded with transformers, generating with the chat template.

One class for text (LlamaForCausalLM) and vision (MllamaForConditionalGeneration) checkpoints: the
architecture is read from the verified weights, the device is chosen once at start (CUDA when present,
else CPU), and generation runs in a worker thread so the replica keeps answering while a reply is made.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import serve

from serving.args import EngineKwargs, PolicyContext
from serving.weights import VerifiedWeights, verify_weights
from sovereign.audit.record import Point
from sovereign.audit.trail import AuditTrail, open_log
from sovereign.policy.decision_input import DecisionInput
from sovereign.policy.engine import engine_from_env
from sovereign.policy.judgement import Judge
from sovereign.policy.screening_source import Screening

logger = logging.getLogger("ray.serve")


class ContentError(ValueError):
    """A message part the model cannot take (e.g. a remote image URL): the client's mistake, a 400.

    The message starts with the parameter's path; the ingress finds it in RayTaskError.cause.
    """


@dataclass
class GenerationRequest:
    """What the ingress asks for: chat messages (OpenAI shape) or a plain prompt, and sampling settings."""

    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length", as OpenAI reports it


def choose_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _image_from_url(url: str, param: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    header, sep, payload = url.partition(",")
    if not (url.startswith("data:") and sep and header.endswith(";base64")):
        raise ContentError(
            f"{param}: only base64 data: URIs are accepted for images; "
            "this server never fetches remote content"
        )
    try:
        image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
        return image.convert("RGB")
    except (ValueError, UnidentifiedImageError) as exc:
        raise ContentError(f"{param}: the image cannot be decoded: {exc}") from None


def _template_messages(
    messages: list[dict[str, Any]], takes_images: bool
) -> tuple[list[dict[str, Any]], list[Any]]:
    """OpenAI messages -> chat-template messages, with the images they carry (in order)."""
    converted, images = [], []
    for i, message in enumerate(messages):
        content = message.get("content")
        if content is None or isinstance(content, str):
            converted.append({"role": message["role"], "content": content or ""})
            continue
        parts = []
        for j, part in enumerate(content):
            param = f"messages[{i}].content[{j}]"
            if not isinstance(part, dict):
                raise ContentError(f"{param}: a content part must be an object with a type")
            kind = part.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": str(part.get("text", ""))})
            elif kind == "image_url" and takes_images:
                url = (part.get("image_url") or {}).get("url", "")
                images.append(_image_from_url(str(url), f"{param}.image_url.url"))
                parts.append({"type": "image"})
            else:
                raise ContentError(f"{param}.type: content part type {kind!r} is not supported by this model")
        if not takes_images:
            converted.append({"role": message["role"], "content": "".join(p["text"] for p in parts)})
        else:
            converted.append({"role": message["role"], "content": parts})
    return converted, images


class _Model:
    """The loaded checkpoint and the one way to turn a request into model inputs."""

    def __init__(self, verified: VerifiedWeights, engine: EngineKwargs) -> None:
        import torch
        from transformers import (
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
        )

        folder = verified.facts.folder
        self.device = choose_device(engine.device)
        self.takes_images = "image" in verified.facts.input_modalities
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        if engine.dtype != "auto":
            dtype = getattr(torch, engine.dtype)
        if self.takes_images:
            self.processor = AutoProcessor.from_pretrained(folder)
            self.tokenizer = self.processor.tokenizer
            loader: Any = AutoModelForImageTextToText
        else:
            self.processor = None
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            loader = AutoModelForCausalLM
        self.model = loader.from_pretrained(folder, dtype=dtype).to(self.device).eval()
        self.max_new_tokens = engine.max_new_tokens
        # One generation at a time per replica: parallel generate() calls on one CPU model only thrash.
        self.lock = threading.Lock()

    def inputs(self, request: GenerationRequest) -> Any:
        if request.messages is not None:
            messages, images = _template_messages(request.messages, self.takes_images)
            chat = self.processor or self.tokenizer
            text = chat.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            text, images = self.tokenizer.bos_token + (request.prompt or ""), []
        if self.processor is not None:
            batch = self.processor(
                images=images or None, text=text, return_tensors="pt", add_special_tokens=False
            )
            # Pixel values come as float32: cast them to the model's dtype (bf16 on CUDA); ids stay ints.
            return batch.to(self.device, dtype=self.model.dtype)
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.device)

    def generate_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        sample = request.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": min(request.max_new_tokens, self.max_new_tokens),
            "do_sample": sample,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sample:
            kwargs.update(temperature=request.temperature, top_p=request.top_p)
        if request.stop:
            kwargs.update(stop_strings=request.stop, tokenizer=self.tokenizer)
        return kwargs


@serve.deployment(name="LlamaServer", ray_actor_options={"num_cpus": 1})
class LlamaServer:
    """Refuses to start unless the weights are the declared catalogue variant; logs their digests."""

    def __init__(
        self, model_id: str, model_source: str, engine_kwargs: dict[str, Any], policy: dict[str, Any]
    ) -> None:
        # The checkpoint is judged with the facts the deployment was judged on (its serving args).
        context = PolicyContext.model_validate(policy)
        judged = DecisionInput(
            cluster=context.cluster,
            model=model_id,
            end_use=context.end_use,
            gpus=context.gpus,
            weights_signer=context.weights_signer,
        )
        screening = Screening.enforcing(context.screening_list, refuse_to_start=False)
        self.decisions = open_log("serving-weights")
        judge = Judge(engine_from_env(), screening, recorder=AuditTrail(self.decisions, Point.SERVING))
        self.verified = verify_weights(Path(model_source), judge, judged)
        logger.info("sovereign weights verified: %s", json.dumps(self.verified.record(), sort_keys=True))
        self._model = _Model(self.verified, EngineKwargs.model_validate(engine_kwargs))
        logger.info("sovereign model %s loaded on %s", model_id, self._model.device)

    def __del__(self) -> None:
        # Ray Serve calls __del__ when it shuts a replica down gracefully; the actor process then ends
        # without atexit, so the segment is closed here to end with its final signed head.
        if (decisions := getattr(self, "decisions", None)) is not None:  # None: __init__ failed before
            decisions.close()

    def weights(self) -> dict[str, Any]:
        return {**self.verified.record(), "device": self._model.device}

    def _generate(self, inputs: Any, kwargs: dict[str, Any], streamer: Any = None) -> GenerationResult:
        model = self._model
        prompt_tokens = int(inputs["input_ids"].shape[1])
        with model.lock:
            output = model.model.generate(**inputs, **kwargs, streamer=streamer)
        new_tokens = output[0][prompt_tokens:]
        text = model.tokenizer.decode(new_tokens, skip_special_tokens=True)
        finished = len(new_tokens) < kwargs["max_new_tokens"]
        return GenerationResult(text, prompt_tokens, len(new_tokens), "stop" if finished else "length")

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        inputs = self._model.inputs(request)
        return await asyncio.to_thread(self._generate, inputs, self._model.generate_kwargs(request))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        """Text deltas as they are produced, then the GenerationResult (for usage and finish reason)."""
        from transformers import AsyncTextIteratorStreamer

        model = self._model
        inputs = model.inputs(request)  # a ContentError is raised here, before any byte is streamed
        streamer = AsyncTextIteratorStreamer(model.tokenizer, skip_prompt=True, skip_special_tokens=True)
        task = asyncio.create_task(
            asyncio.to_thread(self._generate, inputs, model.generate_kwargs(request), streamer)
        )
        async for delta in streamer:
            if delta:
                yield delta
        yield await task
