"""Several gateways of one deployment: the client takes a list of URLs, moves on to the next
when one cannot be reached, and the stream reconnects to the next in turn."""

from __future__ import annotations

import pytest

from tests.client.conftest import Events
from tests.e2e.server import Server, free_port
from tickwire import AsyncClient, Backoff, Client


def nobody() -> str:
    """An address where nothing listens: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}"


async def test_a_request_goes_on_to_the_next_url_when_one_cannot_be_reached(
        live: Server) -> None:
    events = Events()
    down = nobody()
    async with AsyncClient([down, live.url], retries=2, on_event=events) as client:
        assert client.http_url == down
        quote = await client.quote("btcusdt")
        assert quote.code == "btcusdt"
        assert client.http_url == live.url  # it stays with the one that answers
        await client.quote("ethusdt")
    retries = events.of("retrying")
    assert len(retries) == 1 and f"retrying on {live.url}" in retries[0].message


async def test_a_stream_connects_to_the_next_url_in_turn(live: Server) -> None:
    events = Events()
    async with AsyncClient([nobody(), live.url], backoff=Backoff(initial=0.05, maximum=0.2),
                           on_event=events) as client, client.stream(["btcusdt"]) as stream:
        quote = await stream.get(timeout=20)
        assert quote is not None and quote.code == "btcusdt"
        assert client.ws_url == live.ws_url
    assert f"reconnecting to {live.ws_url}" in events.of("reconnecting")[0].message


def test_the_sync_client_takes_a_list_too(live: Server) -> None:
    with Client([nobody(), live.url], retries=2) as client:
        assert client.quote("btcusdt").code == "btcusdt"
        assert client.http_url == live.url


@pytest.mark.parametrize("urls", [[], ["http://127.0.0.1:1008", "ftp://nope"]])
def test_an_empty_or_bad_list_is_a_value_error(urls: list[str]) -> None:
    with pytest.raises(ValueError):
        AsyncClient(urls)
