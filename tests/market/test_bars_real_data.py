"""Binance's real XRPETH trades through the K-line builder give Binance's own candles."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

from tickwire.market.bars import BarBuilder, BarRow, Interval
from tickwire.market.clock import TimeZone
from tickwire.market.hours import TradingHours

DATASET = "freqtrade_binance_XRPETH_2019-10-11"


def _build(trades: list[dict[str, str | int]], interval_name: str) -> list[BarRow]:
    tz = TimeZone("UTC")
    builder = BarBuilder(Interval(interval_name, tz), TradingHours("24/7", tz), 8)
    for trade in trades:
        builder.update(int(trade["T"]), float(trade["p"]), float(trade["q"]))
    bars = list(builder.closed)
    forming = builder.forming()
    assert forming is not None
    return [*bars, forming]


def _as_decimals(row: list[float] | BarRow) -> tuple[Decimal, ...]:
    return (Decimal(int(row[0])), *(Decimal(repr(float(v))) for v in row[1:6]))


def _check(shared_data: Path, interval_name: str, expected_rows: int) -> None:
    folder = shared_data / DATASET
    with gzip.open(folder / "XRP_ETH-trades.json.gz") as fh:
        trades = [t["info"] for t in json.load(fh)]
    expected = json.loads((folder / f"XRP_ETH-{interval_name}.json").read_text())
    assert len(expected) == expected_rows
    built = _build(trades, interval_name)
    assert len(built) == len(expected)
    mismatches = [
        (mine, theirs) for mine, theirs in zip(built, expected, strict=True)
        if _as_decimals(mine) != _as_decimals(theirs)
    ]
    assert mismatches == []


def test_one_minute_candles_match_binance(shared_data: Path) -> None:
    _check(shared_data, "1m", 3560)


def test_five_minute_candles_match_binance(shared_data: Path) -> None:
    _check(shared_data, "5m", 712)


def test_empty_minutes_are_flat_at_previous_close(shared_data: Path) -> None:
    folder = shared_data / DATASET
    expected = json.loads((folder / "XRP_ETH-1m.json").read_text())
    empty = [row for row in expected if row[5] == 0]
    assert len(empty) == 1091
    with gzip.open(folder / "XRP_ETH-trades.json.gz") as fh:
        built = {row[0]: row for row in _build([t["info"] for t in json.load(fh)], "1m")}
    for row in empty:
        bar = built[row[0]]
        assert bar[1] == bar[2] == bar[3] == bar[4] and bar[5] == 0
