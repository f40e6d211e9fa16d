"""Ingest: updates a second through tickwire's core and pipeline, on one core.

The updates are the simulator's, for every product of the shipped catalogue, interleaved in
event time at 5 updates per product per second of event time (the default rate) from a
weekday morning, with a full book and a trade each, made before any clock starts. Each figure
is the best of a few passes over the same updates, a fresh market for each pass:

- bare loop: the baseline, a Python loop over the same updates that reads each one;
- core, quote + 7 intervals: `Market.apply(update, encode=False)`, what an update of a product
  nobody watches costs: quote state (day statistics, book, trades) and all seven K-line builders;
- core, live: `Market.apply(update)`, the same plus the body encoded once for the wire;
- pipeline + SQLite: `Ingest.publish` in feed-sized batches with `advance` per batch,
  `persist` every 0.25 s of wall time (as the server does) into a real `SqliteStore`, and the
  clock stopped only when the store's writer has committed everything. Run twice: as the
  server runs it with nobody subscribed (a body is encoded only when read), and with every
  product subscribed, so that every update is encoded and published on the bus;
- pipeline + SQLite + recording: the first again with `[record]` on for every product, so
  that every update is encoded and its line compressed and written to a day's file by the
  recorder's thread (on the same core); the clock stops when the recorder has closed the file.

    .venv/bin/python benchmarks/bench_ingest.py            # the full run (about a minute)
    .venv/bin/python benchmarks/bench_ingest.py --quick    # a tiny run for CI
"""

from __future__ import annotations

import gc
import heapq
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import benchlib
import msgspec
from benchlib import SERVER_CORE, table

from tickwire.catalogue import load_catalogue
from tickwire.engine.memory import MemoryEngine
from tickwire.engine.sqlite import SqliteStore
from tickwire.feeds.record import Recorder
from tickwire.feeds.sim import ProductSim
from tickwire.ingest.pipeline import Ingest
from tickwire.ingest.writer import StoreWriter
from tickwire.market import Market, TimeZone
from tickwire.market.hours import TradingHours
from tickwire.models import Update

T0_MS = 1_763_424_000_000 + 2 * 3_600_000  # Tuesday 2025-11-18 10:00 in Shanghai
RATE = 5.0
BATCH = 50
"""Updates per `Ingest.publish` call (a 50 ms feed tick over the whole catalogue)."""
CHUNK = 1000
"""Updates made fresh at a time (untimed) before they are applied (timed)."""


def make_updates(count: int, seed: int = 1) -> list[Update]:
    catalogue = load_catalogue(None)
    tz = TimeZone("Asia/Shanghai")
    sims = [ProductSim(p, TradingHours(p.hours, tz), tz, seed) for p in
            catalogue.products.values()]
    rng = random.Random(seed)
    gap = 1000.0 / RATE
    queue = [(T0_MS + int(rng.expovariate(1.0) * gap), i) for i in range(len(sims))]
    heapq.heapify(queue)
    updates: list[Update] = []
    while len(updates) < count:
        ts, i = heapq.heappop(queue)
        sim = sims[i]
        if not sim.hours.is_open(ts):
            heapq.heappush(queue, (sim.hours.next_open(ts), i))
            continue
        updates.append(sim.step(ts))
        heapq.heappush(queue, (ts + 1 + int(rng.expovariate(1.0) * gap), i))
    return updates


def encode_chunks(updates: list[Update]) -> list[bytes]:
    """The updates as JSON, a chunk at a time (see `chunks`)."""
    return [msgspec.json.encode(updates[i:i + CHUNK]) for i in range(0, len(updates), CHUNK)]


def chunks(encoded: list[bytes]) -> Iterator[list[Update]]:
    """Fresh update objects a chunk at a time, as a feed hands them over: made just before
    they are applied, so they are in the CPU's caches as a live feed's would be (a pass
    over a huge list made long before measures memory, not tickwire). Not timed."""
    for blob in encoded:
        yield _decode_chunk(blob)


_decode_chunk = msgspec.json.Decoder(list[Update]).decode


def timed(encoded: list[bytes], work: Callable[[list[Update]], None],
          clock: Callable[[], float] = time.perf_counter) -> float:
    gc.collect()
    seconds = 0.0
    for chunk in chunks(encoded):
        began = clock()
        work(chunk)
        seconds += clock() - began
    return seconds


def fresh_market() -> Market:
    return Market(load_catalogue(None).products.values(), TimeZone("Asia/Shanghai"))


def bare(encoded: list[bytes]) -> float:
    def work(updates: list[Update]) -> None:
        price = 0.0
        for update in updates:
            price = update.price
        del price
    return timed(encoded, work)


def core(encoded: list[bytes], encode: bool) -> float:
    apply = fresh_market().apply

    def work(updates: list[Update]) -> None:
        for update in updates:
            apply(update, encode)
    return timed(encoded, work)


def pipeline(encoded: list[bytes], workdir: Path, watched: bool,
             recorder: Recorder | None = None,
             clock: Callable[[], float] = time.perf_counter) -> tuple[float, int]:
    """Seconds by `clock` (wall time; `time.process_time` for this process's CPU time,
    the store's thread included) and the bars stored."""
    store = SqliteStore(workdir / f"ingest-{time.monotonic_ns()}.sqlite3")
    market = fresh_market()
    engine = MemoryEngine(load_catalogue(None), market, store)
    published = 0

    def count(batch: list[tuple[str, bytes]]) -> None:
        nonlocal published
        published += len(batch)

    engine.subscribe(count)
    if watched:
        for code in market.products:
            engine.watch(code)
    writer = StoreWriter(store)
    ingest = Ingest(market, engine, store, writer, recorder)
    if recorder is not None:
        recorder.start()
    sink = ingest.sink(list(market.products))
    persist_at = time.monotonic() + 0.25

    def work(updates: list[Update]) -> None:
        nonlocal persist_at
        for i in range(0, len(updates), BATCH):
            batch = updates[i:i + BATCH]
            sink.publish(batch)
            sink.advance(batch[-1].ts)
            if time.monotonic() >= persist_at:
                ingest.persist()
                persist_at = time.monotonic() + 0.25

    seconds = timed(encoded, work, clock)
    began = clock()
    ingest.persist()
    writer.close()  # the clock stops when everything is committed
    if recorder is not None:
        recorder.close()  # ... and written to the recording
    seconds += clock() - began
    rows = store.count_bars()
    store.close()
    assert published == (ingest.updates_in if watched else 0), (published, ingest.updates_in)
    return seconds, rows


def main() -> None:
    args = benchlib.parser(__doc__.split("\n\n")[0]).parse_args()
    count, repeats = (3_000, 1) if args.quick else (300_000, 3)
    background = benchlib.wait_for_quiet(patience=0 if args.quick else 120)
    pinned = benchlib.pin_self(SERVER_CORE, not args.no_pin)
    print(f"ingest: {count:,} updates, best of {repeats}, "
          f"{f'pinned to core {SERVER_CORE}' if pinned else 'not pinned'} "
          "(the store's writer thread shares that core)")
    began = time.perf_counter()
    updates = make_updates(count)
    made = time.perf_counter() - began
    span = (updates[-1].ts - updates[0].ts) / 1000
    products = len({u.code for u in updates})
    encoded = encode_chunks(updates)
    del updates
    print(f"made the updates in {made:.1f} s ({span:,.0f} s of event time, "
          f"{products} products)")
    results: dict[str, list[float]] = {"bare": [], "core": [], "live": [], "pipeline": [],
                                       "pipeline_watched": [], "pipeline_recorded": []}
    stored = 0
    recorded: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="tickwire-ingest-") as tmp:
        for _ in range(repeats):
            results["bare"].append(bare(encoded))
            results["core"].append(core(encoded, encode=False))
            results["live"].append(core(encoded, encode=True))
            seconds, stored = pipeline(encoded, Path(tmp), watched=False)
            results["pipeline"].append(seconds)
            seconds, _ = pipeline(encoded, Path(tmp), watched=True)
            results["pipeline_watched"].append(seconds)
            recorder = Recorder(Path(tmp) / f"record-{time.monotonic_ns()}")
            seconds, _ = pipeline(encoded, Path(tmp), watched=False, recorder=recorder)
            results["pipeline_recorded"].append(seconds)
            recorded = recorder.health()
            assert recorded["lines_written"] == count and not recorded["dropped_lines"], recorded
    rates = {k: count / min(v) for k, v in results.items()}
    labels = {"bare": "bare loop (baseline)", "core": "core: quote + 7 intervals",
              "live": "core, live: + body encoded",
              "pipeline": "pipeline + SQLite (bodies encoded when read)",
              "pipeline_watched": "pipeline + SQLite, every product subscribed",
              "pipeline_recorded": "pipeline + SQLite, every product recorded"}
    targets = {"core": 300_000, "pipeline": 100_000}
    rows = []
    for key, label in labels.items():
        target = targets.get(key)
        rows.append([label, rates[key], 1e6 / rates[key], rates["bare"] / rates[key],
                     f">= {target:,}" if target else "",
                     benchlib.verdict(None if args.quick else rates[key] >= target)
                     if target else ""])
    table(f"Ingest: updates/s on one core ({count:,} updates)",
          ["path", "updates/s", "us/update", "x slower than bare", "target", ""], rows)
    result: dict[str, Any] = {
        "background_busy": background,
        "settings": {"updates": count, "repeats": repeats, "pinned": pinned,
                     "batch": BATCH, "event_seconds": span, "quick": args.quick},
        "seconds": results, "updates_per_s": rates, "bars_stored": stored,
        "recording": {key: recorded[key] for key in ("lines_written", "bytes_written",
                                                      "dropped_lines")},
        "targets": {
            "core >= 300,000/s": {"figure": f"{rates['core']:,.0f}/s",
                                  "met": None if args.quick else rates["core"] >= 300_000},
            "pipeline + SQLite >= 100,000/s": {
                "figure": f"{rates['pipeline']:,.0f}/s",
                "met": None if args.quick else rates["pipeline"] >= 100_000},
        },
    }
    benchlib.write_result(args.out, "ingest" if not args.quick else "ingest-quick", result)


if __name__ == "__main__":
    main()
