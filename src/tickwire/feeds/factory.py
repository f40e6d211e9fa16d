"""The one place that turns feed settings into feeds, and checks what each one drives."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from tickwire.catalogue import CODE_PATTERN, Catalogue
from tickwire.config import (
    ConfigError,
    ExchangeFeedConfig,
    FeedConfig,
    RelayFeedConfig,
    ReplayFeedConfig,
    SimFeedConfig,
)
from tickwire.feeds.base import Feed
from tickwire.feeds.exchange import ExchangeFeed
from tickwire.feeds.markets import MarketInfo, code_of, markets
from tickwire.feeds.relay import RelayFeed
from tickwire.feeds.replay import DataShape, ReplayError, ReplayFeed, replay_files, shape_of
from tickwire.feeds.sim import SimFeed
from tickwire.feeds.upstream import Listing, listing
from tickwire.market.clock import TimeZone
from tickwire.market.hours import TradingHours
from tickwire.models import Category, Product

log = logging.getLogger("tickwire.feeds")

RELAY_DECIMALS = 8
"""Decimals kept of the prices and volumes of a relayed product the catalogue lacks: the
upstream's numbers pass through unchanged up to this many."""


@functools.cache
def _replayed(path: str, code: str) -> tuple[tuple[str, ...], DataShape]:
    """The files of a replay and what they hold, read once per process."""
    files = replay_files(path)
    return tuple(str(f) for f in files), shape_of(files, code)


@functools.cache
def _listed(http_url: str, data_dir: Path) -> Listing:
    """An upstream's lists, asked once per process; a listed code this server cannot serve
    (not a `CODE_PATTERN`) is left out, with a warning."""
    found = listing(http_url, data_dir)
    usable = [p for p in found.products if CODE_PATTERN.match(p.code)]
    if len(usable) < len(found.products):
        odd = [p.code for p in found.products if not CODE_PATTERN.match(p.code)]
        log.warning("relay leaves out codes it cannot serve", extra={
            "upstream": http_url, "codes": odd[:10], "count": len(odd)})
    return Listing(found.categories, usable)


def _relayed(i: int, config: RelayFeedConfig, data_dir: Path) -> list[tuple[str, str, str]]:
    """(code, name, category) of each product a relay drives."""
    listed = {p.code: p for p in _listed(config.http_url, data_dir).products}
    if config.codes == "all":
        return [(p.code, p.name, p.category) for p in listed.values()]
    missing = [code for code in config.codes if code not in listed]
    if missing:
        raise ConfigError(f"feeds[{i}].codes: {config.http_url} does not list "
                          f"{', '.join(map(repr, missing[:5]))}")
    return [(listed[c].code, listed[c].name, listed[c].category) for c in config.codes]


EXCHANGE_CATEGORY = "4"
"""The category of an exchange feed's products (数字货币, crypto)."""


@functools.cache
def _markets(exchange: str, symbols: tuple[str, ...], rest_url: str, ws_url: str,
             data_dir: Path) -> dict[str, MarketInfo]:
    """An exchange's markets, asked once per process (kept in the data dir)."""
    return markets(ExchangeFeedConfig(exchange, list(symbols), rest_url=rest_url,
                                      ws_url=ws_url), data_dir)


def _exchanged(i: int, config: ExchangeFeedConfig, data_dir: Path) -> list[Product]:
    """The products of an exchange feed, one a symbol, in the order of `symbols`."""
    try:
        listed = _markets(config.exchange, tuple(config.symbols), config.rest_url,
                          config.ws_url, data_dir)
    except ConfigError as exc:  # no ccxt, or an exchange it does not have
        raise ConfigError(f"feeds[{i}].exchange: {exc}") from None
    products: dict[str, Product] = {}
    for j, symbol in enumerate(config.symbols):
        market = listed.get(symbol)
        if market is None:
            raise ConfigError(f"feeds[{i}].symbols[{j}]: {config.exchange} does not list "
                              f"{symbol!r}")
        code = code_of(symbol)
        if not CODE_PATTERN.match(code):
            raise ConfigError(f"feeds[{i}].symbols[{j}]: {symbol!r} makes no usable code")
        if code in products:
            raise ConfigError(f"feeds[{i}].symbols[{j}]: {symbol!r} and "
                              f"{products[code].name!r} both make the code {code!r}")
        products[code] = Product(code=code, name=symbol, category=EXCHANGE_CATEGORY,
                                 precision=market.precision,
                                 volume_precision=market.volume_precision,
                                 depth=config.depth, trades=config.trades)
    return list(products.values())


def with_feed_products(configs: list[FeedConfig], catalogue: Catalogue, data_dir: Path,
                       pinned: frozenset[str] = frozenset()) -> Catalogue:
    """The catalogue with the products the feeds bring:
    - a replay's that it lacks, in the replay's `category`, named by their code, 24/7,
      their precision read off the data;
    - a relay's as its upstream lists them: the upstream's names and categories over the
      catalogue's product of the code (its hours, its precision), or a 24/7 product of
      `RELAY_DECIMALS`; a code `pinned` by `[[products]]` stays as configured;
    - an exchange feed's, one a symbol, in category "4" at the market's precision (the
      exchange's markets are asked at start, and kept in the data dir); a code `pinned` by
      `[[products]]` stays as configured;
    - and without a simulator, only the products some feed drives (a relay of the vendor
      serves the vendor's list, nothing else).
    """
    extra: dict[str, Product] = {}
    categories = {c.id: c for c in catalogue.categories}
    if all(isinstance(c, RelayFeedConfig) for c in configs):
        categories = {}  # a relay and nothing else: the upstream's categories, in its order
    for i, config in enumerate(configs):
        if isinstance(config, ReplayFeedConfig):
            if config.category not in catalogue.by_category:
                raise ConfigError(f"feeds[{i}].category: unknown category {config.category!r}")
            _, shape = _replay_data(i, config)
            for code in shape.codes:
                if code not in catalogue.products:
                    extra[code] = Product(code=code, name=code, category=config.category,
                                          precision=shape.price_decimals[code],
                                          volume_precision=shape.size_decimals[code])
        elif isinstance(config, RelayFeedConfig):
            for listed in _listed(config.http_url, data_dir).categories:
                categories[listed.id] = Category(listed.id, listed.name)
            for code, name, category in _relayed(i, config, data_dir):
                if code in pinned:
                    continue
                known = catalogue.products.get(code)
                extra[code] = msgspec.structs.replace(known, name=name, category=category) \
                    if known else Product(code=code, name=name, category=category,
                                          precision=RELAY_DECIMALS,
                                          volume_precision=RELAY_DECIMALS, depth=5)
        elif isinstance(config, ExchangeFeedConfig):
            for product in _exchanged(i, config, data_dir):
                if product.code not in pinned:
                    extra[product.code] = product
    products = {**catalogue.products, **extra}
    if not any(isinstance(c, SimFeedConfig) for c in configs):
        driven = {code for i, c in enumerate(configs) for code in _named(i, c, data_dir)}
        products = {code: p for code, p in products.items() if code in driven}
    for product in products.values():  # a [[products]] entry in a category of its own
        if product.category not in categories and product.category in catalogue.by_category:
            categories[product.category] = next(
                c for c in catalogue.categories if c.id == product.category)
    return Catalogue(list(categories.values()), list(products.values()))


def _replay_data(i: int, config: ReplayFeedConfig) -> tuple[tuple[str, ...], DataShape]:
    try:
        return _replayed(config.path, config.code)
    except ReplayError as exc:
        raise ConfigError(f"feeds[{i}].path: {exc}") from None


def _named(i: int, config: FeedConfig, data_dir: Path) -> list[str]:
    """The codes a feed names itself (none: a simulator of every product left over)."""
    if isinstance(config, ReplayFeedConfig):
        return _replay_data(i, config)[1].codes
    if isinstance(config, RelayFeedConfig):
        return [code for code, _, _ in _relayed(i, config, data_dir)]
    if isinstance(config, ExchangeFeedConfig):
        return [code_of(symbol) for symbol in config.symbols]
    return list(config.codes)


def claims(configs: list[FeedConfig], catalogue: Catalogue, data_dir: Path) -> list[list[str]]:
    """The codes each feed drives: the codes it names, or for a simulator without `codes`
    every product no other feed names. A code two feeds would drive, or one the catalogue
    lacks, is a `ConfigError`."""
    named = [_named(i, config, data_dir) for i, config in enumerate(configs)]
    owner: dict[str, int] = {}
    for i, codes in enumerate(named):
        for code in codes:
            if code not in catalogue.products:
                raise ConfigError(f"feeds[{i}].codes: unknown code {code!r}")
            if owner.setdefault(code, i) != i:
                raise ConfigError(f"feeds[{owner[code]}] and feeds[{i}] both drive {code!r}; "
                                  "a product has one feed")
    everything = [i for i, config in enumerate(configs)
                  if isinstance(config, SimFeedConfig) and not config.codes]
    if len(everything) > 1:
        first, second = everything[:2]
        raise ConfigError(f"feeds[{first}] and feeds[{second}] both drive every product "
                          "(no codes); give one of them codes")
    for i in everything:
        named[i] = [code for code in catalogue.products if code not in owner]
    return named


def build_feeds(configs: list[FeedConfig], catalogue: Catalogue, tz: TimeZone,
                hours: Callable[[str], TradingHours], data_dir: Path) -> list[Feed]:
    """The feeds of `configs` over `catalogue` (`with_feed_products` of it); `hours` gives
    each product's trading hours."""
    feeds: list[Feed] = []
    claimed = claims(configs, catalogue, data_dir)
    for i, (config, codes) in enumerate(zip(configs, claimed, strict=True)):
        name = f"{config.__struct_config__.tag}-{i}" if len(configs) > 1 else \
            str(config.__struct_config__.tag)
        feeds.append(_build(i, config, codes, catalogue, tz, hours, name))
    return feeds


def _build(i: int, config: FeedConfig, codes: list[str], catalogue: Catalogue, tz: TimeZone,
           hours: Callable[[str], TradingHours], name: str) -> Feed:
    if isinstance(config, SimFeedConfig):
        products = [catalogue.products[code] for code in codes]
        return SimFeed(products, hours, tz, seed=config.seed, rate=config.rate,
                       history=config.history, name=name)
    if isinstance(config, RelayFeedConfig):
        return RelayFeed(config, codes, tz, name=name)
    if isinstance(config, ExchangeFeedConfig):
        try:
            return ExchangeFeed(config, tz, name=name)
        except ConfigError as exc:
            raise ConfigError(f"feeds[{i}].exchange: {exc}") from None
    files, _ = _replay_data(i, config)
    return ReplayFeed([Path(f) for f in files], codes, config.code, speed=config.speed,
                      loop=config.loop, name=name)
