"""Replay: updates a second through a whole `tickwire serve` replaying two days at speed 0.

The inputs are made first, untimed, in a temp dir:

- a trades CSV (`time_ms,price,size,side,code`) of two days of event time for six crypto
  products of the shipped catalogue: a random walk per product (a few per cent a day), each
  trade at the bid or the ask by its side, several trades at one millisecond at times (a
  sweep), sizes log-normal, more trades in the busy hours of the day;
- a recording of quote bodies (`.jsonl.gz`) of the same trades: a real server replays the
  CSV at speed 0 with `[record]` on, so it holds every body that server pushed.

Each is then replayed at speed 0 by a real `tickwire serve` (its own port and data dir, the
SQLite store, only the replay feed) pinned to one core, this process watching it from the
other, a few times. The clock starts when the process is started, and again when /healthz
first answers 200; it stops when /healthz says the replay feed `finished` and the SQLite
file holds every bar of the live run (below) with its final values, looked at every 20 ms
(the store's figures in /healthz change only every 0.25 s). updates/s is the file's updates
over the seconds from /healthz answering (the replay proper); from process start adds
Python's start and the read of the whole file that tells the server which products it holds.

In the same run, as baselines: the ingest benchmark's pipeline + SQLite (`bench_ingest.py`'s
`pipeline`, in this process on the server's core) over its own simulator updates with full
books, and over this file's trades made into updates beforehand (no parsing, no server); and
the floor of each input format, a bare read of the file on that core (`csv.reader` over the
CSV; gzip and a split into lines of the recording).

The bars are checked too (untimed): a live run folds the same trades into a market one at a
time, its clock advanced each second of event time, and keeps every bar it hands the store.
The first replayed server of each file must hold exactly those bars in its SQLite file and
serve exactly them (encoded as the server encodes them) from `redis.php`, paging back with
`end=`, for every product and interval; every timed run's store must hold them to stop the
clock.

    .venv/bin/python benchmarks/bench_replay.py            # the full run (about 6 minutes)
    .venv/bin/python benchmarks/bench_replay.py --quick    # a tiny run for CI
"""

from __future__ import annotations

import csv
import gc
import gzip
import json
import math
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import benchlib
from bench_ingest import encode_chunks, make_updates, pipeline
from benchlib import CLIENT_CORE, SERVER_CORE, TickwireServer, table

from tickwire.catalogue import load_catalogue
from tickwire.config import Config, ReplayFeedConfig
from tickwire.market import Market, TimeZone
from tickwire.market.bars import BarRow, encode_bar
from tickwire.models import BUY, INTERVALS, SELL, WINDOW, Update
from tickwire.server import feed_catalogue

START_MS = 1_763_308_800_000
"""Monday 2025-11-17 00:00 in Shanghai (the service time zone): the first trade's day."""
HOUR_MS = 3_600_000
PRODUCTS = {  # code: (first price, daily volatility, share of the trades, typical size)
    "btcusdt": (93_000.0, 0.03, 0.34, 0.01),
    "ethusdt": (3_100.0, 0.04, 0.24, 0.2),
    "solusdt": (140.0, 0.05, 0.15, 3.0),
    "xrpusdt": (2.2, 0.05, 0.11, 400.0),
    "dogeusdt": (0.17, 0.06, 0.10, 3_000.0),
    "bnbusdt": (930.0, 0.03, 0.06, 0.5),
}
POLL = 0.02
"""Seconds between two looks at a replaying server."""
BUSY_LIMIT = 15.0
"""A replay during which other work took more of a core than this (%) is run again."""

BarKey = tuple[str, str, int]


# the inputs ----------------------------------------------------------------------------

def make_trades(count: int, hours: int, seed: int = 1) -> list[tuple[int, str, str, str, str]]:
    """(time_ms, price, size, side, code) of `count` trades over `hours`, in time order,
    prices and sizes written with the catalogue's decimals of each product."""
    catalogue = load_catalogue(None).products
    rng = random.Random(seed)
    span = hours * HOUR_MS
    trades: list[tuple[int, str, str, str, str]] = []
    for code, (price, vol, share, typical) in PRODUCTS.items():
        product = catalogue[code]
        tick = 10.0 ** -product.precision
        unit = 10.0 ** -product.volume_precision
        pfmt, sfmt = f"{{:.{product.precision}f}}", f"{{:.{product.volume_precision}f}}"
        times: list[int] = []
        wanted = round(count * share)
        while len(times) < wanted:  # busiest early afternoon
            t = rng.randrange(span)
            if rng.random() < 0.6 + 0.4 * math.sin(2 * math.pi * (t / 86_400_000 - 0.3)):
                times.append(START_MS + t)
                for _ in range(min(int(rng.expovariate(1.5)), 8)):  # a sweep
                    times.append(START_MS + t)
        times = sorted(times[:wanted])
        log_price, last = math.log(price), times[0]
        per_ms = vol / math.sqrt(86_400_000)
        for t in times:
            log_price += rng.gauss(0.0, per_ms * math.sqrt(t - last)) if t > last else 0.0
            last = t
            mid = math.exp(log_price)
            side = "buy" if rng.random() < 0.5 else "sell"
            at = mid + tick if side == "buy" else mid - tick
            size = max(unit, typical * rng.lognormvariate(0.0, 1.2))
            trades.append((t, pfmt.format(max(at, tick)), sfmt.format(size), side, code))
    trades.sort(key=lambda trade: trade[0])  # stable: a product's trades keep their order
    return trades


def write_csv(trades: list[tuple[int, str, str, str, str]], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_ms", "price", "size", "side", "code"])
        writer.writerows(trades)
    return path


def as_updates(trades: list[tuple[int, str, str, str, str]]) -> Iterator[Update]:
    """The trades as a feed of trades hands them over: one update a trade."""
    sides = {"buy": BUY, "sell": SELL}
    for t, price_text, size_text, side, code in trades:
        price = float(price_text)
        yield Update(code, t, price, None, None, [(price, float(size_text), sides[side])])


def live_bars(trades: list[tuple[int, str, str, str, str]], market: Market
              ) -> dict[BarKey, BarRow]:
    """Every bar a live run over `trades` hands the store (the newest version of each): the
    trades folded in one at a time, the clock advanced each second of event time."""
    codes = list(market.products)
    bars: dict[BarKey, BarRow] = {}

    def take() -> None:
        closed, forming, _ = market.take_changes()
        for code, interval, row in (*closed, *forming):
            bars[(code, interval, row[0])] = row

    second = 0
    for n, update in enumerate(as_updates(trades)):
        if update.ts // 1000 != second:
            second = update.ts // 1000
            market.advance(update.ts, codes)
        market.apply(update, encode=False)
        if n % 10_000 == 0:
            take()
    market.advance(trades[-1][0], codes)
    take()
    return bars


def record(csv_path: Path, workdir: Path, count: int, pin: bool) -> Path:
    """A recording of the bodies a server pushes replaying `csv_path` (all of them)."""
    folder = workdir / "recording"
    server = start_server(workdir / "recorder", replay_config(
        csv_path, f'\n[record]\npath = "{folder}"\n'), pin)
    with benchlib.stopping(server):
        deadline = time.monotonic() + 900
        while (feed := replay_health(server)[0])["state"] != "finished":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the recording server did not finish: {feed}")
            time.sleep(0.1)
        server.stop()  # a clean stop ends the recording's file
    lines = sum(read_gzip_lines(path) for path in sorted(folder.glob("*.jsonl.gz")))
    if lines != count:
        raise RuntimeError(f"the recording has {lines:,} bodies, not {count:,}: "
                           f"{server.log()[-2000:]}")
    return folder


# the processes and their cores ----------------------------------------------------------

_ALL_CORES = os.sched_getaffinity(0)


def move_self(core: int | None, pin: bool) -> None:
    """This process onto one core, or back onto every core it began with (None)."""
    if pin:
        os.sched_setaffinity(0, _ALL_CORES if core is None else {core})


def start_server(workdir: Path, extra: str, pin: bool) -> TickwireServer:
    """`tickwire serve` on `SERVER_CORE`, this process on `CLIENT_CORE` (a process on one
    core starts its children there: `benchlib.pinned` pins only from one on all)."""
    move_self(None, pin)
    try:
        return benchlib.start_tickwire(workdir, extra, core=SERVER_CORE, pin=pin)
    finally:
        move_self(CLIENT_CORE, pin)


# the timed runs -------------------------------------------------------------------------

def replay_config(path: Path, extra: str = "") -> str:
    return (benchlib.GENEROUS_LIMITS +
            f'\n[[feeds]]\nkind = "replay"\npath = "{path}"\nspeed = 0\n{extra}')


def replay_health(server: TickwireServer) -> tuple[dict[str, Any], dict[str, Any]]:
    """The replay feed's and the store's entries of /healthz."""
    health = benchlib.get_json(server.url + "/healthz")
    return health["feeds"][0], health["store"]


class StoreCheck:
    """Whether a server's SQLite file holds exactly the live run's bars (cheap enough to
    ask every few ms: a count and each series' newest bar, read from another process)."""

    def __init__(self, expected: dict[BarKey, BarRow]) -> None:
        self.expected = expected
        newest: dict[tuple[str, str], BarRow] = {}
        for (code, interval, open_ms), row in expected.items():
            if open_ms >= newest.get((code, interval), (-1,))[0]:
                newest[(code, interval)] = row
        self.newest = newest

    def holds_all(self, db: Path) -> bool:
        if not db.exists():
            return False
        with _reader(db) as conn:
            (count,) = conn.execute("SELECT count(*) FROM bars").fetchone()
            if count != len(self.expected):
                return False
            rows = conn.execute(
                "SELECT b.code, b.interval, b.open_ms, b.open, b.high, b.low, b.close, b.volume"
                " FROM bars b JOIN (SELECT code, interval, max(open_ms) AS newest FROM bars"
                " GROUP BY code, interval) n ON b.code = n.code AND b.interval = n.interval"
                " AND b.open_ms = n.newest").fetchall()
        return {(c, i): tuple(r) for c, i, *r in rows} == self.newest

    def stored(self, db: Path) -> dict[BarKey, BarRow]:
        with _reader(db) as conn:
            rows = conn.execute("SELECT * FROM bars").fetchall()
        return {(c, i, o): (o, *r) for c, i, o, *r in rows}


class _reader:
    """A read-only connection to a store another process writes (WAL mode)."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def replay_once(path: Path, workdir: Path, count: int, check: StoreCheck,
                pin: bool) -> tuple[dict[str, Any], TickwireServer]:
    """Start a server replaying `path` at speed 0 and time it to the end (see the module's
    docstring); the figures, and the server, still running, for the bar check."""
    workdir.mkdir(parents=True)
    server = start_server(workdir, replay_config(path), pin)
    meter = benchlib.CpuMeter({"server": server.proc.pid, "bench": os.getpid()})
    db = workdir / "data" / "tickwire.sqlite3"
    deadline = time.monotonic() + 900
    finished_at = 0.0
    try:
        while True:
            feed, _ = replay_health(server)
            if feed["state"] == "finished":
                finished_at = time.monotonic()
                break
            if time.monotonic() > deadline or feed["state"] == "down":
                raise RuntimeError(f"replay not finished: {feed}")
            time.sleep(POLL)
        while not check.holds_all(db):
            if time.monotonic() > finished_at + 60:
                raise RuntimeError("the store never held the live run's bars: "
                                   f"{replay_health(server)}")
            time.sleep(POLL)
        done = time.monotonic()
        cpu = meter.read()
        feed, store = replay_health(server)
    except BaseException:
        server.stop()
        raise
    if feed["updates"] != count or feed["skipped"]:
        server.stop()
        raise RuntimeError(f"the replay played {feed['updates']:,} updates "
                           f"({feed['skipped']} skipped), not {count:,}")
    ready_at = server.started + server.ready_after
    return {
        "from_start_s": done - server.started, "from_ready_s": done - ready_at,
        "finished_seen_s": finished_at - ready_at, "ready_after_s": server.ready_after,
        "server_cpu": cpu["server_cpu"], "others": cpu["others"],
        "store": store, "feed": feed,
    }, server


def replay_runs(label: str, path: Path, workdir: Path, count: int, check: StoreCheck,
                repeats: int, pin: bool, verify: Callable[[TickwireServer], str],
                quick: bool) -> list[dict[str, Any]]:
    """`repeats` timed replays, and up to two more for those during which other work took
    more than `BUSY_LIMIT` of a core; the bars are checked on the first server."""
    runs: list[dict[str, Any]] = []
    while sum(not r["busy"] for r in runs) < repeats and len(runs) < repeats + 2:
        n = len(runs) + 1
        run, server = replay_once(path, workdir / f"{label}-{n}", count, check, pin)
        with benchlib.stopping(server):
            if n == 1:
                print(f"  {label}: {verify(server)}", flush=True)
        run["busy"] = busy = run["others"] > BUSY_LIMIT and not quick
        print(f"  {label} run {n}: {run['from_start_s']:.2f} s from start, "
              f"{run['from_ready_s']:.2f} s from ready, "
              f"{count / run['from_ready_s']:,.0f} updates/s\n"
              f"    server {run['server_cpu']:.0f}% of a core, other work "
              f"{run['others']:.0f}%{' (busy: not counted)' if busy else ''}", flush=True)
        runs.append(run)
    return runs


def best_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run of those on a quiet machine (of all, when none was)."""
    quiet = [r for r in runs if not r["busy"]] or runs
    return min(quiet, key=lambda r: r["from_ready_s"])


# the bar check --------------------------------------------------------------------------

def served_bars(server: TickwireServer, code: str, interval: str) -> list[Any]:
    """Every bar `redis.php` serves of `code` in `interval`, oldest first, paging back with
    `end=`."""
    bars: list[Any] = []
    end = ""
    size = WINDOW[interval]
    while True:
        page = benchlib.get_json(
            f"{server.url}/redis.php?code={code}&time={interval}&rows={size}{end}")
        bars += page
        if len(page) < size:
            return bars[::-1]
        end = f"&end={page[-1][0] - 1}"


def bar_checker(expected: dict[BarKey, BarRow], market: Market, check: StoreCheck
                ) -> Callable[[TickwireServer], str]:
    """What checks a replayed server's bars against the live run's (raises on a
    difference); it says what it compared."""
    tz = market.tz

    def want(code: str, interval: str) -> list[Any]:
        product = market.products[code].product
        rows = sorted(row for (c, i, _), row in expected.items() if c == code and i == interval)
        return [json.loads(encode_bar(row, tz, product.precision, product.volume_precision))
                for row in rows]

    wanted = {(code, interval): want(code, interval)
              for code in market.products for interval in INTERVALS}

    def verify(server: TickwireServer) -> str:
        stored = check.stored(server.workdir / "data" / "tickwire.sqlite3")
        if stored != expected:
            differ = sorted(k for k in stored.keys() | expected.keys()
                            if stored.get(k) != expected.get(k))
            raise RuntimeError(f"{len(differ)} bars in SQLite differ from the live run's, "
                               f"first {differ[:3]}")
        served = 0
        for (code, interval), rows in wanted.items():
            got = served_bars(server, code, interval)
            if got != rows:
                first = next((i for i, (a, b) in enumerate(zip(got, rows, strict=False))
                              if a != b), min(len(got), len(rows)))
                raise RuntimeError(f"redis.php {code} {interval}: {len(got)} bars served, "
                                   f"{len(rows)} in the live run; first difference at {first}")
            served += len(got)
        ones = sum(len(rows) for (_, i), rows in wanted.items() if i == "1m")
        return (f"bars match the live run's: all {len(stored):,} in SQLite,\n"
                f"    all {served:,} served by redis.php ({ones:,} of them 1m), "
                f"{len(market.products)} products")

    return verify


# the baselines --------------------------------------------------------------------------

def read_csv_floor(path: Path) -> int:
    rows = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for _ in csv.reader(handle):
            rows += 1
    return rows - 1


def read_gzip_lines(path: Path) -> int:
    lines = 0
    tail = b""
    with gzip.open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            parts = (tail + chunk).split(b"\n")
            tail = parts.pop()
            lines += len(parts)
    return lines + (1 if tail else 0)


def best_of(repeats: int, work: Callable[[], Any]) -> float:
    seconds = []
    for _ in range(repeats):
        gc.collect()
        began = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - began)
    return min(seconds)


def main() -> None:
    p = benchlib.parser(__doc__.split("\n\n")[0])
    p.add_argument("--trades", type=int, default=1_500_000, help="trades in the file")
    p.add_argument("--hours", type=int, default=48, help="hours of event time they span")
    p.add_argument("--repeats", type=int, default=3, help="timed replays of each file")
    args = p.parse_args()
    count, hours, repeats, sim_count = (6_000, 3, 1, 3_000) if args.quick else \
        (args.trades, args.hours, args.repeats, 300_000)
    pin = not args.no_pin and benchlib.can_pin()
    background = benchlib.wait_for_quiet(patience=0 if args.quick else 120)
    print(f"replay: {count:,} trades over {hours} h of event time, {len(PRODUCTS)} products, "
          f"best of {repeats};\n"
          + (f"servers and baselines on core {SERVER_CORE}, this process on core "
             f"{CLIENT_CORE} while a server runs" if pin else "not pinned"))
    result: dict[str, Any] = {"background_busy": background}
    with tempfile.TemporaryDirectory(prefix="tickwire-replay-") as tmp:
        work = Path(tmp)
        began = time.perf_counter()
        trades = make_trades(count, hours)
        csv_path = write_csv(trades, work / "trades.csv")
        csv_bytes = csv_path.stat().st_size
        config = Config(feeds=[ReplayFeedConfig(path=str(csv_path), speed=0)])
        catalogue = feed_catalogue(config)  # the servers' products
        market = Market(catalogue.products.values(), TimeZone(config.server.timezone))
        expected = live_bars(trades, market)
        print(f"made the trades ({csv_bytes / 2**20:,.0f} MiB) and the live run's "
              f"{len(expected):,} bars in {time.perf_counter() - began:.1f} s", flush=True)
        began = time.perf_counter()
        recording = record(csv_path, work, count, pin)
        gz_files = sorted(recording.glob("*.jsonl.gz"))
        gz_bytes = sum(f.stat().st_size for f in gz_files)
        print(f"recorded the bodies ({len(gz_files)} file(s), {gz_bytes / 2**20:,.0f} MiB) "
              f"in {time.perf_counter() - began:.1f} s", flush=True)

        check = StoreCheck(expected)
        verify = bar_checker(expected, market, check)
        runs = {key: replay_runs(key, path, work, count, check, repeats, pin, verify,
                                 args.quick)
                for key, path in (("CSV", csv_path), ("bodies", recording))}

        move_self(SERVER_CORE, pin)  # the baselines on the servers' core
        sim = encode_chunks(make_updates(sim_count))
        mine = encode_chunks(list(as_updates(trades)))
        del trades
        ingest_sim = min(pipeline(sim, work, watched=False)[0] for _ in range(repeats))
        ingest_mine = min(pipeline(mine, work, watched=False)[0] for _ in range(repeats))
        del sim, mine
        floor_csv = best_of(repeats, lambda: read_csv_floor(csv_path))
        floor_gz = best_of(repeats, lambda: sum(read_gzip_lines(f) for f in gz_files))

    rates: dict[str, float] = {}
    rows: list[list[Any]] = []
    best: dict[str, dict[str, Any]] = {}
    for key, label in (("CSV", "replay CSV (server)"), ("bodies", "replay bodies (server)")):
        best[key] = best_run(runs[key])
        rates[key] = count / best[key]["from_ready_s"]
        rows.append([label, rates[key], 1e6 / rates[key], best[key]["from_start_s"],
                     best[key]["from_ready_s"]])
    for key, label, seconds, n in (
            ("ingest", "ingest + SQLite, sim updates", ingest_sim, sim_count),
            ("ingest_trades", "ingest + SQLite, these trades", ingest_mine, count),
            ("floor_csv", "floor: csv.reader, CSV", floor_csv, count),
            ("floor_gz", "floor: gzip + lines, bodies", floor_gz, count)):
        rates[key] = n / seconds
        rows.append([label, rates[key], 1e6 / rates[key], None, None])
    table(f"Replay at speed 0: updates/s ({count:,} trades, {hours} h, one core)",
          ["path", "updates/s", "us/update", "s, start", "s, ready"], rows)
    quick = args.quick
    targets: dict[str, dict[str, Any]] = {}
    for key, what in (("CSV", "the trades CSV"), ("bodies", "the recording")):
        wall = best[key]["from_start_s"]
        targets[f"{what} replayed at speed 0 in under a minute, from process start"] = {
            "figure": f"{wall:.1f} s", "met": None if quick else wall < 60}
    targets["replayed bars equal a live run's"] = {
        "figure": f"{len(expected):,} bars equal", "met": None if quick else True}
    result.update({
        "settings": {"trades": count, "event_hours": hours, "products": list(PRODUCTS),
                     "repeats": repeats, "pinned": pin,
                     "sim_updates": sim_count, "csv_bytes": csv_bytes,
                     "recording_bytes": gz_bytes, "bars": len(expected), "quick": quick},
        "runs": runs, "updates_per_s": rates,
        "seconds": {"ingest_sim": ingest_sim, "ingest_trades": ingest_mine,
                    "floor_csv": floor_csv, "floor_gz": floor_gz},
        "targets": targets,  # the bars: a difference raises before this
    })
    benchlib.write_result(args.out, "replay-quick" if quick else "replay", result)


if __name__ == "__main__":
    main()
