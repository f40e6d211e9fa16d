"""Streaming: one WebSocket carries every subscription of a client.

`StreamHub` owns the connection. It opens it when the first code is subscribed, sends the
documented heartbeat `{"ping": ts}` every `heartbeat` seconds, declares the connection dead
when nothing at all (no push, no pong) has come for `dead_after` seconds (two heartbeats by
default), and replaces a dead or dropped connection after a capped, jittered exponential
backoff that resets once a connection stayed healthy. Every reconnect subscribes every code
again, and every step is reported as an `Event` and a log line, never silently.

The connection opts in to error replies (`?errors=1`), so the server answers an unknown code
with `{"code":404,"msg":"unknown code: x"}` at once: the code is dropped from every stream
that asked for it and each raises `UnknownCode` from its next read. The server answers a
connection's messages in order, so a `{"ping":n}` sent after a subscription comes back after
every refusal of it: `ready()` waits for that round trip.

A `Stream` is one consumer's view: its own codes and a bounded queue. Codes are counted
across streams, so the server is asked for a code once, and told to stop only when no
stream wants it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import aiohttp
import msgspec

from tickwire.client.backoff import Backoff
from tickwire.client.events import Emitter, log
from tickwire.client.models import Quote, decode_message
from tickwire.client.urls import with_error_replies
from tickwire.errors import ConnectionLost, TickwireError, UnknownCode, error_for
from tickwire.wire import encode, split_codes

AsyncCallback = Callable[[Quote], Awaitable[None] | None]

CODES_PER_MESSAGE = 100
"""Codes per `Key` message: keeps every frame far below the server's 64 KiB bound."""

DEFAULT_QUEUE = 10_000
"""Quotes a stream holds for a slow reader; past that the oldest are dropped and counted."""

_TERMINAL = {401, 403, 404}
"""Handshake statuses that retrying cannot fix: the streams end with the error."""

_UNKNOWN = "unknown code: "
"""How the server's 404 reply names the code it does not know (PROTOCOL 8)."""


class Stream:
    """Quotes for a set of codes: `async for quote in stream`. Codes can change while it runs.

    The queue is bounded (`maxsize`); a reader that falls that far behind loses the oldest
    quotes, counted in `dropped`. Iteration ends when the stream or its client is closed,
    and raises if the connection cannot be used at all (`NotAuthorized`, `NotFound`).

    A code the server does not know is dropped from the stream, and the next read (`async
    for`, `get()`) raises `UnknownCode` naming it, ahead of any quote still queued; the
    server refuses a code as soon as it is asked, so this comes within a round trip. The
    stream goes on with its other codes: iterate it again to read them.

    Leaving an `async for` keeps the codes subscribed (the stream can be iterated again):
    `close()` it, or use `async with`, to give them back.
    """

    def __init__(self, hub: StreamHub, maxsize: int = DEFAULT_QUEUE) -> None:
        self._hub = hub
        self._queue: deque[Quote] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._codes: set[str] = set()
        self._unknown: list[str] = []
        """Codes the server refused, not yet raised to the reader."""
        self._settling = 0
        """`ready()` calls waiting: refusals are theirs to raise, not a read's."""
        self._error: BaseException | None = None
        self.closed = False
        self.dropped = 0

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(self._codes)

    async def subscribe(self, codes: Iterable[str] | str, *, wait: bool = False,
                        timeout: float | None = None) -> None:
        """Add codes; the server is told at once (or on connecting). Unknown ones come back
        as `UnknownCode` from the next read, or, with `wait`, from this call, which then
        waits for the server's answer as `ready()` does."""
        wanted = split_codes(codes)
        if not wait:
            await self._hub.add(self, wanted)
            return
        with self._holding_refusals():
            await self._hub.add(self, wanted)
            await self._settle(timeout)
        self._raise_refused()

    async def ready(self, timeout: float | None = None) -> None:
        """Wait until the server has answered every code of this stream (one round trip on
        an open connection, waiting first for a connection attempt under way).

        Raises `UnknownCode` for the codes it refused (the others stay subscribed),
        `ConnectionLost` when no connection is open and answering within `timeout` seconds
        (the client's `timeout` by default) or the last attempt failed, and what ended the
        stream if something did. A refusal raised here is not raised again by a read.
        """
        with self._holding_refusals():
            await self._settle(timeout)
        self._raise_refused()

    async def _settle(self, timeout: float | None) -> None:
        if self._error is not None:
            raise self._error
        if not self.closed:
            await self._hub.settle(timeout)

    @contextlib.contextmanager
    def _holding_refusals(self) -> Iterator[None]:
        """While the server's answer is awaited, its refusals are the waiter's to raise, not
        a concurrent read's (a callback subscription reads all the time)."""
        self._settling += 1
        try:
            yield
        finally:
            self._settling -= 1
            self._wake()  # a reader held back meanwhile may have a refusal to raise

    async def unsubscribe(self, codes: Iterable[str] | str) -> None:
        await self._hub.remove(self, split_codes(codes))

    async def close(self) -> None:
        if not self.closed:
            self._end()
            await self._hub.remove(self, list(self._codes))

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Quote:
        while True:
            if not self._settling:
                self._raise_refused()
            if self._queue:
                return self._queue.popleft()
            if self._error is not None:
                raise self._error
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def get(self, timeout: float | None = None) -> Quote | None:
        """The next quote, or None after `timeout` seconds or at the end of the stream;
        raises as a read does (`UnknownCode`, or what ended the stream)."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except (TimeoutError, StopAsyncIteration):
            return None

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _raise_refused(self) -> None:
        """`UnknownCode` for the codes refused since this was last raised, if any."""
        if self._unknown:
            codes, self._unknown = self._unknown, []
            raise UnknownCode(codes)

    # called by the hub ---------------------------------------------------------------------

    def _put(self, quote: Quote) -> None:
        queue = self._queue
        queue.append(quote)
        if len(queue) > self._maxsize:
            queue.popleft()
            self.dropped += 1
        self._wake()

    def _refuse(self, code: str) -> None:
        self._unknown.append(code)
        self._wake()

    def _end(self, error: BaseException | None = None) -> None:
        self.closed = True
        if error is not None and self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class StreamHub:
    """The client's one WebSocket: subscriptions, heartbeat, liveness, reconnects."""

    def __init__(self, ws_urls: list[str], session: Callable[[], aiohttp.ClientSession], *,
                 emit: Emitter, heartbeat: float = 10.0, dead_after: float | None = None,
                 connect_timeout: float = 10.0, reply_timeout: float = 10.0,
                 backoff: Backoff | None = None) -> None:
        if heartbeat <= 0:
            raise ValueError("heartbeat must be > 0")
        if connect_timeout <= 0 or reply_timeout <= 0:
            raise ValueError("connect_timeout and timeout must be > 0 seconds")
        if not ws_urls:
            raise ValueError("no WebSocket URL given")
        self.ws_urls = ws_urls
        """The URLs connected to in turn: after a failed attempt or a lost connection, the
        next one (gateways of one deployment)."""
        self._current = 0
        self._session = session
        self._emit = emit
        self.heartbeat = heartbeat
        self.dead_after = dead_after if dead_after is not None else 2 * heartbeat
        self._connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        """How long `settle()` waits for the server by default (s)."""
        self.backoff = backoff or Backoff()
        self._refs: dict[str, int] = {}
        self._routes: dict[str, set[Stream]] = {}
        self._latest: dict[str, Quote] = {}
        self._streams: set[Stream] = set()
        self._sent: set[str] = set()
        """Codes the open connection has been sent (reset on every connect)."""
        self._background: set[asyncio.Task[None]] = set()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()
        self._closing = False
        self.state = "idle"
        """idle, connecting, connected, reconnecting, failed or closed."""
        self.connects = 0
        self.pongs = 0
        self._failures = 0
        """Connection attempts that failed and connections that ended."""
        self._failure = ""
        """Why the last one did."""
        self._error: TickwireError | None = None
        """What made the hub give up (`failed`)."""
        self._tokens = itertools.count(1)
        self._round_trips: dict[int, asyncio.Future[None]] = {}
        """`settle()` pings waiting for their pong, by the value sent."""

    @property
    def ws_url(self) -> str:
        """The URL of the open connection, or of the next attempt."""
        return self.ws_urls[self._current]

    # subscriptions -------------------------------------------------------------------------

    def open(self, codes: list[str], maxsize: int = DEFAULT_QUEUE) -> Stream:
        """A new stream for `codes`; the server is told in the background."""
        if self._closing:
            raise ConnectionLost("the client is closed")
        stream = Stream(self, maxsize)
        self._streams.add(stream)
        if codes:
            self.register(stream, codes)
            self.sync_soon()
        return stream

    def register(self, stream: Stream, codes: list[str]) -> None:
        """Book `codes` for `stream` (no I/O); `sync()` then tells the server."""
        if stream.closed:
            raise ConnectionLost("the stream is closed")
        for code in codes:
            if code in stream._codes:
                continue
            stream._codes.add(code)
            self._routes.setdefault(code, set()).add(stream)
            self._refs[code] = self._refs.get(code, 0) + 1
            if self._refs[code] > 1 and code in self._latest:
                stream._put(self._latest[code])  # the server sends no second snapshot
        if self._refs:
            self._wanted.set()
        self._start()

    def unregister(self, stream: Stream, codes: list[str]) -> None:
        for code in codes:
            if code not in stream._codes:
                continue
            stream._codes.discard(code)
            routes = self._routes.get(code)
            if routes is not None:
                routes.discard(stream)
                if not routes:
                    del self._routes[code]
            self._refs[code] -= 1
            if not self._refs[code]:
                del self._refs[code]
                self._latest.pop(code, None)
        if stream.closed:
            self._streams.discard(stream)

    async def add(self, stream: Stream, codes: list[str]) -> None:
        self.register(stream, codes)
        await self.sync()

    async def remove(self, stream: Stream, codes: list[str]) -> None:
        self.unregister(stream, codes)
        await self.sync()

    def sync_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.sync())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def sync(self) -> None:
        """Bring the open connection's subscriptions in line with what the streams want.

        A diff, not a log of calls: whatever order subscribes and unsubscribes come in, the
        server ends up with exactly the wanted codes; while down there is nothing to do,
        since a new connection is sent every wanted code.
        """
        async with self._send_lock:
            ws = self._ws
            if ws is None or ws.closed:
                return
            add = [c for c in self._refs if c not in self._sent]
            drop = [c for c in self._sent if c not in self._refs]
            for key, codes in (("Key", add), ("UnKey", drop)):
                for i in range(0, len(codes), CODES_PER_MESSAGE):
                    chunk = codes[i:i + CODES_PER_MESSAGE]
                    try:
                        await ws.send_str(encode({key: ",".join(chunk)}).decode())
                    except (ConnectionError, RuntimeError, aiohttp.ClientError):
                        return  # the reader sees the failure and reconnects
                    if key == "Key":
                        self._sent.update(chunk)
                    else:
                        self._sent.difference_update(chunk)

    async def settle(self, timeout: float | None = None) -> None:
        """Until the server has answered everything sent to it so far: a ping sent after it
        comes back. Waits for a connection attempt under way first; raises ConnectionLost
        when none is open, an attempt fails, or no answer comes within `timeout` seconds."""
        wait = self.reply_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        failures = self._failures
        while (ws := self._ws) is None or ws.closed:
            if self._error is not None:
                raise self._error
            if self._closing:
                raise ConnectionLost("the client is closed")
            if not self._refs:
                return  # nothing asked for: nothing to wait for
            if self._failures != failures or (self.state == "reconnecting"
                                              and self._failure):
                raise ConnectionLost(f"cannot reach {self.ws_url}: {self._failure}")
            if loop.time() >= deadline:
                raise self._no_answer(wait)
            await asyncio.sleep(0.01)
        await self.sync()
        token = next(self._tokens)
        answered = self._round_trips[token] = loop.create_future()
        try:
            async with self._send_lock:
                await ws.send_str(encode({"ping": token}).decode())
            await asyncio.wait_for(answered, max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise self._no_answer(wait) from None
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            raise ConnectionLost(f"connection to {self.ws_url} lost: {_describe(exc)}"
                                 ) from None
        finally:
            self._round_trips.pop(token, None)

    def _no_answer(self, wait: float) -> ConnectionLost:
        return ConnectionLost(f"cannot reach {self.ws_url}: no answer within {wait:g} s")

    def _refuse(self, code: str) -> None:
        """The server does not know `code`: each stream that asked for it drops it and is
        told; no connection asks for it again."""
        for stream in list(self._routes.get(code, ())):
            self.unregister(stream, [code])
            stream._refuse(code)
        self._sent.discard(code)

    # the connection ------------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="tickwire-stream")

    async def _run(self) -> None:
        backoff = self.backoff
        while not self._closing:
            if not self._refs:
                self.state = "idle"
                self._failure = ""  # the next attempt starts afresh
                self._wanted.clear()
                await self._wanted.wait()
                continue
            self.state = "connecting" if not self.connects else "reconnecting"
            self._emit("connecting", f"connecting to {self.ws_url}", attempt=backoff.attempts)
            try:
                ws = await self._connect()
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in _TERMINAL:
                    self._fail(error_for(exc.status, f"WebSocket {self.ws_url} refused: "
                                         f"HTTP {exc.status} {exc.message}"))
                    return
                reason = f"handshake refused: HTTP {exc.status} {exc.message}"
            except TimeoutError:
                reason = f"no answer within {self._connect_timeout:g} s"
            except (aiohttp.ClientError, OSError) as exc:
                reason = _describe(exc)
            else:
                began = time.monotonic()
                reason = await self._use(ws)
                if time.monotonic() - began >= backoff.reset_after:
                    backoff.reset()  # it was healthy: this is a fresh failure
            self._failure = reason
            self._failures += 1
            if self._closing:
                break
            self._current = (self._current + 1) % len(self.ws_urls)
            delay = backoff.next()
            self.state = "reconnecting"
            where = f" to {self.ws_url}" if len(self.ws_urls) > 1 else ""
            self._emit("reconnecting", f"{reason}; reconnecting{where} in {delay:.2f} s "
                       f"(attempt {backoff.attempts})", attempt=backoff.attempts, delay=delay)
            await asyncio.sleep(delay)

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        # aiohttp answers the server's protocol pings itself (autoping); our own liveness
        # check below covers a server that stops answering at all.
        return await asyncio.wait_for(
            self._session().ws_connect(with_error_replies(self.ws_url), autoping=True,
                                       heartbeat=None, max_msg_size=4 * 1024 * 1024),
            self._connect_timeout)

    async def _use(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """Subscribe everything, then read until the connection ends; returns why it did."""
        self.connects += 1
        async with self._send_lock:
            self._ws = ws
            self._sent = set()
        self.state = "connected"
        self._emit("connected", f"connected to {self.ws_url}; subscribing {len(self._refs)} "
                   "codes")
        await self.sync()
        pinger = asyncio.get_running_loop().create_task(self._ping_forever(ws))
        reason, dead = "closed", False
        try:
            reason, dead = await self._read(ws)
            return reason
        finally:
            pinger.cancel()
            self._ws = None  # no lock: a send stuck on a frozen peer must not hold this up
            self._abandon_round_trips(f"connection to {self.ws_url} lost: {reason}")
            with contextlib.suppress(Exception):
                # a clean close frame when the peer can answer; a dead one is cut at once
                await asyncio.wait_for(ws.close(), 0.05 if dead else 1.0)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[str, bool]:
        """Read until the connection ends: (why, whether it was declared dead)."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            left = last + self.dead_after - loop.time()
            try:
                if left <= 0:
                    raise TimeoutError
                message = await ws.receive(timeout=left)
            except TimeoutError:
                reason = (f"connection dead: nothing received for {self.dead_after:g} s "
                          "(no data, no pong)")
                self._emit("dead", reason)
                return reason, True
            last = loop.time()
            kind = message.type
            if kind is aiohttp.WSMsgType.TEXT or kind is aiohttp.WSMsgType.BINARY:
                self._on_message(message.data)
            elif kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                          aiohttp.WSMsgType.CLOSED):
                reason = _close_text(ws, message.extra)
                self._emit("disconnected", reason)
                return reason, False
            elif kind is aiohttp.WSMsgType.ERROR:
                reason = f"connection failed: {_describe(message.data)}"
                self._emit("disconnected", reason)
                return reason, False

    def _on_message(self, data: bytes | str) -> None:
        try:
            message = decode_message(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            self._emit("server_error", f"unreadable message ignored: {exc}")
            return
        quote = message.body
        if quote is not None:
            streams = self._routes.get(quote.code)
            if streams:
                self._latest[quote.code] = quote
                for stream in streams:
                    stream._put(quote)
        elif message.pong is not None:
            self.pongs += 1
            answered = self._round_trips.get(message.pong) \
                if isinstance(message.pong, int) else None
            if answered is not None and not answered.done():
                answered.set_result(None)
        elif message.code:
            self._emit("server_error", f"server says {message.code}: {message.msg}",
                       status=message.code)
            if message.code == 404 and message.msg.startswith(_UNKNOWN):
                self._refuse(message.msg[len(_UNKNOWN):])

    async def _ping_forever(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self.heartbeat)
            async with self._send_lock:
                with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
                    await ws.send_str(f'{{"ping":{int(time.time())}}}')

    def _abandon_round_trips(self, why: str) -> None:
        for answered in self._round_trips.values():
            if not answered.done():
                answered.set_exception(ConnectionLost(why))

    def _fail(self, error: TickwireError) -> None:
        self.state = "failed"
        self._error = error
        self._emit("failed", str(error), status=error.status)
        for stream in list(self._streams):
            stream._end(error)
        self._streams.clear()
        self._routes.clear()
        self._refs.clear()
        self._latest.clear()

    async def close(self) -> None:
        self._closing = True
        self._abandon_round_trips("the client is closed")
        self._wanted.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for stream in list(self._streams):
            stream._end()
        self._streams.clear()
        if self._task is not None and self.state != "closed":
            self._emit("closed", "stream connection closed")
        self.state = "closed"


def _close_text(ws: aiohttp.ClientWebSocketResponse, extra: Any) -> str:
    code = ws.close_code
    if code is None or code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE:
        return "connection lost (no close frame)"
    return f"closed by the server (code {code}" + (f": {extra})" if extra else ")")


def _describe(exc: BaseException | Any) -> str:
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        return f"cannot connect: {os.strerror(exc.os_error.errno).lower()}"
    return str(exc) or type(exc).__name__


class Subscription:
    """The callback style: `callback(quote)` (or `await callback(quote)`) for each quote of a
    stream, in a task of its own. A failing callback is logged and the quotes keep coming.

    `subscribe()` waits for the server's answer, so an unknown code raises `UnknownCode`
    there; one refused later (a code removed from the server's catalogue) is logged and the
    subscription goes on with the others.
    """

    def __init__(self, stream: Stream, callback: AsyncCallback) -> None:
        self.stream = stream
        self._callback = callback
        self._task = asyncio.get_running_loop().create_task(self._run(),
                                                            name="tickwire-callback")

    async def _run(self) -> None:
        while True:
            try:
                async for quote in self.stream:
                    try:
                        result = self._callback(quote)
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        log.exception("quote callback failed", extra={"code": quote.code})
                return
            except UnknownCode:
                continue  # the server_error event logged it; the other codes go on

    @property
    def codes(self) -> frozenset[str]:
        return self.stream.codes

    async def subscribe(self, codes: Iterable[str] | str, timeout: float | None = None) -> None:
        """Add codes and wait for the server's answer (`Stream.ready()`): `UnknownCode`
        for those it refuses, the others stay subscribed."""
        await self.stream.subscribe(codes, wait=True, timeout=timeout)

    async def unsubscribe(self, codes: Iterable[str] | str) -> None:
        await self.stream.unsubscribe(codes)

    async def wait(self) -> None:
        """Until the subscription ends; raises what ended it (e.g. NotAuthorized)."""
        await asyncio.shield(self._task)

    async def close(self) -> None:
        await self.stream.close()
        with contextlib.suppress(Exception):
            await self._task

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
