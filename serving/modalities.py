"""What kinds of content a request carries: input gathering for the policy, never a decision.

`request_modalities(body)` walks the whole JSON body of an OpenAI-style request and returns the set of
modalities found in it ("text", "image", "audio", "video", "file"). The policy decides what a cluster may
take; this only has to miss nothing, so it errs towards reporting non-text content:

- content parts whose type is not a text type (image_url, input_image, input_audio, file, and any type
  it does not know, reported as "file"), wherever they are nested, in any message role;
- keys that carry media (image_url, input_audio, file, ...) and a non-text `modalities` request, anywhere
  outside JSON-Schema tool definitions (a tool may well have a parameter called "image");
- `data:` URIs in any string, by their media type (anything but image/audio/video is "file");
- base64 payloads in any string, recognised by sniffing the decoded bytes' magic numbers with `filetype`,
  also when the payload is line-wrapped or glued to a prefix; a long base64 run that decodes to binary
  with no known signature is reported as "file", one that decodes to text is scanned again;
- strings that hold JSON (tool-call arguments) are parsed and walked like the body.
"""

from __future__ import annotations

import binascii
import codecs
import contextlib
import json
import re
from base64 import b64decode
from typing import Any

import filetype

TEXT, IMAGE, AUDIO, VIDEO, FILE = "text", "image", "audio", "video", "file"
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text", "refusal", "summary_text"})
_MEDIA_KEYS = {
    "image_url": IMAGE,
    "input_image": IMAGE,
    "image": IMAGE,
    "images": IMAGE,
    "image_file": IMAGE,
    "input_audio": AUDIO,
    "audio": AUDIO,
    "audio_url": AUDIO,
    "video": VIDEO,
    "video_url": VIDEO,
    "input_video": VIDEO,
    "file": FILE,
    "input_file": FILE,
    "file_data": FILE,
    "file_id": FILE,
    "file_url": FILE,
    "document": FILE,
}
# Keys whose value is a JSON Schema (tool parameters, structured output): names there are not content.
_SCHEMA_KEYS = frozenset({"parameters", "json_schema", "schema", "input_schema"})

_DATA_URI = re.compile(r"data:([a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+)?((?:;[a-z0-9!#$&^_.+=-]*)*),", re.I)
# A run of base64 (standard or URL-safe) characters, with the runs that follow it after line breaks or
# spaces, as in MIME-wrapped base64.
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}(?:\s+[A-Za-z0-9+/_-]{16,}={0,2})*")
_WHITESPACE = re.compile(r"\s+")
_HEX = re.compile(r"[0-9a-fA-F]+")
_URLSAFE = str.maketrans("-_", "+/")
_SEGMENT_MIN = 16  # chars: shorter runs are words, not payloads
_OPAQUE_MIN = 256  # chars: a run this long that decodes to binary is a payload even without a signature
_SNIFF_BYTES = 262  # the most `filetype` reads
_TEXT_PROBE_BYTES = 4096
_MAX_DEPTH = 8  # encodings in encodings (JSON or base64 text in a string) followed this deep


def _media_category(mime: str) -> str:
    top = mime.split("/", 1)[0].lower()
    return top if top in (IMAGE, AUDIO, VIDEO) else FILE


def _part_type_modality(part_type: str) -> str:
    lowered = part_type.lower()
    for word in (IMAGE, AUDIO, VIDEO):
        if word in lowered:
            return word
    return FILE


def _decode_b64(chars: str) -> bytes:
    usable = len(chars) - len(chars) % 4
    try:
        return b64decode(chars[:usable].translate(_URLSAFE), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _sniff_at(data: bytes, offsets: range) -> str | None:
    for offset in offsets:
        if len(data) - offset < 4:
            return None
        if kind := filetype.guess(data[offset : offset + _SNIFF_BYTES]):
            return _media_category(kind.mime)
    return None


def _as_text(data: bytes) -> str | None:
    """The decoded bytes as text when they read as UTF-8 text (first few KiB), else None."""
    try:
        # Incremental: a multi-byte character cut by the probe's end is not an error.
        text = codecs.getincrementaldecoder("utf-8")().decode(data[:_TEXT_PROBE_BYTES], final=False)
    except UnicodeDecodeError:
        return None
    if not text and data:
        return None
    printable = sum(ch.isprintable() or ch.isspace() for ch in text)
    if printable < 0.95 * len(text):
        return None
    return text if len(data) <= _TEXT_PROBE_BYTES else data.decode("utf-8", errors="replace")


def _looks_encoded(chars: str) -> bool:
    """Whether a run reads like base64 rather than a word: base64 is ~60 % capitals, digits and symbols,
    words and identifiers (getElementsByTagName) far fewer. Only such runs get the costly step-by-step
    search for a payload glued to a prefix."""
    sample = chars[:256]
    return sum(not ch.islower() for ch in sample) >= 0.3 * len(sample)


def _sniff_hex(chars: str) -> set[str]:
    # Hex digits are text unless they spell a file; an odd-length prefix lands on the second alignment.
    for align in (0, 1):
        usable = chars[align : align + (len(chars) - align) // 2 * 2]
        if kind := _sniff_at(bytes.fromhex(usable), range(1)):
            return {kind}
    return set()


def _sniff_segment(chars: str, depth: int) -> set[str]:
    if _HEX.fullmatch(chars):
        return _sniff_hex(chars)
    # A payload glued to a prefix starts on one of the four alignments, at a 3-byte step of its decoding.
    decoded = [_decode_b64(chars[align:]) for align in range(4)]
    if kind := next((k for data in decoded if (k := _sniff_at(data, range(1)))), None):
        return {kind}
    if len(chars) >= _OPAQUE_MIN:
        text = _as_text(decoded[0])
        return {FILE} if text is None else _scan_string(text, depth + 1)
    if _looks_encoded(chars):
        for data in decoded:
            if kind := _sniff_at(data, range(3, len(data), 3)):
                return {kind}
    return set()


def _sniff_run(run: str, depth: int) -> set[str]:
    found: set[str] = set()
    # Padding ends a base64 payload: what follows it is another one.
    for segment in _WHITESPACE.sub("", run).split("="):
        if len(segment) >= _SEGMENT_MIN:
            found |= _sniff_segment(segment, depth)
    return found


def _scan_string(text: str, depth: int) -> set[str]:
    found = {_media_category(m.group(1)) if m.group(1) else FILE for m in _DATA_URI.finditer(text)}
    for match in _B64_RUN.finditer(text):
        found |= _sniff_run(match.group(0), depth)
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and depth < _MAX_DEPTH:
        with contextlib.suppress(ValueError, RecursionError):  # not JSON: already scanned as text
            found |= _walk(json.loads(stripped), depth + 1, in_content=False)
    return found


def _has_value(value: Any) -> bool:
    return value not in (None, False, "", [], {})


def _walk(node: Any, depth: int, in_content: bool, in_schema: bool = False) -> set[str]:
    if depth > _MAX_DEPTH:
        return {FILE}  # content hidden this many encodings deep is not plain text
    if isinstance(node, str):
        return _scan_string(node, depth)
    if isinstance(node, list):
        found: set[str] = set()
        for item in node:
            found |= _walk(item, depth, in_content, in_schema)
        return found
    if not isinstance(node, dict):
        return set()
    found = set()
    part_type = node.get("type")
    if isinstance(part_type, str) and not in_schema:
        # In a content list any non-text part counts; elsewhere only a type that names a medium.
        is_part = in_content and part_type not in _TEXT_PART_TYPES
        if is_part or any(word in part_type.lower() for word in (IMAGE, AUDIO, VIDEO, FILE)):
            found.add(_part_type_modality(part_type))
    for key, value in node.items():
        if not in_schema and key in _MEDIA_KEYS and _has_value(value):
            found.add(_MEDIA_KEYS[key])
        if not in_schema and key == "modalities" and isinstance(value, list):
            found |= {_part_type_modality(str(m)) for m in value if str(m).lower() != TEXT}
        child_schema = in_schema or key in _SCHEMA_KEYS
        found |= _walk(value, depth, in_content=key == "content", in_schema=child_schema)
    return found


def request_modalities(body: Any) -> set[str]:
    """Every modality in the request body; "text" is always present (a prompt is text)."""
    try:
        return {TEXT} | _walk(body, 0, in_content=False)
    except RecursionError:
        return {TEXT, FILE}  # nested past Python's stack: it cannot be shown to be text


def non_text(modalities: set[str]) -> list[str]:
    return sorted(modalities - {TEXT})
