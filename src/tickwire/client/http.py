"""HTTP requests with the protocol's manners: rate limits, retries, gzip, errors mapped."""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Container, Mapping, Sequence

import aiohttp
import msgspec

from tickwire.client.backoff import Backoff
from tickwire.client.events import Emitter
from tickwire.client.limits import Key, RateLimiter
from tickwire.client.urls import Urls, http_url, url_list
from tickwire.errors import ConnectionLost, RateLimited, ServerError, TickwireError, error_for

MAX_RETRY_AFTER = 60.0
"""The longest a `Retry-After` is obeyed (s): a server asking for more gets an error sooner."""
MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""The most an answer may hold, decompressed (the protocol's biggest is about 100 KiB): a
server sending more, or a compressed bomb, is a `ServerError`, not the client's memory."""


class _TooBig(Exception):
    pass


class _Envelope(msgspec.Struct):
    code: int = 200
    msg: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


_envelope = msgspec.json.Decoder(_Envelope, strict=False)


def gunzip_if_needed(body: bytes, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """The body, decompressed if it is still gzip: some servers compress without saying so,
    and aiohttp already undid a declared `Content-Encoding`. JSON never starts with 0x1f.
    More than `limit` bytes decompressed raises `_TooBig`."""
    for _ in range(2):
        if body[:2] != b"\x1f\x8b":
            break
        inflate = zlib.decompressobj(wbits=31)  # gzip framing
        try:
            inflated = inflate.decompress(body, limit + 1)
        except zlib.error:
            break
        if len(inflated) > limit:
            raise _TooBig
        if not inflate.eof:
            break  # cut short: not gzip after all, or broken; left as it came
        body = inflated
    return body


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """The answer's body (as aiohttp decompressed it), `_TooBig` past `limit` bytes."""
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(65_536):
        size += len(chunk)
        if size > limit:
            raise _TooBig
        chunks.append(chunk)
    return b"".join(chunks)


def error_message(status: int, body: bytes) -> str:
    """The server's `msg`, else a short description of what came instead."""
    try:
        message = _envelope.decode(body).msg
    except msgspec.DecodeError:
        message = ""
    if message:
        return message
    text = body[:200].decode("utf-8", "replace").strip()
    return f"HTTP {status}" + (f": {text}" if text else "")


def _retry_after(value: str | None) -> float:
    try:
        seconds = float(value) if value else 1.0
    except ValueError:
        seconds = 1.0  # an HTTP date: rare enough that a second is a fine guess
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def unwrap(body: bytes) -> msgspec.Raw:
    """`data` of a `{"code":200,"msg":...,"data":...}` envelope; any other `code` raises."""
    try:
        envelope = _envelope.decode(body)
    except msgspec.DecodeError as exc:
        raise ServerError(f"malformed answer from the server: {exc}", 502) from None
    if envelope.code != 200:
        raise error_for(envelope.code, envelope.msg or f"code {envelope.code}")
    return envelope.data


class HttpTransport:
    """One aiohttp session; `get` and `send` return a 200's body or raise the mapped
    TickwireError.

    `timeout` bounds each request, from connecting to the last byte. A request that times
    out is not retried: the server is there but not answering, and asking again would only
    multiply the wait the caller chose. `base_url` without a scheme means http://.

    With several base URLs (gateways of one deployment) a request goes to the current one;
    one that cannot reach it or gets a 5xx is retried on the next, which becomes current.
    """

    def __init__(self, base_url: Urls, *, timeout: float, retries: int, emit: Emitter,
                 headers: Mapping[str, str] | None = None,
                 limiter: RateLimiter | None = None) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, not {timeout}")
        self.base_urls = url_list(base_url, http_url)
        self._current = 0
        self._headers = {"Accept-Encoding": "gzip, deflate", "User-Agent": "tickwire-sdk",
                         **(headers or {})}
        self.timeout = timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._emit = emit
        self.limiter = limiter or RateLimiter()
        self._session: aiohttp.ClientSession | None = None
        self.rate_limited = 0
        """429s received (each was retried while retries were left)."""

    @property
    def base_url(self) -> str:
        """The URL requests go to now."""
        return self.base_urls[self._current]

    def _next_url(self) -> None:
        self._current = (self._current + 1) % len(self.base_urls)

    def session(self) -> aiohttp.ClientSession:
        """The shared session, made on first use inside the running loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path: str, params: dict[str, str], keys: Sequence[Key],
                  limit: int | None) -> bytes:
        backoff = Backoff(initial=0.25, maximum=5.0)
        attempt = 0
        while True:
            attempt += 1
            url = f"{self.base_url}/{path}"
            try:
                async with self.limiter.hold(keys, limit):
                    status, body, retry_after = await self._fetch("GET", url, params)
            except TimeoutError:
                raise self._no_answer(url) from None
            except (aiohttp.ClientError, OSError) as exc:
                error: TickwireError = _unreachable(url, exc)
                wait = backoff.next()
                self._next_url()
            else:
                if status == 200:
                    return body
                error = _answer_error(status, body, retry_after)
                if isinstance(error, RateLimited):
                    self.rate_limited += 1
                    wait = error.retry_after
                elif status < 500:
                    raise error
                else:
                    wait = backoff.next()
                    self._next_url()
            if attempt > self._retries:
                raise error
            where = f" on {self.base_url}" if len(self.base_urls) > 1 else ""
            self._emit("rate_limited" if isinstance(error, RateLimited) else "retrying",
                       f"{path}: {error.msg}; retrying{where} in {wait:.2f} s "
                       f"(attempt {attempt + 1} of {self._retries + 1})",
                       attempt=attempt + 1, delay=wait, status=error.status)
            await asyncio.sleep(wait)

    async def send(self, method: str, path: str, body: object = None) -> bytes:
        """One request, `body` sent as JSON, neither retried nor rate-limited here (for calls
        that change something): a 200's body, or the mapped TickwireError."""
        return (await self.request(method, path, body))[1]

    async def request(self, method: str, path: str, body: object = None,
                      ok: Container[int] = (200,)) -> tuple[int, bytes]:
        """As `send`, for an answer whose status is in `ok` (a 503 that still has something
        to say): its status and body; any other status is the mapped TickwireError."""
        url = f"{self.base_url}/{path}"
        try:
            status, answer, retry_after = await self._fetch(method, url, {}, body)
        except TimeoutError:
            raise self._no_answer(url) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _unreachable(url, exc) from None
        if status not in ok:
            raise _answer_error(status, answer, retry_after)
        return status, answer

    async def _fetch(self, method: str, url: str, params: dict[str, str],
                     body: object = None) -> tuple[int, bytes, str | None]:
        async with self.session().request(method, url, params=params, json=body,
                                          timeout=self._timeout) as resp:
            try:
                answer = gunzip_if_needed(await _read_bounded(resp))
            except _TooBig:
                raise ServerError(f"{url}: answer over {MAX_ANSWER_BYTES} bytes") from None
            return resp.status, answer, resp.headers.get("Retry-After")

    def _no_answer(self, url: str) -> ConnectionLost:
        return ConnectionLost(f"cannot reach {url}: no answer within {self.timeout:g} s")


def _answer_error(status: int, body: bytes, retry_after: str | None) -> TickwireError:
    """The error for an answer other than 200 (a 429 says how long to wait)."""
    msg = error_message(status, body)
    if status == 429:
        return RateLimited(msg, _retry_after(retry_after))
    return error_for(status, msg)


def _unreachable(url: str, exc: BaseException) -> ConnectionLost:
    return ConnectionLost(f"cannot reach {url}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    """A short reason: `connection refused`, rather than aiohttp's repr."""
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        return os.strerror(exc.os_error.errno).lower()
    text = str(exc)
    return text or type(exc).__name__
