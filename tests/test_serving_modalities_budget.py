"""The content scan's cost is bounded and its answer conservative; benign text is plain text.

Cost is asserted by counting (work units, filetype calls), never by the clock: the CPU times of these
shapes are benchmarks/guard_bench.py's to measure.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import string
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filetype
import pytest
from PIL import Image

from serving import modalities
from serving.modalities import ContentScan, non_text, request_modalities

B64 = string.ascii_letters + string.digits + "+/"
MB = 1_000_000


def chat(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "llama-3.1-8b-instruct", "messages": [{"role": "user", "content": content}], **extra}


def scanned(body: Any) -> tuple[set[str], ContentScan]:
    scan = ContentScan()
    return scan.modalities(json.loads(json.dumps(body))), scan


def png(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((size, size), 64).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt(rng: random.Random, claims: dict[str, Any]) -> str:
    header = b64url(
        json.dumps({"alg": "RS256", "typ": "JWT", "kid": uuid.UUID(int=rng.getrandbits(128)).hex}).encode()
    )
    return f"{header}.{b64url(json.dumps(claims).encode())}.{b64url(rng.randbytes(256))}"


def filled(size: int, piece: Callable[[random.Random], str], separator: str) -> str:
    rng, pieces, length = random.Random(7), [], 0
    while length < size:
        pieces.append(piece(rng))
        length += len(pieces[-1]) + len(separator)
    return separator.join(pieces)


# --- benign text: plain text, cheaply ---------------------------------------------------------------------

RNG = random.Random(1)
UUIDS = [str(uuid.UUID(int=RNG.getrandbits(128))) for _ in range(50)]
DIGESTS = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(50)]
INTEGRITY = [
    "sha512-" + base64.b64encode(hashlib.sha512(str(i).encode()).digest()).decode() for i in range(50)
]
JWTS = [
    jwt(RNG, {"sub": "user-42", "iat": 1_700_000_000, "scope": "read write"}),
    jwt(
        RNG, {"sub": "svc", "groups": [f"group-{i}-with-a-longer-name" for i in range(20)], "aud": UUIDS[:5]}
    ),
]
CODE = """
class RequestModalitiesAreGatheredBeforeTheJudgement:
    def test_a_tool_call_with_arguments_is_walked_like_the_body(self) -> None:
        getElementsByTagName = document.getElementsByTagName("AbstractSingletonProxyFactoryBean")
        response = httpClient.executeRequestWithRetries(requestBuilder.buildAuthenticatedRequest())
        assert response.headers["X-Correlation-Id"] == "550e8400-e29b-41d4-a716-446655440000"
        path = "/usr/lib/python3/dist-packages/sovereign/policy/decision_input.py"
"""
SERVING_CODE = "\n".join(
    (Path(modalities.__file__).parent / name).read_text() for name in ("ingress.py", "guard.py")
)
PROSE = (
    "the capital of France is Paris and its museums hold more paintings than anyone could see in a lifetime "
    "internationalisation responsibilities notwithstanding, documentation keeps growing: chapter 12, page 7."
)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("UUIDs, comma-separated", ", ".join(UUIDS)),
        ("UUIDs, one per line", "\n".join(UUIDS)),
        ("UUIDs in sentences", " ".join(f"order {u} shipped;" for u in UUIDS)),
        ("SHA-256 hex digests", "\n".join(f"{d}  file-{i}.tar" for i, d in enumerate(DIGESTS))),
        ("base64 SHA-512 integrity strings", json.dumps({f"pkg-{i}": s for i, s in enumerate(INTEGRITY)})),
        ("JWTs", "Authorization: Bearer " + "\nBearer ".join(JWTS)),
        ("identifiers and code", CODE * 20),
        ("this repository's serving code", SERVING_CODE),
    ],
)
def test_benign_tokens_are_plain_text(name: str, text: str) -> None:
    found, scan = scanned(chat(text))
    assert not non_text(found), (name, found, scan.budget.used)
    assert scan.budget.units < modalities._WORK_LIMIT / 4, scan.budget.used


@pytest.mark.slow
def test_a_megabyte_of_prose_is_plain_text_and_costs_no_work_units_beyond_its_json() -> None:
    text = filled(MB, lambda rng: rng.choice(PROSE.split()), " ")
    found, scan = scanned(chat([{"type": "text", "text": text}]))
    assert found == {"text"}
    assert scan.budget.used["segment"] == scan.budget.used["guess"] == 0


def test_a_long_chat_with_tools_is_within_the_budget() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "search_orders",
            "description": "Search the order database by customer, status and date range.",
            "parameters": {
                "type": "object",
                "properties": {
                    name: {"type": "string", "description": f"the {name} to filter by"}
                    for name in ("customer_id", "status", "from_date", "to_date", "image", "file")
                },
                "required": ["customer_id"],
            },
        },
    }
    turns = [
        {"role": role, "content": f"turn {i}: order {UUIDS[i % 50]} is {role}'s concern"}
        for i in range(150)
        for role in ("user", "assistant")
    ]
    found, scan = scanned({"model": "m", "messages": turns, "tools": [tool] * 30})
    assert found == {"text"}, scan.budget.used


# --- payloads: still found where they start, and a real image is an image ---------------------------------


@pytest.mark.parametrize(("offset", "magic"), modalities._SIGNATURES)
def test_every_signature_is_spelled_in_both_base64_alphabets_behind_any_glue(
    offset: int, magic: bytes
) -> None:
    rng = random.Random(offset + len(magic))
    for glue in range(modalities._GLUE_MAX + 1):
        data = rng.randbytes(offset) + magic + rng.randbytes(64)
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            segment = "".join(rng.choices(string.ascii_lowercase, k=glue)).encode() + encode(data)
            assert glue in modalities._BASE64.payload_starts(segment), (glue, segment[:40])
        assert 0 in modalities._HEX.payload_starts(data.hex().encode())


def test_a_signature_deep_inside_a_token_is_not_a_payload_start() -> None:
    segment = ("x" * (modalities._GLUE_MAX + 1)).encode() + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(40))
    assert list(modalities._BASE64.payload_starts(segment)) == []


def test_a_large_base64_image_is_an_image_and_not_also_a_file() -> None:
    encoded = base64.b64encode(png(96)).decode()
    assert len(encoded) > 20_000
    assert request_modalities(chat(f"look: {encoded}")) == {"text", "image"}
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert request_modalities(chat(f"look:\n{wrapped}\n")) == {"text", "image"}


def test_long_base64_that_decodes_to_text_is_read_again() -> None:
    part = json.dumps([{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}])
    hidden = base64.b64encode((part + " " * 300).encode()).decode()
    assert request_modalities(chat(hidden)) == {"text", "image"}
    plain = base64.b64encode(("the capital of France is Paris. " * 20).encode()).decode()
    assert request_modalities(chat(plain)) == {"text"}


def test_long_base64_that_decodes_to_binary_without_a_signature_is_a_file() -> None:
    assert request_modalities(chat(base64.b64encode(random.Random(3).randbytes(600)).decode())) == {
        "text",
        "file",
    }


def test_json_nested_in_strings_past_the_depth_limit_is_not_text() -> None:
    nested: Any = "hello"
    for _ in range(modalities._MAX_DEPTH + 2):
        nested = json.dumps([nested])
    assert "file" in request_modalities(chat(nested))


# --- adversarial bodies: bounded work, conservative answer ------------------------------------------------


def b64_segments(length: int) -> str:
    return filled(MB, lambda rng: "".join(rng.choices(B64, k=length)), "=")


def nested_lists(depth: int) -> Any:
    nested: Any = "x"
    for _ in range(depth):
        nested = [nested]
    return nested


ADVERSARIAL = {
    "base64 segments of 64 chars": lambda: chat(b64_segments(64)),
    "base64 segments of 200 chars": lambda: chat(b64_segments(200)),
    "base64 segments of 250 chars": lambda: chat(b64_segments(250)),
    "base64 segments of 1000 chars": lambda: chat(b64_segments(1000)),
    "a megabyte of UUIDs": lambda: chat(
        filled(MB, lambda rng: str(uuid.UUID(int=rng.getrandbits(128))), ", ")
    ),
    "tiny content parts": lambda: chat([{"type": "text", "text": "a"}] * (MB // 30)),
    "deep nesting": lambda: chat([nested_lists(400)] * (MB // 805)),
    "data: URIs": lambda: chat("data:," * (MB // 6)),
    "tool arguments in tool arguments": lambda: chat(
        "x", tool_calls=[{"function": {"arguments": json.dumps({"a": json.dumps({"b": b64_segments(200)})})}}]
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ADVERSARIAL)
def test_an_adversarial_megabyte_costs_a_bounded_amount_of_work_and_is_not_text(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    guesses = []
    guess = filetype.guess
    monkeypatch.setattr(filetype, "guess", lambda data: guesses.append(len(data)) or guess(data))
    found, scan = scanned(ADVERSARIAL[name]())
    assert non_text(found), (name, scan.budget.used)
    assert scan.budget.units <= modalities._WORK_LIMIT, scan.budget.used
    assert len(guesses) == scan.budget.used["guess"] <= modalities._WORK_LIMIT / modalities._COSTS["guess"]


def test_running_out_of_budget_stops_the_scan_and_reports_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modalities, "_WORK_LIMIT", 10)
    found, scan = scanned(chat([{"type": "text", "text": "hello"}] * 20))
    assert found == {"text", "file"}
    assert scan.budget.used["node"] == 2 + 1 + 2  # the body, its messages, the message: not its 20 parts


def test_the_work_grows_with_the_body_not_faster() -> None:
    """Per segment the work is constant: twice the segments, twice the units (within the budget)."""
    small, large = (scanned(chat("=".join(["Ab9+" * 50] * n)))[1].budget for n in (50, 100))
    assert large.used["segment"] == 2 * small.used["segment"]
    assert large.units == pytest.approx(2 * small.units, rel=0.05)
