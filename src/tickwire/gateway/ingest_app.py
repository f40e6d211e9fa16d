"""The HTTP face of an ingest process (`[engine] role = "ingest"`): `/healthz` and
`/metrics` of its feeds, store, recorder and engine, for monitoring and for whoever waits
for it to be ready. It serves no clients; the config's allow-list guards it."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from tickwire.config import Config
from tickwire.engine.base import Engine, IngestStatus
from tickwire.gateway.access import AllowList, client_address, parse_network
from tickwire.gateway.guards import Handler
from tickwire.gateway.ops import engine_metrics, ingest_metrics, state_of
from tickwire.gateway.responses import error_response, json_response
from tickwire.wire import encode

_ENGINE = web.AppKey("engine", Engine)
_REGISTRY = web.AppKey("ingest_registry", CollectorRegistry)


def ingest_app(config: Config, engine: Engine) -> web.Application:
    allowed = AllowList(config.access.allow)
    proxies = [parse_network(t) for t in config.access.trusted_proxies]

    @web.middleware
    async def only_allowed(request: web.Request, handler: Handler) -> web.StreamResponse:
        ip = client_address(request, proxies)
        if not allowed.allows(ip):
            return error_response(request, 403, f"IP {ip} is not authorized")
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status != 404:
                raise
            return error_response(request, 404, f"not found: {request.path[:200]} (an "
                                  "ingest serves no clients: ask a gateway)")

    app = web.Application(middlewares=[only_allowed])
    app[_ENGINE] = engine
    registry = CollectorRegistry()
    collector = app[_COLLECTOR] = _Collector(engine)
    registry.register(collector)  # type: ignore[arg-type]
    app[_REGISTRY] = registry
    app.router.add_get("/", healthz)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def healthz(request: web.Request) -> web.Response:
    engine = request.app[_ENGINE]
    ingest = await engine.status()
    health = engine.health()
    state = state_of(ingest, health)
    answer = {"status": state, "role": "ingest", "engine": health,
              "feeds": ingest.feeds if ingest else [], "store": ingest.store if ingest else {},
              "record": ingest.record if ingest else {},
              "products": len(engine.catalogue().products)}
    return json_response(request, encode(answer), status=503 if state == "starting" else 200)


class _Collector:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.ingest: IngestStatus | None = None

    def collect(self) -> list[Metric]:
        metrics = list(engine_metrics(self._engine.health()))
        if self.ingest is not None:
            metrics += ingest_metrics(self.ingest)
        return metrics


_COLLECTOR = web.AppKey("ingest_collector", _Collector)


async def metrics(request: web.Request) -> web.Response:
    request.app[_COLLECTOR].ingest = await request.app[_ENGINE].status()
    return web.Response(body=generate_latest(request.app[_REGISTRY]),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
