"""K-lines of one product as a pandas DataFrame: a moving average and hourly bars.

Needs the pandas extra: pip install 'tickwire[pandas]'

    python examples/klines_to_pandas.py btcusdt --rows 600
    python examples/klines_to_pandas.py btcusdt --parquet btc-1m.parquet

The server is --server, else $TICKWIRE_URL, else a local tickwire (http://127.0.0.1:1008).
"""

from __future__ import annotations

import argparse
import os
import sys

import tickwire

SERVER = os.environ.get("TICKWIRE_URL", "http://127.0.0.1:1008")


def main() -> None:
    parser = argparse.ArgumentParser(description="K-lines of a product in pandas.")
    parser.add_argument("code", nargs="?", default="btcusdt", help="product code")
    parser.add_argument("--rows", type=int, default=600, help="how many one-minute bars")
    parser.add_argument("--parquet", help="also save the frame to this Parquet file")
    parser.add_argument("--server", default=SERVER, help=f"server URL (default {SERVER})")
    args = parser.parse_args()

    with tickwire.Client(args.server) as client:
        try:
            bars = client.klines(args.code, "1m", rows=args.rows)
        except tickwire.TickwireError as exc:
            sys.exit(f"klines_to_pandas.py: {exc}")

    # Indexed by the UTC open time; columns open_ms, open, high, low, close, volume.
    frame = bars.to_pandas()
    frame["sma_20"] = frame["close"].rolling(20).mean()
    print(f"{len(frame)} one-minute bars of {args.code}, "
          f"{frame.index[0]:%Y-%m-%d %H:%M} to {frame.index[-1]:%Y-%m-%d %H:%M} UTC")
    print(frame[["close", "sma_20", "volume"]].tail(5).to_string())

    hourly = frame.resample("1h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    print(f"\n{len(hourly)} hourly bars")
    print(hourly.tail(3).to_string())

    if args.parquet:  # pyarrow comes with the pandas extra
        frame.to_parquet(args.parquet)
        print(f"\nsaved to {args.parquet}")


if __name__ == "__main__":
    main()
