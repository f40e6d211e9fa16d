"""Growth: K-line reads and start-up as the store grows, and start-up out of the box.

- Start-up: seconds from starting `tickwire serve` (shipped catalogue, default config) to
  the first 200 from /healthz, on an empty data directory (the simulator fills history
  first), then again on the store that run left, and on stores of 1 million and 10 million
  one-minute bars (every product of the catalogue, back from now).
- Reads: wrk (8 connections, a Lua script) asks `redis.php?time=1m&rows=600&end=...` for a
  random product and a random `end` older than the 600 bars kept in memory, so every request
  is answered from SQLite; the same on the 1 million and the 10 million store. The p99 may not
  double. The newest window (answered from memory) is measured beside it for reference.

The stores are built with SQLite directly in tickwire's schema, in one transaction.

    .venv/bin/python benchmarks/bench_growth.py            # the full run (about 4 minutes)
    .venv/bin/python benchmarks/bench_growth.py --quick    # a tiny run for CI

Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import benchlib
from benchlib import table

from tickwire.catalogue import load_catalogue
from tickwire.engine.sqlite import SqliteStore

MINUTE = 60_000
MEMORY_WINDOW = 600
LUA = """
local codes = {%(codes)s}
local first, steps = %(first)s, %(steps)d
math.randomseed(7)
request = function()
  local code = codes[math.random(#codes)]
  local e = first + math.random(0, steps) * 60000
  return wrk.format("GET", string.format("/redis.php?code=%%s&time=1m&rows=600&end=%%.0f",
                                         code, e))
end
"""


def build_store(data_dir: Path, bars: int) -> dict[str, Any]:
    """`bars` one-minute bars spread over every product, newest a minute ago."""
    codes = list(load_catalogue(None).products)
    per_code = bars // len(codes)
    newest = (int(time.time() * 1000) // MINUTE - 1) * MINUTE
    oldest = newest - (per_code - 1) * MINUTE
    path = data_dir / "tickwire.sqlite3"
    SqliteStore(path).close()  # tickwire's own schema
    began = time.monotonic()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")

    def rows() -> Iterator[tuple[str, str, int, float, float, float, float, float]]:
        rng = random.Random(1)
        for code in codes:
            price = 100.0
            for k in range(per_code):
                o = price
                c = round(o * (1 + rng.gauss(0, 0.001)), 2)
                yield (code, "1m", oldest + k * MINUTE, o, max(o, c) + 0.01,
                       min(o, c) - 0.01, c, float(k % 97))
                price = c

    conn.execute("BEGIN")
    conn.executemany("INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())
    conn.execute("COMMIT")
    conn.close()
    return {"bars": per_code * len(codes), "codes": codes, "oldest": oldest,
            "newest": newest, "build_s": time.monotonic() - began,
            "file_mib": path.stat().st_size / 2**20}


def read_test(url: str, store: dict[str, Any], workdir: Path, args: Any,
              seconds: float) -> dict[str, Any]:
    first = store["oldest"] + MINUTE * 600
    last = store["newest"] - MINUTE * (MEMORY_WINDOW + 10)
    script = workdir / "stored.lua"
    script.write_text(LUA % {"codes": ",".join(f'"{c}"' for c in store["codes"]),
                             "first": first, "steps": max(0, (last - first) // MINUTE)})
    # check the script's requests are answered (and from the store: `end` is old)
    stored = benchlib.wrk(url + "/", args.connections, seconds, pin=not args.no_pin,
                          script=script)
    memory = benchlib.wrk(url + "/redis.php?code=btcusdt&time=1m&rows=600", args.connections,
                          seconds, pin=not args.no_pin)
    return {"stored": stored, "memory": memory}


def main() -> None:
    p = benchlib.parser(__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[1_000_000, 10_000_000])
    p.add_argument("--connections", type=int, default=8, help="wrk connections")
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    if not benchlib.have_wrk():
        sys.exit("bench_growth needs wrk (Debian: apt-get install wrk)")
    quick = args.quick
    sizes = [10_000, 100_000] if quick else args.sizes
    seconds = 1.0 if quick else args.seconds
    pin = not args.no_pin
    extra = benchlib.GENEROUS_LIMITS
    background = benchlib.wait_for_quiet(patience=0 if quick else 120)
    startup: dict[str, float] = {}
    reads: dict[str, Any] = {}
    stores: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tickwire-growth-") as tmp:
        work = Path(tmp)
        fresh = work / "fresh"
        server = benchlib.start_tickwire(fresh, "", pin=pin)
        startup["empty store (history fill)"] = server.ready_after
        server.stop()
        server = benchlib.start_tickwire(fresh, "", pin=pin)
        startup["restart on that store"] = server.ready_after
        server.stop()
        print(f"start-up: {startup}")
        for size in sizes:
            label = f"{size:,} bars"
            data_dir = work / f"store-{size}"
            data_dir.mkdir()
            store = build_store(data_dir, size)
            stores[label] = {k: v for k, v in store.items() if k != "codes"}
            print(f"built {store['bars']:,} bars in {store['build_s']:.1f} s "
                  f"({store['file_mib']:.0f} MiB)")
            server = benchlib.start_tickwire(work / f"run-{size}", extra, data_dir=data_dir,
                                             pin=pin)
            startup[f"restart with {label}"] = server.ready_after
            with benchlib.stopping(server):
                reads[label] = read_test(server.url, store, work, args, seconds)
    rows = []
    for label, r in reads.items():
        s, m = r["stored"], r["memory"]
        rows.append([label, "from SQLite (end=)", s["rps"], s["p50_ms"], s["p99_ms"],
                     s["errors"]])
        rows.append([label, "newest, from memory", m["rps"], m["p50_ms"], m["p99_ms"],
                     m["errors"]])
    table(f"Growth: redis.php rows=600 ({args.connections} connections, {seconds:g} s)",
          ["store", "answered", "requests/s", "p50 ms", "p99 ms", "errors"], rows)
    table("Start-up to a ready /healthz (shipped catalogue)", ["store", "seconds"],
          list(startup.items()))
    labels = list(reads)
    small, big = reads[labels[0]]["stored"], reads[labels[-1]]["stored"]
    ratio = big["p99_ms"] / small["p99_ms"]
    targets: dict[str, dict[str, Any]] = {
        f"redis.php p99 with {labels[-1]} < 2 x with {labels[0]}": {
            "figure": f"{big['p99_ms']:.1f} vs {small['p99_ms']:.1f} ms ({ratio:.2f} x)",
            "met": None if quick else ratio < 2 and big["errors"] == 0},
    }
    for name, secs in startup.items():
        targets[f"start-up <= 2 s, {name}"] = {"figure": f"{secs:.2f} s",
                                               "met": None if quick else secs <= 2.0}
    for name, target in targets.items():
        print(f"target {name}: {target['figure']} -> {benchlib.verdict(target['met'])}")
    benchlib.write_result(args.out, "growth" if not quick else "growth-quick", {
        "settings": {"sizes": sizes, "connections": args.connections, "seconds": seconds,
                     "quick": quick, "pinned": benchlib.can_pin() and pin},
        "stores": stores, "reads": reads, "startup_s": startup, "targets": targets,
        "background_busy": background})


if __name__ == "__main__":
    main()
