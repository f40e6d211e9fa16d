"""The CLI's views: number formatting, times, the live board's flashes and status line."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tickwire import Event, Quote
from tickwire.cli.terminal import Board, num, parse_time


def render(board: Board, now: float) -> str:
    out = Console(file=io.StringIO(), width=200, color_system="truecolor", force_terminal=True)
    out.print(board.render(now))
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


def test_numbers_read_as_the_server_wrote_them() -> None:
    assert [num(4603.0), num(1.0895), num(0.0), num(-2.5)] == ["4603", "1.0895", "0", "-2.5"]


def test_times_in_the_service_time_zone() -> None:
    assert parse_time("1700000000000") == 1_700_000_000_000
    assert parse_time("1700000000") == 1_700_000_000_000
    assert parse_time("2024-01-01") == 1_704_038_400_000  # 00:00 UTC+8
    assert parse_time("2024-01-01 08:00:00") == 1_704_067_200_000
    assert parse_time("2024-01-01T00:00:00+00:00") == 1_704_067_200_000
    with pytest.raises(ValueError, match="not a time"):
        parse_time("soon")


def test_a_price_change_flashes_for_a_moment() -> None:
    up, down = "48;5;22m", "48;5;160m"  # green and red backgrounds
    board = Board(["btcusdt", "ethusdt"])
    board.update(Quote("btcusdt", price=100.0), now=0.0)
    assert up not in render(board, now=0.1)  # a first quote is no change
    board.update(Quote("btcusdt", price=101.0), now=1.0)
    assert up in render(board, now=1.1)
    board.update(Quote("btcusdt", price=99.0), now=2.0)
    assert down in render(board, now=2.1)
    calm = render(board, now=5.0)
    assert up not in calm and down not in calm
    assert "waiting" in calm and "3 updates" in calm


def test_status_line_follows_the_connection() -> None:
    board = Board(["x"])
    board.on_event(Event("connected", "connected to ws://h/ws"))
    assert board.status == "connected"
    board.on_event(Event("reconnecting", "connection lost; reconnecting in 0.50 s (attempt 1)"))
    assert board.status.startswith("connection lost; reconnecting in 0.50 s")
    board.on_event(Event("connecting", "connecting to ws://h/ws", attempt=1))
    assert board.status == "connecting to ws://h/ws (attempt 1)..."
    board.on_event(Event("server_error", "server says 404: unknown code: x", status=404))
    assert board.status_style == "red"
