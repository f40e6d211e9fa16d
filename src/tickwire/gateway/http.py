"""The HTTP paths of the protocol: quotes, K-lines, categories, symbol lists.

Each path's query is parsed once (`_query`), by the rate-limit guard where the path is
limited and by the handler, whichever comes first; a bad query is a 400 or 404 before it
is counted against the client's limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

from aiohttp import web

from tickwire.errors import BadRequest, NotFound
from tickwire.gateway.guards import RATE_RULES, RateRule
from tickwire.gateway.responses import data_response, json_response
from tickwire.gateway.state import GATEWAY, Gateway
from tickwire.models import WINDOW
from tickwire.wire import MAX_CODES_PER_QUOTE, MAX_PAGE_SIZE, envelope, split_codes

DEFAULT_ROWS = 40
DEFAULT_PAGE_SIZE = 10
_MAX_PARAM_LENGTH = 2048

_Q = TypeVar("_Q")


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


_PARSED = web.RequestKey("query", object)


def _query(request: web.Request, parse: Callable[[web.Request, Gateway], _Q]) -> _Q:
    """The request's query as `parse` reads it, parsed once per request."""
    parsed = request.get(_PARSED)
    if parsed is None:
        parsed = request[_PARSED] = parse(request, request.app[GATEWAY])
    return parsed  # type: ignore[return-value]


# queries -----------------------------------------------------------------------------------

class QuoteQuery(NamedTuple):
    text: str
    codes: list[str]
    known: list[str]


def _quote_query(request: web.Request, gateway: Gateway) -> QuoteQuery:
    text = _param(request, "code", required=True)
    assert text is not None
    codes = split_codes(text)
    if not codes:
        raise BadRequest("missing parameter: code")
    if len(codes) > MAX_CODES_PER_QUOTE:
        raise BadRequest(f"bad parameter code: at most {MAX_CODES_PER_QUOTE} codes at once")
    return QuoteQuery(text, codes, [c for c in codes if gateway.known(c)])


class KlineQuery(NamedTuple):
    code: str
    interval: str
    rows: int
    end_ms: int | None


def _kline_query(request: web.Request, gateway: Gateway) -> KlineQuery:
    code = _param(request, "code", required=True)
    assert code is not None
    interval = _param(request, "time", required=True)
    if interval not in WINDOW:
        raise BadRequest(f"bad parameter time: {str(interval)[:16]!r} is not one of "
                         "1m 5m 15m 30m 1h 1d 1M")
    rows = min(_whole_number(request, "rows", DEFAULT_ROWS, 1), WINDOW[interval])
    end = _param(request, "end")
    end_ms = None if end is None else _whole_number(request, "end", 0, 0)
    if not gateway.known(code):
        raise NotFound(f"unknown code: {_shown(code)}")
    return KlineQuery(code, interval, rows, end_ms)


class SymbolsQuery(NamedTuple):
    category: str
    page: int
    size: int


def _symbols_query(request: web.Request, gateway: Gateway) -> SymbolsQuery:
    category = _param(request, "category", required=True)
    assert category is not None
    page = _whole_number(request, "page", 1, 1)
    size = min(_whole_number(request, "pageSize", DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE)
    if category not in gateway.engine.catalogue().by_category:
        raise NotFound(f"unknown category: {category[:32]}")
    return SymbolsQuery(category, page, size)


# handlers ----------------------------------------------------------------------------------

async def get_quote(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    query = _query(request, _quote_query)
    found = await gateway.engine.latest(query.known) if query.known else []
    bodies = [body for body in found if body is not None]
    if "," not in query.text:
        if not query.known:
            raise NotFound(f"unknown code: {_shown(query.codes[0])}")
        if not bodies:
            raise NotFound(f"no quote yet for {query.codes[0]}: its market has not traded")
        return json_response(request, envelope(b'{"body":' + bodies[0] + b"}"))
    if not bodies:
        raise NotFound(f"unknown codes: {_shown(query.text)}")
    return json_response(request, envelope(b'{"body":[' + b",".join(bodies) + b"]}"))


async def get_klines(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    query = _query(request, _kline_query)
    bars = await gateway.engine.klines(query.code, query.interval, query.rows, query.end_ms)
    if gateway.config.server.kline_order == "oldest_first":
        bars.reverse()
    return json_response(request, b"[" + b",".join(bars) + b"]")


async def get_categories(request: web.Request) -> web.Response:
    return data_response(request, {"list": request.app[GATEWAY].engine.catalogue().categories})


async def get_symbols(request: web.Request) -> web.Response:
    query = _query(request, _symbols_query)
    products = request.app[GATEWAY].engine.catalogue().by_category[query.category]
    first = (min(query.page, 10**9) - 1) * query.size
    listed = [{"code": p.code, "name": p.name} for p in products[first:first + query.size]]
    return data_response(request, {"total": len(products), "list": listed})


# rate limits -------------------------------------------------------------------------------

def _quote_keys(request: web.Request, gateway: Gateway) -> list[tuple[str, str]]:
    return [(f"quote|{code}", code) for code in _query(request, _quote_query).known]


def _kline_keys(request: web.Request, gateway: Gateway) -> list[tuple[str, str]]:
    code = _query(request, _kline_query).code
    return [(f"kline|{code}", code)]


def _symbols_keys(request: web.Request, gateway: Gateway) -> list[tuple[str, str]]:
    _query(request, _symbols_query)
    return [("symbols", "symbols")]


def _category_keys(request: web.Request, gateway: Gateway) -> list[tuple[str, str]]:
    return [("category", "category")]


RULES = {
    "/getQuote.php": RateRule("quote_per_code", _quote_keys),
    "/redis.php": RateRule("kline_per_code", _kline_keys),
    "/getCategory.php": RateRule("category", _category_keys),
    "/getSymbolList.php": RateRule("symbols", _symbols_keys),
}


def add_routes(app: web.Application) -> None:
    app[RATE_RULES] = RULES
    app.router.add_get("/getQuote.php", get_quote)
    app.router.add_get("/redis.php", get_klines)
    app.router.add_get("/getCategory.php", get_categories)
    app.router.add_get("/getSymbolList.php", get_symbols)

