"""Security over real sockets: who gets in (the allow-list, whatever the address looks like,
the header that claims it or the path asked), the admin API (its token, its own listener),
what an answer gives away, and the bound of every size a client controls.

Requests go out over bare sockets where the exact bytes matter (a path as sent, not as a
client library would tidy it; a header that is not UTF-8).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

import tickwire
from tests.e2e import rawws
from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.rawhttp import Answer, request, send
from tests.e2e.server import ADMIN_TOKEN, Server, free_port, start_server
from tickwire.gateway.lowlevel import MAX_HEADERS, MAX_LINE
from tickwire.gateway.responses import SERVER
from tickwire.wire import MAX_REQUEST_BODY

BEARER = f"Bearer {ADMIN_TOKEN}"
ALLOWED = "127.0.0.1"
OUTSIDER = "127.0.0.2"
ACCESS = f"""
[access]
allow = ["{ALLOWED}/32"]
trusted_proxies = ["{ALLOWED}"]
admin_token = "{ADMIN_TOKEN}"
"""
"""Only 127.0.0.1 may come in, and it is also the one trusted proxy."""
LOCKED = ACCESS + GENEROUS_LIMITS
ADMIN_PATHS = ["/admin/allow", "/%61dmin/allow", "/admin/%61llow", "/%61%64%6d%69%6e/allow",
               "/admin%2Fallow", "/ADMIN/allow", "//admin/allow", "/admin//allow",
               "/x/../admin/allow", "/admin/./allow", "/admin/allow/", "/admin/allow?x=1"]
"""The admin list, spelled every way a path can be bent."""


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("locked"), small_config(LOCKED))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    """The admin API on a listener of its own; (the server, the admin port)."""
    admin_port = free_port()
    srv = start_server(tmp_path_factory.mktemp("split"), small_config(
        ACCESS + f'admin_listen = "127.0.0.1:{admin_port}"\n' + GENEROUS_LIMITS))
    yield srv, admin_port
    srv.stop()


# bare HTTP ----------------------------------------------------------------------------------

def get(port: int, path: str, source: str = ALLOWED, **headers: str) -> Answer:
    return send(port, request("GET", path, {k.replace("_", "-"): v for k, v in headers.items()}),
                source)


HANDSHAKE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def handshake(port: int, path: str, source: str = ALLOWED, host: str = "127.0.0.1",
              headers: dict[str, str] | None = None) -> Answer:
    """A WebSocket handshake; the status line and headers of the answer (101 or a refusal)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect((host, port))
        lines = [f"GET {path} HTTP/1.1", "Host: tickwire",
                 *(f"{k}: {v}" for k, v in {**HANDSHAKE, **(headers or {})}.items())]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(4096)
            if not chunk:
                break
            raw += chunk
        answer = Answer(raw)
        if answer.status != 101:
            length = int(answer.headers.get("content-length", "0"))
            while len(answer.body) < length and (chunk := sock.recv(4096)):
                answer.body += chunk
    return answer


# the allow-list -----------------------------------------------------------------------------

@pytest.mark.parametrize("claim", [
    {"X-Forwarded-For": ALLOWED},
    {"X-Forwarded-For": f"{ALLOWED}, {ALLOWED}"},
    {"X-Forwarded-For": f"::ffff:{ALLOWED}"},
    {"X-Forwarded-For": "::1"},
    {"X-Real-IP": ALLOWED},
    {"Forwarded": f"for={ALLOWED}"},
    {"Forwarded": 'for="[::1]"', "X-Forwarded-For": "127.0.0.1", "Client-IP": ALLOWED},
])
def test_an_untrusted_peer_cannot_claim_an_allowed_address(locked: Server,
                                                          claim: dict[str, str]) -> None:
    answer = send(locked.port, request("GET", "/getCategory.php", claim), OUTSIDER)
    assert answer.status == 403
    assert answer.json() == {"code": 403, "msg": f"IP {OUTSIDER} is not authorized",
                             "data": None}
    assert handshake(locked.port, "/ws", OUTSIDER, headers=claim).status == 403


@pytest.mark.parametrize(("forwarded", "client"), [
    ("203.0.113.9", "203.0.113.9"),
    (f"{ALLOWED}, 203.0.113.9", "203.0.113.9"),           # the right-most untrusted counts
    (f"203.0.113.9, {ALLOWED}", "203.0.113.9"),           # a trusted hop is looked past
    ("::ffff:203.0.113.9", "203.0.113.9"),                # IPv4-mapped: the IPv4 address
    (f"::ffff:{OUTSIDER}", OUTSIDER),
    ("::ffff:7f00:2", OUTSIDER),                          # the same, in hex
    ("[::1]", "::1"),                                     # not on the list: 127.0.0.1 only
    ("::1", "::1"),
    ("[::ffff:127.0.0.2]", OUTSIDER),
])
def test_a_trusted_proxy_names_the_client_in_any_notation(locked: Server, forwarded: str,
                                                          client: str) -> None:
    answer = get(locked.port, "/getCategory.php", X_Forwarded_For=forwarded)
    assert (answer.status, answer.json()["msg"]) == (403, f"IP {client} is not authorized")


def test_an_ipv4_mapped_entry_is_the_ipv4_address(locked: Server) -> None:
    """Added as `::ffff:127.0.0.2`, it admits 127.0.0.2 and is removed by either name."""
    mapped = f"::ffff:{OUTSIDER}"
    added = send(locked.port, request("POST", "/admin/allow", {"Authorization": BEARER},
                                      json.dumps({"cidr": mapped}).encode()))
    assert added.status == 200 and added.json()["data"]["cidr"] == f"{OUTSIDER}/32"  # type: ignore[index]
    assert get(locked.port, "/getCategory.php", OUTSIDER).status == 200
    removed = send(locked.port, request("DELETE", f"/admin/allow/{mapped}",
                                        {"Authorization": BEARER}))
    assert removed.status == 200
    assert get(locked.port, "/getCategory.php", OUTSIDER).status == 403


def test_ipv6_loopback_is_not_ipv4_loopback(tmp_path: Path) -> None:
    """A server on [::1] whose list admits 127.0.0.1 alone refuses ::1, over HTTP and the
    WebSocket alike."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback (::1)")
    srv = start_server(tmp_path, small_config(LOCKED), host="::1", ready=False)
    try:
        answer = send(srv.port, request("GET", "/getCategory.php"), "::1", host="::1")
        assert (answer.status, answer.json()["msg"]) == (403, "IP ::1 is not authorized")
        assert handshake(srv.port, "/ws", "::1", host="::1").status == 403
    finally:
        srv.stop()


@pytest.mark.parametrize("path", ["/ws", "/", "/ws?errors=1", "/%77s", "/ws/", "/ws/x",
                                  "//ws", "/market", "/nothing"])
def test_every_websocket_handshake_is_checked(locked: Server, path: str) -> None:
    answer = handshake(locked.port, path, OUTSIDER)
    assert answer.status == 403 and answer.json()["code"] == 403
    assert "sec-websocket-accept" not in answer.headers


def test_a_revoked_address_loses_its_open_websockets(locked: Server) -> None:
    """An entry removed through the admin API: the address's WebSockets open before are
    closed by the time the call answers, with 1008; others stay."""
    assert send(locked.port, request("POST", "/admin/allow", {"Authorization": BEARER},
                                     b'{"cidr":"127.0.0.2"}')).status == 200
    outsider = rawws.connect(locked.port, OUTSIDER)
    insider = rawws.connect(locked.port, ALLOWED)
    try:
        for sock in (outsider, insider):
            rawws.send_text(sock, '{"ping":1}')
            assert rawws.read_frame(sock) == (0x1, b'{"pong":1}')
        assert send(locked.port, request("DELETE", "/admin/allow/127.0.0.2",
                                         {"Authorization": BEARER})).status == 200
        outsider.settimeout(5)
        assert rawws.read_until_close(outsider) == (1008, f"IP {OUTSIDER} is not authorized")
        rawws.send_text(insider, '{"ping":2}')
        insider.settimeout(5)
        assert rawws.read_frame(insider) == (0x1, b'{"pong":2}')
    finally:
        outsider.close()
        insider.close()


# the admin API ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_no_spelling_of_an_admin_path_lets_an_outsider_in(locked: Server, path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        answer = send(locked.port, request(method, path, {"Authorization": BEARER},
                                           b'{"cidr":"0.0.0.0/0"}'), OUTSIDER)
        assert answer.status == 403, (method, path)
    assert get(locked.port, "/getCategory.php", OUTSIDER).status == 403


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_no_spelling_of_an_admin_path_gets_past_the_token(locked: Server, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        for method in ("GET", "POST"):
            answer = send(locked.port, request(method, path, headers, b'{"cidr":"0.0.0.0/0"}'))
            assert answer.status in (401, 404, 405), (method, path, answer.status)
    assert get(locked.port, "/getCategory.php", OUTSIDER).status == 403


@pytest.mark.parametrize("authorization", [
    b"", b"Bearer", b"Bearer ", b"Bearer wrong", ADMIN_TOKEN.encode(),
    b"bearer " + ADMIN_TOKEN.encode(), BEARER.encode()[:-1], BEARER.encode() + b"x",
    b"Bearer \xff\xfe" + ADMIN_TOKEN.encode(), b"Bearer \xc3\x28",
    b"Basic " + ADMIN_TOKEN.encode(), b"Bearer " + b"A" * 8000,
])
def test_the_admin_api_refuses_any_other_token(locked: Server, authorization: bytes) -> None:
    raw = (b"GET /admin/allow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           b"Authorization: " + authorization + b"\r\n\r\n")
    answer = send(locked.port, raw)
    assert answer.status == 401
    assert answer.json()["msg"] == "missing or wrong admin token (Authorization: Bearer ...)"
    assert answer.headers["www-authenticate"] == "Bearer"


def test_the_admin_api_on_its_own_listener(split: tuple[Server, int]) -> None:
    srv, admin_port = split
    for path in [*ADMIN_PATHS, "/admin/allow/127.0.0.1"]:
        for method in ("GET", "POST", "DELETE"):
            answer = send(srv.port, request(method, path, {"Authorization": BEARER},
                                            b'{"cidr":"0.0.0.0/0"}'))
            assert answer.status in (404, 405), (method, path)  # 405: nothing but GET
            assert "admin" not in answer.json()["msg"] or answer.status == 404
    assert get(srv.port, "/getCategory.php", OUTSIDER).status == 403  # nothing was added
    listed = get(admin_port, "/admin/allow", Authorization=BEARER)
    assert listed.status == 200
    assert [e["cidr"] for e in listed.json()["data"]["list"]] == [f"{ALLOWED}/32"]  # type: ignore[index]
    assert get(admin_port, "/admin/allow").status == 401
    assert get(admin_port, "/admin/allow", OUTSIDER, Authorization=BEARER).status == 403
    for path in ("/getCategory.php", "/healthz", "/", "/ws", "/openapi.json"):
        assert get(admin_port, path).status == 404, path
    assert handshake(admin_port, "/ws").status == 404
    added = send(admin_port, request("POST", "/admin/allow", {"Authorization": BEARER},
                                     b'{"cidr":"127.0.0.2"}'))
    assert added.status == 200
    assert get(srv.port, "/getCategory.php", OUTSIDER).status == 200  # in force at once
    assert send(admin_port, request("DELETE", "/admin/allow/127.0.0.2",
                                    {"Authorization": BEARER})).status == 200
    assert get(srv.port, "/getCategory.php", OUTSIDER).status == 403


# what answers give away ---------------------------------------------------------------------

def _giveaways(srv: Server) -> list[str]:
    import aiohttp as aiohttp_module

    src = Path(tickwire.__file__).parent
    return ["Traceback", 'File "', str(src), str(src.parent), sys.prefix, sys.base_prefix,
            str(srv.data_dir), str(srv.data_dir.parent), "aiohttp", "Python/",
            f"Python {sys.version.split()[0]}", sys.version.split()[0],
            aiohttp_module.__version__, tickwire.__version__]


def test_no_answer_names_software_versions_or_files(locked: Server) -> None:
    port = locked.port
    bodies = {
        "ok": [get(port, p) for p in ("/", "/market", "/market/api.js", "/getCategory.php",
                                      "/healthz", "/metrics",
                                      "/openapi.json", "/getQuote.php?code=btcusdt",
                                      "/redis.php?code=btcusdt&time=1m&rows=5",
                                      "/getSymbolList.php?category=4")],
        "refused": [get(port, "/getCategory.php", OUTSIDER), get(port, "/admin/allow"),
                    get(port, "/redis.php?code=btcusdt&time=1y"), get(port, "/nothing"),
                    get(port, "/getQuote.php?code=nosuch"), get(port, "/market/nosuch.js"),
                    send(port, request("DELETE", "/getQuote.php")),
                    send(port, request("POST", "/admin/allow", {"Authorization": BEARER},
                                       b"x" * (MAX_REQUEST_BODY + 1))),
                    send(port, request("POST", "/admin/allow", {"Authorization": BEARER},
                                       b"{not json")),
                    send(port, b"NONSENSE\r\n\r\n"), send(port, b"GET / HTTP/9.9\r\n\r\n"),
                    get(port, "/getQuote.php?code=" + "x" * 9000),
                    get(port, "/", X_Long="y" * 9000),
                    handshake(port, "/ws", headers={"Sec-WebSocket-Version": "99"})],
        "upgraded": [handshake(port, "/ws")],
    }
    giveaways = _giveaways(locked)
    for kind, answers in bodies.items():
        for answer in answers:
            assert answer.headers.get("server") == SERVER, (kind, answer.status)
            text = answer.body.decode("utf-8", "replace")
            for secret in giveaways:
                assert secret not in text, (kind, answer.status, secret)
            if kind == "refused":
                assert 400 <= answer.status < 500, answer.body[:200]
                assert answer.json()["code"] == answer.status


# bounds -------------------------------------------------------------------------------------

def test_request_line_header_and_header_count_are_bounded(locked: Server) -> None:
    port = locked.port
    path = "/getCategory.php?x="
    assert get(port, path + "a" * (MAX_LINE - len(path))).status == 200
    assert get(port, "/getCategory.php", X_Big="b" * MAX_LINE).status == 200
    too_long = f"request line or header too long (at most {MAX_LINE} bytes)"
    long_target = get(port, path + "a" * (MAX_LINE - len(path) + 1))
    assert (long_target.status, long_target.json()["msg"]) == (400, too_long)
    long_header = get(port, "/getCategory.php", X_Big="b" * (MAX_LINE + 1))
    assert (long_header.status, long_header.json()["msg"]) == (400, too_long)
    many = {f"X-H{i}": "v" for i in range(MAX_HEADERS - 2)}  # with Host and Connection
    assert send(port, request("GET", "/getCategory.php", many)).status == 200
    too_many = send(port, request("GET", "/getCategory.php",
                                  {f"X-H{i}": "v" for i in range(MAX_HEADERS - 1)}))
    assert too_many.status == 400
    assert too_many.json()["msg"] == f"too many headers (at most {MAX_HEADERS})"


def test_request_bodies_are_bounded(locked: Server) -> None:
    port = locked.port
    auth = {"Authorization": BEARER}
    padded = json.dumps({"cidr": "127.0.0.9", "note": ""}).encode()
    fits = padded[:-1] + b" " * (MAX_REQUEST_BODY - len(padded)) + b"}"
    assert send(port, request("POST", "/admin/allow", auth, fits)).status == 200
    too_big = send(port, request("POST", "/admin/allow", auth, fits + b" "))
    assert too_big.status == 413
    assert too_big.json()["msg"] == f"request body too large: at most {MAX_REQUEST_BODY} bytes"
    chunks = b"".join(b"%x\r\n%s\r\n" % (8192, b" " * 8192) for _ in range(9)) + b"0\r\n\r\n"
    chunked = send(port, b"POST /admin/allow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   b"Authorization: " + BEARER.encode() + b"\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    assert chunked.status == 413
    long_note = send(port, request("POST", "/admin/allow", auth,
                                   json.dumps({"cidr": "127.0.0.9", "note": "n" * 201}).encode()))
    assert long_note.status == 400 and "at most 200 characters" in long_note.json()["msg"]  # type: ignore[operator]
    long_cidr = send(port, request("POST", "/admin/allow", auth,
                                   json.dumps({"cidr": "1" * 60_000}).encode()))
    assert long_cidr.status == 400 and len(long_cidr.body) < 200
    assert send(port, request("DELETE", "/admin/allow/127.0.0.9", auth)).status == 200


def _frame(opcode: int, payload: bytes, fin: bool = True, length: int | None = None) -> bytes:
    """A masked client frame; `length` claims another size than the payload's."""
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | opcode
    if size < 126:
        header = struct.pack("!BB", first, 0x80 | size)
    elif size < 65_536:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize(("frames", "code"), [
    ([_frame(0x1, b" " * 65_537)], 1009),                                # one frame over
    ([_frame(0x1, b" " * 40_000, fin=False), _frame(0x0, b" " * 40_000)], 1009),  # fragments
    ([_frame(0x1, b"", length=2**62)], 1009),                            # claims 4 EiB
    ([_frame(0x9, b"p" * 126)], 1002),                                   # a ping over 125
    ([_frame(0x9, b"p", fin=False)], 1002),                              # a fragmented ping
])
def test_websocket_frames_are_bounded(locked: Server, frames: list[bytes], code: int) -> None:
    began = time.monotonic()
    sock = rawws.connect(locked.port)
    try:
        sock.settimeout(5)
        for frame in frames:
            sock.sendall(frame)
        closed = rawws.read_until_close(sock)
        assert closed is not None and closed[0] == code
    finally:
        sock.close()
    assert time.monotonic() - began < 5
    asyncio.run(_still_serving(locked))


async def _still_serving(srv: Server) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(srv.ws_url) as ws:
        await ws.send_str('{"Key":"btcusdt"}')
        assert json.loads((await ws.receive(5)).data)["body"]["StockCode"] == "btcusdt"
