"""Fan-out through Redis: gateways on the Redis engine against the memory engine, same run.

The clients, products and messages of bench_fanout.py (C clients, 10 of 100 products each,
real quote bodies stamped with the hand-over time `T`, CLOCK_MONOTONIC ns, and a number
`N`). Three set-ups, each measured at the same rates:

- memory: one `tickwire serve`-built process, its feed publishing on the memory engine
  (bench_fanout's server), pinned to the server core;
- redis, 1 gateway / 2 gateways: an ingest process (the same feed, publishing on the Redis
  engine: each batch one script call) and a real redis-server on the client core; the
  gateways (`[engine] role = "gateway"`, sharing one port with SO_REUSEPORT) on the server
  core, the C clients (benchmarks/wscount.c) connecting to that port.

Figures: deliveries/s; the server core time per delivery (the memory process's CPU, the
gateways' together: the load generator saturates before one gateway does on a 2-core
machine, so cost per delivery is what predicts N gateways on N cores; the memory
process's figure includes its feed, the gateways' do not include the ingest's); latency
from the hand-over at the feed to the client's parse, p50 and p99, whose difference to
the memory engine's is the Redis hop.

    .venv/bin/python benchmarks/bench_redis.py            # the full run (about 3 minutes)
    .venv/bin/python benchmarks/bench_redis.py --quick    # a tiny run for CI

Needs redis-server (Debian package `redis-server`) and the `redis` extra.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import benchlib
import natives
from bench_fanout import (
    Feed,
    Impl,
    Run,
    _HandOverFeed,
    catalogue_toml,
    product_codes,
    push,
)
from benchlib import CLIENT_CORE, SERVER_CORE, Child, pinned, reply, table

SETUPS = ("memory", "redis/1", "redis/2")
_KEPT: list[tempfile.TemporaryDirectory[str]] = []


# the processes -----------------------------------------------------------------------------

def _settings(args: Any, role: str, port: int = 0) -> Any:
    from tickwire.config import load_config

    folder = tempfile.TemporaryDirectory(prefix=f"tickwire-bench-{role}-")
    _KEPT.append(folder)  # removed when the process ends
    tmp = Path(folder.name)
    codes = product_codes(args.products)
    (tmp / "catalogue.toml").write_text(catalogue_toml(codes), encoding="utf-8")
    return load_config(None, {
        "server.data_dir": str(tmp / "data"), "server.catalogue": str(tmp / "catalogue.toml"),
        "server.port": port, "server.reuse_port": True,
        "access.ws_connections_per_ip": 100_000, "engine.kind": "redis",
        "engine.url": args.redis, "engine.prefix": args.prefix, "engine.role": role,
    }, environ={})


async def _listen(app: Any, port: int) -> int:
    from aiohttp import web

    from tickwire.gateway.lowlevel import JsonErrorAppRunner

    runner = JsonErrorAppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024, reuse_port=True)
    await site.start()
    return port


async def gateway_role(args: Any) -> None:
    """A real gateway on the Redis engine; `status` says how many clients hold each code."""
    from tickwire.gateway.state import GATEWAY
    from tickwire.server import build

    benchlib.raise_open_files(args.clients_max + 1000)
    server = build(_settings(args, "gateway", args.port))
    await _listen(server.app, args.port)
    hub = server.app[GATEWAY].hub
    reply({"pid": os.getpid()})

    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        if message["cmd"] == "status":
            return {"subscribers": {code: len(s) for code, s in hub.subscribers.items()}}
        raise ValueError(f"unknown command {message}")

    await benchlib.serve_commands(handle)


class _IngestImpl(Impl):
    """The feed's side of a Redis deployment: it publishes on the engine; the conductor
    says how many clients (on every gateway) hold each code."""

    def __init__(self, engine: Any) -> None:
        self.subs = {}
        self.counts: dict[str, int] = {}
        self._publish = engine.publish

    def publish(self, batch: list[tuple[str, bytes]]) -> None:
        self._publish(batch)

    def subscribers(self, code: str) -> int:
        return self.counts.get(code, 0)


async def ingest_role(args: Any) -> None:
    from tickwire.server import build

    codes = product_codes(args.products)
    server = build(_settings(args, "ingest", benchlib.free_port()), feeds=[_HandOverFeed(codes)])
    await _listen(server.app, server.config.server.port)
    assert server.ingest is not None
    while not server.ingest.ready:
        await asyncio.sleep(0.01)
    impl = _IngestImpl(server.engine)
    feed = Feed(impl, codes, args.tick_ms / 1000)
    sizes = [len(push(t + b'1763000000000000000,"N":1}')) for t in feed.templates[0]]
    reply({"pid": os.getpid(), "message_bytes": sum(sizes) / len(sizes)})

    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        if message["cmd"] == "counts":
            impl.counts = message["counts"]
            return {"ok": True}
        if message["cmd"] == "run":
            return await feed.run(message["rate"], message["seconds"])
        raise ValueError(f"unknown command {message}")

    await benchlib.serve_commands(handle)


# the conductor -----------------------------------------------------------------------------

class RedisRun:
    """An ingest, `gateways` gateways on one port and the clients; measured like `Run`."""

    def __init__(self, args: Any, redis_url: str, gateways: int, clients: int) -> None:
        self.clients = clients
        script = str(Path(__file__).resolve())
        port = benchlib.free_port()
        common = ["--products", str(args.products), "--tick-ms", str(args.tick_ms),
                  "--redis", redis_url, "--prefix", f"bench{uuid.uuid4().hex[:8]}",
                  "--clients-max", str(clients)]
        pin = not args.no_pin
        self.ingest = Child("ingest", pinned([sys.executable, script, "--role", "ingest",
                                              *common], CLIENT_CORE, pin))
        self.message_bytes = self.ingest.receive()["message_bytes"]
        self.gateways = [Child(f"gateway-{i + 1}", pinned(
            [sys.executable, script, "--role", "gateway", "--port", str(port), *common],
            SERVER_CORE, pin)) for i in range(gateways)]
        for gateway in self.gateways:
            gateway.receive()
        client = natives.wscount()
        if client.path is None:
            raise SystemExit(f"bench_redis: the C client cannot be built: {client.reason}")
        self.client = Child("clients", pinned(
            [str(client.path), "--port", str(port),
             "--count", str(clients), "--per-client", str(args.codes_per_client),
             "--codes", ",".join(product_codes(args.products)), "--seed", str(args.seed)],
            CLIENT_CORE, pin))
        self.client.receive()
        want = clients * args.codes_per_client
        deadline = time.monotonic() + 60
        while True:
            counts: dict[str, int] = {}
            for gateway in self.gateways:
                for code, n in gateway.ask({"cmd": "status"})["subscribers"].items():
                    counts[code] = counts.get(code, 0) + n
            if sum(counts.values()) >= want:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("clients did not all subscribe")
            time.sleep(0.05)
        self.ingest.ask({"cmd": "counts", "counts": counts})
        self.meter = benchlib.CpuMeter({**{f"gw{i}": g.pid for i, g in enumerate(self.gateways)},
                                        "client": self.client.pid})
        self.per_update = want / args.products

    def step(self, rate: float, seconds: float, check_every: int) -> dict[str, Any]:
        self.client.ask({"cmd": "reset", "check_every": check_every})
        self.meter.reset()
        fed = self.ingest.ask({"cmd": "run", "rate": rate / self.per_update,
                               "seconds": seconds})
        cpu = self.meter.read()
        got = self.client.ask({"cmd": "report", "expect": fed["deliveries"], "timeout": 3.0})
        gateways = sum(cpu[f"gw{i}_cpu"] for i in range(len(self.gateways)))
        return {**fed, **got, "deliveries_per_s": fed["deliveries"] / fed["elapsed"],
                "server_cpu": gateways, "client_cpu": cpu["client_cpu"],
                "others": cpu["others"], "lost": fed["deliveries"] - got["received"]}

    def close(self) -> None:
        for child in [self.client, *self.gateways, self.ingest]:
            child.close()


def start_redis(workdir: Path, pin: bool) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench_redis: redis-server not found (Debian package redis-server)")
    port = benchlib.free_port()
    proc = subprocess.Popen(pinned([binary, "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                                   CLIENT_CORE, pin), stdout=subprocess.DEVNULL,
                            env=benchlib.real_clock_env())
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def measure(args: Any, setup: str, redis_url: str, clients: int,
            rates: list[tuple[float, int]]) -> list[dict[str, Any]]:
    run: Any = Run(args, "tickwire", clients) if setup == "memory" else \
        RedisRun(args, redis_url, int(setup.split("/")[1]), clients)
    rows = []
    with benchlib.stopping(run):
        for rate, check_every in rates:
            row = run.step(rate, args.seconds, check_every)
            row["setup"], row["offered"] = setup, rate
            row["us_per_delivery"] = row["server_cpu"] * 1e4 / max(row["deliveries_per_s"], 1)
            rows.append(row)
            print(f"  {setup:7s} {rate:>8,.0f}/s -> {row['deliveries_per_s']:>8,.0f}/s"
                  f" cpu {row['server_cpu']:5.1f}% {row['us_per_delivery']:6.2f} us"
                  f"  p50 {row['p50_ms']:5.2f} p99 {row['p99_ms']:6.2f} ms", flush=True)
    return rows


def conduct(args: Any) -> None:
    quick = args.quick
    if quick:
        args.seconds = 0.5
        clients, rates = 20, [(1000.0, 1), (2000.0, 8)]
    else:
        clients, rates = args.clients, [(args.latency_rate, 1), (args.cost_rate, 64)]
    print(f"redis fan-out: {clients} clients, {args.codes_per_client} of {args.products} "
          f"products each; steps of {args.seconds} s at {[r for r, _ in rates]}/s")
    background = benchlib.wait_for_quiet(patience=0 if quick else 120)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the children too
    workdir = tempfile.TemporaryDirectory(prefix="tickwire-bench-redis-")
    redis, url = start_redis(Path(workdir.name), not args.no_pin)
    results: dict[str, Any] = {"background_busy": background, "settings": {
        "clients": clients, "codes_per_client": args.codes_per_client,
        "products": args.products, "tick_ms": args.tick_ms, "step_seconds": args.seconds,
        "rates": rates, "quick": quick, "pinned": benchlib.can_pin() and not args.no_pin},
        "runs": {}}
    try:
        for setup in args.setups:
            results["runs"][setup] = measure(args, setup, url, clients, rates)
    finally:
        redis.terminate()
        redis.wait(10)
        workdir.cleanup()
    rows = [[r["setup"], r["offered"], r["deliveries_per_s"], r["server_cpu"],
             r["us_per_delivery"], r["p50_ms"], r["p99_ms"], r.get("lost", 0)]
            for setup in args.setups for r in results["runs"][setup]]
    table(f"Fan-out to {clients} clients: the memory engine, gateways on Redis",
          ["setup", "offered/s", "got/s", "cpu %", "us/dlv", "p50 ms", "p99 ms", "lost"],
          rows)
    results["targets"] = targets(results["runs"], quick)
    for name, target in results["targets"].items():
        print(f"target {name}: {target['figure']} -> {benchlib.verdict(target['met'])}")
    benchlib.write_result(args.out, "redis-quick" if quick else "redis", results)


def targets(runs: dict[str, list[dict[str, Any]]], quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    memory = runs.get("memory")
    if not memory:
        return out
    for setup in ("redis/1", "redis/2"):
        rows = runs.get(setup)
        if not rows:
            continue
        cost, base = rows[-1]["us_per_delivery"], memory[-1]["us_per_delivery"]
        out[f"{setup} cost <= 1.25 x memory"] = {
            # a quick run's steps can be too short for one tick of CPU time: no ratio then
            "figure": (f"{cost / base:.2f} x " if base else "") +
                      f"({cost:.2f} vs {base:.2f} us)",
            "met": None if quick else cost <= 1.25 * base}
        hop = rows[0]["p99_ms"] - memory[0]["p99_ms"]
        out[f"{setup} hop <= 2 ms p99"] = {
            "figure": f"+{hop:.2f} ms ({rows[0]['p99_ms']:.2f} vs "
                      f"{memory[0]['p99_ms']:.2f} ms at {rows[0]['offered']:,.0f}/s)",
            "met": None if quick else hop <= 2.0}
    return out


def main() -> None:
    p = benchlib.parser(__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=["conductor", "gateway", "ingest"], default="conductor")
    p.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS))
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--clients-max", type=int, default=1000)
    p.add_argument("--codes-per-client", type=int, default=10)
    p.add_argument("--products", type=int, default=100)
    p.add_argument("--tick-ms", type=float, default=10.0)
    p.add_argument("--seconds", type=float, default=5.0, help="length of each step")
    p.add_argument("--latency-rate", type=float, default=50_000.0,
                   help="deliveries/s of the latency step (every message decoded)")
    p.add_argument("--cost-rate", type=float, default=150_000.0,
                   help="deliveries/s of the cost step")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--redis", help="(a child's) Redis URL")
    p.add_argument("--prefix", help="(a child's) key prefix")
    p.add_argument("--port", type=int, default=0, help="(a gateway's) shared port")
    p.add_argument("--p99-limit-ms", type=float, default=100.0)
    args = p.parse_args()
    if args.role == "gateway":
        benchlib.run_async(gateway_role(args))
    elif args.role == "ingest":
        benchlib.run_async(ingest_role(args))
    else:
        conduct(args)


if __name__ == "__main__":
    main()
