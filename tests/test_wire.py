"""The protocol's code lists, read one way by the server and the client alike."""

from __future__ import annotations

from tickwire.wire import split_codes


def test_a_comma_separated_string() -> None:
    assert split_codes("a, b,a,,") == ["a", "b"]
    assert split_codes(" btcusdt ") == ["btcusdt"]
    assert split_codes("") == [] and split_codes(" , ,") == []


def test_codes_one_by_one() -> None:
    assert split_codes(["b", " a", "b", "", "  "]) == ["b", "a"]
    assert split_codes(code for code in ("x", "y", "x")) == ["x", "y"]
    assert split_codes(()) == []
