"""The market page as a person uses it, in headless Chromium against a real server: the
table fills and ticks, search filters, a product's chart is redis.php's bars in every
interval and pages back as it scrolls, names are text whatever they hold, Chinese renders
in the page's own font, and it fits a phone. Each page is watched (conftest): no console
error, no dialog, no request to another origin, one WebSocket, no rate-limit refusal."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import (
    ARTIFACTS,
    DESKTOP,
    FILLERS,
    HOSTILE_NAME,
    PHONE,
    TEST_ADDRESS,
    Opener,
    Watch,
    cjk_fonts_installed,
    drawn_bars,
    klines,
    loaded_chart,
    table_rows,
    until,
)
from tests.e2e.server import Server

pytestmark = pytest.mark.slow

def open_table(open_page: Opener, **options: Any) -> Watch:
    watch = open_page(**options)
    until(lambda: len(table_rows(watch)) == FILLERS + 4, "the crypto table's rows")
    return watch


def test_the_table_fills_and_its_prices_move(open_page: Opener) -> None:
    watch = open_table(open_page)
    page = watch.page
    def priced() -> list[list[str]]:
        rows = table_rows(watch)
        return rows if all(price != "" for _, price in rows) else []

    first = dict(until(priced, "a price in every row"))
    assert page.text_content("#status") == "live"
    assert [t.strip() for t in page.locator("#tabs button").all_text_contents()] == \
        ["数字货币", "国际期货"]

    def moved() -> int:
        changed = sum(first[code] != price for code, price in table_rows(watch))
        return changed if changed >= 20 else 0

    until(moved, "prices changing in at least 20 rows", 10)
    until(lambda: page.evaluate("""() => [...document.querySelectorAll('td.price')]
        .some(cell => cell.getAnimations().length > 0)"""), "a price flashing", 5)
    page.click("#tabs button:nth-child(2)")
    until(lambda: {c for c, _ in table_rows(watch)} == {"goldusd", "nodepth"},
          "the second category's rows")


def test_the_search_filters_over_code_and_name_across_categories(open_page: Opener) -> None:
    watch = open_table(open_page)
    page = watch.page
    page.fill("#search", "ETH")
    until(lambda: [c for c, _ in table_rows(watch)] == ["ethusdt"], "ETH matching ethusdt")
    page.fill("#search", "黄金")  # a name in the other category
    until(lambda: [c for c, _ in table_rows(watch)] == ["goldusd"], "a name matching")
    assert "国际期货" in page.text_content("#quotes tbody tr td.name")
    page.fill("#search", "coin01")
    until(lambda: len(table_rows(watch)) == 10, "coin010..coin019")
    page.fill("#search", "no such thing")
    until(lambda: table_rows(watch) == [] and page.is_visible("#table-note"), "no match")
    assert page.text_content("#table-note") == "No product matches."
    page.fill("#search", "")
    until(lambda: len(table_rows(watch)) == FILLERS + 4, "every row back")


def same_as_server(watch: Watch, server: Server, code: str, interval: str,
                   rows: int) -> None:
    """The drawn bars are redis.php's: every bar the server has closed in its window is
    drawn as it is; the forming one may have moved since either read."""

    def compare() -> str:
        drawn = {bar[0]: bar for bar in loaded_chart(watch, interval)["bars"]}
        server_bars = klines(server, code, interval, rows)
        closed = server_bars[:-1]
        wrong = [bar for bar in closed if drawn.get(bar[0]) != bar]
        if wrong or len(closed) != rows - 1:
            return ""  # a bar just ended: the page puts the server's own in a moment later
        times = {bar[0] for bar in server_bars}
        made_up = [t for t in drawn if closed[0][0] <= t < server_bars[-1][0] and t not in times]
        assert made_up == [] and max(drawn) >= server_bars[-1][0]
        return "same"

    until(compare, f"{code} {interval}: the drawn bars equal redis.php's")


def test_a_product_draws_redis_php_bars_and_5m_redraws(open_page: Opener,
                                                        market_server: Server) -> None:
    watch = open_page("/market?debug#btcusdt")
    page = watch.page
    until(lambda: page.text_content("#p-name") == "比特币", "the product's name")
    assert page.title().startswith("比特币 btcusdt")
    same_as_server(watch, market_server, "btcusdt", "1m", 600)
    page.click("#intervals button[data-interval='5m']")
    same_as_server(watch, market_server, "btcusdt", "5m", 300)
    assert page.get_attribute("#intervals button[data-interval='5m']", "aria-pressed") == "true"
    until(lambda: page.locator("#ladder tr.bid:visible").count() == 10, "10 bid levels")
    assert page.locator("#ladder tr.ask:visible").count() == 10
    until(lambda: page.locator("#trades tbody tr").count() > 0, "recent trades")
    for label in ("Open", "High", "Low", "Prev. close"):
        assert label in page.text_content("#stats")


def test_the_forming_bar_moves_with_the_pushes(open_page: Opener) -> None:
    watch = open_page("/market?debug#ethusdt")
    first = loaded_chart(watch, "1m")["bars"][-1]
    price = watch.page.locator("#p-price")

    def moved() -> bool:
        last = drawn_bars(watch)[-1]
        shown = float(price.text_content().replace(",", ""))
        return last != first and last[4] == shown

    until(moved, "the last bar following the price", 10)


def test_scrolling_left_loads_older_bars(open_page: Opener, market_server: Server) -> None:
    watch = open_page("/market?debug&rows=100#xrpusdt")
    page = watch.page
    loaded_chart(watch, "1m")
    settled: list[int] = []

    def steady() -> int:  # the first pages fill the view by themselves
        settled.append(len(drawn_bars(watch)))
        return settled[-1] if len(settled) > 6 and len(set(settled[-6:])) == 1 else 0

    before = until(steady, "the chart at rest")
    box = page.locator("#chart").bounding_box()
    y = box["y"] + box["height"] / 2
    for _ in range(3):  # drag the bars to the right: older ones come into view
        page.mouse.move(box["x"] + 100, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] - 100, y, steps=10)
        page.mouse.up()
    until(lambda: len(drawn_bars(watch)) > before, "older bars after scrolling")
    bars = drawn_bars(watch)
    page_end = bars[99][0]
    assert bars[:100] == klines(market_server, "xrpusdt", "1m", 100, end=page_end)


def test_a_hostile_name_is_shown_as_text(open_page: Opener) -> None:
    watch = open_table(open_page)
    page = watch.page
    page.fill("#search", "evil")
    until(lambda: [c for c, _ in table_rows(watch)] == ["evil"], "the hostile product")
    assert page.text_content("#quotes tbody td.name a") == HOSTILE_NAME
    page.click("#quotes tbody td.name a")
    until(lambda: page.text_content("#p-name") == HOSTILE_NAME, "its name in the product view")
    page.wait_for_timeout(500)  # an onerror would have fired by now
    assert page.locator("main img").count() == 0
    assert watch.dialogs == []
    page.evaluate("() => { location.hash = encodeURIComponent('<b>nosuch</b>'); }")
    until(lambda: page.text_content("#product-note") == "No product has the code "
          "<b>nosuch</b>.", "an unknown code said to be one")
    assert page.locator("main b").count() == 0


INJECT = """other => {
    window.violations = [];
    document.addEventListener('securitypolicyviolation',
        (e) => window.violations.push(e.effectiveDirective));
    const box = document.createElement('div');
    box.insertAdjacentHTML('beforeend', `<img src="${other}/market/favicon.svg"
        onload="window.ran = 'img'" onerror="window.ran = 'img'">`);
    document.body.append(box);
    const script = document.createElement('script');
    script.textContent = "window.ran = 'script'";
    document.body.append(script);
    fetch(`${other}/getCategory.php`).catch(() => { window.refused = true; });
}"""


def test_the_policy_refuses_inline_script_and_other_origins(open_page: Opener,
                                                            market_server: Server) -> None:
    """Were anything to slip HTML in, its script would not run, nor would it reach
    another origin (here this server under another address)."""
    watch = open_table(open_page)
    watch.tolerated = [re.compile("Content Security Policy")]  # Chromium reporting each
    page = watch.page
    page.evaluate(INJECT, f"http://{TEST_ADDRESS}:{market_server.port}")
    wanted = {"img-src", "script-src-attr", "script-src-elem", "connect-src"}
    until(lambda: wanted <= set(page.evaluate("window.violations")), "four refusals")
    assert page.evaluate("window.ran") is None
    assert page.evaluate("window.refused") is True
    until(lambda: watch.blocked, "the image stopped")
    assert watch.foreign == watch.blocked  # asked for, and stopped before it was sent
    watch.foreign.clear()


def test_chinese_names_render_in_the_page_s_own_font(open_page: Opener) -> None:
    installed = cjk_fonts_installed()
    if installed:
        pytest.skip(f"a CJK font is installed ({installed[0]}): this test shows the page's "
                    "own font at work on a machine without one")
    watch = open_table(open_page)
    page = watch.page
    until(lambda: page.evaluate("() => document.fonts.check('14px \"tickwire CJK\"', '比')"),
          "the page's CJK font loaded")
    session = page.context.new_cdp_session(page)
    session.send("DOM.enable")
    session.send("CSS.enable")
    root = session.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    nodes = session.send("DOM.querySelectorAll", {
        "nodeId": root, "selector": "#tabs button, #quotes tbody td.name a"})["nodeIds"]
    chinese = [node for node in nodes if re.search(
        "[\u4e00-\u9fff]", session.send("DOM.getOuterHTML", {"nodeId": node})["outerHTML"])]
    assert len(chinese) == FILLERS + 3 + 2  # every name but the hostile one, both tabs
    for node in chinese:
        fonts = session.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        assert [f["familyName"] for f in fonts if f["isCustomFont"]] == ["Noto Sans CJK SC"], \
            (session.send("DOM.getOuterHTML", {"nodeId": node})["outerHTML"], fonts)


def test_a_phone_sees_the_table_and_a_product_without_scrolling_sideways(
        open_page: Opener) -> None:
    watch = open_table(open_page, viewport=PHONE)
    page = watch.page
    fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(fits)
    headers = [h for h in page.locator("#quotes th").all() if h.is_visible()]
    assert [h.text_content() for h in headers] == ["Name", "Code", "Price", "Change %"]
    page.click("#quotes tbody tr:first-child td.name a")
    loaded_chart(watch, "1m")
    assert page.evaluate(fits)
    assert page.locator("#chart").bounding_box()["width"] > PHONE["width"] - 40


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(open_page: Opener, scheme: str) -> None:
    """The table and a product, desktop and phone, for the README (test-artifacts/, or
    TICKWIRE_ARTIFACTS; scripts/screenshots refreshes docs/screenshots)."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    for device, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        shoot(open_page(viewport=viewport, color_scheme=scheme), folder, f"{device}-{scheme}")


def shoot(watch: Watch, folder: Path, name: str) -> None:
    page = watch.page
    until(lambda: len(table_rows(watch)) == FILLERS + 4, "the crypto table's rows")
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(255, 255, 255)") == name.endswith("light")
    until(lambda: all(p for _, p in table_rows(watch)), "prices")
    page.screenshot(path=folder / f"table-{name}.png")
    page.evaluate("() => { location.hash = 'btcusdt'; }")
    loaded_chart(watch, "1m")
    until(lambda: page.locator("#trades tbody tr").count() > 0, "the trades")
    page.wait_for_timeout(300)  # the chart's next frame
    page.screenshot(path=folder / f"product-{name}.png")
