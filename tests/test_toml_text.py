"""TOML text from plain data reads back as the same data, config included."""

from __future__ import annotations

import math
import tomllib

import msgspec
import pytest

from tickwire import toml_text
from tickwire.config import Config, SimFeedConfig
from tickwire.models import Product


def test_values_read_back() -> None:
    data = {"s": 'quote " back\\slash\ttab\x7fdel 汉字', "i": -3, "f": 0.1, "big": 1e300,
            "t": True, "n": False, "l": [1, 2], "e": [], "nested": [["a"], []],
            "inline": {"a key": 1}}
    assert tomllib.loads(toml_text.document(data)) == data


def test_infinities_and_nan() -> None:
    read = tomllib.loads(toml_text.document({"a": math.inf, "b": -math.inf, "c": math.nan}))
    assert read["a"] == math.inf and read["b"] == -math.inf and math.isnan(read["c"])


def test_a_config_reads_back_as_itself() -> None:
    config = Config(feeds=[SimFeedConfig(seed=7, codes=["btcusdt"]), SimFeedConfig()],
                    products=[Product(code="my.code", name="名", category="4", precision=2)])
    text = toml_text.document(msgspec.to_builtins(config))
    assert msgspec.convert(tomllib.loads(text), Config) == config
    assert "[[feeds]]" in text and "[[products]]" in text


def test_long_lists_go_one_item_a_line() -> None:
    items = [f"10.0.{i}.0/24" for i in range(10)]
    text = toml_text.document({"access": {"allow": items, "short": ["::1"]}})
    assert max(len(line) for line in text.splitlines()) <= toml_text.WIDTH
    assert '    "10.0.0.0/24",' in text and 'short = ["::1"]' in text
    assert tomllib.loads(text)["access"]["allow"] == items


def test_keys_are_quoted_where_they_must_be() -> None:
    assert toml_text.key("plain_key-1") == "plain_key-1"
    assert tomllib.loads(toml_text.document({"a.b c": 1})) == {"a.b c": 1}


def test_other_types_are_refused() -> None:
    with pytest.raises(TypeError):
        toml_text.value(object())
