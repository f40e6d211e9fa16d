"""HTTP: requests a second and latency of the protocol's paths, alone and under fan-out.

A real `tickwire serve` (shipped catalogue, simulator with history, rate limits raised)
runs pinned to one core; wrk (one thread, fixed connections) runs pinned to the other:

- getQuote.php?code=btcusdt, redis.php?code=btcusdt&time=1m&rows=600 (the whole window from
  memory), getSymbolList.php?category=4;
- the same two quote and K-line paths again while 1,000 WebSocket clients each hold 10 of the
  17 products that trade round the clock: the simulator's 5 updates a second per product then
  make 50,000 deliveries a second, counted by the clients (benchmarks/wsload.py) during wrk;
- the baseline: a plain aiohttp handler (uvloop, the same core) answering each path with a
  fixed body, byte for byte what tickwire answered.

    .venv/bin/python benchmarks/bench_http.py            # the full run (about 3 minutes)
    .venv/bin/python benchmarks/bench_http.py --quick    # a tiny run for CI

Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.error
from pathlib import Path
from typing import Any

import benchlib
from benchlib import CLIENT_CORE, SERVER_CORE, Child, pinned, table

PATHS = {
    "getQuote": "/getQuote.php?code=btcusdt",
    "redis rows=600": "/redis.php?code=btcusdt&time=1m&rows=600",
    "getSymbolList": "/getSymbolList.php?category=4&page=1&pageSize=10",
}
UNDER_FANOUT = ("getQuote", "redis rows=600")
FANOUT_CLIENTS = 1000
FANOUT_CODES = 10


async def baseline_role(bodies_file: Path) -> None:
    """An aiohttp app answering each path with its fixed body."""
    from aiohttp import web

    bodies = {path.split("?")[0]: body.encode()
              for path, body in json.loads(bodies_file.read_text()).items()}

    def handler_for(body: bytes) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json", charset="utf-8")
        return handler

    app = web.Application()
    for path, body in bodies.items():
        app.router.add_get(path, handler_for(body))
    benchlib.reply({"port": await benchlib.serve_aiohttp(app)})
    await benchlib.serve_commands(_no_commands)


async def _no_commands(message: dict[str, Any]) -> dict[str, Any]:
    raise ValueError(f"unknown command {message}")


def wait_for_first_quote(url: str, patience: float = 10.0) -> None:
    deadline = time.monotonic() + patience
    while True:
        try:
            benchlib.get_bytes(url + PATHS["getQuote"])
            return
        except urllib.error.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def measure(url: str, name: str, args: Any, seconds: float, connections: int,
            pid: int) -> dict[str, Any]:
    meter = benchlib.CpuMeter({"server": pid})
    result = benchlib.wrk(url + PATHS[name], connections, seconds, pin=not args.no_pin)
    result.update(meter.read())
    return result


def main() -> None:
    p = benchlib.parser(__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=["conductor", "baseline"], default="conductor")
    p.add_argument("--bodies", type=Path)
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    args = p.parse_args()
    if args.role == "baseline":
        benchlib.run_async(baseline_role(args.bodies))
        return
    if not benchlib.have_wrk():
        sys.exit("bench_http needs wrk (Debian: apt-get install wrk)")
    quick = args.quick
    seconds = 1.0 if quick else args.seconds
    clients = 20 if quick else FANOUT_CLIENTS
    pin = not args.no_pin
    background = benchlib.wait_for_quiet(patience=0 if quick else 120)
    results: dict[str, Any] = {"background_busy": background, "settings": {
        "wrk_connections": args.connections, "seconds": seconds, "quick": quick,
        "pinned": benchlib.can_pin() and pin, "fanout_clients": clients,
        "fanout_codes_per_client": FANOUT_CODES}}
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="tickwire-http-") as tmp:
        extra = benchlib.GENEROUS_LIMITS + "\n[access]\nws_connections_per_ip = 100000\n"
        if quick:  # no history: only checks the benchmark works, in a few seconds
            extra += '\n[[feeds]]\nkind = "sim"\nhistory = false\n'
        began = time.monotonic()
        server = benchlib.start_tickwire(Path(tmp) / "tickwire", extra, pin=pin,
                                         open_files=clients + 1000)
        print(f"tickwire ready in {time.monotonic() - began:.1f} s "
              f"on core {SERVER_CORE}; wrk on core {CLIENT_CORE}, {args.connections} "
              f"connections, {seconds:g} s a run")
        with benchlib.stopping(server):
            wait_for_first_quote(server.url)  # without history the feed's first update
            bodies = {PATHS[n]: benchlib.get_bytes(server.url + PATHS[n]).decode()
                      for n in PATHS}
            alone = {}
            for name in PATHS:
                alone[name] = measure(server.url, name, args, seconds, args.connections,
                                      server.proc.pid)
            # the same paths while the fan-out runs
            codes = benchlib.round_the_clock_codes()
            load = Child("fanout-clients", pinned(
                [sys.executable, str(Path(__file__).with_name("wsload.py")), "--port",
                 str(server.port), "--count", str(clients), "--codes", ",".join(codes),
                 "--per-client", str(FANOUT_CODES)], CLIENT_CORE, pin))
            with benchlib.stopping(load):
                load.receive()
                time.sleep(1.0)
                load.ask({"cmd": "reset"})
                time.sleep(2.0 if not quick else 0.5)
                idle_fanout = load.ask({"cmd": "report"})["received_per_s"]
                loaded = {}
                for name in UNDER_FANOUT:
                    load.ask({"cmd": "reset"})
                    loaded[name] = measure(server.url, name, args, seconds, args.connections,
                                           server.proc.pid)
                    report = load.ask({"cmd": "report"})
                    loaded[name]["fanout_per_s"] = report["received_per_s"]
                    loaded[name]["fanout_closed"] = report["closed"]
        results["bodies_bytes"] = {n: len(bodies[PATHS[n]].encode()) for n in PATHS}
        # the baseline: fixed bodies from a plain aiohttp handler
        body_file = Path(tmp) / "bodies.json"
        body_file.write_text(json.dumps(bodies), encoding="utf-8")
        base = Child("baseline", pinned([sys.executable, __file__, "--role", "baseline",
                                         "--bodies", str(body_file)], SERVER_CORE, pin))
        with benchlib.stopping(base):
            port = base.receive()["port"]
            url = f"http://127.0.0.1:{port}"
            baseline = {name: measure(url, name, args, seconds, args.connections, base.pid)
                        for name in PATHS}
    for runs in (alone, loaded, baseline):
        for r in runs.values():  # server CPU per request: holds whichever side was the limit
            r["cpu_us_per_request"] = r["server_cpu"] * 1e4 / r["rps"]
    for name in PATHS:
        a, b = alone[name], baseline[name]
        rows.append([name, "alone", a["rps"], a["p50_ms"], a["p99_ms"], a["server_cpu"],
                     a["cpu_us_per_request"], b["rps"], b["server_cpu"],
                     b["cpu_us_per_request"], None, a["errors"]])
        if name in loaded:
            c = loaded[name]
            rows.append([name, "with fan-out", c["rps"], c["p50_ms"], c["p99_ms"],
                         c["server_cpu"], None, None, None, None, c["fanout_per_s"],
                         c["errors"]])
    table(f"HTTP: requests/s with wrk ({args.connections} connections, {seconds:g} s)",
          ["path", "load", "requests/s", "p50 ms", "p99 ms", "server cpu %", "cpu us/req",
           "baseline r/s", "baseline cpu %", "baseline us/req", "fan-out/s", "errors"],
          rows)
    print(f"fan-out before wrk started: {idle_fanout:,.0f} deliveries/s")
    results.update({"alone": alone, "with_fanout": loaded, "baseline": baseline,
                    "fanout_before_wrk_per_s": idle_fanout})
    t: dict[str, Any] = {}
    checks = [("getQuote", 5000), ("redis rows=600", 2000)]
    for name, floor in checks:
        a = alone[name]
        t[f"{name} >= {floor:,}/s with p99 <= 20 ms"] = {
            "figure": f"{a['rps']:,.0f}/s, p99 {a['p99_ms']:.1f} ms",
            "met": None if quick else (a["rps"] >= floor and a["p99_ms"] <= 20
                                       and a["errors"] == 0)}
        c = loaded[name]
        t[f"{name} p99 <= 50 ms under 50,000 deliveries/s"] = {
            "figure": f"p99 {c['p99_ms']:.1f} ms at {c['rps']:,.0f}/s, "
                      f"fan-out {c['fanout_per_s']:,.0f}/s",
            "met": None if quick else (c["p99_ms"] <= 50 and c["fanout_per_s"] >= 47_500
                                       and c["errors"] == 0)}
    results["targets"] = t
    for name, target in t.items():
        print(f"target {name}: {target['figure']} -> {benchlib.verdict(target['met'])}")
    benchlib.write_result(args.out, "http" if not quick else "http-quick", results)


if __name__ == "__main__":
    main()
