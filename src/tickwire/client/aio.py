"""`AsyncClient`: the whole API of a tickwire server (or the vendor's own service)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime

import msgspec

from tickwire.client.backoff import Backoff
from tickwire.client.events import Emitter, EventHandler
from tickwire.client.http import HttpTransport, unwrap
from tickwire.client.limits import Limits
from tickwire.client.models import (
    Bar,
    Bars,
    Category,
    Quote,
    Symbol,
    SymbolPage,
    decode_bars,
    decode_quote,
)
from tickwire.client.stream import AsyncCallback, Stream, StreamHub, Subscription
from tickwire.client.urls import DEFAULT_HTTP_URL, Urls, url_list, ws_url_for
from tickwire.client.urls import ws_url as checked_ws_url
from tickwire.errors import NotFound, ServerError, UnknownCode, error_for
from tickwire.models import WINDOW
from tickwire.wire import MAX_CODES_PER_QUOTE, MAX_PAGE_SIZE, split_codes

DEFAULT_TIMEOUT = 10.0
"""Seconds the client waits for one answer of the server unless told otherwise."""
MAX_PAGES = 100_000
"""A bound on paging back through history, whatever a server answers."""

Progress = Callable[[float], None]
"""Told the fraction done (0..1) while a long history is fetched."""
TimeLike = int | float | datetime


def to_ms(value: TimeLike) -> int:
    """Unix milliseconds from a datetime (naive means UTC) or from seconds/milliseconds."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)
    number = float(value)
    return int(number * 1000) if number < 10**11 else int(number)  # seconds or already ms


class _QuoteData(msgspec.Struct):
    body: msgspec.Raw = msgspec.Raw(b"null")


class _CategoryData(msgspec.Struct):
    items: list[Category] = msgspec.field(name="list", default_factory=list)


class _SymbolData(msgspec.Struct):
    total: int = 0
    items: list[Symbol] = msgspec.field(name="list", default_factory=list)


class _Error(msgspec.Struct):
    code: int = 0
    msg: str = ""


_quote_data = msgspec.json.Decoder(_QuoteData)
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_categories = msgspec.json.Decoder(_CategoryData, strict=False)
_symbols = msgspec.json.Decoder(_SymbolData, strict=False)
_error = msgspec.json.Decoder(_Error, strict=False)


class AsyncClient:
    """Quotes, K-lines, categories and symbols over HTTP; live quotes over one WebSocket.

    Point `http_url`/`ws_url` at the vendor's addresses and everything works the same (a
    URL without a scheme means http:// and ws://; one that cannot be used is a ValueError).
    Either may be a list: the gateways of one deployment. A request that cannot reach one,
    or gets a 5xx, is retried on the next; the stream reconnects to the next in turn.
    Requests keep to the protocol's rate limits (`limits`) so normal use never sees a 429;
    one that comes anyway, a 5xx or a failure to connect is retried up to `retries` times.
    The stream sends a heartbeat every `heartbeat` s, replaces a connection silent for
    `dead_after` s (two heartbeats), and reconnects with `backoff`; `on_event` is told of
    every connection event (they are logged to `tickwire.client` too). `headers` go with
    every request and the WebSocket handshake (a proxy's credentials, say).

    Nothing waits without a bound. `timeout` (10 s) is the longest the client waits for
    one answer of the server: an HTTP request, from connecting to its last byte (one that
    times out fails at once, `ConnectionLost`, without a retry), or the answer to a
    subscription (`Stream.ready()`, `subscribe()`). `connect_timeout` (10 s) bounds each
    attempt to open the WebSocket. A stream itself waits for quotes as long as it is open,
    reconnecting as needed; `Stream.get(timeout)` bounds one wait.

    Unknown codes are an error everywhere, `UnknownCode` (a `NotFound`) naming them:
    `quote()`/`quotes()` raise it (with the quotes of the known codes in `found`); a stream
    raises it from its next read and goes on with its other codes; `subscribe()` raises it.
    """

    def __init__(self, http_url: Urls = DEFAULT_HTTP_URL, ws_url: Urls | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = 3,
                 limits: Limits | None = None, heartbeat: float = 10.0,
                 dead_after: float | None = None, connect_timeout: float = DEFAULT_TIMEOUT,
                 backoff: Backoff | None = None, on_event: EventHandler | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.limits = limits or Limits()
        self._emit = Emitter(on_event)
        self._http = HttpTransport(http_url, timeout=timeout, retries=retries,
                                   emit=self._emit, headers=headers)
        ws_urls = url_list(ws_url, checked_ws_url) if ws_url else [
            ws_url_for(url) for url in self._http.base_urls]
        self._hub = StreamHub(ws_urls, self._http.session, emit=self._emit,
                              heartbeat=heartbeat, dead_after=dead_after,
                              connect_timeout=connect_timeout, reply_timeout=timeout,
                              backoff=backoff)

    @property
    def http_url(self) -> str:
        """The server's URL that requests go to now (one of `http_url` when a list)."""
        return self._http.base_url

    @property
    def ws_url(self) -> str:
        """The WebSocket URL the stream uses now (one of `ws_url` when a list)."""
        return self._hub.ws_url

    # HTTP ----------------------------------------------------------------------------------

    async def quote(self, code: str) -> Quote:
        """The latest quote of one product; `UnknownCode` if the server does not know it."""
        if not isinstance(code, str):
            raise TypeError(f"quote() takes one code as a str, not {type(code).__name__}; "
                            "use quotes() for several")
        code = code.strip()
        if not code or "," in code:
            raise ValueError(f"quote() takes one code, not {code!r}; use quotes() for several")
        return (await self.quotes([code]))[0]

    async def quotes(self, codes: Iterable[str] | str) -> list[Quote]:
        """The latest quotes in the order asked (a list of codes, or one string with commas).

        Raises `UnknownCode` naming every code the server has no quote for, with the quotes
        of the others in its `found`. More codes than one request carries (50) are asked in
        several requests.
        """
        wanted = split_codes(codes)
        found: list[Quote] = []
        refused: NotFound | None = None
        for i in range(0, len(wanted), MAX_CODES_PER_QUOTE):
            try:
                found.extend(await self._quotes(wanted[i:i + MAX_CODES_PER_QUOTE]))
            except NotFound as exc:  # every code of the request unknown; others may be fine
                refused = exc
        have = {q.code for q in found}
        unknown = [c for c in wanted if c not in have]
        if unknown:
            # one request, all refused: the server's own words (they may say more)
            msg = refused.msg if refused is not None and not found and \
                len(wanted) <= MAX_CODES_PER_QUOTE else ""
            raise UnknownCode(unknown, msg, found)
        return found

    async def _quotes(self, codes: list[str]) -> list[Quote]:
        limit = self.limits.quote_per_code
        body = await self._http.get("getQuote.php", {"code": ",".join(codes)},
                                    [("quote", c) for c in codes], limit)
        with _malformed("quote"):
            data = bytes(_quote_data.decode(bytes(unwrap(body))).body).lstrip()
            if data[:1] == b"[":  # several codes: an array of quote objects
                return [decode_quote(item) for item in _raw_list.decode(data)]
            if data[:1] == b"{":
                return [decode_quote(data)]
        raise NotFound(f"no quote for {','.join(codes)}")

    async def klines(self, code: str, interval: str = "1m", rows: int = 40,
                     end: TimeLike | None = None, *,
                     progress: Progress | None = None) -> Bars:
        """The newest `rows` bars up to `end` (open time <= end), oldest first.

        More rows than one request serves (600 for 1m, 300, 100 for 1M) are fetched page by
        page back through history (tickwire's `end` extension).
        """
        if rows < 1:
            raise ValueError("rows must be at least 1")
        bars = await self._page_back(code, interval, None if end is None else to_ms(end),
                                     rows=rows, progress=progress)
        return Bars(bars[-rows:])

    async def history(self, code: str, interval: str, start: TimeLike,
                      end: TimeLike | None = None, *,
                      progress: Progress | None = None) -> Bars:
        """Every bar with `start <= open time <= end` (end: now), paging back as needed."""
        start_ms = to_ms(start)
        end_ms = None if end is None else to_ms(end)
        bars = await self._page_back(code, interval, end_ms, start_ms=start_ms,
                                     progress=progress)
        return Bars(b for b in bars if b.open_ms >= start_ms)

    async def _page_back(self, code: str, interval: str, end_ms: int | None, *,
                         rows: int | None = None, start_ms: int | None = None,
                         progress: Progress | None = None) -> list[Bar]:
        page_rows = WINDOW.get(interval, 300)
        by_time: dict[int, Bar] = {}
        cursor = end_ms
        top: int | None = end_ms
        for _ in range(MAX_PAGES):
            want = page_rows if rows is None else min(page_rows, rows - len(by_time))
            page = await self._kline_page(code, interval, want, cursor)
            if cursor is not None:
                page = Bars(b for b in page if b.open_ms <= cursor)  # a server without `end`
            fresh = [b for b in page if b.open_ms not in by_time]
            if not fresh:
                break
            for bar in fresh:
                by_time[bar.open_ms] = bar
            oldest = min(b.open_ms for b in fresh)
            if top is None:
                top = max(b.open_ms for b in fresh)
            done = (rows is not None and len(by_time) >= rows) or \
                (start_ms is not None and oldest <= start_ms) or len(page) < want
            if progress is not None:
                progress(1.0 if done else _fraction(len(by_time), rows, top, oldest, start_ms))
            if done:
                break
            cursor = oldest - 1
        return sorted(by_time.values(), key=lambda b: b.open_ms)

    async def _kline_page(self, code: str, interval: str, rows: int,
                          end_ms: int | None) -> Bars:
        params = {"code": code, "time": interval, "rows": str(rows)}
        if end_ms is not None:
            params["end"] = str(end_ms)
        body = await self._http.get("redis.php", params, [("kline", code)],
                                    self.limits.kline_per_code)
        stripped = body.lstrip()
        with _malformed("K-line"):
            if stripped[:1] == b"{":  # an error object where the bare array belongs
                error = _error.decode(stripped)
                raise error_for(error.code or 500, error.msg or "unexpected answer")
            return decode_bars(body)

    async def categories(self) -> list[Category]:
        body = await self._http.get("getCategory.php", {}, [("category",)],
                                    self.limits.category)
        with _malformed("category"):
            return _categories.decode(bytes(unwrap(body))).items

    async def symbols(self, category: str | int, page: int = 1,
                      page_size: int = 10) -> SymbolPage:
        """One page of a category's products (`page` from 1, `page_size` at most 100)."""
        params = {"category": str(category), "page": str(page), "pageSize": str(page_size)}
        body = await self._http.get("getSymbolList.php", params, [("symbols",)],
                                    self.limits.symbols)
        with _malformed("symbol list"):
            data = _symbols.decode(bytes(unwrap(body)))
        return SymbolPage(data.total, data.items, page, page_size)

    async def all_symbols(self, category: str | int) -> list[Symbol]:
        """Every product of a category, page by page."""
        found: list[Symbol] = []
        for page in range(1, MAX_PAGES):
            batch = await self.symbols(category, page, MAX_PAGE_SIZE)
            found.extend(batch.symbols)
            if not batch.symbols or len(found) >= batch.total:
                break
        return found

    async def names(self, codes: Iterable[str] | str) -> dict[str, str]:
        """The product names of `codes` (a list, or one string with commas): `{code: name}`.

        Quotes carry no names; the symbol lists do. This reads the categories, then each
        category's symbol list page by page (100 a page), and stops as soon as every code
        is found, so a few codes of the first categories cost a few requests; each request
        keeps to the rate limits (2 lists a second by default). A code no list has is left
        out of the answer, not an error.
        """
        wanted = set(split_codes(codes))
        found: dict[str, str] = {}
        if not wanted:
            return found
        for category in await self.categories():
            for page in range(1, MAX_PAGES):
                batch = await self.symbols(category.id, page, MAX_PAGE_SIZE)
                found.update((s.code, s.name) for s in batch.symbols if s.code in wanted)
                if len(found) == len(wanted):
                    return found
                if not batch.symbols or page * MAX_PAGE_SIZE >= batch.total:
                    break
        return found

    # streaming -----------------------------------------------------------------------------

    def stream(self, codes: Iterable[str] | str = (), *, maxsize: int = 10_000) -> Stream:
        """Live quotes: `async for quote in client.stream(["btcusdt"])`.

        Use `async with` (or `await stream.close()`) to give the codes back; the stream can
        `subscribe()`/`unsubscribe()` while it runs. An unknown code raises `UnknownCode`
        from the next read, within a round trip to the server; `await stream.ready()`
        waits for the server's answer to every code (and for the connection).
        """
        return self._hub.open(split_codes(codes), maxsize)

    async def subscribe(self, codes: Iterable[str] | str, callback: AsyncCallback, *,
                        timeout: float | None = None) -> Subscription:
        """The callback style: `callback(quote)` for each quote of `codes` until closed.

        Returns once the server has answered (`Stream.ready()`, within `timeout`, the
        client's by default); an unknown code raises `UnknownCode` and nothing stays
        subscribed, as does a server that cannot be reached (`ConnectionLost`).
        """
        stream = self._hub.open(split_codes(codes))
        try:
            await stream.ready(timeout)
        except BaseException:
            await stream.close()
            raise
        return Subscription(stream, callback)

    @property
    def connection_state(self) -> str:
        """idle, connecting, connected, reconnecting, failed or closed."""
        return self._hub.state

    @property
    def rate_limited(self) -> int:
        """429s this client has met (each retried while retries were left)."""
        return self._http.rate_limited

    # lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        await self._hub.close()
        await self._http.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@contextlib.contextmanager
def _malformed(what: str) -> Iterator[None]:
    """An answer that does not decode is the server's fault: a ServerError, not msgspec's."""
    try:
        yield
    except msgspec.DecodeError as exc:
        raise ServerError(f"malformed {what} answer from the server: {exc}", 502) from None


def _fraction(have: int, rows: int | None, top: int | None, oldest: int,
              start_ms: int | None) -> float:
    if rows:
        return min(1.0, have / rows)
    if start_ms is not None and top is not None and top > start_ms:
        return min(1.0, max(0.0, (top - oldest) / (top - start_ms)))
    return 0.0

