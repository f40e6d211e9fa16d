"""The product catalogue: categories and products as data (a TOML file an operator can replace)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import msgspec

from tickwire.models import MAX_RECENT_TRADES, Category, Product

CODE_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
"""What a product code may look like: letters, digits, `_ . -`, at most 32 characters."""

FRONT_MONTH = "{yymm}"
"""Stands for the front month in a product's name (see `Catalogue.dated`)."""

INFO_KEYS = frozenset({"TotalAmount", "LimitUp", "LimitDown", "TurnoverRate", "QRR",
                       "MarketCAP", "MarketCIR"})


class CatalogueError(ValueError):
    """A catalogue that cannot be used; the message names the entry and what is wrong."""


class _CatalogueFile(msgspec.Struct, forbid_unknown_fields=True):
    categories: list[Category] = []
    products: list[Product] = []


class Catalogue:
    """Categories in their listed order and products by code, in listed order."""

    def __init__(self, categories: list[Category], products: list[Product]) -> None:
        self.categories = categories
        self.products: dict[str, Product] = {}
        category_ids = {c.id for c in categories}
        if len(category_ids) != len(categories):
            raise CatalogueError("categories: duplicate id")
        for product in products:
            _check(product, category_ids)
            if product.code in self.products:
                raise CatalogueError(f"products: duplicate code {product.code!r}")
            self.products[product.code] = product
        self.by_category: dict[str, list[Product]] = {c.id: [] for c in categories}
        for product in self.products.values():
            self.by_category[product.category].append(product)

    def dated(self, yymm: str) -> Catalogue:
        """This catalogue with `{yymm}` in product names replaced by `yymm` (e.g. "2612"):
        monthly contracts named after the front month."""
        products = [msgspec.structs.replace(p, name=p.name.replace(FRONT_MONTH, yymm))
                    if FRONT_MONTH in p.name else p for p in self.products.values()]
        return Catalogue(self.categories, products)

    def with_products(self, extra: list[Product]) -> Catalogue:
        """This catalogue plus `extra` products (same code replaces the shipped one)."""
        merged = {p.code: p for p in self.products.values()}
        for product in extra:
            merged[product.code] = product
        return Catalogue(self.categories, list(merged.values()))


def _check(product: Product, category_ids: set[str]) -> None:
    where = f"products[{product.code!r}]"
    if not CODE_PATTERN.match(product.code):
        raise CatalogueError(f"{where}.code: must match {CODE_PATTERN.pattern}")
    if product.category not in category_ids:
        raise CatalogueError(f"{where}.category: unknown category {product.category!r}")
    if not 0 <= product.precision <= 10:
        raise CatalogueError(f"{where}.precision: must be 0..10")
    if not 0 <= product.volume_precision <= 10:
        raise CatalogueError(f"{where}.volume_precision: must be 0..10")
    if not 0 <= product.depth <= 10:
        raise CatalogueError(f"{where}.depth: must be 0..10")
    if not 0 <= product.recent_trades <= MAX_RECENT_TRADES:
        raise CatalogueError(f"{where}.trades: true, false or a count 0..{MAX_RECENT_TRADES}")
    if product.price <= 0:
        raise CatalogueError(f"{where}.price: must be > 0")
    if not 0 <= product.volatility < 1:
        raise CatalogueError(f"{where}.volatility: must be in [0, 1)")
    if not 0 <= product.limit_pct < 1:
        raise CatalogueError(f"{where}.limit_pct: must be in [0, 1)")
    unknown = set(product.info) - INFO_KEYS
    if unknown:
        raise CatalogueError(f"{where}.info: unknown keys {sorted(unknown)}")


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Load a catalogue file, or the shipped one when `path` is None."""
    if path is None:
        raw = resources.files("tickwire").joinpath("catalogue.toml").read_bytes()
        where = "catalogue.toml"
    else:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CatalogueError(f"catalogue {path}: {exc.strerror}") from None
        where = str(path)
    try:
        parsed = msgspec.toml.decode(raw, type=_CatalogueFile)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise CatalogueError(f"{where}: {exc}") from None
    if not parsed.categories:
        raise CatalogueError(f"{where}: no categories")
    return Catalogue(parsed.categories, parsed.products)
