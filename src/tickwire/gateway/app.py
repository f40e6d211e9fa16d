"""The gateway as an aiohttp application over an engine: routes, guards, its own tasks."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from tickwire.config import Config
from tickwire.engine.base import Engine
from tickwire.gateway import admin, guards, http, market, ops
from tickwire.gateway.access import AllowList, parse_network
from tickwire.gateway.guards import Refusals
from tickwire.gateway.responses import GZIP, json_errors, name_the_server
from tickwire.gateway.state import GATEWAY, Gateway
from tickwire.gateway.ws import Hub, websocket
from tickwire.wire import MAX_REQUEST_BODY

log = logging.getLogger("tickwire.server")

ALLOW_LIST_EVERY = 1.0
"""Seconds between reads of the stored allow-list, for changes made elsewhere (`tickwire
allow --data-dir`, another gateway), unless the engine announces one sooner; a change made
through this gateway applies at once."""

_TASKS = web.AppKey("tasks", list[asyncio.Task[None]])


def create_app(config: Config, engine: Engine) -> web.Application:
    refusals = Refusals()
    gateway = Gateway(
        config=config, engine=engine, hub=Hub(config.websocket, engine, refusals),
        refusals=refusals, allow_list=AllowList(config.access.allow),
        trusted_proxies=[parse_network(t) for t in config.access.trusted_proxies])
    app = web.Application(
        middlewares=[json_errors, guards.allow_list, guards.ws_cap, guards.rate_limits],
        client_max_size=MAX_REQUEST_BODY)
    app[GATEWAY] = gateway
    app[GZIP] = config.server.gzip
    app[_TASKS] = []
    name_the_server(app)
    http.add_routes(app)
    if not config.access.admin_listen:
        admin.add_routes(app)
    ops.add_routes(app, gateway)
    market.add_routes(app)
    app.router.add_get(guards.WS_PATH, websocket)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    return app


def create_admin_app(app: web.Application) -> web.Application:
    """The admin API alone, for its own listener (`access.admin_listen`): over the gateway
    of `app` (run it beside `app`, which starts and stops what they share), behind the same
    allow-list and the token."""
    admin_app = web.Application(middlewares=[json_errors, guards.allow_list],
                                client_max_size=MAX_REQUEST_BODY)
    admin_app[GATEWAY] = app[GATEWAY]
    name_the_server(admin_app)
    admin.add_routes(admin_app)
    return admin_app


async def _follow_allow_list(gateway: Gateway) -> None:
    while True:
        await gateway.engine.allow_changed(ALLOW_LIST_EVERY)
        try:
            gateway.take_allow_list(await gateway.engine.allow_list())
        except Exception:
            log.exception("reading the allow-list failed")


async def _start(app: web.Application) -> None:
    gateway = app[GATEWAY]
    gateway.take_allow_list(await gateway.engine.allow_list())
    app[_TASKS].append(asyncio.create_task(gateway.hub.sweep_forever()))
    app[_TASKS].append(asyncio.create_task(_follow_allow_list(gateway)))


async def _stop(app: web.Application) -> None:
    await app[GATEWAY].hub.close_all()
    tasks = app[_TASKS]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
