"""Every answer of the gateway is JSON built here: data in the protocol's envelope, or its
error object with HTTP status = `code` (PROTOCOL section 3)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from tickwire.errors import RateLimited, TickwireError
from tickwire.gateway.access import client_ip
from tickwire.gateway.state import GATEWAY
from tickwire.wire import MAX_REQUEST_BODY, encode, envelope, error_body

log = logging.getLogger("tickwire.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

GZIP = web.AppKey("gzip", bool)
"""Compress answers for clients that accept gzip (`server.gzip`)."""

SERVER = "tickwire"
"""The `Server` header of every answer: the name alone. aiohttp's default names the versions
of Python and aiohttp, which only helps someone matching a server against known flaws."""


async def _name_the_server(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[hdrs.SERVER] = SERVER


def name_the_server(app: web.Application) -> None:
    """Every answer of `app` says `Server: tickwire` (see `SERVER`)."""
    app.on_response_prepare.append(_name_the_server)


def json_response(request: web.Request, body: bytes, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    """Encoded JSON as it is; gzip when the server is set to and the client accepts it."""
    response = web.Response(status=status, body=body, content_type="application/json",
                            charset="utf-8", headers=headers)
    if request.app.get(GZIP) and "gzip" in request.headers.get("Accept-Encoding", ""):
        response.enable_compression()
    return response


def data_response(request: web.Request, data: Any) -> web.Response:
    """`{"code":200,"msg":"success","data":...}` of any encodable value."""
    return json_response(request, envelope(encode(data)))


def error_response(request: web.Request, status: int, msg: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    return json_response(request, error_body(status, msg), status, headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error on every path is the protocol's JSON with status = code."""
    try:
        return await handler(request)
    except RateLimited as exc:
        request.app[GATEWAY].refusals.note("rate_limited", client_ip(request), exc.msg)
        retry = max(1, round(exc.retry_after + 0.499))
        return error_response(request, exc.status, exc.msg, {"Retry-After": str(retry)})
    except TickwireError as exc:
        if exc.status == 400:
            request.app[GATEWAY].refusals.note("bad_request", client_ip(request), exc.msg)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(request, exc.status, exc.msg, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        msg = {404: f"not found: {request.path[:200]}",
               405: f"method {request.method[:16]} not allowed on {request.path[:200]}",
               413: f"request body too large: at most {MAX_REQUEST_BODY} bytes"}
        return error_response(request, exc.status, msg.get(exc.status, exc.reason))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("internal error", extra={"path": request.path[:200]})
        return error_response(request, 500, "internal error")
