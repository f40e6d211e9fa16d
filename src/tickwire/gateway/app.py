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
from tickwire.gateway.responses import GZIP, json_errors
from tickwire.gateway.state import GATEWAY, Gateway
from tickwire.gateway.ws import Hub, websocket

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
        client_max_size=64 * 1024)
    app[GATEWAY] = gateway
    app[GZIP] = config.server.gzip
    app[_TASKS] = []
    http.add_routes(app)
    admin.add_routes(app)
    ops.add_routes(app, gateway)
    market.add_routes(app)
    app.router.add_get(guards.WS_PATH, websocket)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    return app


async def _follow_allow_list(gateway: Gateway) -> None:
    while True:
        await gateway.engine.allow_changed(ALLOW_LIST_EVERY)
        try:
            gateway.allow_list.apply(await gateway.engine.allow_list())
        except Exception:
            log.exception("reading the allow-list failed")


async def _start(app: web.Application) -> None:
    gateway = app[GATEWAY]
    gateway.allow_list.apply(await gateway.engine.allow_list())
    app[_TASKS].append(asyncio.create_task(gateway.hub.sweep_forever()))
    app[_TASKS].append(asyncio.create_task(_follow_allow_list(gateway)))


async def _stop(app: web.Application) -> None:
    await app[GATEWAY].hub.close_all()
    tasks = app[_TASKS]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
