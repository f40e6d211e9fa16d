"""A server's addresses: the default, a URL as a user types it, the WebSocket's URL.

A URL without a scheme (`127.0.0.1:1008`) means `http://` (or `ws://` for a WebSocket URL);
a URL that cannot be used is a ValueError that says what is wrong with it, before anything
is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

DEFAULT_HTTP_URL = "http://127.0.0.1:1008"
"""Where `tickwire serve` listens unless told otherwise."""

_SCHEMES = {"http": ("http", "https"), "ws": ("ws", "wss")}


def http_url(url: str) -> str:
    """`127.0.0.1:1008` -> `http://127.0.0.1:1008`; an http(s) URL without its last `/`."""
    return _checked(url, "http")


def ws_url(url: str) -> str:
    """`127.0.0.1:1008/ws` -> `ws://127.0.0.1:1008/ws`; a ws(s) URL as it is."""
    return _checked(url, "ws")


def ws_url_for(http_url: str) -> str:
    """`http://host:port[/prefix]` -> `ws://host:port[/prefix]/ws` (https -> wss)."""
    base = http_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://"):] + "/ws"
    if base.startswith("http://"):
        return "ws://" + base[len("http://"):] + "/ws"
    return base + "/ws"


DEFAULT_WS_URL = ws_url_for(DEFAULT_HTTP_URL)

Urls = str | Sequence[str]
"""One server's URL, or those of several gateways of one deployment, tried in turn."""


def url_list(urls: Urls, check: Callable[[str], str]) -> list[str]:
    """`urls` as a list, each one checked (`http_url`, `ws_url`); a ValueError for none."""
    items = [urls] if isinstance(urls, str) else list(urls)
    if not items:
        raise ValueError("no URL given: one, or a list of several")
    return [check(url) for url in items]


def with_error_replies(url: str) -> str:
    """The WebSocket URL with `errors=1` in its query, the user's own parameters kept as
    written: the opt-in to `{"code":404,...}` replies for unknown codes (PROTOCOL 8)."""
    base, _, query = url.partition("?")
    kept = [p for p in query.split("&") if p and p.split("=", 1)[0] != "errors"]
    return base + "?" + "&".join([*kept, "errors=1"])


def _checked(url: str, kind: str) -> str:
    text = url.strip()
    if "://" not in text:
        text = f"{kind}://{text}"
    schemes = _SCHEMES[kind]
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError as exc:
        raise ValueError(f"not a usable URL: {url!r} ({exc})") from None
    if parts.scheme not in schemes:
        article = "an" if kind == "http" else "a"
        raise ValueError(f"not {article} {schemes[0]}:// or {schemes[1]}:// URL: {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in the URL {url!r}")
    return text.rstrip("/") if kind == "http" else text
