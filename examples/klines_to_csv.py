"""K-lines of one product to a CSV file, or to standard output.

    python examples/klines_to_csv.py btcusdt --interval 1h --rows 300 --out btc-1h.csv
    python examples/klines_to_csv.py HX_HSI --interval 1d | head

Intervals: 1m 5m 15m 30m 1h 1d 1M. --rows beyond what one request gives (600 of 1m, 300
of 5m to 1d, 100 of 1M) pages back through the server's history.
The server is --server, else $TICKWIRE_URL, else a local tickwire (http://127.0.0.1:1008).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from contextlib import nullcontext
from typing import TextIO

import tickwire

SERVER = os.environ.get("TICKWIRE_URL", "http://127.0.0.1:1008")


def main() -> None:
    parser = argparse.ArgumentParser(description="K-lines of a product to CSV.")
    parser.add_argument("code", help="product code, e.g. btcusdt")
    parser.add_argument("--interval", default="1m", help="1m 5m 15m 30m 1h 1d 1M")
    parser.add_argument("--rows", type=int, default=100, help="how many bars")
    parser.add_argument("--out", help="CSV file to write (default: standard output)")
    parser.add_argument("--server", default=SERVER, help=f"server URL (default {SERVER})")
    args = parser.parse_args()

    with tickwire.Client(args.server) as client:
        try:
            bars = client.klines(args.code, args.interval, rows=args.rows)  # oldest first
        except tickwire.TickwireError as exc:
            sys.exit(f"klines_to_csv.py: {exc}")

    out: TextIO
    with open(args.out, "w", newline="") if args.out else nullcontext(sys.stdout) as out:
        writer = csv.writer(out)
        writer.writerow(["time_utc", "open", "high", "low", "close", "volume"])
        for bar in bars:
            # bar.opened is the open time as an aware UTC datetime; bar.time is the same
            # instant as the server's local "YYYY-MM-DD HH:MM:SS".
            writer.writerow([bar.opened.isoformat(), bar.open, bar.high, bar.low,
                             bar.close, bar.volume])
    if args.out:
        print(f"wrote {len(bars)} bars of {args.code} {args.interval} to {args.out}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
