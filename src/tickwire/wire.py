"""Encoding of the protocol's envelopes and messages, and its bounds. No I/O."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import msgspec

MAX_CODES_PER_QUOTE = 50
"""Codes in one `getQuote.php` request (PROTOCOL section 5); more are a 400."""
MAX_PAGE_SIZE = 100
"""Products in one `getSymbolList.php` page; a larger `pageSize` is served as this."""
MAX_REQUEST_BODY = 64 * 1024
"""Bytes of an HTTP request body read at most (only the admin API reads one); more is a 413."""

_encoder = msgspec.json.Encoder()
encode = _encoder.encode


def envelope(data_json: bytes) -> bytes:
    """`{"code":200,"msg":"success","data":...}` around already-encoded data."""
    return b'{"code":200,"msg":"success","data":' + data_json + b"}"


def _readable(msg: str) -> str:
    """`msg` as UTF-8 can carry it: a lone surrogate (a byte that was not UTF-8, kept by a
    decoder as one) becomes `?` instead of failing the answer that reports it."""
    return msg.encode("utf-8", "replace").decode("utf-8")


def error_body(code: int, msg: str) -> bytes:
    """The protocol's error object: `{"code":CODE,"msg":"...","data":null}`."""
    try:
        return encode({"code": code, "msg": msg, "data": None})
    except UnicodeEncodeError:
        return encode({"code": code, "msg": _readable(msg), "data": None})


def ws_error(code: int, msg: str) -> bytes:
    """A WebSocket error message: `{"code":CODE,"msg":"..."}`."""
    try:
        return encode({"code": code, "msg": msg})
    except UnicodeEncodeError:
        return encode({"code": code, "msg": _readable(msg)})


def push_message(body: bytes) -> bytes:
    """The WebSocket push: `{"body":{...}}`."""
    return b'{"body":' + body + b"}"


def pong(value: Any) -> bytes:
    """The heartbeat answer, echoing the ping's value with its JSON type."""
    return encode({"pong": value})


def split_codes(codes: str | Iterable[str]) -> list[str]:
    """`"a, b,a,,"` or `["a", " b", "a"]` -> `["a", "b"]`: a comma-separated string or the
    codes one by one, stripped, blanks ignored, each once, in order."""
    parts = codes.split(",") if isinstance(codes, str) else codes
    seen: dict[str, None] = {}
    for part in parts:
        code = part.strip()
        if code:
            seen[code] = None
    return list(seen)


def text_frame(payload: bytes) -> bytes:
    """A complete, unmasked WebSocket text frame (server to client), built once, sent to many."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65_536:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload
