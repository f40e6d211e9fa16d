"""The configuration reference, `docs/configuration.md`, written from the config code.

Every section and key of `Config` with its type, its default, its environment variable and
its meaning, which is the docstring under the key in `tickwire.config` (for products, in
`tickwire.models.Product`). A key without a docstring is an error, so the reference never
leaves one out. Write the file with

    python -m tickwire.config_reference > docs/configuration.md

and a test checks that the committed file is what this writes.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import sys
import textwrap
import types
import typing
from typing import Any, Literal

import msgspec

from tickwire.config import CONFIG_ENV, Config, env_var, toml_document

_TYPE_NAMES = {str: ("string", "strings"), int: ("integer", "integers"),
               float: ("number", "numbers"), bool: ("boolean", "booleans")}

_WIDTH = 92
"""Prose lines of the reference wrap at this width (its tables do not)."""
_INTRO = f"""\
# Configuration reference

<!-- Written by `python -m tickwire.config_reference` from src/tickwire/config.py (and
     Product in src/tickwire/models.py): change the docstrings there, not this file. -->

`tickwire serve` reads one TOML file (`--config FILE`, or the file that `{CONFIG_ENV}`
names), then `TICKWIRE_<SECTION>_<KEY>` environment variables over it, then the flags
`--host`, `--port` and `--data-dir` over both. An environment variable's value is read as a
TOML value where it is one (`8008`, `true`, `["10.0.0.0/8", "::1"]`) and as a string
otherwise. Every key is checked at start: a bad one, or one not listed here, stops the
server with exit status 2 and one line naming it. `tickwire config`, with the options of
`serve`, prints the configuration that results, checked the same way.
"""



def _toml_value(item: Any) -> str:
    """One value on one line as TOML reads it (`"sim"`, `["127.0.0.0/8", "::1"]`, `true`):
    the JSON form of the strings, numbers, booleans and lists that defaults are."""
    return json.dumps(item, ensure_ascii=False)

def reference() -> str:
    """The whole reference, as Markdown."""
    parts = [_INTRO]
    section_docs = attribute_docs(Config)
    for field in msgspec.structs.fields(Config):
        hint = field.type
        if typing.get_origin(hint) is list:
            parts.append(_array_section(field, section_docs))
        else:
            parts.append(_table_section(field.name, hint))
    return "\n".join(parts)


def attribute_docs(cls: type) -> dict[str, str]:
    """The docstring under each attribute of a class, as one line, by attribute name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, after in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def key_rows(cls: type[msgspec.Struct], where: str) -> list[str]:
    """A Markdown table of the keys of `cls`, the table `where` (`server`, `feeds[]`), with
    their environment variables where there are some. A key without a docstring is a
    `ValueError` naming it."""
    docs = attribute_docs(cls)
    with_env = env_var(where, "key") is not None
    head = ["key", "type", "default", *(["environment variable"] if with_env else []),
            "meaning"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for field in msgspec.structs.fields(cls):
        if field.name not in docs:
            raise ValueError(f"{where}.{field.name}: no docstring to say what it means")
        cells = [f"`{field.name}`", type_name(field.type), _default(field)]
        if with_env:
            cells.append(f"`{env_var(where, field.name)}`")
        cells.append(docs[field.name].replace("|", "\\|"))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def type_name(hint: Any, plural: bool = False) -> str:
    """How the reference names a key's type: `integer`, `list of strings`, `one of ...`."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(f"`{_toml_value(v)}`" for v in typing.get_args(hint))
    if origin is list:
        return "list of " + type_name(typing.get_args(hint)[0], plural=True)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(part, plural) for part in typing.get_args(hint))
    if hint not in _TYPE_NAMES:
        raise TypeError(f"the reference has no name for the type {hint!r}")
    return _TYPE_NAMES[hint][plural]


def _default(field: msgspec.structs.FieldInfo) -> str:
    if field.required:
        return "required"
    return f"`{_toml_value(msgspec.to_builtins(_default_of(field)))}`"


def _default_of(field: msgspec.structs.FieldInfo) -> Any:
    return field.default_factory() if field.default is msgspec.NODEFAULT else field.default


def _section_doc(cls: type) -> str:
    if not cls.__doc__:
        raise ValueError(f"{cls.__name__}: no docstring to say what it is")
    return _paragraph(cls.__doc__)


def _paragraph(text: str) -> str:
    return textwrap.fill(" ".join(text.split()), _WIDTH, break_long_words=False,
                         break_on_hyphens=False)


def _table_section(name: str, cls: type[msgspec.Struct]) -> str:
    lines = [f"## `[{name}]`", "", _section_doc(cls), "", *key_rows(cls, name)]
    return "\n".join(lines) + "\n"


def _array_section(field: msgspec.structs.FieldInfo, docs: dict[str, str]) -> str:
    """`[[feeds]]`, `[[products]]`: the tables' keys, one table of them for each `kind`
    where the tables are told apart by kind."""
    name = field.name
    if name not in docs:
        raise ValueError(f"{name}: no docstring to say what it is")
    lines = [f"## `[[{name}]]`", "",
             _paragraph(f"{docs[name]} Set in the file only, not by environment variables."),
             ""]
    default = msgspec.to_builtins(_default_of(field))
    if default:
        lines += [f"With no `[[{name}]]` table there is this one:", "", "```toml",
                  toml_document({name: default}).strip("\n"), "```", ""]
    else:
        lines += ["None by default.", ""]
    item = typing.get_args(field.type)[0]
    kinds: tuple[type[msgspec.Struct], ...] = typing.get_args(item) or (item,)
    for kind in kinds:
        tag = kind.__struct_config__.tag
        if tag is not None:
            lines += [f"### `{kind.__struct_config__.tag_field} = {_toml_value(tag)}`",
                      "", _section_doc(kind), ""]
        lines += [*key_rows(kind, f"{name}[]"), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(reference())
