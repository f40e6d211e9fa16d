"""Fan-out: how many quote pushes a second one server process delivers, and how late.

C clients (100 and 1,000) each subscribe to 10 of 100 products. A feed inside the server
process hands over batches of updates every tick (10 ms) at a set rate; the rate is raised
step by step until p99 latency passes 100 ms, a client misses an update, or the server cannot
keep the pace. Latency runs from the feed handing an update over (the `T` stamped in its
body, CLOCK_MONOTONIC ns) to the client having parsed the pushed message.

Four servers get the same sockets, clients and messages (real quote bodies with 10-level
depth from tickwire's own QuoteState, plus the `T` and `N` fields), all on uvloop:

- raw: the ceiling. A bare asyncio protocol, the handshake by hand, each update framed once
  and written with `transport.write` to every subscriber, one write per delivery.
- tickwire: the real server objects (`build_state` + `create_app`, guards, Hub, MemoryBus),
  the feed publishing on the bus as tickwire's own feeds do.
- websockets: `websockets.asyncio.server` with `broadcast()` per update.
- aiohttp: a plain aiohttp handler; the feed awaits `send_str` per client.

The server runs pinned to one core, the load generator (benchmarks/wsload.py) to the other.

    .venv/bin/python benchmarks/bench_fanout.py            # the full run (about 15 minutes)
    .venv/bin/python benchmarks/bench_fanout.py --quick    # a tiny run for CI
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
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
from benchlib import CLIENT_CORE, SERVER_CORE, Child, pinned, reply, table

IMPLS = ("raw", "tickwire", "websockets", "aiohttp")
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
    """An unmasked text frame, by hand (the raw baseline uses no WebSocket library)."""
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


# the four servers --------------------------------------------------------------------------

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


class RawImpl(Impl):
    def __init__(self) -> None:
        self.subs: dict[str, set[asyncio.Transport]] = {}

    async def start(self, codes: list[str]) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _RawConnection(self), "127.0.0.1", 0,
                                          backlog=1024)
        return int(server.sockets[0].getsockname()[1])

    def publish(self, batch: Batch) -> None:
        subs = self.subs
        for code, body in batch:
            data = frame(push(body))
            for transport in subs.get(code, ()):
                transport.write(data)
        return None


class _RawConnection(asyncio.Protocol):
    def __init__(self, impl: RawImpl) -> None:
        self.impl = impl
        self.buffer = b""
        self.open = False
        self.codes: list[str] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for code in self.codes:
            self.impl.subs.get(code, set()).discard(self.transport)

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
                        self.impl.subs.setdefault(code, set()).add(self.transport)
            elif opcode == 0x8:
                self.transport.close()


class TickwireImpl(Impl):
    """tickwire's own objects: the config, build_state, create_app, the runner `serve` uses."""

    def __init__(self) -> None:
        self.subs = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="tickwire-bench-")

    async def start(self, codes: list[str]) -> int:
        from aiohttp import web

        from tickwire.config import load_config
        from tickwire.gateway.lowlevel import JsonErrorAppRunner
        from tickwire.gateway.state import GATEWAY
        from tickwire.server import build

        tmp = Path(self._tmp.name)
        (tmp / "catalogue.toml").write_text(catalogue_toml(codes), encoding="utf-8")
        config = load_config(None, {
            "server.data_dir": str(tmp / "data"), "server.catalogue": str(tmp / "catalogue.toml"),
            "access.ws_connections_per_ip": 100_000,
        }, environ={})
        # the benchmark's feed publishes through the engine itself
        server = build(config, feeds=[_HandOverFeed(codes)])
        self.server = server
        self.subs = server.app[GATEWAY].hub.subscribers
        self._publish = server.engine.publish
        runner = JsonErrorAppRunner(server.app, access_log=None, handle_signals=False,
                                    keepalive_timeout=config.server.http_idle_timeout)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        listener = site._server
        assert listener is not None
        sockets = listener.sockets  # type: ignore[attr-defined]
        while not server.ingest.ready:
            await asyncio.sleep(0.01)
        return int(sockets[0].getsockname()[1])

    def publish(self, batch: Batch) -> None:
        self._publish(batch)


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


def make_impl(name: str) -> Impl:
    return {"raw": RawImpl, "tickwire": TickwireImpl, "websockets": WebsocketsImpl,
            "aiohttp": AiohttpImpl}[name]()


# the server process ------------------------------------------------------------------------

class Feed:
    """Hands over updates at a set rate in batches every tick, stamping each body."""

    def __init__(self, impl: Impl, codes: list[str], tick: float) -> None:
        self.impl = impl
        self.codes = codes
        self.templates = body_templates(codes)
        self.seqs = [0] * len(codes)
        self.tick = tick
        self.next_product = 0

    async def run(self, rate: float, seconds: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        impl, codes, templates, seqs = self.impl, self.codes, self.templates, self.seqs
        count, variants = len(codes), len(templates[0])
        total = max(1, round(rate * seconds))
        sent = deliveries = batches = largest = 0
        cpu0 = _cpu()
        start = loop.time()
        give_up = start + 1.5 * seconds + 1
        next_tick = start
        while sent < total:
            next_tick += self.tick
            delay = next_tick - loop.time()
            await asyncio.sleep(delay if delay > 0 else 0)
            now = loop.time()
            if now > give_up:
                break
            due = min(total, int((now - start) * rate) + 1)
            if due <= sent:
                continue
            stamp = time.monotonic_ns()
            batch = []
            for _ in range(due - sent):
                p = self.next_product
                self.next_product = (p + 1) % count
                seq = seqs[p] = seqs[p] + 1
                code = codes[p]
                batch.append((code, templates[p][seq % variants] + b'%d,"N":%d}' % (stamp, seq)))
                deliveries += impl.subscribers(code)
            result = impl.publish(batch)
            if result is not None:
                await result
            batches += 1
            largest = max(largest, len(batch))
            sent = due
        elapsed = loop.time() - start
        return {"updates": sent, "deliveries": deliveries, "elapsed": elapsed,
                "kept_pace": sent == total and elapsed <= seconds * 1.05 + 2 * self.tick,
                "server_cpu": 100 * (_cpu() - cpu0) / elapsed, "batches": batches,
                "largest_batch": largest}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def server_role(args: Any) -> None:
    logging.getLogger("websockets").setLevel(logging.CRITICAL)  # clients leave by aborting
    benchlib.raise_open_files(args.clients_max + 1000)
    codes = product_codes(args.products)
    impl = make_impl(args.impl)
    port = await impl.start(codes)
    feed = Feed(impl, codes, args.tick_ms / 1000)
    body_bytes = [len(push(t + b'1763000000000000000,"N":1}')) for t in feed.templates[0]]
    reply({"port": port, "pid": os.getpid(), "message_bytes": sum(body_bytes) / len(body_bytes),
           "loop": type(asyncio.get_running_loop()).__module__.split(".")[0]})

    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        if message["cmd"] == "status":
            return {"subscriptions": impl.subscriptions()}
        if message["cmd"] == "run":
            return await feed.run(message["rate"], message["seconds"])
        raise ValueError(f"unknown command {message}")

    await benchlib.serve_commands(handle)


# the conductor -----------------------------------------------------------------------------

class Run:
    """One server implementation with C clients: start both processes, measure steps."""

    def __init__(self, args: Any, impl: str, clients: int) -> None:
        self.args, self.impl, self.clients = args, impl, clients
        script = str(Path(__file__).resolve())
        common = ["--products", str(args.products), "--tick-ms", str(args.tick_ms)]
        self.server = Child(f"{impl}-server", pinned(
            [sys.executable, script, "--role", "server", "--impl", impl,
             "--clients-max", str(clients), *common], SERVER_CORE, not args.no_pin))
        hello = self.server.receive()
        self.port, self.message_bytes, self.loop = hello["port"], hello["message_bytes"], \
            hello["loop"]
        self.client = Child(f"{impl}-clients", pinned(
            [sys.executable, str(Path(script).with_name("wsload.py")), "--port", str(self.port),
             "--count", str(clients), "--per-client", str(args.codes_per_client),
             "--codes", ",".join(product_codes(args.products)), "--seed", str(args.seed)],
            CLIENT_CORE, not args.no_pin))
        self.client.receive()
        want = clients * args.codes_per_client
        deadline = time.monotonic() + 60
        while self.server.ask({"cmd": "status"})["subscriptions"] < want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{impl}: clients did not all subscribe")
            time.sleep(0.05)
        self.meter = benchlib.CpuMeter({"server": self.server.pid, "client": self.client.pid})
        self.per_update = clients * args.codes_per_client / args.products

    def step(self, deliveries_per_s: float, seconds: float, check_every: int) -> dict[str, Any]:
        """One step at a rate; measured again (up to twice) when other work on the machine
        took more than 15% of a core meanwhile."""
        for attempt in range(3):
            row = self._step(deliveries_per_s, seconds, check_every)
            if row["others"] <= 15 or attempt == 2 or self.args.quick:
                return row
            print(f"  (other work on the machine took {row['others']:.0f}% of a core: "
                  "measuring this step again)", flush=True)
            benchlib.wait_for_quiet(patience=30)
        raise AssertionError("unreachable")

    def _step(self, deliveries_per_s: float, seconds: float, check_every: int
              ) -> dict[str, Any]:
        self.client.ask({"cmd": "reset", "check_every": check_every})
        self.meter.reset()
        fed = self.server.ask({"cmd": "run", "rate": deliveries_per_s / self.per_update,
                               "seconds": seconds})
        cpu = self.meter.read()  # over the feed's span, for both processes and both cores
        got = self.client.ask({"cmd": "report", "expect": fed["deliveries"], "timeout": 3.0})
        got["client_cpu"] = cpu["client_cpu"]
        rate = fed["deliveries"] / fed["elapsed"]
        ok = (got["p99_ms"] <= self.args.p99_limit_ms and got["missed"] == 0
              and got["reordered"] == 0 and got["invalid"] == 0 and got["closed"] == 0
              and got["received"] == fed["deliveries"] and fed["kept_pace"])
        server_busy = cpu.get(f"core{SERVER_CORE}_busy", 0.0)
        limit = "server" if server_busy >= 90 else "clients" if got["client_cpu"] >= 90 \
            else "-"
        row = {"offered": deliveries_per_s, "deliveries_per_s": rate, **fed, **got,
               "server_core_busy": server_busy, "saturated": limit, "others": cpu["others"],
               "client_core_busy": cpu.get(f"core{CLIENT_CORE}_busy"), "ok": ok}
        print(f"  {self.impl:10s} C={self.clients:<5} offered {deliveries_per_s:>9,.0f}/s "
              f"got {rate:>9,.0f}/s  p50 {got['p50_ms']:7.2f} ms  p99 {got['p99_ms']:7.2f} ms  "
              f"server {fed['server_cpu']:5.1f}% core {server_busy:5.1f}%  "
              f"client {got['client_cpu']:5.1f}%  other {cpu['others']:4.0f}%  "
              f"lost {fed['deliveries'] - got['received']} "
              f"{'ok' if ok else 'FAIL'}{' (full parse)' if check_every == 1 else ''}",
              flush=True)
        return row

    def ramp(self) -> dict[str, Any]:
        args = self.args
        steps: list[dict[str, Any]] = []
        rate, best, failed = args.start_rate, None, None
        while len(steps) < args.max_steps:
            row = self.step(rate, args.seconds, args.check_every)
            steps.append(row)
            if not row["ok"]:
                failed = rate
                break
            best = row
            rate *= args.factor
        # two halvings of the gap between the last good rate and the first bad one
        low = best["offered"] if best else None
        for _ in range(args.refine if low and failed else 0):
            assert low is not None and failed is not None
            middle = math.sqrt(low * failed)
            row = self.step(middle, args.seconds, args.check_every)
            steps.append(row)
            if row["ok"]:
                low = middle
                if best is None or row["deliveries_per_s"] > best["deliveries_per_s"]:
                    best = row
            else:
                failed = middle
        return {"best": best, "first_failure": failed, "steps": steps}

    def close(self) -> None:
        self.client.close()
        self.server.close()


def conduct(args: Any) -> None:
    quick = args.quick
    if quick:
        args.seconds, args.start_rate, args.max_steps, args.refine = 0.5, 500.0, 2, 0
        args.fixed_seconds = 0.5
        client_counts = args.clients or [20]
        fixed_rate = 1000.0
    else:
        client_counts = args.clients or [100, 1000]
        fixed_rate = 50_000.0
    impls = args.impls or list(IMPLS)
    print(f"fan-out: clients {client_counts}, {args.codes_per_client} of {args.products} "
          f"products each, tick {args.tick_ms} ms, steps of {args.seconds} s x{args.factor}; "
          f"server on core {SERVER_CORE}, clients on core {CLIENT_CORE} "
          f"({'pinned' if benchlib.can_pin() and not args.no_pin else 'not pinned'})")
    background = benchlib.wait_for_quiet(patience=0 if quick else 120)
    results: dict[str, Any] = {"background_busy": background, "settings": {
        "clients": client_counts, "codes_per_client": args.codes_per_client,
        "products": args.products, "tick_ms": args.tick_ms, "step_seconds": args.seconds,
        "factor": args.factor, "p99_limit_ms": args.p99_limit_ms, "quick": quick,
        "pinned": benchlib.can_pin() and not args.no_pin, "loop": benchlib.use_uvloop()},
        "runs": {}}
    rows = []
    fixed_rows = []
    for clients in client_counts:
        for impl in impls:
            run = Run(args, impl, clients)
            with benchlib.stopping(run):
                outcome = run.ramp()
                if clients == max(client_counts):
                    fixed = run.step(fixed_rate, args.fixed_seconds, check_every=1)
                    outcome["fixed"] = fixed
                    fixed_rows.append([impl, clients, fixed["deliveries_per_s"],
                                       fixed["p50_ms"], fixed["p99_ms"], fixed["server_cpu"],
                                       fixed["client_cpu"], "yes" if fixed["ok"] else "NO"])
                outcome["message_bytes"] = run.message_bytes
                results["settings"]["message_bytes"] = run.message_bytes
                results["runs"][f"{impl}/{clients}"] = outcome
            best = outcome["best"] or {}
            failed = outcome["steps"][-1] if outcome["steps"] else {}
            for row in outcome["steps"]:
                if not row["ok"] and row["offered"] == outcome["first_failure"]:
                    failed = row
            per_delivery = best["server_core_busy"] * 1e4 / best["deliveries_per_s"] \
                if best else None
            outcome["server_us_per_delivery"] = per_delivery
            rows.append([impl, clients, best.get("deliveries_per_s", 0.0),
                         best.get("p50_ms"), best.get("p99_ms"), best.get("server_cpu"),
                         best.get("server_core_busy"), per_delivery, best.get("client_cpu"),
                         failed.get("saturated", "-") if not failed.get("ok", True) else "-"])
    for row in rows:
        raw = results["runs"].get(f"raw/{row[1]}", {}).get("best")
        row.append(row[2] / raw["deliveries_per_s"] if raw else None)
    table("Fan-out: maximum deliveries/s with p99 <= "
          f"{args.p99_limit_ms:g} ms and nothing missed",
          ["server", "clients", "deliveries/s", "p50 ms", "p99 ms", "server cpu %",
           "core busy %", "core us/delivery", "client cpu %", "limit", "x raw"], rows)
    table(f"Fan-out at {fixed_rate:,.0f} deliveries/s to {max(client_counts)} clients",
          ["server", "clients", "deliveries/s", "p50 ms", "p99 ms", "server cpu %",
           "client cpu %", "ok"], fixed_rows)
    results["targets"] = targets(results, rows, fixed_rows, max(client_counts), quick)
    for name, target in results["targets"].items():
        print(f"target {name}: {target['figure']} -> {benchlib.verdict(target['met'])}")
    benchlib.write_result(args.out, "fanout" if not quick else "fanout-quick", results)


def targets(results: dict[str, Any], rows: list[list[Any]], fixed_rows: list[list[Any]],
            most: int, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    best = {(r[0], r[1]): r[2] for r in rows}
    for clients in sorted({r[1] for r in rows}):
        tw, raw = best.get(("tickwire", clients)), best.get(("raw", clients))
        if tw is not None and raw:
            out[f"tickwire >= 0.8 x raw, {clients} clients"] = {
                "figure": f"{tw / raw:.2f} x ({tw:,.0f} vs {raw:,.0f}/s)",
                "met": None if quick else tw >= 0.8 * raw}
        for other in ("websockets", "aiohttp"):
            theirs = best.get((other, clients))
            if tw is not None and theirs is not None:
                out[f"tickwire above {other}, {clients} clients"] = {
                    "figure": f"{tw:,.0f} vs {theirs:,.0f}/s",
                    "met": None if quick else tw > theirs}
    for row in fixed_rows:
        if row[0] == "tickwire":
            out[f"p99 <= 50 ms at 50,000/s to {most} clients"] = {
                "figure": f"p99 {row[4]:.1f} ms at {row[2]:,.0f}/s",
                "met": None if quick else (row[4] <= 50 and row[7] == "yes")}
    return out


def main() -> None:
    p = benchlib.parser(__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=["conductor", "server"], default="conductor")
    p.add_argument("--impl", choices=IMPLS)
    p.add_argument("--impls", nargs="+", choices=IMPLS, help="servers to run (default all)")
    p.add_argument("--clients", nargs="+", type=int, help="client counts (default 100 1000)")
    p.add_argument("--clients-max", type=int, default=1000)
    p.add_argument("--codes-per-client", type=int, default=10)
    p.add_argument("--products", type=int, default=100)
    p.add_argument("--tick-ms", type=float, default=10.0)
    p.add_argument("--seconds", type=float, default=3.0, help="length of each step")
    p.add_argument("--fixed-seconds", type=float, default=10.0)
    p.add_argument("--start-rate", type=float, default=20_000.0)
    p.add_argument("--factor", type=float, default=1.4)
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--refine", type=int, default=2)
    p.add_argument("--p99-limit-ms", type=float, default=100.0)
    p.add_argument("--check-every", type=int, default=64,
                   help="while raising the rate, decode one message in this many whole "
                        "(1: all; see benchmarks/wsload.py); the fixed step decodes all")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    if args.role == "server":
        benchlib.run_async(server_role(args))
    else:
        conduct(args)


if __name__ == "__main__":
    main()
