"""Idle connections: resident memory of one server process holding 10,000 WebSockets.

Each connection subscribes to 10 products and then nothing moves: the simulator drives only
`btcusdt`, which no client holds, so the server keeps the connections, their subscriptions
and their liveness checks and nothing else. The clients (benchmarks/wscount.c, one C process
on the other core, built at set-up) answer protocol pings, as every WebSocket library does.
The server's resident set (VmRSS) is read before the first connection, once all are
subscribed, and again after a round of protocol pings (`ping_interval` is 10 s); the larger
of the two counts.

Baselines in the same run, with the same clients: the raw asyncio server, websockets and the
plain aiohttp handler, the batching asyncio server, picows, Node's ws and Bun of
bench_fanout.py (Node and Bun skipped, with the reason, where they cannot be installed).

The open-file limit is raised for the benchmark's own processes only (setrlimit before exec);
the user's system settings are not touched.

    .venv/bin/python benchmarks/bench_idle.py            # the full run (about 2 minutes)
    .venv/bin/python benchmarks/bench_idle.py --quick    # a tiny run for CI
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bench_fanout
import benchlib
import natives
from benchlib import CLIENT_CORE, SERVER_CORE, Child, get_json, pinned, rss_bytes, table

MIB = 2**20
IDLE_FEED = '[[feeds]]\nkind = "sim"\nhistory = false\ncodes = ["btcusdt"]\n'


def subscribable_codes() -> list[str]:
    from tickwire.catalogue import load_catalogue

    return [c for c in load_catalogue(None).products if c != "btcusdt"]


def connect(name: str, port: int, count: int, codes: list[str], pin: bool,
            subscriptions: Any) -> tuple[Child, float]:
    """Open `count` clients; return once the server holds all their subscriptions."""
    began = time.monotonic()
    client = natives.wscount()
    if client.path is None:
        raise SystemExit(f"the C client cannot be built: {client.reason}")
    load = Child(f"{name}-clients", pinned(
        [str(client.path), "--port", str(port), "--count", str(count),
         "--codes", ",".join(codes), "--per-client", "10"], CLIENT_CORE, pin))
    load.receive()
    deadline = time.monotonic() + 120
    while subscriptions() < count * 10:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: only {subscriptions()} subscriptions")
        time.sleep(0.1)
    return load, time.monotonic() - began


def hold(seconds: float, pid: int) -> int:
    """Keep the connections for `seconds`, returning the highest RSS seen."""
    peak = rss_bytes(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        peak = max(peak, rss_bytes(pid))
    return peak


def measure_tickwire(workdir: Path, count: int, hold_s: float, pin: bool) -> dict[str, Any]:
    extra = "\n[access]\nws_connections_per_ip = 1000000\n" + IDLE_FEED
    server = benchlib.start_tickwire(workdir, extra, pin=pin, open_files=count + 1000)
    with benchlib.stopping(server):
        time.sleep(1.0)
        pid = server.proc.pid
        base = rss_bytes(pid)
        load, took = connect("tickwire", server.port, count, subscribable_codes(), pin,
                             lambda: get_json(server.url + "/healthz")["subscriptions"])
        with benchlib.stopping(load):
            subscribed = rss_bytes(pid)
            peak = max(subscribed, hold(hold_s, pid))
            health = get_json(server.url + "/healthz")
            report = load.ask({"cmd": "report"})
    return {"base": base, "subscribed": subscribed, "peak": peak, "connect_s": took,
            "connections": health["connections"], "closed": report["closed"]}


def measure_baseline(impl: str, count: int, hold_s: float, pin: bool,
                     templates: Path) -> dict[str, Any] | None:
    """A server of bench_fanout.py (Python, Node or Bun); None when it cannot run here."""
    settings = SimpleNamespace(tick_ms=10.0, products=100, no_pin=not pin)
    try:
        cmd = bench_fanout.server_command(settings, impl, count, templates)
    except bench_fanout.Skip as why:
        print(f"  {impl}: skipped: {why}", flush=True)
        return None
    server = Child(impl, pinned(cmd, SERVER_CORE, pin))
    with benchlib.stopping(server):
        port = server.receive()["port"]
        time.sleep(1.0)
        base = rss_bytes(server.pid)
        load, took = connect(impl, port, count, subscribable_codes(), pin,
                             lambda: server.ask({"cmd": "status"})["subscriptions"])
        with benchlib.stopping(load):
            subscribed = rss_bytes(server.pid)
            peak = max(subscribed, hold(hold_s, server.pid))
            report = load.ask({"cmd": "report"})
    return {"base": base, "subscribed": subscribed, "peak": peak, "connect_s": took,
            "connections": count - report["closed"], "closed": report["closed"]}


def main() -> None:
    p = benchlib.parser(__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--hold", type=float, default=13.0,
                   help="seconds to hold the connections (past one ping round)")
    p.add_argument("--baselines", nargs="*",
                   default=["raw", "batched", "websockets", "aiohttp", "picows", "node-ws",
                            "bun-publish"])
    args = p.parse_args()
    count = 50 if args.quick else args.connections
    hold_s = 0.5 if args.quick else args.hold
    pin = not args.no_pin
    background = benchlib.wait_for_quiet(patience=0 if args.quick else 120)
    print(f"idle: {count:,} connections x 10 codes, held {hold_s:g} s; server on core "
          f"{SERVER_CORE}, clients on core {CLIENT_CORE}")
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tickwire-idle-") as tmp:
        runs["tickwire"] = measure_tickwire(Path(tmp), count, hold_s, pin)
        templates = Path(tmp) / "templates.json"
        bench_fanout.write_js_templates(templates, bench_fanout.product_codes(100))
        for impl in args.baselines:
            run = measure_baseline(impl, count, hold_s, pin, templates)
            if run is not None:
                runs[impl] = run
    rows = []
    for name, r in runs.items():
        r["per_connection"] = (r["peak"] - r["base"]) / count
        rows.append([name, r["connections"], r["base"] / MIB, r["peak"] / MIB,
                     r["per_connection"] / 1024, r["connect_s"], r["closed"]])
    table(f"Idle: resident memory with {count:,} subscribed, idle WebSockets",
          ["server", "connections", "RSS before MiB", "RSS with them MiB",
           "KiB/connection", "connect s", "closed"], rows)
    tw = runs["tickwire"]
    targets: dict[str, dict[str, Any]] = {
        f"RSS <= 256 MiB with {count:,} connections": {
            "figure": f"{tw['peak'] / MIB:.1f} MiB",
            "met": None if args.quick else tw["peak"] <= 256 * MIB and tw["closed"] == 0},
        "<= 8 KiB per connection": {
            "figure": f"{tw['per_connection'] / 1024:.1f} KiB",
            "met": None if args.quick else tw["per_connection"] <= 8 * 1024},
    }
    for name, target in targets.items():
        print(f"target {name}: {target['figure']} -> {benchlib.verdict(target['met'])}")
    benchlib.write_result(args.out, "idle" if not args.quick else "idle-quick", {
        "settings": {"connections": count, "codes_per_connection": 10, "hold_s": hold_s,
                     "quick": args.quick, "pinned": benchlib.can_pin() and pin},
        "runs": runs, "targets": targets, "background_busy": background})


if __name__ == "__main__":
    main()
