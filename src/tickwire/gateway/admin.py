"""The admin API: the allow-list at run time, behind a bearer token.

`GET /admin/allow`, `POST /admin/allow` `{"cidr": ..., "note": ...}`, `DELETE /admin/allow/<cidr>`.
Off (404) while `access.admin_token` is empty; on a listener of its own with
`access.admin_listen` (then absent from the others). Changes apply at once, WebSockets of an
address no longer allowed are closed, and changes are kept in the store.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import unquote

import msgspec
from aiohttp import web

from tickwire.errors import BadRequest, NotFound, TickwireError
from tickwire.gateway.access import AllowEntry, client_ip, parse_network
from tickwire.gateway.responses import data_response
from tickwire.gateway.state import GATEWAY, Gateway

MAX_NOTE = 200


class _NewEntry(msgspec.Struct, forbid_unknown_fields=True):
    cidr: str
    note: str = ""


def _authorize(request: web.Request) -> Gateway:
    gateway = request.app[GATEWAY]
    token = gateway.config.access.admin_token
    if not token:
        raise NotFound("the admin API is off: set access.admin_token to turn it on")
    given = request.headers.get("Authorization", "")
    if not _same_secret(given, f"Bearer {token}"):
        gateway.refusals.note("admin_auth", client_ip(request), request.path)
        raise TickwireError("missing or wrong admin token (Authorization: Bearer ...)", 401)
    return gateway


def _same_secret(given: str, expected: str) -> bool:
    """Compared in constant time, and as digests of one length, so that neither the time
    taken nor an early stop on length tells how much of a guess was right. (A header is
    read as UTF-8 with its other bytes kept as surrogates: they compare, never raise.)"""
    def digest(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()
    return hmac.compare_digest(digest(given), digest(expected))


def _as_json(entry: AllowEntry) -> dict[str, Any]:
    return {"cidr": entry.cidr, "note": entry.note, "source": entry.source,
            "added_ms": entry.added_ms}


def _normal_cidr(text: str) -> str:
    try:
        return str(parse_network(text))
    except ValueError:
        raise BadRequest(f"bad cidr: {text[:64]!r} is not an IP address or range") from None


async def list_allowed(request: web.Request) -> web.Response:
    gateway = _authorize(request)
    gateway.take_allow_list(await gateway.engine.allow_list())
    return data_response(request, {"list": [_as_json(e) for e in gateway.allow_list.entries()]})


async def add_allowed(request: web.Request) -> web.Response:
    """Store the entry, then apply the store's list with it: in force when this answers."""
    gateway = _authorize(request)
    try:
        new = msgspec.json.decode(await request.read(), type=_NewEntry)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequest(f'bad body: want {{"cidr": "...", "note": "..."}} ({exc})') from None
    if len(new.note) > MAX_NOTE:
        raise BadRequest(f"bad note: at most {MAX_NOTE} characters")
    cidr = _normal_cidr(new.cidr)
    existing = gateway.allow_list.find(cidr)
    if existing is None or existing.source != "config":
        gateway.take_allow_list(await gateway.engine.allow_add(cidr, new.note))
    entry = gateway.allow_list.find(cidr)
    assert entry is not None
    return data_response(request, _as_json(entry))


async def remove_allowed(request: web.Request) -> web.Response:
    """Forget the entry in the store, then apply the store's list without it."""
    gateway = _authorize(request)
    cidr = _normal_cidr(unquote(request.match_info["cidr"]))
    entry = gateway.allow_list.find(cidr)
    if entry is not None and entry.source == "config":
        raise TickwireError(f"{entry.cidr} comes from the config file; remove it there", 409)
    removed, snapshot = await gateway.engine.allow_remove(cidr)
    gateway.take_allow_list(snapshot)
    if not removed:
        raise NotFound(f"not on the allow-list: {cidr[:64]}")
    return data_response(request, _as_json(entry or AllowEntry(cidr, "", "admin")))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/allow", list_allowed)
    app.router.add_post("/admin/allow", add_allowed)
    app.router.add_delete("/admin/allow/{cidr:.+}", remove_allowed)
