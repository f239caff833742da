"""What kinds of content a request carries: input gathering for the policy, never a decision.

`request_modalities(body)` walks the whole JSON body of an OpenAI-style request and returns the set of
modalities found in it ("text", "image", "audio", "video", "file"). The policy decides what a cluster may
take; this only has to miss nothing, so it errs towards reporting non-text content:

- content parts whose type is not a text type (image_url, input_image, input_audio, file, and any type
  it does not know, reported as "file"), wherever they are nested, in any message role;
- keys that carry media (image_url, input_audio, file, ...) and a non-text `modalities` request, anywhere
  outside JSON-Schema tool definitions (a tool may well have a parameter called "image");
- `data:` URIs in any string, by their media type (anything but image/audio/video is "file");
- base64 (standard or URL-safe, also line-wrapped) and hex payloads in any string, in segments of at
  least `_SEGMENT_MIN` characters (hex digits with hyphens, as in UUIDs, are hex): a file's signature
  spelled at the start of a segment, or behind a prefix of up to `_GLUE_MAX` characters glued to it, is
  confirmed and classified by `filetype`; a base64 segment of `_OPAQUE_MIN` characters or more without
  one that decodes to binary is reported as "file" (unless it is a JSON Web Token's signature), one that
  decodes to text is scanned again; hex without a signature is text;
- strings that hold JSON (tool-call arguments) are parsed and walked like the body, `_MAX_DEPTH` deep.

The work is linear in the body's size and bounded per request: the strings of one encoding level are
scanned together, as one byte string, by searches that run at C speed, and only what they find (segments,
signature matches, data: URIs, JSON values) costs Python work, counted against `_WORK_LIMIT`. A request
that runs out of it stops being scanned and is reported as carrying "file": content too costly to show
as text is not shown to be text.
"""

from __future__ import annotations

import binascii
import codecs
import contextlib
import json
import re
import string
from base64 import b64decode
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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

# The work one request may cost, in units of one JSON value walked (~0.5 µs on a shared 2-core EPYC, twice
# that when its cores are busy); each kind of work is weighed by its measured cost relative to that.
_COSTS = {
    "node": 1.0,  # a JSON value walked
    "segment": 10.0,  # a base64/hex segment found and searched for signatures
    "guess": 40.0,  # a filetype guess (~80 matchers in Python)
    "reread_byte": 1 / 64,  # a byte decoded from a payload or parsed from a JSON string, and scanned again
    "data_uri": 2.0,  # a data: URI found (its match, its media type)
}
# ~3 ms of CPU, so that with the body's own linear scan (~1.5-2.5 ms per MB of text) no 1 MB body costs much
# more than 5 ms. Real requests stay below it: a long chat with tools walks a few thousand JSON values; prose
# has almost no segments, code a few per 10 KiB; a real payload is confirmed by one guess, and benign text
# all but never spells a file's signature where a payload starts. 6,000 units are, for example, 6,000 JSON
# values, 600 UUIDs, or 384 KB of base64-encoded text read again.
_WORK_LIMIT = 6_000

# chars: shorter runs are words or identifiers, not payloads: they decode to under 24 bytes, and no file that
# small carries content (a 1x1 GIF takes 26 at the least).
_SEGMENT_MIN = 32
_OPAQUE_MIN = 256  # chars: a run this long that decodes to binary is a payload even without a signature
# chars: a payload found behind a prefix glued to it ("abciVBOR..."); the smuggling shapes glue up to 7
# letters, and 12 covers labels such as "attachment" without letting a signature deep inside a token, which
# random tokens spell by chance, count.
_GLUE_MAX = 12
_SNIFF_BYTES = 262  # the most `filetype` reads for all but office documents
_TEXT_PROBE_CHARS = 4096  # base64 chars decoded (3 KiB) to tell a payload's text from binary
_MAX_DEPTH = 8  # encodings in encodings (JSON or base64 text in a string) followed this deep

# Where file formats that `filetype` knows put their first fixed bytes: (offset in the file, bytes). They
# only pick the places worth a `filetype.guess` (a guess at every place would cost ~25 µs each), so each
# is the leading part of what filetype checks for one or more formats. Left out: marks deep in a file
# (DICOM at 128, tar at 257, EOT's two bytes at 34); a file that holds one and fits a short segment is a
# header with next to no content, and longer ones are reported as "file" when they decode to binary.
_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    # images
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG"),  # PNG, APNG
    (0, b"GIF"),
    (0, b"RIFF"),  # WebP, WAV, AVI
    (0, b"II*\x00"),  # TIFF, CR2
    (0, b"MM\x00*"),
    (0, b"BM"),
    (0, b"II\xbc"),  # JPEG XR
    (0, b"8BPS"),  # PSD
    (0, b"\x00\x00\x01"),  # ICO, MPEG
    (0, b"\x00\x00\x00\x0c"),  # JPEG 2000
    (4, b"ftyp"),  # ISO media: HEIC, AVIF, MP4, MOV, M4A, M4V
    (0, b"ftyp3gp"),
    (0, b"AC10"),  # DWG
    (0, b"gimp xcf v"),
    # audio
    (0, b"MThd"),  # MIDI
    (0, b"ID3"),  # MP3
    (0, b"\xff\xf2"),
    (0, b"\xff\xf3"),
    (0, b"\xff\xfb"),
    (0, b"\xff\xf1"),  # AAC
    (0, b"\xff\xf9"),
    (0, b"M4A "),
    (0, b"OggS"),
    (0, b"fLaC"),
    (0, b"#!AMR\n"),
    (0, b"FORM"),  # AIFF
    # video
    (0, b"\x1aE\xdf\xa3"),  # Matroska, WebM
    (0, b"0&\xb2u\x8ef\xcf\x11"),  # WMV
    (0, b"FLV\x01"),
    # fonts
    (0, b"wOFF"),
    (0, b"wOF2"),
    (0, b"\x00\x01\x00\x00\x00"),  # TTF
    (0, b"OTTO\x00"),
    # documents, archives, executables
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),  # DOC, XLS, PPT
    (0, b"PK\x03\x04"),  # ZIP, DOCX, XLSX, PPTX, ODF, EPUB
    (0, b"PK\x05\x06"),
    (0, b"PK\x07\x08"),
    (0, b"Rar!\x1a\x07"),
    (0, b"\x1f\x8b\x08"),  # gzip
    (0, b"BZh"),
    (0, b"7z\xbc\xaf'\x1c"),
    (0, b"%PDF"),
    (0, b"\xef\xbb\xbf%PDF"),
    (0, b"MZ"),  # EXE
    (0, b"FWS"),  # SWF
    (0, b"CWS"),
    (0, b"{\\rtf"),
    (0, b"NES\x1a"),
    (0, b"Cr24"),  # CRX
    (0, b"MSCF"),  # CAB
    (0, b"ISc("),
    (0, b"%!"),  # PostScript
    (0, b"\xfd7zXZ\x00"),
    (0, b"SQLi"),
    (0, b"!<arch>"),  # ar, deb
    (0, b"\x1f\xa0"),  # compress (.Z)
    (0, b"\x1f\x9d"),
    (0, b"\x89LZO\x00\r\n\x1a"),
    (0, b"LZIP"),
    (0, b"\x7fELF"),
    (0, b'\x04"M\x18'),  # LZ4
    (1, b"\xb5/\xfd"),  # Zstandard (its first byte is the format version)
    (0, b"\x00asm\x01\x00\x00\x00"),  # Wasm
    (0, b"\xce\xb2\xcf\x81"),  # Brotli
    (0, b"\xed\xab\xee\xdb"),  # RPM
)

_B64_ALPHABET = (string.ascii_letters + string.digits + "+/_-").encode()  # standard and URL-safe
_B64_CHAR = b"[%s]" % re.escape(_B64_ALPHABET)
_B64_SYMBOLS = (string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/").encode()  # by value
_WHITESPACE = b" \t\n\r\f\v"


def _run_mask() -> bytes:
    """A translation table: each byte of the text to b"a" when base64 may hold it, b" " for whitespace,
    b"." for anything else, padding included (it ends a payload). In the translated text, runs are then
    found by a literal search."""
    mask = bytearray(b"." * 256)
    for byte in _WHITESPACE:
        mask[byte] = ord(" ")
    for byte in _B64_ALPHABET:
        mask[byte] = ord("a")
    return bytes(mask)


_RUN_MASK = _run_mask()
# A run of base64 characters, with the runs that follow it after line breaks or spaces, as in MIME-wrapped
# base64. Runs start where the translated text has `_RUN_START`, which `bytes.find` finds at C speed.
_RUN_START = b"a" * _SEGMENT_MIN
_RUN = re.compile(_RUN_START + b"a*(?: +" + _RUN_START + b"a*)*")
_HEXISH = re.compile(rb"[0-9a-fA-F-]+")  # hex digits, hyphens allowed (UUIDs): read as hex, not base64
# From each colon, looking back for "data" in any case: the search for a literal is fast, and needs no
# lower-cased copy of the text.
_DATA_URI = re.compile(
    rb":(?<=[dD][aA][tT][aA]:)(?i:([a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+)?((?:;[a-z0-9!#$&^_.+=-]*)*)),"
)
_JSON_START = re.compile(r"\s*[\[{]")
# A JSON Web Token's header and claims, base64url JSON objects ("eyJ"), each followed by a dot: the segment
# after them is the token's signature, random bytes by design (an RS256 one is 342 chars), not a payload.
# Looked for only before an opaque segment that follows a dot; the literal "eyJ" first keeps the search fast,
# and the look-behind admits one attempt per run.
_JWT_HEAD = re.compile(rb"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.\Z")
_JWT_HEAD_MAX = 4096  # chars of header and claims looked back over
_MEDIUM_WORD = re.compile("image|audio|video|file", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


class _OverBudget(Exception):
    """The request has used up `_WORK_LIMIT`."""


class WorkBudget:
    """The work one scan has done, by kind (`used`) and weighed (`units`), checked as it is spent."""

    def __init__(self) -> None:
        self.used = dict.fromkeys(_COSTS, 0)
        self.units = 0.0

    def spend(self, kind: str, amount: int = 1) -> None:
        """Admit the work before it is done, or end the scan: `units` never exceeds `_WORK_LIMIT`."""
        units = self.units + amount * _COSTS[kind]
        if units > _WORK_LIMIT:
            raise _OverBudget(kind)
        self.used[kind] += amount
        self.units = units


def _media_category(mime: str) -> str:
    top = mime.split("/", 1)[0].lower()
    return top if top in (IMAGE, AUDIO, VIDEO) else FILE


def _part_type_modality(part_type: str) -> str:
    lowered = part_type.lower()
    for word in (IMAGE, AUDIO, VIDEO):
        if word in lowered:
            return word
    return FILE


def _has_value(value: Any) -> bool:
    return value not in (None, False, "", [], {})


def _decode_b64(chars: bytes) -> bytes:
    usable = len(chars) - len(chars) % 4
    try:
        return b64decode(chars[:usable].translate(_URLSAFE), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _decode_hex(chars: bytes) -> bytes:
    return bytes.fromhex(chars[: len(chars) // 2 * 2].decode())


def _spell_b64(offset: int, magic: bytes) -> list[bytes]:
    """The regex atoms that base64 of a file with `magic` at `offset` matches from the file's first
    character on: any symbol where the magic fixes none of a character's six bits, the symbols that agree
    with the bits it fixes elsewhere."""
    pad = offset % 3  # the magic starts this many bytes into its 3-byte group
    bits, width = int.from_bytes(bytes(pad) + magic, "big"), 8 * (pad + len(magic))
    first = -(-8 * pad // 6)  # the first character with no bit before the magic
    atoms = []
    for start in range(6 * first, width, 6):
        known = min(6, width - start)
        lowest = (bits >> (width - start - known) & (1 << known) - 1) << (6 - known)
        atoms.append(_symbols(_B64_SYMBOLS[lowest : lowest + (1 << (6 - known))]))
    lead = 4 * (offset // 3) + first
    return [b"%s{%d}" % (_B64_CHAR, lead), *atoms] if lead else atoms


def _symbols(symbols: bytes) -> bytes:
    """A regex atom for base64 symbols, each in the standard and the URL-safe alphabet."""
    either = sorted(set(symbols + symbols.translate(_TO_URLSAFE)))
    return re.escape(bytes(either)) if len(either) == 1 else b"[%s]" % re.escape(bytes(either))


def _spell_hex(offset: int, magic: bytes) -> list[bytes]:
    atoms = [bytes([char]) for char in magic.hex().encode()]
    return [b"[0-9a-f]{%d}" % (2 * offset), *atoms] if offset else atoms


_Trie = dict[bytes, "_Trie"]


def _segments(text: bytes) -> Iterator[tuple[int, bytes]]:
    """Each run of base64 characters in the text (with the lines that continue it): where it starts, and
    its characters without whitespace."""
    mask = text.translate(_RUN_MASK)
    start = mask.find(_RUN_START)
    while start >= 0:
        end = _RUN.match(mask, start).end()  # a run starts here: it matches
        wrapped = mask.find(b" ", start, end) >= 0
        yield start, text[start:end].translate(None, _WHITESPACE) if wrapped else text[start:end]
        start = mask.find(_RUN_START, end)


def _signs_a_token(text: bytes, start: int) -> bool:
    """Whether the segment at `start` is the signature of a JSON Web Token."""
    after_dot = text[start - 1 : start] == b"."
    return after_dot and _JWT_HEAD.search(text, max(0, start - _JWT_HEAD_MAX), start) is not None


def _any_of(spellings: Iterable[list[bytes]]) -> bytes:
    """One regex for sequences of atoms, with their common leading atoms shared (a trie): at each place the
    regex engine then tries a few branches rather than every signature (~0.1 µs rather than ~1 µs)."""
    trie: _Trie = {}
    for atoms in spellings:
        node = trie
        for atom in atoms:
            node = node.setdefault(atom, {})
        node[b""] = {}  # a signature ends here
    return _branches(trie)


def _branches(node: _Trie) -> bytes:
    if b"" in node:
        return b""  # a signature ends here: longer ones that go on from it add no match
    branches = [atom + _branches(child) for atom, child in node.items()]
    return branches[0] if len(branches) == 1 else b"(?:%s)" % b"|".join(branches)


@dataclass(frozen=True)
class _Encoding:
    """How a payload is spelled in text: where its signatures may start and how to read it back."""

    # Matches from a place in a segment when a signature is spelled at most `glue` chars on (group 1).
    signatures: re.Pattern[bytes]
    glue: int  # the most chars a payload may start after its segment's start
    sniff_chars: int  # chars that decode to the bytes filetype reads
    decode: Callable[[bytes], bytes]

    @classmethod
    def spelled(
        cls,
        spell: Callable[[int, bytes], list[bytes]],
        glue: int,
        sniff_chars: int,
        decode: Callable[[bytes], bytes],
    ) -> _Encoding:
        signatures = _any_of(spell(offset, magic) for offset, magic in _SIGNATURES)
        # A lazy, bounded prefix: the regex engine tries the few places a payload may start, and no further.
        return cls(re.compile(b"(?s:.{0,%d}?)(%s)" % (glue, signatures)), glue, sniff_chars, decode)

    def payload_starts(self, segment: bytes) -> Iterator[int]:
        """The places near the segment's start where a file's signature is spelled, first to last."""
        hit = self.signatures.match(segment)
        while hit and hit.start(1) <= self.glue:
            yield hit.start(1)
            hit = self.signatures.match(segment, hit.start(1) + 1)


_BASE64 = _Encoding.spelled(_spell_b64, _GLUE_MAX, -(-_SNIFF_BYTES // 3) * 4, _decode_b64)
# Hex has no glue window: a prefix glued to it is either hex itself or makes the segment base64; the second
# start is the odd alignment of a hex string whose first digit is a stray one.
_HEX = _Encoding.spelled(_spell_hex, 1, 2 * _SNIFF_BYTES, _decode_hex)


def _reads_as_text(probe: bytes) -> bool:
    """Whether the first bytes of a payload read as UTF-8 text with few control characters."""
    try:
        # Not final: a multi-byte character cut by the probe's end is not an error.
        text, _ = codecs.utf_8_decode(probe, "strict", False)
    except UnicodeDecodeError:
        return False
    return bool(text) and len(_CONTROL.findall(text)) <= 0.05 * len(text)


class ContentScan:
    """One request's content walk within `_WORK_LIMIT`: `modalities(body)` once per instance.

    The body is read level by level: level 0 is the body; strings that hold JSON, and long payloads that
    decode to text, make up the next level. Each level's JSON is walked for its structure and its strings
    are then scanned together, as one byte string."""

    def __init__(self) -> None:
        self.budget = WorkBudget()
        self.found: set[str] = set()
        self._texts: list[str] = []  # the level's strings, to scan
        self._documents: list[Any] = []  # the next level's JSON, parsed from strings
        self._decoded: list[str] = []  # the next level's text, decoded from payloads

    def modalities(self, body: Any) -> set[str]:
        try:
            self._read_levels(body)
        except (_OverBudget, RecursionError):
            # Content too costly to show as text, or nested past Python's stack, is not shown to be text.
            self.found.add(FILE)
        return {TEXT} | self.found

    def _read_levels(self, body: Any) -> None:
        documents, texts = [body], []
        for _ in range(_MAX_DEPTH + 1):
            self._texts, self._documents, self._decoded = [], [], []
            for text in texts:
                self._take_string(text)
            for document in documents:
                self._walk(document)
            self._scan_texts()
            documents, texts = self._documents, self._decoded
            if not documents and not texts:
                return
        self.found.add(FILE)  # content hidden this many encodings deep is not plain text

    # --- JSON ---------------------------------------------------------------------------------------

    def _walk(self, node: Any, in_content: bool = False, in_schema: bool = False) -> None:
        if isinstance(node, str):
            self._take_string(node)
        elif isinstance(node, list):
            self.budget.spend("node", len(node))
            for item in node:
                self._walk(item, in_content, in_schema)
        elif isinstance(node, dict):
            self.budget.spend("node", len(node))
            if not in_schema:
                self._note_media(node, in_content)
            for key, value in node.items():
                self._walk(value, key == "content", in_schema or key in _SCHEMA_KEYS)

    def _note_media(self, node: dict[str, Any], in_content: bool) -> None:
        part_type = node.get("type")
        # In a content list any non-text part counts; elsewhere only a type that names a medium.
        text_part = not isinstance(part_type, str) or part_type in _TEXT_PART_TYPES
        if not text_part and (in_content or _MEDIUM_WORD.search(part_type)):
            self.found.add(_part_type_modality(part_type))
        if not node.keys().isdisjoint(_MEDIA_KEYS):
            self.found |= {
                _MEDIA_KEYS[key] for key in _MEDIA_KEYS.keys() & node.keys() if _has_value(node[key])
            }
        requested = node.get("modalities")
        if isinstance(requested, list):
            self.found |= {_part_type_modality(str(m)) for m in requested if str(m).lower() != TEXT}

    def _take_string(self, text: str) -> None:
        self._texts.append(text)
        if _JSON_START.match(text):
            self.budget.spend("reread_byte", len(text))
            with contextlib.suppress(ValueError):  # not JSON: scanned as text only
                self._documents.append(json.loads(text))

    # --- text ---------------------------------------------------------------------------------------

    def _scan_texts(self) -> None:
        # NUL separates the strings: it ends a run and a data: URI, so none spans two strings.
        blob = "\x00".join(self._texts).encode("utf-8", "surrogatepass")
        # Segments first: they spend the budget, and a request that runs out of it is scanned no further.
        for start, segment in _segments(blob):
            if self._scan_segment(segment) and not _signs_a_token(blob, start):
                self.found.add(FILE)
        for uri in _DATA_URI.finditer(blob):
            self.budget.spend("data_uri")
            self.found.add(_media_category(uri.group(1).decode()) if uri.group(1) else FILE)

    def _scan_segment(self, segment: bytes) -> bool:
        """Adds the kind of file the segment spells; whether it is opaque: long base64 of binary with no
        signature, which is a payload unless its context says otherwise."""
        self.budget.spend("segment")
        hexish = _HEXISH.fullmatch(segment) is not None
        kind = (
            self._sniff(segment.replace(b"-", b"").lower(), _HEX) if hexish else self._sniff(segment, _BASE64)
        )
        if kind:
            self.found.add(kind)
            return False
        # Hex digits are text unless they spell a file.
        return not hexish and len(segment) >= _OPAQUE_MIN and self._reads_as_binary(segment)

    def _sniff(self, segment: bytes, encoding: _Encoding) -> str | None:
        for start in encoding.payload_starts(segment):
            self.budget.spend("guess")
            if kind := filetype.guess(encoding.decode(segment[start : start + encoding.sniff_chars])):
                return _media_category(kind.mime)
        return None

    def _reads_as_binary(self, segment: bytes) -> bool:
        """Whether base64 decodes to binary; text is kept for the next level."""
        # The probe first: binary shows in its first bytes, and only text is worth decoding whole.
        probe = _decode_b64(segment[:_TEXT_PROBE_CHARS])
        self.budget.spend("reread_byte", len(probe))
        if not _reads_as_text(probe):
            return True
        if len(segment) > _TEXT_PROBE_CHARS:
            self.budget.spend("reread_byte", len(segment) - _TEXT_PROBE_CHARS)
            probe = _decode_b64(segment)
        self._decoded.append(probe.decode("utf-8", errors="replace"))
        return False


def request_modalities(body: Any) -> set[str]:
    """Every modality in the request body; "text" is always present (a prompt is text)."""
    return ContentScan().modalities(body)


def non_text(modalities: set[str]) -> list[str]:
    return sorted(modalities - {TEXT})
