"""The WebSocket against anything a client can send, over bare sockets to a real server:
random frames (any opcode, reserved bits, unmasked, lying lengths), messages cut into
fragments with control frames between them, text that is not UTF-8, JSON of any shape, the
protocol's messages with odd values, and sequences of all of these on one connection.

Each case is one connection: its frames, then a heartbeat whose answer (or the server's
close) ends the case. Throughout, the server sends only what the protocol allows (a quote
of a subscribed code, the pong of a ping sent, error replies under 500 and only where asked
for with `?errors=1`), closes only with a code that names the client's fault, stays up,
logs no error, and its memory comes back."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import strategies as st

from tests.e2e import rawws
from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, start_server
from tests.fuzzing import cases, report, run_cases

pytestmark = pytest.mark.fuzz

CASES = (300, 10_000)
KNOWN = ["btcusdt", "ethusdt", "xrpusdt", "HX_HSI", "fx_seurusd", "hf_GC", "nodepth"]
CLOSE_CODES = {1000, 1002, 1003, 1007, 1008, 1009}
"""What the server may close with: the client closed, broke the protocol, sent what it
cannot take, too much. Never 1011 (an error of the server's own)."""

FUZZED = f"""{GENEROUS_LIMITS}
[access]
ws_connections_per_ip = 1000
[websocket]
messages_per_second = 100000
max_message_bytes = 4096
"""
"""Caps out of the way of one fast client (they have tests of their own); a small frame
bound, so that the fuzzer reaches it often."""


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("ws-fuzz"), small_config(FUZZED))
    yield srv
    srv.stop()


# what a client sends ------------------------------------------------------------------------

def frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, masked: bool = True,
          length: int | None = None) -> bytes:
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if masked else 0
    if size < 126:
        header = struct.pack("!BB", first, mask_bit | size)
    elif size < 65_536:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@dataclass
class Step:
    """Bytes to send, and what they ask of the server."""

    data: bytes
    pings: list[Any] = field(default_factory=list)
    """Heartbeat values sent: each may come back as a pong."""
    codes: list[str] = field(default_factory=list)
    """Codes asked for: their quotes may come."""


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
code_lists = st.lists(st.sampled_from([*KNOWN, "nosuch", "", " ", "BTCUSDT", "a" * 300])
                      | st.text(max_size=12), max_size=8).map(",".join)
messages = st.one_of(
    st.builds(lambda codes, extra: {"Key": codes, **extra}, code_lists,
              st.dictionaries(st.sampled_from(["event", "x"]), json_values, max_size=1)),
    st.builds(lambda codes: {"UnKey": codes}, code_lists),
    st.builds(lambda value: {"ping": value}, json_values),
    st.dictionaries(st.sampled_from(["Key", "UnKey", "ping", "body", "pong", "x"]), json_values,
                    max_size=3),
    json_values,
)


@st.composite
def texts(draw: st.DrawFn) -> Step:
    """A message as JSON text (maybe not UTF-8: a lone surrogate, raw), maybe in fragments."""
    message = draw(messages)
    ascii_only = draw(st.booleans())
    payload = json.dumps(message, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        payload = draw(st.binary(max_size=60))  # not even JSON, maybe not UTF-8
    pings = [message["ping"]] if isinstance(message, dict) and "ping" in message else []
    codes: list[str] = []
    if isinstance(message, dict) and isinstance(message.get("Key"), str):
        codes = [c.strip() for c in message["Key"].split(",")]
    opcode = draw(st.sampled_from([0x1, 0x1, 0x1, 0x2]))
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    if not cuts:
        return Step(frame(opcode, payload), pings, codes)
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    out = b""
    for i, piece in enumerate(pieces):
        out += frame(opcode if i == 0 else 0x0, piece, fin=i == len(pieces) - 1)
        if i < len(pieces) - 1 and draw(st.booleans()):
            out += frame(draw(st.sampled_from([0x9, 0xA])), draw(st.binary(max_size=20)))
    return Step(out, pings, codes)


@st.composite
def odd_frames(draw: st.DrawFn) -> Step:
    """A frame as no well-behaved client sends it."""
    payload = draw(st.binary(max_size=200))
    return Step(frame(draw(st.integers(0, 15)), payload, fin=draw(st.booleans()),
                      rsv=draw(st.integers(0, 7)), masked=draw(st.integers(0, 4)) > 0,
                      length=draw(st.none() | st.integers(0, len(payload)))))


@st.composite
def controls(draw: st.DrawFn, fatal: bool = True) -> Step:
    """A ping or pong (within the 125 bytes of a control frame unless `fatal`), or with
    `fatal` a close frame."""
    opcode = draw(st.sampled_from([0x8, 0x9, 0xA] if fatal else [0x9, 0xA]))
    if opcode == 0x8:
        code = draw(st.sampled_from([1000, 1001, 1005, 1006, 1011, 3000, 4999, 0, 999, 65535]))
        payload = struct.pack("!H", code) + draw(st.binary(max_size=20))
        payload = draw(st.sampled_from([payload, b"", b"\x03"]))
    else:
        payload = draw(st.binary(max_size=130 if fatal else 125))
    return Step(frame(opcode, payload))


clean_steps = st.one_of(texts(), controls(fatal=False))
"""What a connection may go on after (unless the text is not UTF-8)."""
any_steps = st.one_of(texts(), odd_frames(), controls(),
                      st.binary(min_size=1, max_size=40).map(Step),
                      st.just(Step(frame(0x1, b" " * 5000))))
connections = st.tuples(st.sampled_from(["/ws", "/ws?errors=1", "/"]),
                        st.lists(clean_steps, min_size=1, max_size=12)
                        | st.lists(any_steps, min_size=1, max_size=10))


# what the server answers --------------------------------------------------------------------

def same_json(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return bool(a == b and type(a) is type(b))


def check_connection(port: int, case: tuple[str, list[Step]], number: int) -> str:
    """Run one case; how it ended: "answered" (the heartbeat came back) or "closed"."""
    path, sent = case
    errors = path.endswith("errors=1")
    sentinel = f"case-{number}"
    pings = [sentinel, *(p for step in sent for p in step.pings)]
    codes = {c for step in sent for c in step.codes}
    sock = rawws.connect(port, path=path)
    try:
        sock.settimeout(10)
        with contextlib.suppress(OSError):  # closed before all was sent: read why
            sock.sendall(b"".join(step.data for step in sent)
                         + frame(0x1, json.dumps({"ping": sentinel}).encode()))
        while True:
            try:
                opcode, payload = rawws.read_frame(sock)
            except (ConnectionError, OSError):
                return "closed"  # the close frame went before the cut, or we sent one
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                assert code in CLOSE_CODES | {1005}, (code, payload, sent)
                return "closed"
            if opcode in (0x9, 0xA):
                continue  # the server's own ping, or a pong of ours
            assert opcode == 0x1, (opcode, payload[:100])
            message = json.loads(payload)
            assert isinstance(message, dict), payload[:200]
            if "body" in message:
                assert set(message) == {"body"}
                assert message["body"]["StockCode"] in codes, message["body"]["StockCode"]
            elif "pong" in message:
                assert set(message) == {"pong"}
                assert any(same_json(message["pong"], p) for p in pings), (message, pings)
                if message["pong"] == sentinel:
                    return "answered"
            else:
                assert errors, f"an error reply on a connection that did not ask: {message}"
                assert set(message) == {"code", "msg"} and 400 <= message["code"] < 500
    finally:
        sock.close()


def test_anything_a_websocket_client_sends(fuzzed: Server) -> None:
    rss_before = fuzzed.rss_kib()
    ended: dict[str, int] = {"answered": 0, "closed": 0}
    number = 0

    def check(case: tuple[str, list[Step]]) -> None:
        nonlocal number
        number += 1
        ended[check_connection(fuzzed.port, case, number)] += 1
        if number % 500 == 0:
            assert_serving(fuzzed)

    ran = run_cases(connections, cases(*CASES), check)
    assert_serving(fuzzed)
    growth = fuzzed.rss_kib() - rss_before
    report("websocket", cases=ran, **ended, rss_before_kib=rss_before,
           rss_growth_kib=growth)
    assert ended["answered"] and ended["closed"]  # both kinds of case were reached
    assert growth < 16 * 1024
    assert fuzzed.errors_logged() == []


def assert_serving(srv: Server) -> None:
    with urllib.request.urlopen(f"{srv.url}/healthz", timeout=10) as resp:
        assert resp.status == 200
    sock = rawws.connect(srv.port)
    try:
        sock.settimeout(10)
        rawws.send_text(sock, '{"Key":"btcusdt"}')
        _, payload = rawws.read_frame(sock)
        assert json.loads(payload)["body"]["StockCode"] == "btcusdt"
    finally:
        sock.close()
