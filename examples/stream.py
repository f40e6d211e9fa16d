"""A live stream of quotes that rides out disconnects and server restarts.

The client sends heartbeats, notices a dead connection, reconnects with capped, jittered
backoff and subscribes everything again by itself; `on_event` is told of each step. Quotes
go to standard output, connection events to standard error. It stops after --count quotes
or --seconds, whichever comes first (Ctrl-C stops it too).

    python examples/stream.py btcusdt ethusdt --count 20
    python examples/stream.py btcusdt --seconds 3600 > btc-quotes.txt

The server is --server, else $TICKWIRE_URL, else a local tickwire (http://127.0.0.1:1008).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import tickwire

SERVER = os.environ.get("TICKWIRE_URL", "http://127.0.0.1:1008")


def show_event(event: tickwire.Event) -> None:
    # kind is one of connecting, connected, disconnected, dead, reconnecting, failed, ...
    print(f"[{event.kind}] {event.message}", file=sys.stderr, flush=True)


async def stream(args: argparse.Namespace) -> int:
    """Print quotes until --count or --seconds; the number printed."""
    backoff = tickwire.Backoff(initial=0.5, maximum=10.0)  # 0.5 s, 1 s, 2 s ... at most 10 s
    async with (tickwire.AsyncClient(args.server, backoff=backoff,
                                     on_event=show_event) as client,
                client.stream(args.codes) as quotes):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.seconds
        printed = 0
        while printed < args.count:
            # None when the time is up (a stream waits through reconnects, it does not end)
            quote = await quotes.get(timeout=max(0.0, deadline - loop.time()))
            if quote is None:
                break
            print(f"{quote.time}  {quote.code:<12} {quote.price:>12}  "
                  f"bid {quote.bid}  ask {quote.ask}", flush=True)
            printed += 1
        return printed


def main() -> None:
    parser = argparse.ArgumentParser(description="Live quotes, reconnecting by itself.")
    parser.add_argument("codes", nargs="*", default=["btcusdt"], help="product codes")
    parser.add_argument("--count", type=int, default=50, help="stop after this many quotes")
    parser.add_argument("--seconds", type=float, default=60, help="stop after this long")
    parser.add_argument("--server", default=SERVER, help=f"server URL (default {SERVER})")
    args = parser.parse_args()
    # The SDK logs every event to the `tickwire.client` logger too; show_event shows them
    # here, so keep the logger quiet.
    logging.getLogger("tickwire.client").addHandler(logging.NullHandler())
    try:
        printed = asyncio.run(stream(args))
    except tickwire.TickwireError as exc:  # a server that refuses us (403) ends the stream
        sys.exit(f"stream.py: {exc}")
    except KeyboardInterrupt:
        return
    print(f"{printed} quotes", file=sys.stderr)


if __name__ == "__main__":
    main()
