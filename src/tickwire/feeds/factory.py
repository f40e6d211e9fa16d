"""The one place that turns feed settings into feeds, and checks what each one drives."""

from __future__ import annotations

from collections.abc import Callable

from tickwire.catalogue import Catalogue
from tickwire.config import ConfigError, FeedConfig, SimFeedConfig
from tickwire.feeds.base import Feed
from tickwire.feeds.sim import SimFeed
from tickwire.market.clock import TimeZone
from tickwire.market.hours import TradingHours


def claims(configs: list[FeedConfig], catalogue: Catalogue) -> list[list[str]]:
    """The codes each feed drives: its `codes`, or when empty every product no other feed
    names. A code two feeds would drive, or one the catalogue lacks, is a `ConfigError`."""
    owner: dict[str, int] = {}
    for i, config in enumerate(configs):
        for code in config.codes:
            if code not in catalogue.products:
                raise ConfigError(f"feeds[{i}].codes: unknown code {code!r}")
            if owner.setdefault(code, i) != i:
                raise ConfigError(f"feeds[{owner[code]}] and feeds[{i}] both drive {code!r}; "
                                  "a product has one feed")
    everything = [i for i, config in enumerate(configs) if not config.codes]
    if len(everything) > 1:
        first, second = everything[:2]
        raise ConfigError(f"feeds[{first}] and feeds[{second}] both drive every product "
                          "(no codes); give one of them codes")
    result = [list(config.codes) for config in configs]
    for i in everything:
        result[i] = [code for code in catalogue.products if code not in owner]
    return result


def build_feeds(configs: list[FeedConfig], catalogue: Catalogue, tz: TimeZone,
                hours: Callable[[str], TradingHours]) -> list[Feed]:
    """The feeds of `configs`; `hours` gives each product's trading hours."""
    feeds: list[Feed] = []
    for i, (config, codes) in enumerate(zip(configs, claims(configs, catalogue), strict=True)):
        name = f"{config.__struct_config__.tag}-{i}" if len(configs) > 1 else \
            str(config.__struct_config__.tag)
        feeds.append(_build(config, codes, catalogue, tz, hours, name))
    return feeds


def _build(config: FeedConfig, codes: list[str], catalogue: Catalogue, tz: TimeZone,
           hours: Callable[[str], TradingHours], name: str) -> Feed:
    if isinstance(config, SimFeedConfig):
        products = [catalogue.products[code] for code in codes]
        return SimFeed(products, hours, tz, seed=config.seed, rate=config.rate,
                       history=config.history, name=name)
    raise AssertionError(f"no feed for {config!r}")  # every FeedConfig kind is built above
