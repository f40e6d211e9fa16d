"""The config loader against any file and any environment: it either gives a `Config` or
raises `ConfigError` naming what is wrong, never another exception; and what it gives,
written back as TOML (what `tickwire config` prints), loads as the same."""

from __future__ import annotations

import datetime
import string
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import fuzz_settings
from tickwire.config import (
    ENV_SECTIONS,
    Config,
    ConfigError,
    ExchangeFeedConfig,
    RelayFeedConfig,
    ReplayFeedConfig,
    SimFeedConfig,
    load_config,
    toml_document,
)
from tickwire.models import Product

pytestmark = pytest.mark.fuzz

CASES = (100, 5000)
SECTION_KEYS = {name: [f.name for f in msgspec.structs.fields(getattr(Config(), name))]
                for name in ENV_SECTIONS}
FEED_KEYS = sorted({f.name for kind in (SimFeedConfig, ReplayFeedConfig, RelayFeedConfig,
                                        ExchangeFeedConfig)
                    for f in msgspec.structs.fields(kind)})
PRODUCT_KEYS = [f.name for f in msgspec.structs.fields(Product)]

scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.integers(-2, 70_000), st.booleans(),
    st.floats(), st.text(max_size=30),
    st.sampled_from(["127.0.0.1", "::1", "10.0.0.0/8", "127.0.0.1:1009", "[::1]:1009",
                     "Asia/Shanghai", "UTC", "../etc", "sim", "replay", "relay", "exchange",
                     "memory", "binance", "BTC/USDT", "http://127.0.0.1:9", "ws://x", "all",
                     "json", "24/7", "mon-fri 09:00-15:00", ""]),
    st.datetimes(timezones=st.none() | st.just(datetime.UTC)), st.dates(), st.times())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def table(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=10), values, max_size=6)


documents = st.fixed_dictionaries({}, optional={
    **{name: table(keys) for name, keys in SECTION_KEYS.items()},
    "feeds": st.lists(table([*FEED_KEYS, "kind"]), max_size=3),
    "products": st.lists(table(PRODUCT_KEYS), max_size=2),
    "other": values,
})
environments = st.dictionaries(
    st.builds(lambda section, key: f"TICKWIRE_{section}_{key}".upper(),
              st.sampled_from(ENV_SECTIONS),
              st.sampled_from(sorted({k for keys in SECTION_KEYS.values() for k in keys}))
              | st.text(string.ascii_letters + "_", max_size=8)),
    st.text(max_size=30) | st.sampled_from(["8008", "true", "[1, 2]", '["::1"]', "nan",
                                            "inf", "1e999", "{a = 1}", "[" * 2000]),
    max_size=3)


def loads_or_config_error(text: bytes, environ: dict[str, str]) -> Config | None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tickwire.toml"
        path.write_bytes(text)
        try:
            return load_config(path, environ=environ)
        except ConfigError as exc:
            assert str(exc) and "\n" not in str(exc)
            return None


def round_trip(config: Config) -> None:
    text = toml_document(msgspec.to_builtins(config)).encode()
    assert loads_or_config_error(text, {}) == config


@fuzz_settings(*CASES)
@given(document=documents, environ=environments)
def test_any_config_loads_or_is_a_config_error(document: dict[str, Any],
                                               environ: dict[str, str]) -> None:
    try:
        text = tomli_w.dumps(document).encode()
    except (TypeError, ValueError):
        return  # not writable as TOML (e.g. a list of mixed tables): another test's input
    config = loads_or_config_error(text, environ)
    if config is not None:
        round_trip(config)


@fuzz_settings(*CASES)
@given(text=st.binary(max_size=300) | st.text(max_size=300).map(
    lambda t: t.encode("utf-8", "surrogatepass")), environ=environments)
def test_any_bytes_load_or_are_a_config_error(text: bytes, environ: dict[str, str]) -> None:
    config = loads_or_config_error(text, environ)
    if config is not None:
        round_trip(config)
