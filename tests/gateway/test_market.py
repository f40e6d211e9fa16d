"""The market page's files: hashes in the page, cache headers, gzip, the security headers;
and what the page's own code may not do (parse data as HTML, run inline script)."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tickwire.config import LimitsConfig, WebSocketConfig
from tickwire.gateway import market
from tickwire.gateway.ops import root
from tickwire.gateway.responses import json_errors
from tickwire.models import WINDOW
from tickwire.wire import MAX_PAGE_SIZE

STATIC = Path(str(resources.files("tickwire").joinpath("gateway", "static", "market")))
VENDOR = STATIC / "vendor"
CHART_LIB = "vendor/lightweight-charts.standalone.production.mjs"


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[json_errors])
    market.add_routes(app)
    async with TestClient(TestServer(app), auto_decompress=False) as test_client:
        yield test_client


def test_the_page_names_its_files_by_their_hashes() -> None:
    assets = market.load_assets()
    index = assets["index.html"].body.decode()
    assert "{{" not in index
    for name in ("main.js", "market.css", "favicon.svg"):
        assert f"market/{name}?v={assets[name].version}" in index


def test_a_page_naming_a_file_it_lacks_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<script src="market/x.js?v={{nope.js}}"></script>')
    with pytest.raises(ValueError, match=r"nope\.js"):
        market.load_assets(tmp_path)


async def test_the_page_is_revalidated_and_carries_the_policy(client: TestClient) -> None:
    response = await client.get("/market")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["Content-Security-Policy"] == market.CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"
    again = await client.get("/market", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304
    assert await again.read() == b""


def test_the_policy_allows_this_origin_only() -> None:
    directives = dict(d.strip().split(" ", 1) for d in market.CSP.split(";"))
    assert directives["default-src"] == "'self'"
    for name in ("script-src", "style-src", "connect-src", "font-src", "img-src"):
        assert directives[name] == "'self'", name  # no 'unsafe-inline', no other host
    assert directives["object-src"] == directives["base-uri"] == "'none'"


async def test_a_file_asked_by_its_hash_is_cached_for_good(client: TestClient) -> None:
    version = market.load_assets()["main.js"].version
    hashed = await client.get(f"/market/main.js?v={version}")
    assert hashed.status == 200
    assert hashed.content_type == "text/javascript"
    assert hashed.headers["Cache-Control"] == market.IMMUTABLE
    for query in ("", "?v=0123456789abcdef"):
        plain = await client.get(f"/market/main.js{query}",
                                 headers={"Accept-Encoding": "identity"})
        assert plain.headers["Cache-Control"] == "no-cache"
        assert plain.headers["ETag"] == f'"{version}"'


async def test_text_is_gzipped_for_clients_that_accept_it(client: TestClient) -> None:
    raw = (STATIC / CHART_LIB).read_bytes()
    zipped = await client.get(f"/market/{CHART_LIB}", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    body = await zipped.read()
    assert gzip.decompress(body) == raw and len(body) < len(raw) / 2
    plain = await client.get(f"/market/{CHART_LIB}", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert await plain.read() == raw
    assert plain.headers["ETag"] != zipped.headers["ETag"]
    font = await client.get("/market/fonts/noto-sans-sc-subset.woff2",
                            headers={"Accept-Encoding": "gzip"})
    assert font.content_type == "font/woff2" and "Content-Encoding" not in font.headers


@pytest.mark.parametrize("path", ["/market/nosuch.js", "/market/index.html",
                                  "/market/%2e%2e/catalogue.toml", "/market/fonts"])
async def test_anything_else_under_market_is_not_found(client: TestClient, path: str) -> None:
    response = await client.get(path)
    assert response.status == 404
    assert (await response.json())["code"] == 404


async def test_market_with_a_slash_is_sent_to_the_page(client: TestClient) -> None:
    response = await client.get("/market/", allow_redirects=False)
    assert response.status == 301
    assert response.headers["Location"] == "../market"


def page_code() -> dict[str, str]:
    """The page's own files, not the vendored library."""
    return {p.name: p.read_text(encoding="utf-8") for p in STATIC.glob("*")
            if p.suffix in (".js", ".html", ".css")}


def test_the_page_never_parses_data_as_html() -> None:
    for name, text in page_code().items():
        for call in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                     "eval(", "new Function", "setAttribute('style'"):
            assert call not in text, f"{name} uses {call}"


def test_the_page_has_no_inline_script_or_style() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(" src=" in tag for tag in scripts)
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html)
    assert not re.search(r"(src|href)=\"(https?:)?//", html.replace(
        'href="https://www.tradingview.com/"', ""))  # the attribution link, not a request


def test_the_chart_library_comes_with_its_licence_and_attribution() -> None:
    notice = (VENDOR / "NOTICE").read_text(encoding="utf-8").splitlines()
    version = notice[0].rsplit(" ", 1)[1]
    assert f"Lightweight Charts™ v{version}" in (STATIC / CHART_LIB).read_text()[:300]
    assert "Apache License" in (VENDOR / "LICENSE").read_text()
    footer = (STATIC / "index.html").read_text(encoding="utf-8")
    copyright_line = notice[1].replace(" https://www.tradingview.com/", "")
    assert copyright_line in footer and 'href="https://www.tradingview.com/"' in footer
    assert "SIL OPEN FONT LICENSE" in (STATIC / "fonts" / "OFL.txt").read_text()


async def test_the_root_sends_browsers_to_the_page() -> None:
    app = web.Application()
    app.router.add_get("/", root)
    async with TestClient(TestServer(app)) as test_client:
        response = await test_client.get("/", allow_redirects=False)
        assert response.status == 302
        assert response.headers["Location"] == "market"


def js_constant(module: str, name: str) -> object:
    """A constant of one of the page's modules, an object or number literal, read as JSON."""
    text = (STATIC / module).read_text(encoding="utf-8")
    found = re.search(rf"^export const {name} = ([^;]+);", text, re.M)
    assert found, f"{module} has no {name}"
    literal = re.sub(r"'", '"', re.sub(r"//.*", "", found[1]))
    literal = re.sub(r"([{,]\s*)(\w+):", r'\1"\2":', literal)
    return json.loads(literal)


def test_the_page_knows_the_protocol_s_bounds() -> None:
    """The page's copies of the protocol's numbers (it cannot import them) are the
    server's: its pacing keeps it within the default limits whatever it asks."""
    assert js_constant("api.js", "KLINE_WINDOW") == WINDOW
    assert js_constant("api.js", "SYMBOL_PAGE_SIZE") == MAX_PAGE_SIZE
    limits = LimitsConfig()
    assert js_constant("api.js", "LIMITS") == {
        "quote": limits.quote_per_code, "kline": limits.kline_per_code,
        "category": limits.category, "symbols": limits.symbols}
    max_codes = js_constant("stream.js", "MAX_CODES")
    assert isinstance(max_codes, int) and max_codes < WebSocketConfig().max_codes
