"""`Client`: the same API without async, running an `AsyncClient` on a loop thread.

Every method hands the async one's coroutine to the loop thread and waits for it, so there
is one implementation of everything. Streams are plain iterators; the callback style runs
each callback on a thread of its own subscription, so a slow callback never holds up the
connection's heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from tickwire.client.aio import DEFAULT_TIMEOUT, AsyncClient, Progress, TimeLike
from tickwire.client.backoff import Backoff
from tickwire.client.events import EventHandler, log
from tickwire.client.limits import Limits
from tickwire.client.models import Bars, Category, Quote, Symbol, SymbolPage
from tickwire.client.stream import Stream
from tickwire.client.urls import DEFAULT_HTTP_URL, Urls
from tickwire.errors import UnknownCode

T = TypeVar("T")


class _LoopThread:
    """An event loop running on a daemon thread, and a way to run coroutines on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="tickwire-client", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync Client method was called from its own loop thread "
                               "(an on_event handler?); use AsyncClient there")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()  # Ctrl-C or a timeout: do not leave the work running
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(5)
            if not self._thread.is_alive():
                self.loop.close()


class Client:
    """The synchronous client: the same methods as `AsyncClient`, same arguments, the same
    timeouts and the same `UnknownCode` for unknown codes.

    `on_event` handlers run on the client's loop thread: keep them short.
    """

    def __init__(self, http_url: Urls = DEFAULT_HTTP_URL, ws_url: Urls | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = 3,
                 limits: Limits | None = None, heartbeat: float = 10.0,
                 dead_after: float | None = None, connect_timeout: float = DEFAULT_TIMEOUT,
                 backoff: Backoff | None = None, on_event: EventHandler | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self._thread = _LoopThread()
        self._closed = False

        async def make() -> AsyncClient:
            return AsyncClient(http_url, ws_url, timeout=timeout, retries=retries,
                               limits=limits, heartbeat=heartbeat, dead_after=dead_after,
                               connect_timeout=connect_timeout, backoff=backoff,
                               on_event=on_event, headers=headers)

        try:
            self.aio = self._thread.call(make())
            """The async client underneath, for use on its loop (`client.loop`)."""
        except BaseException:
            self._thread.stop()  # a bad URL or argument: no thread left behind
            raise

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._thread.loop

    @property
    def http_url(self) -> str:
        return self.aio.http_url

    @property
    def ws_url(self) -> str:
        return self.aio.ws_url

    @property
    def connection_state(self) -> str:
        return self.aio.connection_state

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._thread.call(coro, timeout)

    def quote(self, code: str) -> Quote:
        return self._call(self.aio.quote(code))

    def quotes(self, codes: Iterable[str] | str) -> list[Quote]:
        return self._call(self.aio.quotes(_listed(codes)))

    def klines(self, code: str, interval: str = "1m", rows: int = 40,
               end: TimeLike | None = None, *, progress: Progress | None = None) -> Bars:
        return self._call(self.aio.klines(code, interval, rows, end, progress=progress))

    def history(self, code: str, interval: str, start: TimeLike, end: TimeLike | None = None,
                *, progress: Progress | None = None) -> Bars:
        return self._call(self.aio.history(code, interval, start, end, progress=progress))

    def categories(self) -> list[Category]:
        return self._call(self.aio.categories())

    def symbols(self, category: str | int, page: int = 1, page_size: int = 10) -> SymbolPage:
        return self._call(self.aio.symbols(category, page, page_size))

    def all_symbols(self, category: str | int) -> list[Symbol]:
        return self._call(self.aio.all_symbols(category))

    def names(self, codes: Iterable[str] | str) -> dict[str, str]:
        return self._call(self.aio.names(_listed(codes)))

    def stream(self, codes: Iterable[str] | str = (), *, maxsize: int = 10_000) -> SyncStream:
        """Live quotes as a plain iterator: `for quote in client.stream(["btcusdt"])`."""
        wanted = codes if isinstance(codes, str) else list(codes)

        async def open_stream() -> Stream:
            return self.aio.stream(wanted, maxsize=maxsize)

        return SyncStream(self, self._call(open_stream()))

    def subscribe(self, codes: Iterable[str] | str, callback: Callable[[Quote], object], *,
                  timeout: float | None = None) -> SyncSubscription:
        """The callback style: `callback(quote)` on a thread of its own until closed.

        Returns once the server has answered, as `AsyncClient.subscribe()` does: an unknown
        code raises `UnknownCode` and nothing stays subscribed.
        """
        stream = self.stream(codes)
        try:
            stream.ready(timeout)
        except BaseException:
            stream.close()
            raise
        return SyncSubscription(stream, callback)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._call(self.aio.close(), timeout=10)
        self._thread.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncStream:
    """A `Stream` as a plain iterator; codes can change while it runs, from any thread."""

    def __init__(self, client: Client, stream: Stream) -> None:
        self._client = client
        self._stream = stream

    @property
    def codes(self) -> frozenset[str]:
        return self._stream.codes

    @property
    def dropped(self) -> int:
        return self._stream.dropped

    def subscribe(self, codes: Iterable[str] | str, *, wait: bool = False,
                  timeout: float | None = None) -> None:
        """Add codes, as `Stream.subscribe()`."""
        self._client._call(self._stream.subscribe(_listed(codes), wait=wait, timeout=timeout))

    def unsubscribe(self, codes: Iterable[str] | str) -> None:
        self._client._call(self._stream.unsubscribe(_listed(codes)))

    def ready(self, timeout: float | None = None) -> None:
        """Wait for the server's answer to every code, as `Stream.ready()`."""
        self._client._call(self._stream.ready(timeout))

    def get(self, timeout: float | None = None) -> Quote | None:
        """The next quote, or None after `timeout` seconds or at the end of the stream;
        raises as `next()` does (`UnknownCode`, or what ended the stream)."""
        return self._client._call(self._stream.get(timeout))

    def __iter__(self) -> Iterator[Quote]:
        return self

    def __next__(self) -> Quote:
        try:
            return self._client._call(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        if not self._stream.closed and not self._client._closed:
            self._client._call(self._stream.close())

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncSubscription:
    """Calls `callback(quote)` for each quote, on a thread of its own; failures are logged.

    As `Subscription`: `subscribe()` raises `UnknownCode`; a code refused later is logged
    and the others go on.
    """

    def __init__(self, stream: SyncStream, callback: Callable[[Quote], object]) -> None:
        self.stream = stream
        self._callback = callback
        self.error: BaseException | None = None
        """What ended the subscription, if it was not `close()` (e.g. NotAuthorized)."""
        self._thread = threading.Thread(target=self._run, name="tickwire-callback",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                for quote in self.stream:
                    try:
                        self._callback(quote)
                    except Exception:
                        log.exception("quote callback failed", extra={"code": quote.code})
                return
            except UnknownCode:
                continue  # the server_error event logged it; the other codes go on
            except Exception as exc:
                self.error = exc
                log.error("subscription ended: %s", exc)
                return

    @property
    def codes(self) -> frozenset[str]:
        return self.stream.codes

    def subscribe(self, codes: Iterable[str] | str, timeout: float | None = None) -> None:
        """Add codes and wait for the server's answer: `UnknownCode` for those it refuses,
        the others stay subscribed."""
        self.stream.subscribe(codes, wait=True, timeout=timeout)

    def unsubscribe(self, codes: Iterable[str] | str) -> None:
        self.stream.unsubscribe(codes)

    def close(self, timeout: float = 5.0) -> None:
        self.stream.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> SyncSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _listed(codes: Iterable[str] | str) -> list[str] | str:
    return codes if isinstance(codes, str) else list(codes)
