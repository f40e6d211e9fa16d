"""What the local engine's ingest and gateways say to each other over a Unix socket.

A frame is a 4-byte big-endian length, then a 1-byte kind, then the payload (MessagePack,
or the bare code of a watch). The ingest sends the catalogue first (`HELLO`), then
batches of updates, its status, allow-list changes and replies to calls; a gateway sends
the codes it starts and stops watching, and calls. One stream each way, so what the ingest
sent arrives in the order it was sent.
"""

from __future__ import annotations

import msgspec

from tickwire.engine.base import AllowSnapshot
from tickwire.engine.redis_calls import AllowAdd, AllowRemove, KlinesCall
from tickwire.models import Category, Product

MAX_FRAME = 64 << 20
"""Bytes a frame may hold at most: a peer that sends more is cut off."""
FRAME_UPDATES = 1000
"""Updates in one batch frame at the most (a quote body is at most a few KiB, so a frame
stays far below `MAX_FRAME`); a longer batch goes as several, in order."""
CALL_TIMEOUT = 5.0
"""Seconds a gateway waits for the ingest's answer before it answers 503."""
MAX_WAITING = 256
"""Calls one gateway may have waiting for the ingest; more are answered 503 at once."""

# ingest -> gateway
HELLO = b"H"
BATCH = b"B"
STATUS = b"S"
ALLOW = b"A"
REPLY = b"R"
# gateway -> ingest
WATCH = b"W"
UNWATCH = b"U"
CALL = b"C"


class Hello(msgspec.Struct):
    categories: list[Category]
    products: list[Product]


class LatestCall(msgspec.Struct, tag="latest"):
    codes: list[str]


class AllowListCall(msgspec.Struct, tag="allow_list"):
    pass


class WsAcquire(msgspec.Struct, tag="ws_acquire"):
    ip: str
    cap: int


class WsRelease(msgspec.Struct, tag="ws_release"):
    ip: str


class WsRestore(msgspec.Struct, tag="ws_restore"):
    """A gateway's WebSockets per IP, told again on a new connection (admitted already)."""

    counts: dict[str, int]


class RateCall(msgspec.Struct, tag="rate"):
    keys: list[str]
    limit: int


Call = (LatestCall | KlinesCall | AllowListCall | AllowAdd | AllowRemove | WsAcquire
        | WsRelease | WsRestore | RateCall)


class Request(msgspec.Struct, array_like=True):
    id: int
    call: Call


class Reply(msgspec.Struct):
    id: int
    error: str = ""
    status: int = 0
    """The HTTP status of the error (0 without one)."""
    bodies: list[bytes | None] = []
    bars: list[bytes] = []
    changed: bool = False
    admitted: bool = False
    over: list[int] = []
    retry_after: float = 0.0
    allow: AllowSnapshot | None = None


encode = msgspec.msgpack.Encoder().encode
decode_batch = msgspec.msgpack.Decoder(list[tuple[str, bytes]]).decode
decode_request = msgspec.msgpack.Decoder(Request).decode
decode_reply = msgspec.msgpack.Decoder(Reply).decode
decode_allow = msgspec.msgpack.Decoder(AllowSnapshot).decode
decode_hello = msgspec.msgpack.Decoder(Hello).decode


def frame(kind: bytes, payload: bytes) -> bytes:
    return (len(payload) + 1).to_bytes(4, "big") + kind + payload


def batch_frames(batch: list[tuple[str, bytes]]) -> list[bytes]:
    """`batch` as frames of at most `FRAME_UPDATES` updates each."""
    return [frame(BATCH, encode(batch[i:i + FRAME_UPDATES]))
            for i in range(0, len(batch), FRAME_UPDATES)]


class FrameError(ValueError):
    """The peer broke the framing: its connection is closed."""


class FrameReader:
    """Bytes in as they arrive, whole frames out as (kind, payload)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """The frames `data` completes, in order."""
        buffer = self._buffer
        buffer += data
        frames = []
        start, end = 0, len(buffer)
        while end - start >= 5:
            size = int.from_bytes(buffer[start:start + 4], "big")
            if not 1 <= size <= MAX_FRAME:
                raise FrameError(f"a frame of {size} bytes (at most {MAX_FRAME})")
            if end - start < 4 + size:
                break
            frames.append((bytes(buffer[start + 4:start + 5]),
                           bytes(buffer[start + 5:start + 4 + size])))
            start += 4 + size
        del buffer[:start]
        return frames
