"""The admin API: the allow-list at run time, behind a bearer token.

`GET /admin/allow`, `POST /admin/allow` `{"cidr": ..., "note": ...}`, `DELETE /admin/allow/<cidr>`.
Off (404) while `access.admin_token` is empty. Changes apply at once and are kept in the store.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any
from urllib.parse import unquote

import msgspec
from aiohttp import web

from tickwire.errors import BadRequest, NotFound, TickwireError
from tickwire.gateway.guards import AllowEntry, client_ip
from tickwire.gateway.state import AppState
from tickwire.wire import encode, envelope

MAX_NOTE = 200


class _NewEntry(msgspec.Struct, forbid_unknown_fields=True):
    cidr: str
    note: str = ""


def _authorize(request: web.Request) -> AppState:
    state: AppState = request.app["state"]
    token = state.config.access.admin_token
    if not token:
        raise NotFound("the admin API is off: set access.admin_token to turn it on")
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, f"Bearer {token}".encode()):
        state.refusals.note("admin_auth", client_ip(request), request.path)
        raise TickwireError("missing or wrong admin token (Authorization: Bearer ...)", 401)
    return state


def _as_json(entry: AllowEntry) -> dict[str, Any]:
    return {"cidr": entry.cidr, "note": entry.note, "source": entry.source,
            "added_ms": entry.added_ms}


def _answer(data: Any) -> web.Response:
    return web.Response(body=envelope(encode(data)), content_type="application/json",
                        charset="utf-8")


async def list_allowed(request: web.Request) -> web.Response:
    state = _authorize(request)
    return _answer({"list": [_as_json(e) for e in state.allow_list.entries()]})


async def add_allowed(request: web.Request) -> web.Response:
    state = _authorize(request)
    try:
        new = msgspec.json.decode(await request.read(), type=_NewEntry)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequest(f'bad body: want {{"cidr": "...", "note": "..."}} ({exc})') from None
    if len(new.note) > MAX_NOTE:
        raise BadRequest(f"bad note: at most {MAX_NOTE} characters")
    try:
        entry = state.allow_list.add(new.cidr, new.note, int(time.time() * 1000))
    except ValueError:
        raise BadRequest(f"bad cidr: {new.cidr[:64]!r} is not an IP address or range") from None
    if entry.source == "admin":
        await asyncio.to_thread(state.store.add_allow, entry.cidr, entry.note)
    return _answer(_as_json(entry))


async def remove_allowed(request: web.Request) -> web.Response:
    state = _authorize(request)
    cidr = unquote(request.match_info["cidr"])
    try:
        entry = state.allow_list.remove(cidr)
    except ValueError:
        raise BadRequest(f"bad cidr: {cidr[:64]!r} is not an IP address or range") from None
    if entry is None:
        raise NotFound(f"not on the allow-list: {cidr[:64]}")
    if entry.source == "config":
        raise TickwireError(f"{entry.cidr} comes from the config file; remove it there", 409)
    await asyncio.to_thread(state.store.remove_allow, entry.cidr)
    return _answer(_as_json(entry))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/allow", list_allowed)
    app.router.add_post("/admin/allow", add_allowed)
    app.router.add_delete("/admin/allow/{cidr:.+}", remove_allowed)
