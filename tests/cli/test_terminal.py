"""The CLI's views: number formatting, times, the live board's flashes and status line."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tickwire import Event, Quote
from tickwire.cli.terminal import QUOTE_COLUMNS, Board, num, parse_time, quotes_table


def render(board: Board, now: float) -> str:
    out = Console(file=io.StringIO(), width=200, color_system="truecolor", force_terminal=True)
    out.print(board.render(now))
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


def plain(renderable: object, width: int) -> list[str]:
    out = Console(file=io.StringIO(), width=width, color_system=None)
    out.print(renderable)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text.splitlines()


QUOTES = [Quote("fx_seurusd", price=1.17803, change=-0.00696, change_pct=-0.59, bid=1.17803,
                ask=1.17804, high=1.18571, low=1.17785, time="2026-12-02 12:49:43"),
          Quote("btcusdt", price=92858.48, change=638.39, change_pct=0.69, bid=92858.47,
                ask=92858.48, high=94242.49, low=91938.2, volume=16595.90486,
                time="2026-12-02 12:49:43")]


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


def test_a_quote_table_shows_every_column_where_they_fit() -> None:
    header = plain(quotes_table(QUOTES), 200)[1]
    assert [c.strip() for c in header.strip("┃").split("┃")] == list(QUOTE_COLUMNS)


@pytest.mark.parametrize("width", [80, 60])
def test_a_narrow_terminal_loses_columns_not_characters(width: int) -> None:
    lines = plain(quotes_table(QUOTES), width)
    assert all(len(line) <= width for line in lines)
    assert "…" not in "".join(lines)
    assert [c.strip() for c in lines[1].strip("┃").split("┃")][:2] == ["Code", "Price"]
    assert "Change %" in lines[1] and "Time" in lines[1]
    assert "fx_seurusd" in lines[3] and "2026-12-02 12:49:43" in lines[3]


def test_the_board_fits_80_columns() -> None:
    board = Board(["btcusdt", "fx_seurusd", "nope"])
    for quote in QUOTES:
        board.update(quote, now=0.0)
    lines = plain(board.render(now=5.0), 80)
    assert all(len(line) <= 80 for line in lines) and "…" not in "".join(lines)
    assert "waiting" in lines[-3] and lines[-1].endswith("2 updates")
