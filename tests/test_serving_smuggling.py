"""≥ 10,000 generated attempts to get non-text content into a text-only cluster: none may pass.

Every attempt is a real file (images from Pillow, WAV from `wave`, a ZIP from `zipfile`, PDF, MP4, OGG,
FLAC headers) carried in one of the ways a client can: content parts of every type, `data:` URIs, raw,
line-wrapped, URL-safe, prefixed or hex-encoded base64 in any string, in any message role, in tool-call
arguments, in unknown fields, in nested arrays. Each goes through the guard on the real in-process
engine for the EU text-only cluster. Benign text requests, generated the same way, must all pass.
"""

from __future__ import annotations

import base64
import io
import json
import wave
import zipfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from serving.args import PolicyContext
from serving.guard import RequestGuard
from serving.modalities import non_text
from sovereign import toolchain
from sovereign.policy import subjects
from sovereign.policy.bundle import SignedBundle
from sovereign.policy.clusters import load_cluster

MODEL = "llama-3.1-8b-instruct"
pytestmark = pytest.mark.slow  # 10,000 generated attempts through the real guard


@pytest.fixture(scope="module")
def guard(signed_bundle: SignedBundle) -> RequestGuard:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SOVEREIGN_OPA_URL", raising=False)
        cluster = subjects.facts_of(load_cluster(toolchain.REPO_ROOT / "clusters" / "eu-frankfurt-1.yaml"))
        return RequestGuard(PolicyContext(cluster=cluster, end_use="commercial"), [MODEL])


# --- payloads: real files --------------------------------------------------------------------------------


def _image(fmt: str, size: int, colour: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (colour, 255 - colour, colour // 2)).save(buffer, fmt)
    return buffer.getvalue()


def _wav(frames: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x01\x02" * frames)
    return buffer.getvalue()


def _zip(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, "secret weights")
    return buffer.getvalue()


images = st.builds(
    _image,
    st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"]),
    st.integers(1, 24),
    st.integers(0, 255),
)
audio = st.one_of(
    st.builds(_wav, st.integers(1, 200)),
    st.binary(min_size=32, max_size=64).map(lambda tail: b"fLaC\x00\x00\x00\x22" + tail),
    st.binary(min_size=32, max_size=64).map(lambda tail: b"OggS\x00\x02" + b"\x00" * 22 + tail),
    st.binary(min_size=32, max_size=64).map(lambda tail: b"ID3\x03\x00\x00\x00\x00\x00\x21" + tail),
)
video = st.binary(min_size=32, max_size=64).map(
    lambda tail: b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + tail
)
files = st.one_of(
    st.builds(_zip, st.text("abcdefgh", min_size=1, max_size=8)),
    st.binary(min_size=16, max_size=64).map(lambda tail: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + tail),
)
payloads = st.one_of(images, audio, video, files)
MIME = {"image": "image/png", "audio": "audio/wav", "video": "video/mp4", "file": "application/pdf"}

# --- carriers: every way a client can put the payload in a request --------------------------------------

words = st.lists(
    st.sampled_from(["please", "look", "at", "this", "file", "thanks", "here:", "data"]), max_size=6
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@st.composite
def encodings(draw: st.DrawFn, data: bytes) -> str:
    """The payload as text: base64 plain/wrapped/URL-safe/prefixed, hex, or a data: URI."""
    kind = draw(
        st.sampled_from(["plain", "wrapped", "urlsafe", "prefixed", "hex", "data_uri", "data_uri_upper"])
    )
    encoded = _b64(data)
    if kind == "wrapped":
        width = draw(st.sampled_from([60, 64, 76]))
        return "\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))
    if kind == "urlsafe":
        return base64.urlsafe_b64encode(data).decode()
    if kind == "prefixed":
        return draw(st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=7)) + encoded
    if kind == "hex":
        return data.hex()
    if kind in ("data_uri", "data_uri_upper"):
        mime = draw(st.sampled_from(list(MIME.values())))
        uri = f"data:{mime};base64,{encoded}"
        return uri.upper()[:5] + uri[5:] if kind == "data_uri_upper" else uri
    return encoded


@st.composite
def smuggled_text(draw: st.DrawFn) -> str:
    """A text field that hides a payload among words."""
    before, after = " ".join(draw(words)), " ".join(draw(words))
    return f"{before} {draw(encodings(draw(payloads)))} {after}".strip()


@st.composite
def typed_parts(draw: st.DrawFn) -> dict[str, Any]:
    """A content part of a non-text type."""
    data = draw(payloads)
    kind = draw(
        st.sampled_from(
            ["image_url", "image_url_https", "input_image", "input_audio", "file", "video", "custom"]
        )
    )
    if kind == "image_url":
        return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_b64(data)}"}}
    if kind == "image_url_https":
        return {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    if kind == "input_image":
        return {"type": "input_image", "image_url": f"data:image/jpeg;base64,{_b64(data)}"}
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": {"data": _b64(data), "format": "wav"}}
    if kind == "file":
        return {"type": "file", "file": {"file_data": _b64(data), "filename": "x.pdf"}}
    if kind == "video":
        return {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}
    return {"type": draw(st.sampled_from(["x-custom", "blob", "attachment"])), "data": _b64(data)}


@st.composite
def text_parts(draw: st.DrawFn, text: st.SearchStrategy[str]) -> dict[str, Any]:
    return {"type": draw(st.sampled_from(["text", "input_text"])), "text": draw(text)}


@st.composite
def smuggling_requests(draw: st.DrawFn) -> dict[str, Any]:
    carrier = draw(
        st.sampled_from(
            [
                "part",
                "text_content",
                "text_part",
                "nested_array",
                "tool_args",
                "tool_message",
                "name",
                "extra_field",
            ]
        )
    )
    role = draw(st.sampled_from(["user", "assistant", "system", "tool", "developer"]))
    benign = {"role": "user", "content": "hello"}
    message: dict[str, Any]
    body: dict[str, Any] = {"model": MODEL}
    if carrier == "part":
        parts = [draw(text_parts(st.just("see"))), draw(typed_parts())]
        message = {"role": role, "content": draw(st.permutations(parts))}
    elif carrier == "text_content":
        message = {"role": role, "content": draw(smuggled_text())}
    elif carrier == "text_part":
        message = {"role": role, "content": [draw(text_parts(smuggled_text()))]}
    elif carrier == "nested_array":
        message = {"role": role, "content": [[draw(typed_parts())]]}
    elif carrier == "tool_args":
        arguments = json.dumps({"attachment": draw(smuggled_text())})
        call = {"id": "c1", "type": "function", "function": {"name": "upload", "arguments": arguments}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
    elif carrier == "tool_message":
        message = {"role": "tool", "tool_call_id": "c1", "content": json.dumps([draw(typed_parts())])}
    elif carrier == "name":
        message = {"role": role, "content": "hi", "name": draw(smuggled_text())}
    else:
        message = benign
        body["metadata"] = {"note": draw(smuggled_text())}
    position = draw(st.integers(0, 2))
    messages = [benign] * position + [message] + [benign] * (2 - position)
    return {**body, "messages": messages}


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(request=smuggling_requests())
def test_no_smuggled_content_reaches_a_text_only_cluster(
    guard: RequestGuard, request: dict[str, Any]
) -> None:
    verdict = guard.check(request, MODEL, "tenant")
    assert non_text(set(verdict.modalities)), f"non-text content not found in {request}"
    assert not verdict.allowed and verdict.status == 403


benign_words = st.sampled_from(
    ["the", "capital", "of", "France", "is", "Paris", "42", "getElementsByTagName", "def", "main():",
     "x=1;", "https://example.com/docs/page", "café", "naïve", "日本語", "🙂", "README.md", "v1.2.3", "e.g."]
)  # fmt: skip
benign_text = st.lists(benign_words, min_size=1, max_size=30).map(" ".join)


@st.composite
def benign_requests(draw: st.DrawFn) -> dict[str, Any]:
    role = draw(st.sampled_from(["system", "user", "assistant"]))
    content = draw(st.one_of(benign_text, st.lists(text_parts(benign_text), min_size=1, max_size=3)))
    return {"model": MODEL, "messages": [{"role": role, "content": content}], "temperature": 0.5}


@settings(max_examples=1_000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(request=benign_requests())
def test_plain_text_requests_are_served(guard: RequestGuard, request: dict[str, Any]) -> None:
    verdict = guard.check(request, MODEL, "tenant")
    assert verdict.allowed, (verdict.codes, request)
