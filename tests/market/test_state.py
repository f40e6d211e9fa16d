"""The market played again from the start: a rewind over restored bars gives the bars of
one clean pass, not the same trades counted twice."""

from __future__ import annotations

from tickwire.catalogue import load_catalogue
from tickwire.market import Market, TimeZone
from tickwire.models import BUY, INTERVALS, Update

TS = 1_763_431_200_000
PRODUCT = load_catalogue(None).products["btcusdt"]


def trades(count: int) -> list[Update]:
    return [Update("btcusdt", TS + i * 7_000, 100.0 + i % 13, trades=[(100.0, 0.5, BUY)])
            for i in range(count)]


def played(market: Market, updates: list[Update]) -> dict[str, list[tuple[float, ...]]]:
    for update in updates:
        market.apply(update, encode=False)
    market.advance(updates[-1].ts, ["btcusdt"])
    closed, forming, _ = market.take_changes()
    bars: dict[str, dict[int, tuple[float, ...]]] = {name: {} for name in INTERVALS}
    for _, name, row in [*closed, *forming]:
        bars[name][row[0]] = row
    return {name: [rows[t] for t in sorted(rows)] for name, rows in bars.items()}


def test_a_rewind_over_restored_bars_builds_what_one_clean_pass_builds() -> None:
    tz = TimeZone("Asia/Shanghai")
    updates = trades(2_000)
    clean = played(Market([PRODUCT], tz), updates)

    stopped = played(Market([PRODUCT], tz), updates[:1_234])  # what the store held
    restarted = Market([PRODUCT], tz)
    for name, rows in stopped.items():
        restarted.restore("btcusdt", name, rows)
    restarted.rewind("btcusdt", updates[0].ts)
    again = played(restarted, updates)
    assert again == clean
    served = restarted.products["btcusdt"].series["1m"].recent
    assert [t for t, _ in served] == [row[0] for row in clean["1m"][:-1]]
