"""Exchange feeds in the factory: symbols to codes, the markets' precision, what happens
without a network. No exchange is reached here: every socket is refused."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tickwire.catalogue import load_catalogue
from tickwire.config import ConfigError, ExchangeFeedConfig, load_config
from tickwire.feeds.base import FeedState
from tickwire.feeds.exchange import ExchangeFeed
from tickwire.feeds.factory import build_feeds, claims, with_feed_products
from tickwire.feeds.markets import (
    ExchangeUnavailable,
    MarketInfo,
    _kept_at,
    code_of,
    decimals,
)
from tickwire.market.clock import TimeZone
from tickwire.market.hours import TradingHours

pytest.importorskip("ccxt", reason="the exchanges extra (ccxt) is not installed")

CATALOGUE = load_catalogue(None)
TZ = TimeZone("Asia/Shanghai")
TICK_SIZE, DECIMAL_PLACES, SIGNIFICANT_DIGITS = 4, 2, 3


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every connection and name lookup is refused, and noted."""
    tried: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        tried.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return tried


def hours(code: str) -> TradingHours:
    return TradingHours("24/7", TZ)


@pytest.mark.parametrize(("symbol", "code"), [
    ("BTC/USDT", "btcusdt"), ("ETH/BTC", "ethbtc"), ("BTC/USDT:USDT", "btcusdt"),
    ("1000PEPE/USDC", "1000pepeusdc"),
])
def test_a_symbol_is_its_base_and_quote_in_lowercase(symbol: str, code: str) -> None:
    assert code_of(symbol) == code


@pytest.mark.parametrize(("value", "mode", "places"), [
    (0.01, TICK_SIZE, 2), (1e-08, TICK_SIZE, 8), (0.5, TICK_SIZE, 1), (10, TICK_SIZE, 0),
    (1, TICK_SIZE, 0), ("0.00010000", TICK_SIZE, 4), (1e-12, TICK_SIZE, 10),
    (2, DECIMAL_PLACES, 2), (8.0, DECIMAL_PLACES, 8), (None, TICK_SIZE, 8),
    (5, SIGNIFICANT_DIGITS, 8), (0, TICK_SIZE, 8),
])
def test_precision_is_read_in_the_exchanges_precision_mode(value: Any, mode: int,
                                                          places: int) -> None:
    assert decimals(value, mode) == places


@pytest.mark.parametrize("exchange", ["okx", "bybit", "kraken"])
def test_a_feed_for_another_exchange_builds_without_a_network(
        exchange: str, tmp_path: Path, no_network: list[Any]) -> None:
    path = tmp_path / "tickwire.toml"
    path.write_text(f'[[feeds]]\nkind = "exchange"\nexchange = "{exchange}"\n'
                    'symbols = ["BTC/USDT", "ETH/USDT"]\ndepth = 5\n')
    config = load_config(path, environ={})
    assert claims(config.feeds, CATALOGUE, tmp_path) == [["btcusdt", "ethusdt"]]
    feeds = build_feeds(config.feeds, CATALOGUE, TZ, hours, tmp_path)
    assert len(feeds) == 1 and isinstance(feeds[0], ExchangeFeed)
    feed = feeds[0]
    assert feed.name == "exchange" and feed.codes == ["btcusdt", "ethusdt"]
    assert feed.state is FeedState.CONNECTING
    assert feed.status()["exchange"] == exchange
    assert no_network == []  # no request until it runs


def test_a_restart_without_the_exchange_uses_the_markets_kept(tmp_path: Path,
                                                               no_network: list[Any]) -> None:
    config = ExchangeFeedConfig("okx", ["BTC/USDT", "SOL/USDT"], depth=5)
    kept = _kept_at(tmp_path, config)
    kept.parent.mkdir(parents=True)
    kept.write_bytes(msgspec.json.encode({"BTC/USDT": MarketInfo(1, 8),
                                          "SOL/USDT": MarketInfo(2, 6)}))
    catalogue = with_feed_products([config], CATALOGUE, tmp_path)
    assert no_network  # it asked first
    sol = catalogue.products["solusdt"]
    assert (sol.name, sol.category, sol.precision, sol.volume_precision, sol.depth) == \
        ("SOL/USDT", "4", 2, 6, 5)
    assert catalogue.products["btcusdt"].precision == 1
    assert set(catalogue.products) == {"btcusdt", "solusdt"}  # no simulator: these only


def test_a_first_start_without_the_exchange_says_why(tmp_path: Path,
                                                      no_network: list[Any]) -> None:
    config = ExchangeFeedConfig("kraken", ["BTC/USD"])
    with pytest.raises(ExchangeUnavailable, match="cannot list the markets of kraken"):
        with_feed_products([config], CATALOGUE, tmp_path)


def test_two_feeds_of_one_code_are_a_config_error_naming_both(tmp_path: Path) -> None:
    configs: list[Any] = [ExchangeFeedConfig("okx", ["BTC/USDT"]),
                          ExchangeFeedConfig("bybit", ["ETH/USDT", "BTC/USDT"])]
    with pytest.raises(ConfigError, match=r"feeds\[0\] and feeds\[1\] both drive 'btcusdt'"):
        claims(configs, CATALOGUE, tmp_path)


def test_two_symbols_of_one_code_are_a_config_error(tmp_path: Path,
                                                    no_network: list[Any]) -> None:
    config = ExchangeFeedConfig("binance", ["BTC/USDT", "BTC/USDT:USDT"])
    kept = _kept_at(tmp_path, config)
    kept.parent.mkdir(parents=True)
    kept.write_bytes(msgspec.json.encode({"BTC/USDT": MarketInfo(2, 5),
                                          "BTC/USDT:USDT": MarketInfo(1, 3)}))
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.symbols\[1\]: 'BTC/USDT:USDT' and "
                                          r"'BTC/USDT' both make the code 'btcusdt'"):
        with_feed_products([config], CATALOGUE, tmp_path)


def test_an_exchange_ccxt_does_not_know_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError,
                       match=r"feeds\[0\]\.exchange: 'nosuchexchange' is not an exchange"):
        with_feed_products([ExchangeFeedConfig("nosuchexchange", ["BTC/USDT"])], CATALOGUE,
                           tmp_path)
