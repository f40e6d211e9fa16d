"""TOML text from plain data (what `msgspec.to_builtins` makes of the config).

The standard library reads TOML but does not write it. This writes what a config holds:
scalars, lists, tables and arrays of tables, one level deep, in lines that fit a terminal
where the values let them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

WIDTH = 80
"""A list longer than this on one line is written one item a line."""
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key(name: str) -> str:
    """A key, quoted where it is not a bare one."""
    return name if _BARE_KEY.fullmatch(name) else value(name)


def value(item: Any) -> str:
    """One value, on one line."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        if math.isnan(item):
            return "nan"
        return repr(item) if math.isfinite(item) else ("inf" if item > 0 else "-inf")
    if isinstance(item, str):  # JSON's escapes are TOML's, but for DEL, which TOML forbids
        return json.dumps(item, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(item, list | tuple):
        return "[" + ", ".join(value(v) for v in item) + "]"
    if isinstance(item, Mapping):
        return "{" + ", ".join(f"{key(k)} = {value(v)}" for k, v in item.items()) + "}"
    raise TypeError(f"no TOML value for {type(item).__name__}")


def document(data: Mapping[str, Any]) -> str:
    """A whole document: top-level keys, then `[tables]`, then `[[arrays of tables]]`."""
    scalars, tables, arrays = [], [], []
    for name, item in data.items():
        if isinstance(item, Mapping):
            tables.append(name)
        elif _is_table_array(item):
            arrays.append(name)
        else:
            scalars.append(name)
    lines = [_pair(name, data[name]) for name in scalars]
    for name in tables:
        lines += ["", f"[{key(name)}]", *_pairs(data[name])]
    for name in arrays:
        for table in data[name]:
            lines += ["", f"[[{key(name)}]]", *_pairs(table)]
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_table_array(item: Any) -> bool:
    return isinstance(item, list) and bool(item) and all(isinstance(t, Mapping) for t in item)


def _pairs(table: Mapping[str, Any]) -> list[str]:
    return [_pair(name, item) for name, item in table.items()]


def _pair(name: str, item: Any) -> str:
    line = f"{key(name)} = {value(item)}"
    if len(line) <= WIDTH or not isinstance(item, list | tuple) or not item:
        return line
    return "\n".join([f"{key(name)} = [", *(f"    {value(v)}," for v in item), "]"])
