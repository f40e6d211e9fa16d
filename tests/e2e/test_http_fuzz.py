"""Any HTTP request to any path, over a bare socket, against a real server: random methods,
paths bent by percent-encoding, query strings of any parameters and values (bytes that are
not UTF-8 among them), headers, bodies. Every answer is under 500, says `Server: tickwire`,
and a refusal is the protocol's JSON error; the server stays up, logs no error, and its
memory comes back. (`test_openapi.py` checks the documented paths' answers in detail.)"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import strategies as st

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.rawhttp import Answer, send
from tests.e2e.server import ADMIN_TOKEN, Server, start_server
from tests.fuzzing import cases, report, run_cases
from tickwire.gateway.responses import SERVER

pytestmark = pytest.mark.fuzz

CASES_PER_PATH = (25, 1000)
PATHS = ["/", "/getQuote.php", "/redis.php", "/getCategory.php", "/getSymbolList.php",
         "/healthz", "/metrics", "/openapi.json", "/admin/allow", "/admin/allow/{cidr}", "/ws",
         "/market", "/market/{asset}", "/{anything}"]
PARAMETERS = ["code", "time", "rows", "end", "category", "page", "pageSize", "errors",
              "callback", "sign"]
KNOWN = ["btcusdt", "ethusdt", "HX_HSI", "fx_seurusd", "nodepth"]
RESERVED = {"host", "connection", "upgrade", "content-length", "transfer-encoding",
            "expect", "te"}
"""Headers the fuzzer sets itself (a random Upgrade would turn the request into a
WebSocket; a random length would leave the server waiting for a body never sent)."""

FUZZED = f"""{GENEROUS_LIMITS}
[access]
admin_token = "{ADMIN_TOKEN}"
"""


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("http-fuzz"),
                       small_config("http_idle_timeout = 5\n" + FUZZED))
    yield srv
    srv.stop()


def _escaped(data: bytes) -> str:
    return urllib.parse.quote_from_bytes(data, safe="")


texts = st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass"))
values = st.one_of(
    st.sampled_from([b"", b"1", b"0", b"-1", b"1m", b"1M", b"5y", b"4", b"1e3", b" 7 ",
                     b"99999999999999999999999", b",,", ",".join(KNOWN).encode()]),
    st.sampled_from(KNOWN).map(str.encode),
    st.integers().map(lambda i: str(i).encode()),
    texts, st.binary(max_size=40),
    st.integers(0, 3000).map(lambda n: b"x" * n),
)
queries = st.lists(st.tuples(st.sampled_from(PARAMETERS).map(str.encode) | texts, values),
                   max_size=6).map(
    lambda pairs: "&".join(f"{_escaped(k)}={_escaped(v)}" for k, v in pairs))
header_names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z").filter(
    lambda name: name.lower() not in RESERVED)
header_values = st.one_of(
    st.sampled_from([f"Bearer {ADMIN_TOKEN}", "Bearer x", "gzip", "127.0.0.2", "::1",
                     "::ffff:127.0.0.1", "websocket", "*/*"]).map(str.encode),
    st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
headers = st.lists(st.tuples(st.sampled_from(["Authorization", "X-Forwarded-For",
                                              "Accept-Encoding", "Accept", "Cookie"])
                             | header_names, header_values), max_size=6)
bodies = st.one_of(st.just(b""), st.binary(max_size=200), st.builds(
    lambda cidr, note: json.dumps({"cidr": cidr, "note": note}).encode(),
    st.sampled_from(["127.0.0.9", "10.0.0.0/8", "::1", "::ffff:127.0.0.9", "nonsense",
                     "300.1.1.1", ""]) | st.text(max_size=20), st.text(max_size=30)))


def requests_to(path: str) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        target = path
        if "{cidr}" in target:
            target = target.replace("{cidr}", draw(st.sampled_from(
                ["127.0.0.9", "127.0.0.9%2F32", "%2e%2e", "::1", "nosuch"]) | texts.map(
                _escaped)))
        elif "{asset}" in target:
            target = target.replace("{asset}", draw(st.sampled_from(
                ["index.html", "api.js", "favicon.svg", "fonts/", "..%2Fopenapi.json",
                 "%2e%2e/%2e%2e/etc/passwd", "api.js%00.html"]) | texts.map(_escaped)))
        elif "{anything}" in target:
            target = "/" + draw(texts.map(_escaped) | st.sampled_from(
                ["%61dmin/allow", "admin%2Fallow", "..%2F..%2Fetc%2Fpasswd", "ws/", "%00"]))
        query = draw(queries)
        method = draw(st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "DELETE", "PUT",
                                       "OPTIONS", "PATCH"]) | st.from_regex(r"\A[A-Z]{1,10}\Z"))
        version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
        body = draw(bodies) if method in ("POST", "PUT", "DELETE", "PATCH") else b""
        lines = [f"{method} {target}{'?' + query if query else ''} HTTP/{version}".encode(),
                 b"Host: tickwire", b"Connection: close",
                 *(f"{name}: ".encode() + value for name, value in draw(headers))]
        if body:
            lines.append(f"Content-Length: {len(body)}".encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + body
    return build()


def check_answer(raw: bytes, answer: Answer) -> None:
    method = raw.split(b" ", 1)[0]
    assert answer.status < 500, (raw[:300], answer.body[:300])
    assert answer.headers.get("server") == SERVER, raw[:300]
    if method == b"HEAD" or not answer.body:
        assert method == b"HEAD" or answer.status in (204, 304), raw[:300]
        return
    if answer.status >= 400:
        error: dict[str, Any] = json.loads(answer.body)
        assert set(error) == {"code", "msg", "data"} and error["code"] == answer.status
        assert isinstance(error["msg"], str) and error["data"] is None
    elif answer.headers.get("content-type", "").startswith("application/json"):
        json.loads(answer.body)


@pytest.mark.parametrize("path", PATHS)
def test_any_request_to_any_path(fuzzed: Server, path: str) -> None:
    rss_before = fuzzed.rss_kib()

    def check(raw: bytes) -> None:
        check_answer(raw, send(fuzzed.port, raw))

    ran = run_cases(requests_to(path), cases(*CASES_PER_PATH), check)
    with urllib.request.urlopen(f"{fuzzed.url}/healthz", timeout=10) as resp:
        assert resp.status == 200
    growth = fuzzed.rss_kib() - rss_before
    report(f"http {path}", cases=ran, rss_growth_kib=growth)
    assert growth < 16 * 1024
    assert fuzzed.errors_logged() == []
