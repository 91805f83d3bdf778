"""Checks of a backend's option values, run before any work (no model shipped, nothing compiled).

Each check raises :class:`~mixprec_explorer.errors.OptionError` (a wrong value: the message lists the accepted
ones) or :class:`~mixprec_explorer.errors.OptionTypeError` (a wrong kind of value), naming the backend and option.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from ..errors import OptionError, OptionTypeError, check_number

__all__ = ["check_annotated", "check_bool", "check_int", "check_one_of", "check_path", "check_str_collection"]


def _kind(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_one_of(where: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    """``value`` must be one of ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str | int | float | bool | type(None)) or value not in choices:
        raise OptionError(f"{where}: {name} must be one of {', '.join(map(repr, choices))}; got {_kind(value)}")


def check_bool(where: str, name: str, value: Any) -> None:
    """``value`` must be True or False (not 0, 1 or a string: "False" would read as true)."""
    if not isinstance(value, bool):
        raise OptionTypeError(f"{where}: {name} must be True or False; got {_kind(value)}")


def check_int(where: str, name: str, value: Any, *, low: int | None = None, high: int | None = None,
              optional: bool = False) -> None:
    """``value`` must be an int (not a bool) within ``[low, high]``; None too when ``optional``."""
    if value is None and optional:
        return
    check_number(f"{where}: {name}", value, minimum=low, maximum=high, whole=True,
                 what="or None" if optional else "")


def check_path(where: str, name: str, value: Any, *, optional: bool = False) -> None:
    """``value`` must be a folder or file path (str or os.PathLike); None too when ``optional``."""
    if value is None and optional:
        return
    if not isinstance(value, str | os.PathLike):
        raise OptionTypeError(f"{where}: {name} must be a path (str or pathlib.Path); got {_kind(value)}")


def check_str_collection(where: str, name: str, value: Any, *, optional: bool = False) -> None:
    """``value`` must be a collection (set, list, tuple) and not one string, whose characters would be its items."""
    if value is None and optional:
        return
    if isinstance(value, str | bytes) or not isinstance(value, Collection) or isinstance(value, Mapping):
        hint = f"; for one item write {{{value!r}}}" if isinstance(value, str) else ""
        raise OptionTypeError(f"{where}: {name} must be a collection (a set, list or tuple){hint}; got {_kind(value)}")


_OPTIONAL = re.compile(r"^Optional\[(?P<inner>.*)\]$")
_UNION_NONE = re.compile(r"^(?P<inner>.*?)\s*\|\s*None$|^None\s*\|\s*(?P<rest>.*)$")
_COLLECTION = re.compile(r"^(Collection|List|Sequence|Set|Tuple|FrozenSet|list|set|tuple|frozenset)\b")


def check_annotated(where: str, name: str, value: Any, annotation: Any) -> None:
    """Check ``value`` against a parameter's annotation written as text (``"bool"``, ``"Optional[int]"``,
    ``"Collection[Target]"``): the simple kinds are checked, anything else is left to the callee."""
    if not isinstance(annotation, str):
        annotation = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
        if annotation is None:
            return
    text = annotation.strip().replace("typing.", "")
    optional = False
    for pattern in (_OPTIONAL, _UNION_NONE):
        found = pattern.match(text)
        if found:
            text, optional = (found.group("inner") or found.groupdict().get("rest") or "").strip(), True
    if value is None and optional:
        return
    if text == "bool":
        check_bool(where, name, value)
    elif text == "int":
        check_int(where, name, value, optional=optional)
    elif text == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionTypeError(f"{where}: {name} must be a number; got {_kind(value)}")
    elif text == "str":
        if not isinstance(value, str):
            raise OptionTypeError(f"{where}: {name} must be a string; got {_kind(value)}")
    elif _COLLECTION.match(text):
        check_str_collection(where, name, value, optional=optional)
