"""The market page: `/market` and its files, served from the package.

The files are read once, when the app is made, and kept in memory with a content hash each
(the ETag) and, for text, a gzipped copy. The page is `index.html` with `{{NAME}}` replaced
by NAME's hash: asked for with `?v=` equal to its hash, a file is cached for a year; anything
else (the page itself, modules imported without a hash) is revalidated with its ETag on each
use. Every answer carries a Content-Security-Policy that allows nothing but this origin and
no inline script or style.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from tickwire.errors import NotFound

MARKET_PATH = "/market"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
"""`connect-src 'self'` covers the page's own `ws:`/`wss:` origin (CSP level 3)."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

_TYPES = {
    ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript",
    ".css": "text/css", ".woff2": "font/woff2", ".txt": "text/plain", ".svg": "image/svg+xml",
}
_PLAIN_NAMES = {"LICENSE", "NOTICE"}
_INDEX = "index.html"
_PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9_./-]+)\}\}")


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    """The body gzipped, for text worth compressing; None for fonts and tiny files."""
    content_type: str
    version: str
    """A short hash of the body: the ETag and the `?v=` that makes it cacheable for good."""

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _content_type(name: str) -> str | None:
    if name.rsplit("/", 1)[-1] in _PLAIN_NAMES:
        return "text/plain"
    suffix = name[name.rfind("."):] if "." in name else ""
    return _TYPES.get(suffix)


def _asset(body: bytes, content_type: str) -> Asset:
    compressible = not content_type.startswith("font/") and len(body) > 1024
    return Asset(body=body, gzipped=gzip.compress(body, 9, mtime=0) if compressible else None,
                 content_type=content_type,
                 version=hashlib.sha256(body).hexdigest()[:16])


def _walk(folder: Traversable, prefix: str = "") -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for entry in folder.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            found.update(_walk(entry, name + "/"))
        elif _content_type(name) is not None:
            found[name] = entry.read_bytes()
    return found


def load_assets(folder: Traversable | None = None) -> dict[str, Asset]:
    """Every file of the page by its path under the folder, `index.html` with the hashes
    of the files it names filled in."""
    folder = folder or resources.files("tickwire").joinpath("gateway", "static", "market")
    files = _walk(folder)
    assets = {name: _asset(body, _content_type(name) or "") for name, body in files.items()
              if name != _INDEX}

    def version(match: re.Match[str]) -> str:
        name = match[1]
        if name not in assets:
            raise ValueError(f"{_INDEX} names {name}, which the page does not have")
        return assets[name].version

    index = _PLACEHOLDER.sub(version, files[_INDEX].decode("utf-8"))
    assets[_INDEX] = _asset(index.encode("utf-8"), "text/html")
    return assets


_ASSETS = web.AppKey("market_assets", dict[str, Asset])


def _answer(request: web.Request, asset: Asset, cache: str) -> web.StreamResponse:
    gzipped = asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", "")
    etag = f'"{asset.version}-gz"' if gzipped else asset.etag
    headers = {**SECURITY_HEADERS, "Cache-Control": cache, "ETag": etag,
               "Vary": "Accept-Encoding"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    charset = "utf-8" if asset.content_type.startswith("text/") else None
    return web.Response(body=asset.gzipped if gzipped else asset.body, headers=headers,
                        content_type=asset.content_type, charset=charset)


async def page(request: web.Request) -> web.StreamResponse:
    return _answer(request, request.app[_ASSETS][_INDEX], REVALIDATE)


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    found = request.app[_ASSETS].get(name)
    if found is None or name == _INDEX:
        raise NotFound(f"not found: {request.path[:200]}")
    versioned = request.query.get("v") == found.version
    return _answer(request, found, IMMUTABLE if versioned else REVALIDATE)


async def to_page(request: web.Request) -> web.StreamResponse:
    """`/market/`: the page's relative links work from `/market` only."""
    raise web.HTTPMovedPermanently("../market")


def add_routes(app: web.Application) -> None:
    app[_ASSETS] = load_assets()
    app.router.add_get(MARKET_PATH, page)
    app.router.add_get(MARKET_PATH + "/", to_page)
    app.router.add_get(MARKET_PATH + "/{name:.+}", asset)
