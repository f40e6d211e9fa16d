"""What an exchange lists, through ccxt: its markets and their precision, asked once at start.

An exchange feed's products are the exchange's markets: a symbol's code is its base and quote
in lowercase (`BTC/USDT`: `btcusdt`), its price and size decimals the market's own. The
markets are asked in a thread of their own at start (the caller's loop may be running), and
kept in the data dir, so a restart while the exchange cannot be reached still starts, serves
what it stored, and goes live once the exchange is back.

ccxt is an optional extra: nothing here imports it until an exchange is asked for.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec

from tickwire.client.urls import http_url, ws_url
from tickwire.config import REFERENCE_EXCHANGE, ConfigError, ExchangeFeedConfig
from tickwire.feeds.kept import NothingKept, asked_or_kept

log = logging.getLogger("tickwire.feeds.exchange")

MARKETS_TIMEOUT = 30.0
"""Seconds the exchange's market list may take at start."""
FALLBACK_DECIMALS = 8
"""Decimals of a market whose precision the exchange does not state in a usable way."""
TRADES_KEPT = 10_000
"""Trades ccxt keeps per symbol (its default: 1,000); the feed empties the cache at each
read, so this bounds a burst that ccxt parses before the feed reads again: of a longer one
only the newest this many reach the quote and the bars."""
MAX_DECIMALS = 10
"""The most decimals a product may have (`Product.precision`)."""

# ccxt's precision modes (ccxt.base.decimal_to_precision), copied so that this module
# can be imported without ccxt
_DECIMAL_PLACES = 2
_TICK_SIZE = 4


class ExchangeUnavailable(ConnectionError):
    """The exchange's markets could not be had, and none were kept from an earlier start."""


class MarketInfo(msgspec.Struct, array_like=True, frozen=True):
    """What a product needs of one market."""

    precision: int
    """Decimals of its prices."""
    volume_precision: int
    """Decimals of its amounts."""


def code_of(symbol: str) -> str:
    """The product code of a ccxt symbol: base and quote in lowercase, without separator
    (`BTC/USDT` and `BTC/USDT:USDT` are both `btcusdt`)."""
    base, _, quote = symbol.partition(":")[0].partition("/")
    return (base + quote).lower()


def decimals(value: Any, mode: int) -> int:
    """Decimals of a ccxt precision figure: a tick size (`0.01`: 2) under `TICK_SIZE`, a
    count under `DECIMAL_PLACES`; `FALLBACK_DECIMALS` for anything else (significant digits,
    absent)."""
    if value is None:
        return FALLBACK_DECIMALS
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return FALLBACK_DECIMALS
    if not number.is_finite() or number <= 0:
        return FALLBACK_DECIMALS
    if mode == _DECIMAL_PLACES:
        places = int(number)
    elif mode == _TICK_SIZE:
        exponent = number.normalize().as_tuple().exponent
        places = -exponent if isinstance(exponent, int) else FALLBACK_DECIMALS
    else:
        return FALLBACK_DECIMALS
    return min(max(places, 0), MAX_DECIMALS)


def make_exchange(config: ExchangeFeedConfig) -> Any:
    """A ccxt.pro exchange for `config` (no request is made): public data only, ccxt's own
    rate limiting on, the reference exchange pointed at `rest_url`/`ws_url` when given."""
    try:
        import ccxt.pro
    except ImportError:
        raise ConfigError("exchange feeds need ccxt: pip install 'tickwire[exchanges]'") from None
    cls = getattr(ccxt.pro, config.exchange, None)
    if cls is None or config.exchange not in ccxt.pro.exchanges:
        raise ConfigError(f"{config.exchange!r} is not an exchange ccxt streams from")
    exchange = cls({"enableRateLimit": True, "newUpdates": True})
    exchange.options["tradesLimit"] = TRADES_KEPT
    if config.exchange == REFERENCE_EXCHANGE:
        # spot markets only (no futures lists to fetch), Binance's aggregated trade stream
        if not any(":" in symbol for symbol in config.symbols):
            exchange.options["fetchMarkets"] = {"types": ["spot"]}
        exchange.options["watchTrades"] = {"name": "aggTrade"}
        if config.rest_url:
            exchange.urls["api"]["public"] = http_url(config.rest_url)
        if config.ws_url:
            for key in ("spot", "margin"):
                exchange.urls["api"]["ws"][key] = ws_url(config.ws_url)
    return exchange


async def fetch_markets(config: ExchangeFeedConfig,
                        timeout: float = MARKETS_TIMEOUT) -> dict[str, MarketInfo]:
    """Every market the exchange lists, by ccxt symbol."""
    exchange = make_exchange(config)
    try:
        markets = await asyncio.wait_for(exchange.load_markets(), timeout)
        mode = exchange.precisionMode
        return {symbol: MarketInfo(decimals(m["precision"].get("price"), mode),
                                   decimals(m["precision"].get("amount"), mode))
                for symbol, m in markets.items()}
    finally:
        await exchange.close()


def _kept_at(data_dir: Path, config: ExchangeFeedConfig) -> Path:
    contracts = any(":" in symbol for symbol in config.symbols)
    where = f"{config.exchange} {config.rest_url} {contracts}"
    digest = hashlib.sha256(where.encode()).hexdigest()[:12]
    return data_dir / "exchange" / f"{config.exchange}-markets-{digest}.json"


def markets(config: ExchangeFeedConfig, data_dir: Path) -> dict[str, MarketInfo]:
    """The exchange's markets, asked now; those kept from an earlier start if it cannot be
    asked (logged); `ExchangeUnavailable` if there are none."""
    make_exchange(config)  # ccxt missing or an unknown exchange: a config error, at once
    try:
        found, why = asked_or_kept(_kept_at(data_dir, config), lambda: fetch_markets(config),
                                   dict[str, MarketInfo], (Exception,))
    except NothingKept as exc:
        raise ExchangeUnavailable(
            f"cannot list the markets of {config.exchange}: {str(exc)[:300]}") from None
    if why is not None:
        log.warning("exchange unreachable: using the markets it listed before", extra={
            "exchange": config.exchange, "error": why[:300], "markets": len(found)})
    return found
