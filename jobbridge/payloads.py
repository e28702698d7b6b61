"""Safe payload previews: size-capped text, never an executed unpickle.

Payloads are attacker-controlled. Everything here produces plain text that templates escape;
pickle data is described as an opcode listing by ``pickletools`` (which reads opcodes and
never builds objects), so no code in a payload can run.
"""

from __future__ import annotations

import io
import json
import pickletools
import zlib
from typing import Any

from jobbridge import safejson

#: characters of a payload shown in a table row
PREVIEW_CHARS = 160
#: characters of a payload shown on a detail page
DETAIL_CHARS = 65_536
#: bytes of input the decoders look at; anything past is not read
MAX_INPUT_BYTES = 1_048_576


def _cut(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit] + "…", True


def _encode_bounded(value: Any, limit: int, indent: int | None) -> tuple[str, bool]:
    """JSON text of a decoded value, cut at ``limit`` characters, and whether it was cut.

    The encoder yields the text piece by piece and stops once past the limit, so a preview of
    a payload of many megabytes costs what the preview shows, not what the payload holds.
    """
    encoder = json.JSONEncoder(
        ensure_ascii=False,
        indent=indent,
        separators=(",", ":") if indent is None else (",", ": "),
        allow_nan=True,
        check_circular=False,
    )
    pieces: list[str] = []
    size = 0
    for piece in encoder.iterencode(value):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break
    return _cut("".join(pieces), limit)


#: values decoded from at most this many bytes are encoded whole (C-fast), then cut
WHOLE_ENCODE_BYTES = 64 * 1024


def json_preview(value: Any, limit: int = PREVIEW_CHARS, *, source_bytes: int | None = None) -> str:
    """One compact line of a decoded JSON value, cut at ``limit`` characters.

    ``source_bytes``: the size of the text the value was decoded from, when known; a small
    one is encoded whole by the C encoder, a big or unknown one piece by piece up to the limit.
    """
    if value is None:
        return ""
    if source_bytes is not None and source_bytes <= WHOLE_ENCODE_BYTES:
        return _cut(json.dumps(value, ensure_ascii=False, separators=(",", ":")), limit)[0]
    return _encode_bounded(value, limit, None)[0]


def json_detail(value: Any, limit: int = DETAIL_CHARS) -> tuple[str, str]:
    """Indented JSON of a decoded value and its kind ("json", "json (truncated)", "empty")."""
    if value is None:
        return "", "empty"
    text, cut = _encode_bounded(value, limit, 2)
    return text, "json (truncated)" if cut else "json"


def _pickle_listing(data: bytes, limit: int) -> str:
    out = io.StringIO()
    try:
        for opcode, arg, pos in pickletools.genops(data):
            shown = "" if arg is None else " " + repr(arg)[:200]
            out.write(f"{pos:>6}: {opcode.name}{shown}\n")
            if out.tell() > limit:
                break
    except Exception as exc:  # genops raises many types on hostile input
        out.write(f"[listing stopped: {type(exc).__name__}]\n")
    return _cut(out.getvalue(), limit)[0]


def describe_bytes(raw: bytes, limit: int = DETAIL_CHARS) -> tuple[str, str]:
    """Text for an opaque stored payload, and what kind it was found to be.

    Tries, in order: JSON (UTF-8), zlib-compressed data (then the same checks on what it
    holds), a pickle opcode listing, UTF-8 text, and finally a hex dump.
    """
    data = raw[:MAX_INPUT_BYTES]
    truncated_input = len(raw) > MAX_INPUT_BYTES
    kind, text = _describe(data, limit, depth=0)
    if truncated_input:
        kind += f" (first {MAX_INPUT_BYTES} bytes)"
    return text, kind


def _describe(data: bytes, limit: int, depth: int) -> tuple[str, str]:
    if not data:
        return "empty", ""
    try:
        decoded = safejson.loads(data)
    except safejson.JSONError:
        pass
    else:
        text, kind = json_detail(decoded, limit)
        return kind, text
    if depth == 0 and data[:1] == b"x":
        try:
            # Cap the output too: a small zlib bomb must not become a huge string.
            inflater = zlib.decompressobj()
            inner = inflater.decompress(data, MAX_INPUT_BYTES)
        except zlib.error:
            pass
        else:
            kind, text = _describe(inner, limit, depth + 1)
            return f"zlib, {kind}", text
    if data[:1] == b"\x80" and len(data) > 2 and data[1] <= 5:
        return "pickle (opcodes listed, not loaded)", _pickle_listing(data, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        hexed = data[: limit // 3].hex(" ")
        return "binary (hex)", _cut(hexed, limit)[0]
    return "text", _cut(text, limit)[0]
