"""The one place that turns feed settings into feeds, and checks what each one drives."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from tickwire.catalogue import Catalogue
from tickwire.config import ConfigError, FeedConfig, ReplayFeedConfig, SimFeedConfig
from tickwire.feeds.base import Feed
from tickwire.feeds.replay import DataShape, ReplayError, ReplayFeed, replay_files, shape_of
from tickwire.feeds.sim import SimFeed
from tickwire.market.clock import TimeZone
from tickwire.market.hours import TradingHours
from tickwire.models import Product


@functools.cache
def _replayed(path: str, code: str) -> tuple[tuple[str, ...], DataShape]:
    """The files of a replay and what they hold, read once per process."""
    files = replay_files(path)
    return tuple(str(f) for f in files), shape_of(files, code)


def _replay_data(i: int, config: ReplayFeedConfig) -> tuple[tuple[str, ...], DataShape]:
    try:
        return _replayed(config.path, config.code)
    except ReplayError as exc:
        raise ConfigError(f"feeds[{i}].path: {exc}") from None


def with_feed_products(configs: list[FeedConfig], catalogue: Catalogue) -> Catalogue:
    """The catalogue with the products replays bring that it lacks (in the replay's
    `category`, named by their code, 24/7, their precision read off the data)."""
    extra: dict[str, Product] = {}
    for i, config in enumerate(configs):
        if not isinstance(config, ReplayFeedConfig):
            continue
        if config.category not in catalogue.by_category:
            raise ConfigError(f"feeds[{i}].category: unknown category {config.category!r}")
        _, shape = _replay_data(i, config)
        for code in shape.codes:
            if code not in catalogue.products:
                extra[code] = Product(code=code, name=code, category=config.category,
                                      precision=shape.price_decimals[code],
                                      volume_precision=shape.size_decimals[code])
    return catalogue.with_products(list(extra.values())) if extra else catalogue


def _named(i: int, config: FeedConfig) -> list[str]:
    """The codes a feed names itself (none: a simulator of every product left over)."""
    if isinstance(config, ReplayFeedConfig):
        return _replay_data(i, config)[1].codes
    return list(config.codes)


def claims(configs: list[FeedConfig], catalogue: Catalogue) -> list[list[str]]:
    """The codes each feed drives: the codes it names, or for a simulator without `codes`
    every product no other feed names. A code two feeds would drive, or one the catalogue
    lacks, is a `ConfigError`."""
    named = [_named(i, config) for i, config in enumerate(configs)]
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
                hours: Callable[[str], TradingHours]) -> list[Feed]:
    """The feeds of `configs` over `catalogue` (`with_feed_products` of it); `hours` gives
    each product's trading hours."""
    feeds: list[Feed] = []
    for i, (config, codes) in enumerate(zip(configs, claims(configs, catalogue), strict=True)):
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
    files, _ = _replay_data(i, config)
    return ReplayFeed([Path(f) for f in files], codes, config.code, speed=config.speed,
                      loop=config.loop, name=name)
