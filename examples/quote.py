"""The latest quote of one or more products, with the top of the book.

    python examples/quote.py                        # btcusdt on the local server
    python examples/quote.py btcusdt ethusdt HX_HSI
    python examples/quote.py btcusdt --server http://127.0.0.1:8008

The server is --server, else $TICKWIRE_URL, else a local tickwire (http://127.0.0.1:1008).
"""

from __future__ import annotations

import argparse
import os
import sys

import tickwire

SERVER = os.environ.get("TICKWIRE_URL", "http://127.0.0.1:1008")


def main() -> None:
    parser = argparse.ArgumentParser(description="The latest quote of some products.")
    parser.add_argument("codes", nargs="*", default=["btcusdt"], help="product codes")
    parser.add_argument("--server", default=SERVER, help=f"server URL (default {SERVER})")
    args = parser.parse_args()

    # The sync client runs the async one on a thread of its own; `with` closes it.
    with tickwire.Client(args.server) as client:
        try:
            quotes = client.quotes(args.codes)  # one request, up to 50 codes
        except tickwire.TickwireError as exc:  # NotFound, NotAuthorized, ConnectionLost...
            sys.exit(f"quote.py: {exc}")

    for quote in quotes:
        # A Quote is typed and immutable; `quote.raw` has every key the server sent.
        print(f"{quote.code:<12} {quote.price:>12}  {quote.change_pct:+6.2f}%  {quote.time}")
        for side, levels in (("bid", quote.bids), ("ask", quote.asks)):
            if levels:  # a product without a book (depth 0) has no levels
                best = levels[0]
                print(f"{'':<12} {side} {best.price} x {best.volume}")


if __name__ == "__main__":
    main()
