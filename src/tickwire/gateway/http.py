"""The HTTP paths of the protocol: quotes, K-lines, categories, symbol lists."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tickwire.errors import BadRequest, NotFound
from tickwire.gateway.state import AppState
from tickwire.models import WINDOW
from tickwire.wire import encode, envelope, split_codes

MAX_CODES_PER_QUOTE = 50
DEFAULT_ROWS = 40
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
_MAX_PARAM_LENGTH = 2048
_JSON = "application/json"


def json_response(state: AppState, request: web.Request, body: bytes) -> web.Response:
    response = web.Response(body=body, content_type=_JSON, charset="utf-8")
    if state.config.server.gzip and "gzip" in request.headers.get("Accept-Encoding", ""):
        response.enable_compression()
    return response


def _param(request: web.Request, name: str, required: bool = False) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"missing parameter: {name}")
        return None
    if len(value) > _MAX_PARAM_LENGTH:
        raise BadRequest(f"bad parameter {name}: longer than {_MAX_PARAM_LENGTH} characters")
    return value


def _whole_number(request: web.Request, name: str, default: int, minimum: int) -> int:
    """A whole-number parameter; absent gives `default`; huge values stay huge (callers clamp)."""
    text = request.query.get(name)
    if text is None:
        return default
    if len(text) > _MAX_PARAM_LENGTH:
        raise BadRequest(f"bad parameter {name}: longer than {_MAX_PARAM_LENGTH} characters")
    text = text.strip()
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise BadRequest(f"bad parameter {name}: {text[:32]!r} is not a whole number")
    value = int(digits) if len(digits) <= 18 else 10**18
    if negative:
        value = -value
    if value < minimum:
        raise BadRequest(f"bad parameter {name}: must be at least {minimum}")
    return value


def _shown(code: str) -> str:
    return code if len(code) <= 64 else code[:64] + "..."


async def get_quote(request: web.Request) -> web.Response:
    state: AppState = request.app["state"]
    text = _param(request, "code", required=True)
    assert text is not None
    codes = split_codes(text)
    if not codes:
        raise BadRequest("missing parameter: code")
    if len(codes) > MAX_CODES_PER_QUOTE:
        raise BadRequest(f"bad parameter code: at most {MAX_CODES_PER_QUOTE} codes at once")
    state.limit_quotes(request, [c for c in codes if state.known(c)])
    bodies = [b for b in (state.latest(c) for c in codes if state.known(c)) if b is not None]
    if "," not in text:
        if not state.known(codes[0]):
            raise NotFound(f"unknown code: {_shown(codes[0])}")
        if not bodies:
            raise NotFound(f"no quote yet for {codes[0]}: its market has not traded")
        return json_response(state, request, envelope(b'{"body":' + bodies[0] + b"}"))
    if not bodies:
        raise NotFound(f"unknown codes: {_shown(text)}")
    return json_response(state, request, envelope(b'{"body":[' + b",".join(bodies) + b"]}"))


async def get_klines(request: web.Request) -> web.Response:
    state: AppState = request.app["state"]
    code = _param(request, "code", required=True)
    assert code is not None
    interval = _param(request, "time", required=True)
    if interval not in WINDOW:
        raise BadRequest(f"bad parameter time: {str(interval)[:16]!r} is not one of "
                         "1m 5m 15m 30m 1h 1d 1M")
    rows = min(_whole_number(request, "rows", DEFAULT_ROWS, 1), WINDOW[interval])
    end = _param(request, "end")
    end_ms = None if end is None else _whole_number(request, "end", 0, 0)
    if not state.known(code):
        raise NotFound(f"unknown code: {_shown(code)}")
    state.limit_klines(request, code)
    series = state.market.products[code].series[interval]
    bars, complete = series.newest(rows, end_ms)
    if not complete:
        stored = await asyncio.to_thread(state.store.read_bars, code, interval, rows, end_ms)
        bars = [series.encode(row) for row in stored]
    if state.config.server.kline_order == "oldest_first":
        bars.reverse()
    return json_response(state, request, b"[" + b",".join(bars) + b"]")


async def get_categories(request: web.Request) -> web.Response:
    state: AppState = request.app["state"]
    state.limit_simple(request, "category")
    return json_response(state, request, state.categories_json)


async def get_symbols(request: web.Request) -> web.Response:
    state: AppState = request.app["state"]
    category = _param(request, "category", required=True)
    page = _whole_number(request, "page", 1, 1)
    size = min(_whole_number(request, "pageSize", DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE)
    products = state.catalogue.by_category.get(str(category))
    if products is None:
        raise NotFound(f"unknown category: {str(category)[:32]}")
    state.limit_simple(request, "symbols")
    first = (min(page, 10**9) - 1) * size
    listed = [{"code": p.code, "name": p.name} for p in products[first:first + size]]
    return json_response(state, request, envelope(encode({"total": len(products), "list": listed})))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/getQuote.php", get_quote)
    app.router.add_get("/redis.php", get_klines)
    app.router.add_get("/getCategory.php", get_categories)
    app.router.add_get("/getSymbolList.php", get_symbols)
