"""What a gateway asks the ingest through Redis, and the answers: the K-lines beyond the
window kept in Redis (from the ingest's SQLite history) and changes to the allow-list
(kept in the ingest's store, the one source of truth, and announced to every gateway).

A call is published on the ingest's channel; Redis says how many listened, so a call with
no ingest to answer it fails at once. The answer is published on the calling gateway's
own channel, matched by the call's id. Both are MessagePack.
"""

from __future__ import annotations

import msgspec

from tickwire.engine.base import AllowSnapshot

CALL_TIMEOUT = 5.0
"""Seconds a gateway waits for the ingest's answer before it answers 503."""
MAX_WAITING = 256
"""Calls one gateway may have waiting for the ingest; more are answered 503 at once."""


class KlinesCall(msgspec.Struct, tag="klines"):
    code: str
    interval: str
    rows: int
    end_ms: int | None


class AllowAdd(msgspec.Struct, tag="allow_add"):
    cidr: str
    note: str


class AllowRemove(msgspec.Struct, tag="allow_remove"):
    cidr: str


Call = KlinesCall | AllowAdd | AllowRemove


class Request(msgspec.Struct):
    id: int
    reply_to: str
    call: Call


class Reply(msgspec.Struct):
    id: int
    error: str = ""
    status: int = 0
    """The HTTP status of the error (0 without one)."""
    bars: list[bytes] = []
    changed: bool = False
    allow: AllowSnapshot | None = None


encode = msgspec.msgpack.Encoder().encode
decode_request = msgspec.msgpack.Decoder(Request).decode
decode_reply = msgspec.msgpack.Decoder(Reply).decode
encode_allow = encode
decode_allow = msgspec.msgpack.Decoder(AllowSnapshot).decode
