"""SDK decoding: how many WebSocket quote pushes a second one core turns into `Quote`s.

The messages are `{"body":{...}}` pushes shaped as tickwire and the vendor send them, a mix
of the protocol's kinds of product: crypto (10 book levels a side, 5 trades), futures
(10 levels, trades, `Info`), forex (5 levels, no trades, no volume) and index futures (no
book: `Depth` and `Info` as `[]`). Every message differs (prices move), and all are decoded
in each run. Same-run baselines on the same messages: the standard library's `json.loads`
and msgspec decoding to plain dicts.

Rows:
- tickwire Quote: `decode_message`, what the stream does with every push (book, trades and
  `raw` stay undecoded until first read)
- + top of book read: the same, reading price, bid and ask as a ticker would
- + book and trades read: the same, also reading `bids`, `asks` and `trades` (full cost)

    .venv/bin/python benchmarks/bench_decode.py            # the full run (about 30 s)
    .venv/bin/python benchmarks/bench_decode.py --quick    # a tiny run for CI
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec

from tickwire.client.models import decode_message

HERE = Path(__file__).resolve().parent
TARGET = 200_000
"""Quote messages a second one core must decode (the SDK's issue)."""


# the messages ------------------------------------------------------------------------------

KINDS: list[dict[str, Any]] = [
    {"code": "btcusdt", "price": 92129.09, "precision": 2, "depth": 10, "trades": 5,
     "info": None, "volume": True},
    {"code": "hf_GC", "price": 4643.9, "precision": 1, "depth": 10, "trades": 5,
     "info": "TotalAmount", "volume": True},
    {"code": "fx_seurusd", "price": 1.0895, "precision": 5, "depth": 5, "trades": 0,
     "info": None, "volume": False},
    {"code": "HX_HSI", "price": 25870.0, "precision": 0, "depth": 0, "trades": 0,
     "info": None, "volume": True},
]


def _num(value: float, decimals: int) -> float | int:
    rounded = round(value, decimals)
    return rounded if rounded % 1 else int(rounded)


def push(kind: dict[str, Any], rng: random.Random, ts: int) -> bytes:
    """One push as the server encodes it, keys in the protocol's order."""
    p = kind["precision"]
    tick = 10 ** -p
    price = kind["price"] * (1 + rng.uniform(-0.02, 0.02))
    open_ = kind["price"]
    bid, ask = price - tick, price
    body: dict[str, Any] = {
        "StockCode": kind["code"], "Price": _num(price, p), "Open": _num(open_, p),
        "LastClose": _num(open_ * 0.999, p), "High": _num(price * 1.01, p),
        "Low": _num(price * 0.99, p),
        "Time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts + 8 * 3600)),
        "LastTime": str(ts), "BP1": _num(bid, p), "BV1": round(rng.uniform(0, 5), 4),
        "SP1": _num(ask, p), "SV1": round(rng.uniform(0, 5), 4),
        "TotalVol": round(rng.uniform(1e3, 1e5), 5) if kind["volume"] else 0,
    }
    depth = kind["depth"]
    body["Depth"] = {
        "Buy": [{f"BP{i}": _num(bid - (i - 1) * tick, p), f"BV{i}": round(rng.uniform(0, 9), 5)}
                for i in range(1, depth + 1)],
        "Sell": [{f"SP{i}": _num(ask + (i - 1) * tick, p), f"SV{i}": round(rng.uniform(0, 9), 5)}
                 for i in range(1, depth + 1)],
    } if depth else []
    body["BS"] = [{"time": body["Time"][11:], "price": _num(price, p),
                   "size": round(rng.uniform(0, 10), 5), "direction": rng.choice((1, 2))}
                  for _ in range(kind["trades"])]
    body["Info"] = {kind["info"]: round(rng.uniform(1e8, 1e10), 1)} if kind["info"] else []
    body["lastSize"] = body["BS"][0]["size"] if body["BS"] else 0
    body["Diff"] = _num(price - open_, p)
    body["DiffRate"] = round((price - open_) / open_ * 100, 2)
    return msgspec.json.encode({"body": body})


def messages(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    ts = 1_795_614_821
    return [push(KINDS[i % len(KINDS)], rng, ts + i // 100) for i in range(count)]


# the decoders ------------------------------------------------------------------------------

def _tickwire(data: bytes) -> object:
    return decode_message(data).body


def _top_of_book(data: bytes) -> object:
    q = decode_message(data).body
    assert q is not None
    return (q.price, q.bid, q.ask)


def _everything(data: bytes) -> object:
    q = decode_message(data).body
    assert q is not None
    return (q.bids, q.asks, q.trades)


DECODERS: list[tuple[str, Callable[[bytes], object]]] = [
    ("json.loads (baseline)", json.loads),
    ("msgspec to dict (baseline)", msgspec.json.decode),
    ("tickwire Quote", _tickwire),
    ("+ top of book read", _top_of_book),
    ("+ book and trades read", _everything),
]


def rate(decode: Callable[[bytes], object], data: list[bytes], repeats: int) -> float:
    """Messages per second: the best of `repeats` passes over every message."""
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        for message in data:
            decode(message)
        best = min(best, time.perf_counter() - began)
    return len(data) / best


# running -----------------------------------------------------------------------------------

def pin_to_one_core() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("tickwire", "msgspec"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "packages": versions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run that only checks the benchmark works (CI)")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "results",
                        help="directory for the JSON result")
    args = parser.parse_args(argv)
    count, repeats = (2_000, 1) if args.quick else (args.messages, args.repeats)

    core = pin_to_one_core()
    data = messages(count)
    sizes = sorted(len(m) for m in data)
    print(f"decoding {count:,} quote pushes ({sizes[0]}..{sizes[-1]} bytes, "
          f"{sum(sizes) / count:,.0f} on average), best of {repeats}, "
          f"{'core ' + str(core) if core is not None else 'unpinned'}")
    for _, decode in DECODERS:  # warm up, and check every decoder reads every message
        for message in data[:200]:
            decode(message)

    rates = {name: rate(decode, data, repeats) for name, decode in DECODERS}
    baseline = rates["json.loads (baseline)"]
    headers = ("decoder", "msgs/s", "us/msg", "x json.loads")
    rows = [(name, f"{r:,.0f}", f"{1e6 / r:.2f}", f"{r / baseline:.2f}")
            for name, r in rates.items()]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    print("\n" + "  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i])
                           for i, h in enumerate(headers)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                        for i, c in enumerate(row)))

    headline = rates["tickwire Quote"]
    met = None if args.quick else headline >= TARGET
    verdict = "n/a (quick run)" if met is None else ("met" if met else "NOT met")
    print(f"\ntarget: >= {TARGET:,} quote messages/s on one core -> {headline:,.0f}: {verdict}")

    args.out.mkdir(parents=True, exist_ok=True)
    name = "decode-quick" if args.quick else "decode"
    path = args.out / f"{name}.json"
    path.write_text(json.dumps({
        "benchmark": name, "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(), "core": core, "messages": count, "repeats": repeats,
        "bytes_avg": sum(sizes) / count,
        "msgs_per_s": {name: round(r) for name, r in rates.items()},
        "target": {"msgs_per_s": TARGET, "figure": round(headline), "met": met},
    }, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
