"""The CLI's views: number formatting, times, the live board's flashes and status line."""

from __future__ import annotations

import io
import re

import pytest
from rich.cells import cell_len
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
NAMES = {"fx_seurusd": "欧元美元", "btcusdt": "比特币"}
REALISTIC = [*QUOTES, Quote("HX_HSI", price=25830.0, change=-120.0, change_pct=-0.46,
                            volume=123456.0, time="2026-12-02 12:49:43"),
             Quote("TW_TXF", price=22830.0, change=-84.0, change_pct=-0.37, volume=98765.0,
                   time="2026-12-02 12:49:43")]
REALISTIC_NAMES = {**NAMES, "HX_HSI": "恒指2612", "TW_TXF": "台指期2612【日】"}


def cells(line: str) -> list[str]:
    """The cells of a table's line, its header's (framed by ┃) or a row's (│)."""
    return [c.strip() for c in re.split("[┃│]", line.strip())[1:-1]]


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
    lines = plain(quotes_table(REALISTIC, REALISTIC_NAMES), 200)
    assert cells(lines[1]) == list(QUOTE_COLUMNS)
    assert cells(lines[1])[:2] == ["Code", "Name"]
    assert "台指期2612【日】" in lines[6] and "123456" in lines[5]


def test_80_columns_show_code_name_price_and_change_and_wider_shows_more() -> None:
    narrow = plain(quotes_table(REALISTIC, REALISTIC_NAMES), 80)
    assert all(cell_len(line) <= 80 for line in narrow) and "…" not in "".join(narrow)
    assert cells(narrow[1])[:4] == ["Code", "Name", "Price", "Change"]
    assert "High" not in narrow[1] and "Volume" not in narrow[1]
    for row, name in zip(narrow[3:7], REALISTIC_NAMES.values(), strict=True):
        assert name in row
    wider = plain(quotes_table(REALISTIC, REALISTIC_NAMES), 120)
    assert len(cells(wider[1])) > len(cells(narrow[1]))
    assert {"Volume", "Time"} <= set(cells(wider[1]))


@pytest.mark.parametrize("width", [80, 60])
def test_a_narrow_terminal_loses_columns_not_characters(width: int) -> None:
    lines = plain(quotes_table(QUOTES, NAMES), width)
    assert all(cell_len(line) <= width for line in lines)
    assert "…" not in "".join(lines)
    assert cells(lines[1])[:4] == ["Code", "Name", "Price", "Change"]
    assert "fx_seurusd" in lines[3] and "欧元美元" in lines[3]


def test_a_name_too_wide_is_cut_short_not_left_out() -> None:
    lines = plain(quotes_table(REALISTIC, REALISTIC_NAMES), 40)
    assert all(cell_len(line) <= 40 for line in lines)
    assert cells(lines[1]) == ["Code", "Name", "Price"]
    assert "比特币" in lines[4] and "…" in lines[6]


def test_a_code_without_a_name_has_an_empty_name() -> None:
    lines = plain(quotes_table(QUOTES, {"btcusdt": "比特币"}), 200)
    assert cells(lines[3])[:3] == ["fx_seurusd", "", "1.17803"]


def test_the_board_fits_80_columns() -> None:
    board = Board(["btcusdt", "fx_seurusd", "nope"])
    for quote in QUOTES:
        board.update(quote, now=0.0)
    lines = plain(board.render(now=5.0), 80)
    assert all(len(line) <= 80 for line in lines) and "…" not in "".join(lines)
    assert "waiting" in lines[-3] and lines[-1].endswith("2 updates")
    board.names.update({"btcusdt": "比特币", "fx_seurusd": "欧元美元"})  # the names came
    lines = plain(board.render(now=5.0), 80)
    assert all(cell_len(line) <= 80 for line in lines)
    assert "比特币" in lines[3] and "欧元美元" in lines[4]
