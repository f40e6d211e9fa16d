"""A server's URL as a user types it: the scheme may be left out; a bad one is named."""

from __future__ import annotations

import pytest

from tickwire.client.urls import http_url, with_error_replies, ws_url, ws_url_for


def test_a_url_without_a_scheme_is_http_or_ws() -> None:
    assert http_url("127.0.0.1:1008") == "http://127.0.0.1:1008"
    assert http_url(" https://md.example/api/ ") == "https://md.example/api"
    assert ws_url("127.0.0.1:1008/ws") == "ws://127.0.0.1:1008/ws"
    assert ws_url("wss://md.example/ws?token=t") == "wss://md.example/ws?token=t"
    assert ws_url_for(http_url("localhost:1008")) == "ws://localhost:1008/ws"


@pytest.mark.parametrize(("make", "url", "message"), [
    (http_url, "ftp://127.0.0.1:1008", "not an http:// or https:// URL: 'ftp://127.0.0.1:1008'"),
    (http_url, "ws://127.0.0.1:1008", "not an http:// or https:// URL: 'ws://127.0.0.1:1008'"),
    (ws_url, "http://127.0.0.1/ws", "not a ws:// or wss:// URL: 'http://127.0.0.1/ws'"),
    (http_url, "127.0.0.1:port", "not a usable URL: '127.0.0.1:port'"),
    (http_url, "http://:1008", "no host in the URL 'http://:1008'"),
])
def test_a_url_that_cannot_be_used_is_named(make: object, url: str, message: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError) as caught:
        make(url)
    assert str(caught.value).startswith(message)


def test_the_websocket_opts_in_to_error_replies_keeping_the_users_query() -> None:
    assert with_error_replies("ws://h/ws") == "ws://h/ws?errors=1"
    assert with_error_replies("ws://h/ws?token=a%20b") == "ws://h/ws?token=a%20b&errors=1"
    assert with_error_replies("ws://h/ws?errors=0&x=1") == "ws://h/ws?x=1&errors=1"
