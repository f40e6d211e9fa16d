"""JSON errors for what aiohttp refuses before any handler runs.

A request line or header over aiohttp's bounds (8190 bytes), or bytes that are not HTTP, are
answered by aiohttp's protocol handler itself, in plain text. PROTOCOL section 3 wants the
protocol's JSON error on every path, so the runner here swaps in a handler that writes it.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from tickwire.gateway.responses import SERVER
from tickwire.wire import error_body

log = logging.getLogger("tickwire.http")

MAX_LINE = 8190
"""Bytes of the request target (path and query) and of each header's name and value
(aiohttp's own bounds, stated here)."""
MAX_HEADERS = 128
"""Header lines of one request."""


def _reason(status: int, exc: BaseException | None) -> str:
    if status == HTTPStatus.REQUEST_URI_TOO_LONG or (
        exc is not None and "Got more than" in str(exc)
    ):
        return f"request line or header too long (at most {MAX_LINE} bytes)"
    if exc is not None and "Too many headers" in str(exc):
        return f"too many headers (at most {MAX_HEADERS})"
    if status >= 500:
        return "internal error"
    return "malformed HTTP request"


class _JsonErrorHandler(RequestHandler):
    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            log.error("error handling request", exc_info=exc)
        else:
            log.debug("refused malformed request", extra={"status": status})
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        response = web.Response(status=status, body=error_body(status, _reason(status, exc)),
                                content_type="application/json", charset="utf-8",
                                headers={hdrs.SERVER: SERVER})
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorAppRunner(web.AppRunner):
    """An AppRunner whose connections answer low-level HTTP errors with the protocol's JSON,
    with the bounds above."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, max_line_size=MAX_LINE, max_field_size=MAX_LINE,
                         max_headers=MAX_HEADERS, **kwargs)

    async def _make_server(self) -> web.Server:
        server: Any = await super()._make_server()
        server.__class__ = _JsonErrorServer
        return server  # type: ignore[no-any-return]
