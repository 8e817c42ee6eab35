"""Settings defined once: config dataclasses own each default and its help; flags derive from them.

A field's ``metadata`` carries what the command line needs besides its default::

    @dataclass
    class MatchConfig:
        k: int = option(10, "hits per query", metavar="N")

:func:`add_options` adds ``--k`` (type, default and "(default: 10)" from the field) to an
argparse parser, and :func:`from_args` builds the config back from the parsed namespace, so no
default or help text is written twice. Library code takes the config, never the namespace.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Iterable

_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, flag: str | None = None,  # noqa: A002
           metavar: str | None = None, choices: Iterable | None = None,
           negate: str | None = None, default_text: str | None = None,
           factory: Any = _MISSING, cli: bool = True) -> Any:
    """A dataclass field with its command-line help.

    Args:
        default: the default value (or give *factory*; neither: a required option).
        help: one line for ``--help``; "(default: ...)" is appended (not for flags without
            a value, nor for an empty list).
        flag: the option's name (default: ``--`` + the field name with dashes).
        metavar: the value's placeholder in ``--help``.
        choices: the allowed values.
        negate: for a boolean that defaults to True, the flag that turns it off
            (``--no-duplicates``); the field's own flag is not added.
        default_text: what "(default: ...)" says when the value alone would not tell;
            ``{default}`` in it stands for the value (``"{default}; 0: no cap"``).
        factory: a default factory (lists).
        cli: False for fields that are not command-line options.
    """
    meta = {"help": help, "flag": flag, "metavar": metavar,
            "choices": tuple(choices) if choices is not None else None, "negate": negate,
            "default_text": default_text, "cli": cli}
    if factory is not _MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(hint: Any) -> Any:
    """The scalar type of a type hint such as ``int | None`` (None passes argparse untouched)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return hint


def _hints(cls: type) -> dict[str, Any]:
    import sys

    module = sys.modules[cls.__module__]
    return typing.get_type_hints(cls, vars(module))


def _convert(kind: Any) -> Any:
    if kind in (int, float, str, Path):
        return kind
    if typing.get_origin(kind) in (list, tuple):
        return _convert(typing.get_args(kind)[0])
    return str


def _shown(value: Any) -> str:
    """A default as ``--help`` shows it: ``5e-5``, ``0.05``, ``1`` (not ``5e-05``, ``1.0``)."""
    if isinstance(value, float) and math.isfinite(value):
        plain = f"{value:f}".rstrip("0").rstrip(".") if value == round(value, 6) \
            else repr(value)
        mantissa, _, exp = f"{value:e}".partition("e")
        sci = f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"
        return sci if len(sci) < len(plain) else plain
    return str(value)


def _added_key(cls: type) -> str:
    # Where add_options records, in the parser's defaults, which fields of *cls* it added.
    return f"_options_{cls.__module__}.{cls.__qualname__}"


def add_options(parser: argparse.ArgumentParser | Any, cls: type, *, only: Iterable[str] = (),
                skip: Iterable[str] = (), defaults: dict[str, Any] | None = None) -> None:
    """Add a flag for each command-line field of the config dataclass *cls*.

    Args:
        parser: a parser or argument group.
        cls: the config dataclass.
        only: add just these fields (in this order); default: every field with ``cli``.
        skip: fields not to add (given by the command otherwise, e.g. positionals).
        defaults: other defaults for this command (the help shows them).
    """
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    skip, defaults = set(skip), dict(defaults or {})
    names = [n for n in (list(only) or [n for n, f in fields.items()
                                        if f.metadata.get("cli", False)]) if n not in skip]
    for name in names:
        f = fields[name]
        meta = f.metadata
        required = name not in defaults and f.default is _MISSING \
            and f.default_factory is _MISSING
        default = defaults[name] if name in defaults else None if required else \
            f.default if f.default is not _MISSING else f.default_factory()
        kind = _base_type(hints[name])
        flag = meta.get("flag") or "--" + name.replace("_", "-")
        text = meta.get("help", "")
        if kind is bool:
            if meta.get("negate"):
                parser.add_argument(meta["negate"], dest=name, action="store_false",
                                    default=default, help=_escape(text))
            else:
                parser.add_argument(flag, dest=name, action="store_true", default=default,
                                    help=_escape(text))
            continue
        shown = _shown(default)
        if meta.get("default_text") and name not in defaults:
            shown = meta["default_text"].replace("{default}", shown)
        is_list = typing.get_origin(kind) is list
        if text and not required and not (is_list and not default):
            text = f"{text} (default: {shown})"
        kwargs: dict[str, Any] = {"dest": name, "help": _escape(text) if text else None}
        if required:
            kwargs["required"] = True
        else:
            kwargs["default"] = list(default or []) if is_list else default
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if is_list:
            kwargs.update(nargs="+", action="extend")
        kwargs["type"] = _convert(kind)
        parser.add_argument(flag, **kwargs)
    key = _added_key(cls)
    parser.set_defaults(**{key: tuple(parser.get_default(key) or ()) + tuple(names)})


def _escape(text: str) -> str:
    return text.replace("%", "%%")  # argparse %-formats help strings


def from_args(cls: type, args: argparse.Namespace, **given: Any) -> Any:
    """The config *cls* from a parsed namespace, plus *given* (positionals, paths, anything
    the command sets itself).

    Only the fields :func:`add_options` added to the parser are read: another option of the
    command that happens to share a field's name (``bench --mode bm25,dense``) is not taken
    for it. A namespace built otherwise gives every command-line field it has.
    """
    added = getattr(args, _added_key(cls), None)
    if added is None:
        added = [f.name for f in dataclasses.fields(cls)
                 if f.metadata.get("cli", False) and hasattr(args, f.name)]
    init = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {name: getattr(args, name) for name in added if name in init}
    values.update(given)
    return cls(**values)
