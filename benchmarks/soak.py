"""Soak: steady load for a long time, and whether anything grows or fails.

A real `tickwire serve` (shipped catalogue, simulator at 5 updates a second per product, rate
limits raised) pinned to one core; 1,000 WebSocket clients (benchmarks/wsload.py, the other
core) each holding 4 of the 17 products that trade round the clock, so that the server makes
20,000 deliveries a second; beside them, HTTP requests at a steady rate (getQuote and
redis.php rows=600 in turn), each timed. Every sample (30 s, or a twelfth of a short run):

- the server's resident memory (RSS), open file descriptors, event-loop tasks
  (`tickwire_tasks` of /metrics), the HTTP p99 of the window, the deliveries a second;
- the machine's load average, which tells a p99 disturbed by other processes;
- errors: HTTP answers other than 200 or requests that failed, WebSocket connections closed
  (by either side), malformed pushes, connections the server closed as slow or idle.

At the end, each measure's slope per minute over the samples after the warm-up (the first
tenth of the run): the median of the slopes between every two samples (Theil-Sen), so that
a few samples disturbed by something else on the machine do not tilt it. Targets: no error
at all; descriptors and tasks back where they were (the last sample within 10 of the first
steady one); and, for a run of 10 minutes or more, memory under 0.5 MiB a minute and the
p99 under 0.05 ms a minute.

    .venv/bin/python benchmarks/soak.py                  # 30 minutes
    .venv/bin/python benchmarks/soak.py --seconds 120    # a short soak (CI runs 60 s)
    .venv/bin/python benchmarks/soak.py --quick          # a tiny run that checks it works
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import benchlib
from benchlib import CLIENT_CORE, SERVER_CORE, Child, pinned, table

CODES_PER_CLIENT = 4
STEADY_WITHIN = 10
"""Descriptors and tasks: how far the last sample may be from the first steady one."""
RSS_SLOPE_MIB, P99_SLOPE_MS = 0.5, 0.05
"""The most memory and p99 may grow a minute over a run of `JUDGED_FROM` s or more."""
JUDGED_FROM = 600


@dataclass
class Window:
    """What the HTTP traffic met since the last sample."""

    latencies: list[float] = field(default_factory=list)
    failed: int = 0


async def http_traffic(url: str, rate: float, codes: list[str], stop: asyncio.Event,
                       window: list[Window]) -> None:
    """One request every 1/`rate` s, one after the other, into the current window."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        i = 0
        while not stop.is_set():
            code = codes[i % len(codes)]
            path = (f"/getQuote.php?code={code}" if i % 2 == 0
                    else f"/redis.php?code={code}&time=1m&rows=600")
            i += 1
            began = time.perf_counter()
            try:
                async with session.get(url + path) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            window[0].latencies.append((time.perf_counter() - began) * 1000)
            window[0].failed += not ok
            due += 1 / rate
            await asyncio.sleep(max(0.0, due - loop.time()))


def metric(text: str, name: str) -> float:
    """The sum of a metric's samples in Prometheus text."""
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


async def sample(server: benchlib.TickwireServer, load: Child, window: Window,
                 began: float) -> dict[str, Any]:
    pid = server.proc.pid
    metrics = (await asyncio.to_thread(benchlib.get_bytes, server.url + "/metrics")).decode()
    report = await asyncio.to_thread(load.ask, {"cmd": "report"})
    await asyncio.to_thread(load.ask, {"cmd": "reset", "check_every": 1})
    latencies = sorted(window.latencies)
    return {
        "minute": round((time.monotonic() - began) / 60, 3),
        "rss_mib": round(benchlib.rss_bytes(pid) / 2**20, 2),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "tasks": int(metric(metrics, "tickwire_tasks")),
        "http_requests": len(latencies),
        "http_p99_ms": round(benchlib.percentile(latencies, 99), 2),
        "deliveries_per_s": round(report["received_per_s"]),
        "http_failed": window.failed,
        "ws_closed": report["closed"],
        "invalid_pushes": report["invalid"],
        "server_closed": int(metric(metrics, "tickwire_ws_closed_total")),
        "connections": int(metric(metrics, "tickwire_ws_connections")),
        "machine_load": round(os.getloadavg()[0], 2),
    }


async def soak(server: benchlib.TickwireServer, load: Child, seconds: float, every: float,
               rate: float, codes: list[str]) -> list[dict[str, Any]]:
    stop = asyncio.Event()
    window = [Window()]
    traffic = asyncio.create_task(http_traffic(server.url, rate, codes, stop, window))
    samples: list[dict[str, Any]] = []
    began = time.monotonic()
    await asyncio.to_thread(load.ask, {"cmd": "reset", "check_every": 1})
    try:
        while (left := began + seconds - time.monotonic()) > 0:
            await asyncio.sleep(min(every, left))
            done, window[0] = window[0], Window()
            samples.append(await sample(server, load, done, began))
            s = samples[-1]
            print(f"{s['minute']:6.2f} min rss {s['rss_mib']:6.1f} MiB fds {s['fds']:5d} "
                  f"tasks {s['tasks']:5d} p99 {s['http_p99_ms']:6.1f} ms "
                  f"{s['deliveries_per_s']:6,d}/s load {s['machine_load']:4.1f}", flush=True)
    finally:
        stop.set()
        await traffic
    return samples


def slope(samples: list[dict[str, Any]], key: str) -> float:
    """Growth a minute: the median of the slopes between every two samples (Theil-Sen),
    which a few samples disturbed by something else on the machine do not tilt."""
    pairs = [(b[key] - a[key]) / (b["minute"] - a["minute"])
             for i, a in enumerate(samples) for b in samples[i + 1:]
             if b["minute"] > a["minute"]]
    return float(statistics.median(pairs)) if pairs else 0.0


def main() -> None:
    p = benchlib.parser(__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=1800.0, help="length of the soak")
    p.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    p.add_argument("--clients", type=int, default=1000, help="WebSocket clients")
    p.add_argument("--http-rate", type=float, default=100.0, help="HTTP requests a second")
    args = p.parse_args()
    quick = args.quick
    seconds = 12.0 if quick else args.seconds
    clients = 20 if quick else args.clients
    every = min(args.sample, seconds / 12)
    pin = not args.no_pin
    codes = benchlib.round_the_clock_codes()
    extra = benchlib.GENEROUS_LIMITS + "\n[access]\nws_connections_per_ip = 100000\n"
    if quick:
        extra += '\n[[feeds]]\nkind = "sim"\nhistory = false\n'
    with tempfile.TemporaryDirectory(prefix="tickwire-soak-") as tmp:
        server = benchlib.start_tickwire(Path(tmp) / "tickwire", extra, pin=pin,
                                         open_files=clients + 1000)
        with benchlib.stopping(server):
            wait_for_quotes(server.url, codes)
            load = Child("soak-clients", pinned(
                [sys.executable, str(Path(__file__).with_name("wsload.py")), "--port",
                 str(server.port), "--count", str(clients), "--codes", ",".join(codes),
                 "--per-client", str(CODES_PER_CLIENT)], CLIENT_CORE, pin))
            with benchlib.stopping(load):
                connected = load.receive()["connected"]
                print(f"tickwire on core {SERVER_CORE}, {connected} clients on core "
                      f"{CLIENT_CORE}, {args.http_rate:g} HTTP requests/s;\n"
                      f"{seconds:g} s, a sample every {every:g} s (deliveries a second "
                      "as the clients count them)", flush=True)
                samples = benchlib.run_async(
                    soak(server, load, seconds, every, args.http_rate, codes))
    steady = [s for s in samples if s["minute"] * 60 >= seconds / 10] or samples
    results = summary(samples, steady, seconds, clients, args, quick)
    benchlib.write_result(args.out, "soak" if not quick else "soak-quick", results)
    if any(target["met"] is False for target in results["targets"].values()):
        sys.exit(1)


def wait_for_quotes(url: str, codes: list[str], patience: float = 30.0) -> None:
    """Until every product has its first quote (a simulator without history starts each
    at its first update), so that the traffic meets no 404."""
    deadline = time.monotonic() + patience
    for code in codes:
        while True:
            try:
                benchlib.get_bytes(f"{url}/getQuote.php?code={code}")
                break
            except urllib.error.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def summary(samples: list[dict[str, Any]], steady: list[dict[str, Any]], seconds: float,
            clients: int, args: Any, quick: bool) -> dict[str, Any]:
    keys = ("rss_mib", "fds", "tasks", "http_p99_ms", "deliveries_per_s")
    slopes = {key: round(slope(steady, key), 4) for key in keys}
    last = samples[-1]
    errors = {
        "http_failed": sum(s["http_failed"] for s in samples),
        "ws_closed": last["ws_closed"], "server_closed": last["server_closed"],
        "invalid_pushes": sum(s["invalid_pushes"] for s in samples),
    }
    table("Soak: slope a minute over the steady samples",
          ["measure", "first steady", "last", "slope / minute"],
          [[key, steady[0][key], last[key], slopes[key]] for key in keys])
    print("errors: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    judged = not quick and seconds >= JUDGED_FROM
    drift = {key: int(last[key] - steady[0][key]) for key in ("fds", "tasks")}
    targets: dict[str, dict[str, Any]] = {
        "no errors": {"figure": f"{sum(errors.values())}",
                      "met": None if quick else not any(errors.values())},
        f"fds and tasks steady (within {STEADY_WITHIN})": {
            "figure": f"fds {drift['fds']:+d}, tasks {drift['tasks']:+d}",
            "met": None if quick else max(map(abs, drift.values())) <= STEADY_WITHIN},
        f"memory slope <= {RSS_SLOPE_MIB} MiB/min": {
            "figure": f"{slopes['rss_mib']:+.3f} MiB/min",
            "met": slopes["rss_mib"] <= RSS_SLOPE_MIB if judged else None},
        f"p99 slope <= {P99_SLOPE_MS} ms/min": {
            "figure": f"{slopes['http_p99_ms']:+.4f} ms/min",
            "met": slopes["http_p99_ms"] <= P99_SLOPE_MS if judged else None},
    }
    for name, target in targets.items():
        print(f"target {name}: {target['figure']} -> {benchlib.verdict(target['met'])}")
    return {"settings": {"seconds": seconds, "sample_s": min(args.sample, seconds / 12),
                         "clients": clients, "codes_per_client": CODES_PER_CLIENT,
                         "http_rate": args.http_rate, "quick": quick},
            "samples": samples, "slopes_per_minute": slopes, "errors": errors,
            "targets": targets}


if __name__ == "__main__":
    main()
