"""Fan-out: how many quote pushes a second one server process delivers, beside the servers a
user would pick instead, in one run.

1,000 WebSocket clients each subscribe to 10 of 100 products. A feed inside each server
process hands over a batch every tick (10 ms) at a set rate: real quote bodies with 10-level
depth from tickwire's own QuoteState (1.2-1.5 KiB frames), each stamped with the hand-over
time `T` (CLOCK_MONOTONIC ns) and the product's update number `N`. Every server gets the same
feed, clients, messages and core; the clients are one C process (`wscount.c`) on the other
core, which reports its own CPU so a reader sees when it is the limit.

The servers (all Python ones on uvloop):

- tickwire: the real objects (`tickwire.server.build`: engine, gateway, guards, Hub), served
  by the runner `tickwire serve` uses; the feed publishes through the engine as the ingest does.
- raw: a bare asyncio protocol, each update framed once, one `transport.write` per delivery.
- batched: a bare asyncio protocol that joins a connection's frames of one tick into one write.
- websockets: `broadcast()` per update. aiohttp: `send_str` per subscriber. picows:
  `transport.send` per subscriber.
- node-ws: Node's `ws`, `ws.send` per subscriber, as its documentation writes it.
- node-corked: Node's `ws`, each frame built once, each subscriber's socket corked per batch.
- bun-publish: `Bun.serve` with `server.publish` per update (uWebSockets underneath).
- bun-send: `Bun.serve`, `ws.send` per subscriber.

Node and Bun are installed by the benchmark's set-up (natives.py, from the npm registry);
without node/npm their rows are skipped with the reason.

Three measurements:

1. saturation: a rate no server keeps up with (8M deliveries/s offered), 3 runs, median of
   the delivered rate (pushes the clients read a second, in a window after a warm-up) and the
   server core's busy microseconds per delivery;
2. overload, tickwire: rates doubling up to the saturation rate give its peak; then 3 runs at
   8 x that peak, each to stay within 10% of it, with bounded memory, each just after a
   run at the rate that gave the peak (read against that run too: the machine drifts);
3. latency at 50,000 deliveries/s: every push checked (N per product and connection), p99.

When a server lags, each tick hands over what is due, up to `--max-lag` seconds of updates
(older ones are skipped and counted as `skipped`): the same rule for every server.

    .venv/bin/python benchmarks/bench_fanout.py            # the full run (about 8 minutes)
    .venv/bin/python benchmarks/bench_fanout.py --quick    # a tiny run for CI
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import benchlib
import msgspec
import natives
from benchlib import CLIENT_CORE, SERVER_CORE, Child, pinned, reply, table

PYTHON_IMPLS = ("tickwire", "tickwire-local", "raw", "batched", "websockets", "aiohttp",
                "picows")
JS_IMPLS = {"node-ws": ("node", "ws"), "node-corked": ("node", "ws-corked"),
            "bun-publish": ("bun", "publish"), "bun-send": ("bun", "send")}
IMPLS = (*PYTHON_IMPLS, *JS_IMPLS)
LABELS = {
    "tickwire": "tickwire",
    "tickwire-local": "tickwire, feed off its core",
    "raw": "asyncio, one write per delivery",
    "batched": "asyncio, a tick's frames in one write",
    "websockets": "websockets broadcast()",
    "aiohttp": "aiohttp send_str per subscriber",
    "picows": "picows transport.send per subscriber",
    "node-ws": "Node ws, ws.send per subscriber",
    "node-corked": "Node ws, frame once, corked batch",
    "bun-publish": "Bun.serve, server.publish per topic",
    "bun-send": "Bun.serve, ws.send per subscriber",
}
T0_MS = 1_763_000_000_000
Batch = list[tuple[str, bytes]]


# the messages ------------------------------------------------------------------------------

def product_codes(count: int) -> list[str]:
    return [f"p{i:03d}" for i in range(count)]


def body_templates(codes: list[str], variants: int = 16) -> list[list[bytes]]:
    """Per product, `variants` real quote bodies (10 levels a side, 5 trades), each cut open
    before its closing brace so that `,"T":<ns>,"N":<seq>}` can be appended."""
    from tickwire.feeds.sim import ProductSim
    from tickwire.market.clock import TimeZone
    from tickwire.market.hours import TradingHours
    from tickwire.market.quotes import QuoteState
    from tickwire.models import Product

    tz = TimeZone("Asia/Shanghai")
    out = []
    for code in codes:
        product = Product(code=code, name=code, category="4", precision=2, depth=10,
                          hours="24/7", price=98250.0, volatility=0.025, lot=0.05,
                          volume_precision=5)
        sim = ProductSim(product, TradingHours("24/7", tz), tz, seed=1)
        quote = QuoteState(product, tz)
        bodies = []
        for k in range(variants + 5):
            quote.apply(sim.step(T0_MS + 200 * k))
            if k >= 5:  # five trades in BS, as a live quote has
                bodies.append(quote.encode()[:-1] + b',"T":')
        out.append(bodies)
    return out


def catalogue_toml(codes: list[str]) -> str:
    lines = ['[[categories]]\nid = "4"\nname = "bench"\n']
    for code in codes:
        lines.append(f'[[products]]\ncode = "{code}"\nname = "{code}"\ncategory = "4"\n'
                     'precision = 2\ndepth = 10\nhours = "24/7"\nprice = 98250.0\n'
                     'volatility = 0.025\nlot = 0.05\nvolume_precision = 5\n')
    return "\n".join(lines)


def push(body: bytes) -> bytes:
    return b'{"body":' + body + b"}"


def frame(payload: bytes) -> bytes:
    """An unmasked text frame, by hand (the asyncio baselines use no WebSocket library)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65_536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


def parse_key(text: str | bytes) -> list[str]:
    message = msgspec.json.decode(text)
    if isinstance(message, dict) and isinstance(message.get("Key"), str):
        return [c.strip() for c in message["Key"].split(",") if c.strip()]
    return []


def write_js_templates(path: Path, codes: list[str]) -> None:
    """The same bodies for the Node and Bun servers, each opened as `{"body":{...,"T":`."""
    bodies = [[b'{"body":' + t for t in per] for per in body_templates(codes)]
    path.write_text(json.dumps({"codes": codes, "bodies": [[b.decode() for b in per]
                                                           for per in bodies]}),
                    encoding="utf-8")


# the Python servers ------------------------------------------------------------------------

class Impl:
    """A server under test: listens, keeps subscriptions, publishes batches."""

    subs: dict[str, Any]

    async def start(self, codes: list[str]) -> int:
        raise NotImplementedError

    def publish(self, batch: Batch) -> Awaitable[None] | None:
        raise NotImplementedError

    def subscribers(self, code: str) -> int:
        return len(self.subs.get(code, ()))

    def subscriptions(self) -> int:
        return sum(len(s) for s in self.subs.values())


class _HandshakeProtocol(asyncio.Protocol):
    """A bare WebSocket server connection: the handshake by hand, `Key` messages read."""

    def __init__(self, subs: dict[str, Any]) -> None:
        self.subs = subs
        self.buffer = b""
        self.open = False
        self.codes: list[str] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for code in self.codes:
            self.subs.get(code, set()).discard(self.target())

    def target(self) -> Any:
        return self.transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if not self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4:]
            key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                       if line.lower().startswith("sec-websocket-key:"))
            accept = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-"
                                                   b"C5AB0DC85B11").digest()).decode()
            self.transport.write(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                                 "\r\n".encode())
            self.open = True
        while len(self.buffer) >= 6:
            size = self.buffer[1] & 0x7F
            start = 2 if size < 126 else 4 if size == 126 else 10
            if size >= 126:
                size = int.from_bytes(self.buffer[2:start], "big")
            end = start + 4 + size
            if len(self.buffer) < end:
                return
            opcode, mask = self.buffer[0] & 0x0F, self.buffer[start:start + 4]
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.buffer[start + 4:end]))
            self.buffer = self.buffer[end:]
            if opcode == 0x1:
                for code in parse_key(payload):
                    if code not in self.codes:
                        self.codes.append(code)
                        self.subs.setdefault(code, set()).add(self.target())
            elif opcode == 0x8:
                self.transport.close()


class RawImpl(Impl):
    """One `transport.write` per delivery."""

    def __init__(self) -> None:
        self.subs: dict[str, set[asyncio.Transport]] = {}

    async def start(self, codes: list[str]) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _HandshakeProtocol(self.subs), "127.0.0.1",
                                          0, backlog=1024)
        return int(server.sockets[0].getsockname()[1])

    def publish(self, batch: Batch) -> None:
        subs = self.subs
        for code, body in batch:
            data = frame(push(body))
            for transport in subs.get(code, ()):
                transport.write(data)
        return None


class _Batched(_HandshakeProtocol):
    def __init__(self, subs: dict[str, Any]) -> None:
        super().__init__(subs)
        self.out: list[bytes] = []

    def target(self) -> Any:
        return self


class BatchedImpl(Impl):
    """The plain way to batch: each frame built once, a connection's frames of one batch
    joined into one `transport.write`."""

    def __init__(self) -> None:
        self.subs: dict[str, set[_Batched]] = {}

    async def start(self, codes: list[str]) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Batched(self.subs), "127.0.0.1", 0,
                                          backlog=1024)
        return int(server.sockets[0].getsockname()[1])

    def publish(self, batch: Batch) -> None:
        subs = self.subs
        dirty = []
        for code, body in batch:
            data = frame(push(body))
            for conn in subs.get(code, ()):
                if not conn.out:
                    dirty.append(conn)
                conn.out.append(data)
        for conn in dirty:
            frames, conn.out = conn.out, []
            assert conn.transport is not None
            conn.transport.write(b"".join(frames))
        return None


class TickwireImpl(Impl):
    """tickwire's own objects: the config, `build`, the runner `serve` uses."""

    def __init__(self) -> None:
        self.subs = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="tickwire-bench-")
        self.feed_pid: int | None = None

    async def start(self, codes: list[str]) -> int:
        from tickwire.gateway.state import GATEWAY
        from tickwire.server import build

        # the benchmark's feed publishes through the engine itself
        server = build(bench_config(Path(self._tmp.name), codes),
                       feeds=[_HandOverFeed(codes)])
        self.server = server
        self.subs = server.app[GATEWAY].hub.subscribers
        self._publish = server.engine.publish
        port = await serve_app(server)
        while not server.ingest or not server.ingest.ready:
            await asyncio.sleep(0.01)
        return port

    def publish(self, batch: Batch) -> None:
        self._publish(batch)


def bench_config(tmp: Path, codes: list[str], **engine: str) -> Any:
    """tickwire's config for the benchmark's products, in `tmp` (`engine` sets `[engine]`)."""
    from tickwire.config import load_config

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "catalogue.toml").write_text(catalogue_toml(codes), encoding="utf-8")
    return load_config(None, {
        "server.data_dir": str(tmp / "data"), "server.catalogue": str(tmp / "catalogue.toml"),
        "access.ws_connections_per_ip": 100_000,
        **{f"engine.{key}": value for key, value in engine.items()},
    }, environ={})


async def serve_app(server: Any) -> int:
    """`server`'s app on a free port, by the runner `tickwire serve` uses."""
    from tickwire.gateway.lowlevel import JsonErrorAppRunner

    return await benchlib.serve_runner(JsonErrorAppRunner(
        server.app, access_log=None, handle_signals=False,
        keepalive_timeout=server.config.server.http_idle_timeout))


class TickwireLocalImpl(TickwireImpl):
    """tickwire as `tickwire cluster --engine local` runs it: this process a gateway (role
    "gateway"); the feed publishes through a local ingest (role "ingest") in a process of its
    own, on the other core (`feed_role`), whose updates come over the ingest's socket."""

    async def start(self, codes: list[str]) -> int:
        from tickwire.gateway.state import GATEWAY
        from tickwire.server import build

        tmp = Path(self._tmp.name)
        socket_path = tmp / "engine.sock"
        self.feed = Child("feed", [sys.executable, str(Path(__file__).resolve()), "--role",
                                   "feed", "--socket", str(socket_path), "--products",
                                   str(len(codes)), "--tick-ms", str(self.tick_ms),
                                   *(["--no-pin"] if self.no_pin else [])])
        self.feed_pid = (await asyncio.to_thread(self.feed.receive))["pid"]
        server = build(bench_config(tmp / "gateway", codes, kind="local", role="gateway",
                                    socket=str(socket_path)))
        self.server = server
        self.subs = server.app[GATEWAY].hub.subscribers
        port = await serve_app(server)
        while not server.engine.health()["ok"] or await server.engine.status() is None:
            await asyncio.sleep(0.01)
        return port

    def publish(self, batch: Batch) -> None:
        raise RuntimeError("the feed runs in its own process (`run_feed`)")

    async def run_feed(self, message: dict[str, Any]) -> dict[str, Any]:
        """The feed process runs the feed, counting deliveries by this gateway's
        subscribers."""
        subscribers = {code: len(subs) for code, subs in self.subs.items()}
        return await asyncio.to_thread(self.feed.ask, {**message, "subscribers": subscribers})


class _Subscribers(Impl):
    """The feed process's view of a gateway elsewhere: it publishes on the ingest's engine
    and counts deliveries by the subscribers the gateway reported."""

    def __init__(self, publish: Any) -> None:
        self.subs = {}
        self.publish = publish  # type: ignore[method-assign]

    def subscribers(self, code: str) -> int:
        return int(self.subs.get(code, 0))


async def feed_role(args: Any) -> None:
    """The ingest of `tickwire-local`: the feed publishing through a local engine's ingest
    on the socket the gateway joins; on the client's core, so off the gateway's."""
    from tickwire.server import build

    benchlib.pin_self(CLIENT_CORE, not args.no_pin)
    codes = product_codes(args.products)
    tmp = tempfile.TemporaryDirectory(prefix="tickwire-bench-feed-")
    server = build(bench_config(Path(tmp.name), codes, kind="local", role="ingest",
                                socket=args.socket), feeds=[_HandOverFeed(codes)])
    await serve_app(server)  # starts the engine (its socket) and the ingest
    impl = _Subscribers(server.engine.publish)
    feed = Feed(impl, codes, args.tick_ms / 1000)
    reply({"pid": os.getpid()})

    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        if message["cmd"] == "run":
            impl.subs = message["subscribers"]
            return await feed.run(message["rate"], message["seconds"],
                                  int(message.get("offset", 0)), message["max_lag"])
        raise ValueError(f"unknown command {message}")

    await benchlib.serve_commands(handle)
    tmp.cleanup()


class _HandOverFeed:
    """Stands in for tickwire's feeds: live at once; the benchmark publishes on the engine."""

    name = "bench"

    def __init__(self, codes: list[str]) -> None:
        from tickwire.feeds.base import FeedState

        self.codes = codes
        self.state = FeedState.LIVE
        self.error: str | None = None

    async def run(self, sink: Any) -> None:
        await asyncio.Event().wait()

    def status(self) -> dict[str, object]:
        return {"kind": self.name}


class WebsocketsImpl(Impl):
    def __init__(self) -> None:
        self.subs: dict[str, set[Any]] = {}

    async def start(self, codes: list[str]) -> int:
        from websockets.asyncio.server import broadcast, serve

        self._broadcast = broadcast

        async def handler(ws: Any) -> None:
            mine: list[str] = []
            try:
                async for message in ws:
                    for code in parse_key(message):
                        if code not in mine:
                            mine.append(code)
                            self.subs.setdefault(code, set()).add(ws)
            finally:
                for code in mine:
                    self.subs[code].discard(ws)

        server = await serve(handler, "127.0.0.1", 0, compression=None, backlog=1024)
        return int(next(iter(server.sockets)).getsockname()[1])

    def publish(self, batch: Batch) -> None:
        subs, broadcast = self.subs, self._broadcast
        for code, body in batch:
            broadcast(subs.get(code, ()), push(body), text=True)


class AiohttpImpl(Impl):
    def __init__(self) -> None:
        self.subs: dict[str, set[Any]] = {}

    async def start(self, codes: list[str]) -> int:
        from aiohttp import WSMsgType, web

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            mine: list[str] = []
            try:
                async for msg in ws:
                    if msg.type == WSMsgType.TEXT:
                        for code in parse_key(msg.data):
                            if code not in mine:
                                mine.append(code)
                                self.subs.setdefault(code, set()).add(ws)
            finally:
                for code in mine:
                    self.subs[code].discard(ws)
            return ws

        app = web.Application()
        app.router.add_get("/ws", handler)
        return await benchlib.serve_aiohttp(app)

    async def publish(self, batch: Batch) -> None:
        subs = self.subs
        for code, body in batch:
            text = push(body).decode()
            for ws in list(subs.get(code, ())):
                await ws.send_str(text)


class PicowsImpl(Impl):
    """picows (a Cython WebSocket library): `transport.send` per subscriber."""

    def __init__(self) -> None:
        self.subs: dict[str, set[Any]] = {}

    async def start(self, codes: list[str]) -> int:
        from picows import WSListener, WSMsgType, ws_create_server

        subs = self.subs
        self._text = WSMsgType.TEXT

        class Listener(WSListener):  # type: ignore[misc]
            def __init__(self) -> None:
                self.mine: list[str] = []

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type == WSMsgType.TEXT:
                    for code in parse_key(frame.get_payload_as_bytes()):
                        if code not in self.mine:
                            self.mine.append(code)
                            subs.setdefault(code, set()).add(transport)
                elif frame.msg_type == WSMsgType.CLOSE:
                    transport.disconnect()

            def on_ws_disconnected(self, transport: Any) -> None:
                for code in self.mine:
                    subs[code].discard(transport)

        server = await ws_create_server(lambda request: Listener(), "127.0.0.1", 0,
                                        backlog=1024)
        return int(server.sockets[0].getsockname()[1])

    def publish(self, batch: Batch) -> None:
        subs, text = self.subs, self._text
        for code, body in batch:
            message = push(body)
            for transport in subs.get(code, ()):
                transport.send(text, message)


def make_impl(name: str) -> Impl:
    return {"raw": RawImpl, "batched": BatchedImpl, "tickwire": TickwireImpl,
            "tickwire-local": TickwireLocalImpl, "websockets": WebsocketsImpl,
            "aiohttp": AiohttpImpl, "picows": PicowsImpl}[name]()


# the Python servers' process ---------------------------------------------------------------

class Feed:
    """Hands over updates at a set rate in batches every tick, stamping each body. The Node
    and Bun servers (fanout_server.cjs) run the same loop."""

    def __init__(self, impl: Impl, codes: list[str], tick: float) -> None:
        self.impl = impl
        self.codes = codes
        self.templates = body_templates(codes)
        self.seqs = [0] * len(codes)
        self.tick = tick
        self.next_product = 0

    async def run(self, rate: float, seconds: float, offset: int = 0, max_lag: float = 0.1
                  ) -> dict[str, Any]:
        """Each tick: the updates due at `rate`, at most `max_lag` seconds of them (older
        ones are skipped and counted), until `seconds` have passed."""
        loop = asyncio.get_running_loop()
        impl, codes, templates, seqs = self.impl, self.codes, self.templates, self.seqs
        count, variants = len(codes), len(templates[0])
        max_batch = max(1, round(rate * max_lag))
        sent = deliveries = batches = largest = skipped = 0
        lag_max = 0.0
        building = 0.0
        """Seconds spent making the batches (the bodies stamped): the feed's own work, on
        the server's core like the server's."""
        cpu0 = _cpu()
        start = loop.time()
        end = start + seconds
        next_tick = start
        while True:
            next_tick += self.tick
            delay = next_tick - loop.time()
            await asyncio.sleep(delay if delay > 0 else 0)
            now = loop.time()
            if now >= end:
                break
            lag_max = max(lag_max, now - next_tick)
            due = int((now - start) * rate) + 1
            if due <= sent:
                continue
            if due - sent > max_batch:
                skipped += due - sent - max_batch
                sent = due - max_batch
            began = time.perf_counter()
            stamp = time.monotonic_ns() + offset
            batch = []
            for _ in range(due - sent):
                p = self.next_product
                self.next_product = (p + 1) % count
                seq = seqs[p] = seqs[p] + 1
                code = codes[p]
                batch.append((code, templates[p][seq % variants] + b'%d,"N":%d}' % (stamp, seq)))
                deliveries += impl.subscribers(code)
            building += time.perf_counter() - began
            result = impl.publish(batch)
            if result is not None:
                await result
            batches += 1
            largest = max(largest, len(batch))
            sent = due
        elapsed = loop.time() - start
        return {"updates": sent - skipped, "deliveries": deliveries, "elapsed": elapsed,
                "skipped": skipped, "lag_max": lag_max,
                "kept_pace": skipped == 0 and lag_max <= 0.05,
                "server_cpu": 100 * (_cpu() - cpu0) / elapsed, "batches": batches,
                "feed_share": 100 * building / elapsed,
                "largest_batch": largest}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def server_role(args: Any) -> None:
    logging.getLogger("websockets").setLevel(logging.CRITICAL)  # clients leave by aborting
    benchlib.raise_open_files(args.clients_max + 1000)
    codes = product_codes(args.products)
    impl = make_impl(args.impl)
    if isinstance(impl, TickwireLocalImpl):
        impl.tick_ms, impl.no_pin = args.tick_ms, args.no_pin
    port = await impl.start(codes)
    feed = Feed(impl, codes, args.tick_ms / 1000)
    body_bytes = [len(push(t + b'1763000000000000000,"N":1}')) for t in feed.templates[0]]
    feed_pid = impl.feed_pid if isinstance(impl, TickwireImpl) else None
    reply({"port": port, "pid": os.getpid(), "message_bytes": sum(body_bytes) / len(body_bytes),
           "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
           "feed_pid": feed_pid})

    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        if message["cmd"] == "status":
            return {"subscriptions": impl.subscriptions()}
        if message["cmd"] == "clock":
            return {"now": str(time.monotonic_ns())}
        if message["cmd"] == "run":
            if isinstance(impl, TickwireLocalImpl):
                return await impl.run_feed(message)
            return await feed.run(message["rate"], message["seconds"],
                                  int(message.get("offset", 0)), message["max_lag"])
        raise ValueError(f"unknown command {message}")

    await benchlib.serve_commands(handle)


# the conductor -----------------------------------------------------------------------------

class Skip(Exception):
    """A server that cannot run on this machine; the message says why."""


def server_command(args: Any, impl: str, clients: int, templates: Path) -> list[str]:
    common = ["--tick-ms", str(args.tick_ms)]
    if impl in PYTHON_IMPLS:
        return [sys.executable, str(Path(__file__).resolve()), "--role", "server", "--impl",
                impl, "--clients-max", str(clients), "--products", str(args.products), *common,
                *(["--no-pin"] if args.no_pin else [])]
    runtime, mode = JS_IMPLS[impl]
    found = natives.node() if runtime == "node" else natives.bun()
    if found.path is None:
        raise Skip(found.reason)
    modules = natives.npm_modules().path
    return [str(found.path), str(Path(__file__).with_name("fanout_server.cjs")), "--mode", mode,
            "--templates", str(templates), "--modules", str(modules), *common]


class Run:
    """One server with the C clients: start both processes, measure."""

    def __init__(self, args: Any, impl: str, clients: int,
                 templates: Path | None = None) -> None:
        self.args, self.impl, self.clients = args, impl, clients
        self.server = Child(f"{impl}-server", pinned(
            server_command(args, impl, clients, templates or Path("-")), SERVER_CORE,
            not args.no_pin))
        hello = self.server.receive()
        self.port, self.message_bytes, self.loop = hello["port"], hello["message_bytes"], \
            hello["loop"]
        self.offset = self._clock_offset()
        client = natives.wscount()
        assert client.path is not None
        self.client = Child(f"{impl}-clients", pinned(
            [str(client.path), "--port", str(self.port), "--count", str(clients),
             "--per-client", str(args.codes_per_client),
             "--codes", ",".join(product_codes(args.products)), "--seed", str(args.seed)],
            CLIENT_CORE, not args.no_pin))
        connected = self.client.receive()["connected"]
        if connected < clients:
            raise RuntimeError(f"{impl}: only {connected} of {clients} clients connected")
        want = clients * args.codes_per_client
        deadline = time.monotonic() + 60
        while self.server.ask({"cmd": "status"})["subscriptions"] < want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{impl}: clients did not all subscribe")
            time.sleep(0.05)
        pids = {"server": self.server.pid, "client": self.client.pid}
        if hello.get("feed_pid"):
            pids["feed"] = hello["feed_pid"]  # the feed's own process (tickwire-local)
        self.meter = benchlib.CpuMeter(pids)

    def _clock_offset(self) -> int:
        """What to add to the server's clock to read CLOCK_MONOTONIC (Bun's hrtime starts at
        the process's start); the best of five round trips."""
        best: tuple[int, int] | None = None
        for _ in range(5):
            before = time.monotonic_ns()
            theirs = int(self.server.ask({"cmd": "clock"})["now"])
            after = time.monotonic_ns()
            if best is None or after - before < best[0]:
                best = (after - before, (before + after) // 2 - theirs)
        assert best is not None
        return best[1] if abs(best[1]) > 1_000_000 else 0

    def saturate(self, rate: float, seconds: float, label: str) -> dict[str, Any]:
        """Offer `rate` deliveries/s; what the clients read a second after a warm-up."""
        args = self.args
        for attempt in range(args.retries + 1):
            self.quiesce()
            self.server.send({"cmd": "run", "rate": rate / self.per_update,
                              "seconds": args.warmup + seconds + 0.2, "offset": self.offset,
                              "max_lag": args.max_lag})
            time.sleep(args.warmup)
            self.client.ask({"cmd": "reset"})
            self.meter.reset()
            rss = benchlib.rss_bytes(self.server.pid)
            time.sleep(seconds)
            cpu = self.meter.read()
            rss = max(rss, benchlib.rss_bytes(self.server.pid))
            got = self.client.ask({"cmd": "report", "expect": 0, "timeout": 0})
            fed = self.server.receive()
            row = self._row(label, rate, fed, got, cpu, rss)
            row["ok"] = got["closed"] == 0 and got["invalid"] == 0 and got["reordered"] == 0
            self._print(row)
            if row["others"] <= 15 or attempt >= args.retries or args.quick:
                return row
            self._noisy(row)
        raise AssertionError("unreachable")

    def step(self, rate: float, seconds: float, check_every: int = 1) -> dict[str, Any]:
        """One step at a fixed rate with every push counted, flat (as bench_redis.py reads
        it; the C clients check every push whatever `check_every` says)."""
        row = self.latency(rate, seconds, "step")
        fed, got = row["fed"], row["clients"]
        return {**fed, **got, "deliveries_per_s": fed["deliveries"] / fed["elapsed"],
                "server_cpu": row["server_cpu"], "client_cpu": row["client_cpu"],
                "others": row["others"], "lost": fed["deliveries"] - got["received"]}

    def latency(self, rate: float, seconds: float, label: str = "latency") -> dict[str, Any]:
        """Offer `rate`; every push must arrive, in order, checked by the clients."""
        args = self.args
        retries = getattr(args, "retries", 0)  # bench_redis.py's arguments have none
        for attempt in range(retries + 1):
            self.quiesce()
            self.client.ask({"cmd": "reset"})
            self.meter.reset()
            fed = self.server.ask({"cmd": "run", "rate": rate / self.per_update,
                                   "seconds": seconds, "offset": self.offset,
                                   "max_lag": getattr(args, "max_lag", 0.1)})
            cpu = self.meter.read()
            got = self.client.ask({"cmd": "report", "expect": fed["deliveries"],
                                   "timeout": 3.0})
            row = self._row(label, rate, fed, got, cpu, benchlib.rss_bytes(self.server.pid))
            row["ok"] = (got["missed"] == 0 and got["reordered"] == 0 and got["invalid"] == 0
                         and got["closed"] == 0 and got["received"] == fed["deliveries"]
                         and fed["kept_pace"])
            self._print(row)
            if row["others"] <= 15 or attempt >= retries or args.quick:
                return row
            self._noisy(row)
        raise AssertionError("unreachable")

    def quiesce(self, timeout: float = 15.0) -> None:
        """Wait until the clients read nothing more (a lagging server's backlog of the last
        run is not counted in the next)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.client.ask({"cmd": "reset"})
            time.sleep(0.25)
            if self.client.ask({"cmd": "report", "expect": 0, "timeout": 0})["received"] == 0:
                return

    @property
    def per_update(self) -> float:
        return self.clients * self.args.codes_per_client / self.args.products

    def _row(self, label: str, offered: float, fed: dict[str, Any], got: dict[str, Any],
             cpu: dict[str, float], rss: int) -> dict[str, Any]:
        delivered = got["received"] / max(got["seconds"], 1e-9)
        core = cpu.get(f"core{SERVER_CORE}_busy", 0.0) if benchlib.can_pin() and \
            not self.args.no_pin else cpu["server_cpu"]
        return {"label": label, "offered": offered, "delivered_per_s": delivered,
                "server_core_busy": core, "server_cpu": cpu["server_cpu"],
                "client_core_busy": cpu.get(f"core{CLIENT_CORE}_busy"),
                "client_cpu": cpu["client_cpu"], "feed_cpu": cpu.get("feed_cpu"),
                "others": cpu["others"],
                "us_per_delivery": core * 1e4 / delivered if delivered else None,
                "process_us_per_delivery": cpu["server_cpu"] * 1e4 / delivered
                if delivered else None,
                "server_rss": rss, "fed": fed, "clients": got}

    def _print(self, row: dict[str, Any]) -> None:
        got, fed = row["clients"], row["fed"]
        print(f"  {self.impl:12s} {row['label']:9s} offered {row['offered']:>10,.0f}/s "
              f"got {row['delivered_per_s']:>10,.0f}/s p99 {got['p99_ms']:8.2f} ms "
              f"core {row['server_core_busy']:3.0f}% client {row['client_cpu']:3.0f}% "
              + (f"(its core {row['client_core_busy']:3.0f}%) "
                 if row.get("client_core_busy") is not None else "")
              + (f"feed {row['feed_cpu']:3.0f}% " if row.get("feed_cpu") is not None else "") +
              f"other {row['others']:3.0f}% skipped {fed['skipped']:,} "
              f"missed {got['missed']:,} {'ok' if row['ok'] else 'FAIL'}", flush=True)

    def _noisy(self, row: dict[str, Any]) -> None:
        print(f"  (other work on the machine took {row['others']:.0f}% of a core: "
              "measuring again)", flush=True)
        benchlib.wait_for_quiet(patience=30)

    def close(self) -> None:
        self.client.close()
        self.server.close()


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rows, key=lambda r: r["delivered_per_s"])
    return ordered[len(ordered) // 2]


def measure(args: Any, impl: str, templates: Path) -> dict[str, Any]:
    run = Run(args, impl, args.clients, templates)
    outcome: dict[str, Any] = {"label": LABELS[impl], "runtime": run.loop,
                               "message_bytes": run.message_bytes}
    with benchlib.stopping(run):
        saturation = [run.saturate(args.saturate, args.seconds, "saturate")
                      for _ in range(args.runs)]
        outcome["saturation"] = saturation
        outcome["median"] = median_row(saturation)
        if impl in ("tickwire", "tickwire-local"):
            outcome["overload"] = overload(args, run, saturation)
        outcome["latency"] = run.latency(args.latency_rate, args.latency_seconds)
    return outcome


def overload(args: Any, run: Run, saturation: list[dict[str, Any]]) -> dict[str, Any]:
    """tickwire's peak over doubling rates (and the saturation runs), then `runs` runs at
    8 x that peak, each just after a run at the rate that gave the peak (`paired`): the
    machine's speed drifts by more than 10% over minutes, and the highest of several runs
    is a high estimate of the peak, so each 8 x run is also read against its pair."""
    ramp = []
    rate = args.ramp_from
    while rate < args.saturate:
        ramp.append(run.saturate(rate, args.seconds, "ramp"))
        rate *= 2
    best = max([*ramp, *saturation], key=lambda r: r["delivered_per_s"])
    peak, peak_offered = best["delivered_per_s"], best["offered"]
    offered = 8 * peak
    runs, paired = [], []
    for _ in range(args.runs):
        pair = run.saturate(peak_offered, args.seconds, "at peak")
        over = run.saturate(offered, args.seconds, "8x peak")
        over["x_pair"] = over["delivered_per_s"] / max(pair["delivered_per_s"], 1e-9)
        paired.append(pair)
        runs.append(over)
    return {"ramp": ramp, "peak": peak, "peak_offered": peak_offered, "offered": offered,
            "runs": runs, "paired": paired}


def conduct(args: Any) -> None:
    if args.quick:
        args.clients, args.seconds, args.warmup, args.runs = 20, 0.4, 0.2, 1
        args.saturate, args.ramp_from = 40_000.0, 20_000.0
        args.latency_rate, args.latency_seconds = 2_000.0, 0.4
    client = natives.wscount()
    if client.path is None:
        raise SystemExit(f"the C counting client cannot be built: {client.reason}")
    impls = args.impls or list(IMPLS)
    pin = benchlib.can_pin() and not args.no_pin
    print(f"fan-out: {args.clients:,} clients, {args.codes_per_client} of {args.products} "
          f"products each, tick {args.tick_ms:g} ms; saturation at {args.saturate:,.0f} "
          f"deliveries/s offered, {args.runs} x {args.seconds:g} s; latency at "
          f"{args.latency_rate:,.0f}/s; server on core {SERVER_CORE}, clients on core "
          f"{CLIENT_CORE} ({'pinned' if pin else 'not pinned'})", flush=True)
    background = benchlib.wait_for_quiet(patience=0 if args.quick else 120)
    results: dict[str, Any] = {"background_busy": background, "load_average": os.getloadavg(),
                               "settings": {k: v for k, v in vars(args).items()
                                            if k not in ("out", "role", "impl")},
                               "runs": {}, "skipped": {}}
    results["settings"]["out"] = str(args.out)
    results["settings"]["pinned"] = pin
    versions = {"wscount": "gcc -O2"}
    for name, found in (("node", natives.node()), ("bun", natives.bun())):
        versions[name] = found.version or f"missing: {found.reason}"
    results["native_versions"] = versions
    with tempfile.TemporaryDirectory(prefix="tickwire-fanout-") as tmp:
        templates = Path(tmp) / "templates.json"
        if any(i in JS_IMPLS for i in impls):
            write_js_templates(templates, product_codes(args.products))
        for impl in impls:
            try:
                results["runs"][impl] = measure(args, impl, templates)
            except Skip as why:
                print(f"  {impl}: skipped: {why}", flush=True)
                results["skipped"][impl] = str(why)
    report(args, results)
    benchlib.write_result(args.out, "fanout" if not args.quick else "fanout-quick", results)


def report(args: Any, results: dict[str, Any]) -> None:
    runs = results["runs"]
    bun = runs.get("bun-publish", {}).get("median", {}).get("delivered_per_s")
    rows = []
    for impl, outcome in runs.items():
        med = outcome["median"]
        rates = [r["delivered_per_s"] for r in outcome["saturation"]]
        lat = outcome["latency"]
        rows.append([LABELS[impl], med["delivered_per_s"], min(rates), max(rates),
                     med["us_per_delivery"], med["process_us_per_delivery"],
                     med["server_core_busy"], med["client_cpu"],
                     med["server_rss"] / 2**20, lat["clients"]["p99_ms"],
                     "yes" if lat["ok"] else "NO",
                     med["delivered_per_s"] / bun if bun else None])
    table(f"Fan-out, {args.clients:,} clients: deliveries/s at saturation "
          f"({args.saturate:,.0f}/s offered; median of {args.runs}); p99 at "
          f"{args.latency_rate:,.0f}/s",
          ["server", "median/s", "min/s", "max/s", "core us/deliv", "proc us/deliv", "core %",
           "client %",
           "RSS MiB", "p99 ms", "all ok", "x bun"], rows)
    for impl in ("tickwire", "tickwire-local"):
        tw = runs.get(impl, {}).get("overload")
        if not tw:
            continue
        rows = [*tw["ramp"]]
        for r, p in zip(tw["runs"], tw["paired"], strict=True):
            rows += [p, r]
        table(f"{LABELS[impl]} under overload: peak {tw['peak']:,.0f}/s, then "
              f"{tw['offered']:,.0f}/s offered (8 x peak), each after a run at the peak's "
              "rate",
              ["offered/s", "delivered/s", "x peak", "x pair", "core us/deliv", "feed %",
               "feed CPU", "skipped", "conflated", "RSS MiB", "p99 ms"],
              [[r["offered"], r["delivered_per_s"],
                r["delivered_per_s"] / tw["peak"] if tw["peak"] else None,
                r.get("x_pair"),
                r["us_per_delivery"], r["fed"].get("feed_share"), r.get("feed_cpu"),
                r["fed"]["skipped"], r["clients"]["missed"],
                r["server_rss"] / 2**20, r["clients"]["p99_ms"]]
               for r in rows])
    results["targets"] = targets(args, results)
    for name, target in results["targets"].items():
        print(f"target {name}: {target['figure']} -> {benchlib.verdict(target['met'])}")


def targets(args: Any, results: dict[str, Any]) -> dict[str, Any]:
    runs, quick = results["runs"], args.quick
    out: dict[str, Any] = {}
    tw = runs.get("tickwire")
    if tw is None:
        return out
    rate = tw["median"]["delivered_per_s"]
    for other, share in (("bun-publish", 0.6), ("node-corked", 0.8)):
        theirs = runs.get(other, {}).get("median", {}).get("delivered_per_s")
        if theirs:
            out[f"tickwire >= {share} x {other}"] = {
                "figure": f"{rate / theirs:.2f} x ({rate:,.0f} vs {theirs:,.0f}/s)",
                "met": None if quick else rate >= share * theirs}
    for other in ("websockets", "aiohttp", "picows", "raw"):
        theirs = runs.get(other, {}).get("median", {}).get("delivered_per_s")
        if theirs:
            out[f"tickwire above {other}"] = {
                "figure": f"{rate:,.0f} vs {theirs:,.0f}/s",
                "met": None if quick else rate > theirs}
    us = tw["median"]["us_per_delivery"]
    out["<= 0.6 core us per delivery"] = {
        "figure": f"{us:.2f} us" if us else "-", "met": None if quick else bool(us and us <= 0.6)}
    for impl, shape in (("tickwire", "feed on the gateway's core"),
                        ("tickwire-local", "feed in its own process")):
        over = runs.get(impl, {}).get("overload")
        if not over:
            continue
        shares = [r["delivered_per_s"] / over["peak"] for r in over["runs"]] \
            if over["peak"] else [0.0]
        out[f"8 x overload, {shape}: each run within 10% of peak"] = {
            "figure": ", ".join(f"{s:.2f}" for s in shares) + f" x {over['peak']:,.0f}/s",
            "met": None if quick else all(s >= 0.9 for s in shares)
            and all(r["ok"] for r in over["runs"])}
        pairs = [r["x_pair"] for r in over["runs"]]
        out[f"8 x overload, {shape}: each run within 10% of a run at the peak's rate "
            "just before it"] = {
            "figure": ", ".join(f"{s:.2f}" for s in pairs) + " x its pair",
            "met": None if quick else all(s >= 0.9 for s in pairs)
            and all(r["ok"] for r in over["runs"])}
    lat = tw["latency"]
    out[f"p99 <= 5 ms at {args.latency_rate:,.0f}/s"] = {
        "figure": f"p99 {lat['clients']['p99_ms']:.2f} ms, "
                  f"{'every push in order' if lat['ok'] else 'NOT all pushes in order'}",
        "met": None if quick else lat["clients"]["p99_ms"] <= 5 and lat["ok"]}
    return out


def main() -> None:
    p = benchlib.parser(__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=["conductor", "server", "feed"], default="conductor")
    p.add_argument("--socket", help="(role feed) the local engine's socket")
    p.add_argument("--impl", choices=PYTHON_IMPLS)
    p.add_argument("--impls", nargs="+", choices=IMPLS, help="servers to run (default all)")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--clients-max", type=int, default=1000)
    p.add_argument("--codes-per-client", type=int, default=10)
    p.add_argument("--products", type=int, default=100)
    p.add_argument("--tick-ms", type=float, default=10.0)
    p.add_argument("--saturate", type=float, default=8_000_000.0,
                   help="deliveries/s offered to saturate every server")
    p.add_argument("--ramp-from", type=float, default=250_000.0,
                   help="tickwire's overload ramp: first rate, doubled up to --saturate")
    p.add_argument("--runs", type=int, default=3, help="runs at saturation (median)")
    p.add_argument("--seconds", type=float, default=3.0, help="measured window of a run")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--max-lag", type=float, default=0.1,
                   help="a lagging server is handed at most this many seconds of updates")
    p.add_argument("--latency-rate", type=float, default=50_000.0)
    p.add_argument("--latency-seconds", type=float, default=10.0)
    p.add_argument("--retries", type=int, default=2,
                   help="times a run is measured again when other work took more than 15%% "
                        "of a core meanwhile")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    if args.role == "server":
        benchlib.run_async(server_role(args))
    elif args.role == "feed":
        benchlib.run_async(feed_role(args))
    else:
        conduct(args)


if __name__ == "__main__":
    main()
