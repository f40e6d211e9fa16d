"""K-lines through a deployment on Redis are the K-lines of one process: the same replay
through an ingest and a gateway gives the bars a single server gives, paging back through
the window kept in Redis into the ingest's history."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from tests.e2e.cluster import get, start_cluster, wait_until
from tests.e2e.conftest import small_config
from tests.e2e.server import Server, start_server
from tests.e2e.test_replay import every_bar, replay_feeds
from tests.redis_server import RedisServer

T0 = 1_700_000_000_000
TRADES = 4_000
"""A trade every 30 s: about 33 hours, 2,000 one-minute bars (more than three windows)."""


def synthetic_trades(path: Path) -> Path:
    """A trades CSV of xrpeth, a random walk the same at every run."""
    rng = random.Random(16)
    price = 0.000287
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_ms", "price", "size", "side"])
        for i in range(TRADES):
            price = max(0.0001, price * (1 + rng.gauss(0, 0.002)))
            writer.writerow([T0 + i * 30_000 + rng.randrange(30_000), f"{price:.8f}",
                             f"{rng.uniform(1, 500):.1f}", rng.choice(["buy", "sell"])])
    return path


def replayed(server: Server) -> None:
    """Until the replay is over and every bar it made is stored: its last bars were handed
    to the store writer before the status saying it finished, so once a write has ended
    after that status they are written."""
    def rows_when_finished() -> int | None:
        _, health = get(server, "/healthz")
        replays = [f for f in health.get("feeds", []) if f["kind"] == "replay"]
        done = bool(replays) and replays[0]["state"] == "finished" \
            and replays[0]["updates"] == TRADES
        return int(health["store"]["rows_written"]) + 1 if done else None

    rows = wait_until(rows_when_finished, timeout=60, every=0.1, what="the replay")
    wait_until(lambda: get(server, "/healthz")[1]["store"]["rows_written"] >= rows,
               what="a write after it")


def test_bars_through_redis_equal_a_single_processs(redis_server: RedisServer,
                                                     tmp_path: Path) -> None:
    trades = synthetic_trades(tmp_path / "xrpeth.csv")
    single = start_server(tmp_path / "single", small_config(replay_feeds(trades)))
    try:
        replayed(single)
        want = {interval: every_bar(single, interval, 0)
                for interval in ("1m", "5m", "1h", "1d")}
        quote = get(single, "/getQuote.php?code=xrpeth")[1]
    finally:
        single.stop()
    assert len(want["1m"]) > 1800
    cluster = start_cluster(tmp_path / "cluster", redis_server, replay_feeds(trades), gateways=1)
    try:
        (gateway,) = cluster.gateways
        replayed(gateway)
        for interval, bars in want.items():  # (Redis is written just after the store)
            wait_until(lambda i=interval, b=bars: every_bar(gateway, i, len(b)) == b,  # type: ignore[misc]
                       timeout=5, every=0.1, what=f"the same {interval} bars")
        assert get(gateway, "/getQuote.php?code=xrpeth")[1] == quote
    finally:
        cluster.stop()
