"""Parse TensorRT's one-line layer information text (as in build logs) into :class:`LayerRecord` tuples.

One layer per line: ``Name: ..., LayerType: kgen, Inputs: [ { Name: x, Dimensions: [10,1], Format/Datatype: Float }],
Outputs: [...], TacticName: ..., StreamId: 0, Metadata:`` (``LayerInformationFormat.kONELINE``). Other lines (log
headers, ``Layers:``/``Bindings:`` sections, ``# ...`` elisions) are skipped, so a whole debug log can be passed.
"""

from __future__ import annotations

import re
from typing import Any

from mixprec_explorer.errors import ParseError
from mixprec_explorer.parsers.layer_info import record_from_layer
from mixprec_explorer.records import LayerRecord

__all__ = ["parse_layer_log"]

#: Where a layer line starts: its own ``Name: `` (the first one; tensors' names come later).
_LAYER_START = re.compile(r"(?<![A-Za-z/])Name: ")
#: A field key, bare (``Format/Datatype``) or quoted (``"Type"`` inside ``Weights: {...}``), then a colon.
_KEY = re.compile(r'(?:"(?P<quoted>[^"\n]+)"|(?P<bare>[A-Z][A-Za-z0-9/]*)):(?= |$)')
_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
#: Values that are text even when they look like lists (``Name: [RELU]-[aten_ops.relu.default]-[/relu]``).
_TEXT_KEYS = frozenset(
    {
        "Name",
        "LayerType",
        "TacticName",
        "TacticValue",
        "Metadata",
        "Format/Datatype",
        "ParameterType",
        "Origin",
        "Location",
        "Accumulation",
        "Activation",
        "PaddingMode",
    }
)
_ELISION = "..."
_MAX_DEPTH = 16
_CLOSERS = {"[": "]", "{": "}"}


def parse_layer_log(text: str) -> tuple[LayerRecord, ...]:
    """Records of every ``Name: ..., LayerType: ...`` line, tolerating ``# `` prefixes and ``[ ... ]`` elisions.

    A top-level ``Accumulation: Float`` (printed for FP32-accumulating layers) sets ``accumulate_dtype``.
    Raises ParseError naming the line ("line 2: ...", counting from 1) when a layer line cannot be read, or when
    no layer line is found at all.

    >>> r, = parse_layer_log("# Name: k0, LayerType: kgen, Inputs: [ ... ], Outputs: [ ... ], Accumulation: Float")
    >>> r.layer_type, r.accumulate_dtype
    ('kgen', torch.float32)
    """
    if not isinstance(text, str):
        raise ParseError(f"layer log: expected text (str), got {type(text).__name__}")
    records = []
    # split("\n"), not splitlines(): TensorRT 8.6/10 put \x1e and \x1f inside names, which splitlines breaks at.
    for lineno, line in enumerate(text.split("\n"), start=1):
        start = _LAYER_START.search(line)
        if start is None or ", LayerType: " not in line[start.start() :]:
            continue
        where = f"line {lineno}"
        fields = _read_fields(line[start.start() :].strip(), where, depth=0)
        records.append(record_from_layer(fields, where))
    if not records:
        raise ParseError(
            "layer log: no layer lines found; expected TensorRT one-line layer information such as "
            "'Name: ..., LayerType: ..., Inputs: [...], Outputs: [...]'"
        )
    return tuple(records)


def _depths(text: str, where: str) -> list[int]:
    """Bracket depth before each character; ParseError on an unbalanced ``[`` / ``{``."""
    stack: list[tuple[str, int]] = []
    depths = []
    for column, char in enumerate(text, start=1):
        depths.append(len(stack))
        if char in _CLOSERS:
            stack.append((char, column))
        elif char in "]}":
            if not stack or _CLOSERS[stack[-1][0]] != char:
                raise ParseError(f"{where}: unbalanced '{char}' at column {column}")
            stack.pop()
    if stack:
        opener, column = stack[-1]
        raise ParseError(f"{where}: '{opener}' at column {column} is never closed")
    return depths


def _read_fields(text: str, where: str, depth: int) -> dict[str, Any]:
    """``Key: value, Key: value`` -> dict; a field starts only at ``, Key:`` outside brackets."""
    if depth > _MAX_DEPTH:
        raise ParseError(f"{where}: nested too deeply")
    depths = _depths(text, where)
    starts = [0] + [
        i + 2 for i in range(len(text) - 1) if depths[i] == 0 and text.startswith(", ", i) and _KEY.match(text, i + 2)
    ]
    fields: dict[str, Any] = {}
    for begin, end in zip(starts, [*starts[1:], len(text) + 2]):
        segment = text[begin : end - 2].strip()
        if not segment or segment == _ELISION:
            continue
        key_match = _KEY.match(segment)
        if key_match is None:
            raise ParseError(f"{where}: expected 'Key: value', found {segment[:40]!r}")
        key = key_match.group("quoted") or key_match.group("bare")
        raw = segment[key_match.end() :].strip()
        fields[key] = raw if key in _TEXT_KEYS else _read_value(raw, where, depth + 1)
    return fields


def _read_value(text: str, where: str, depth: int) -> Any:
    """A list ``[...]``, an object ``{...}``, a quoted or bare scalar; ``...`` items are elisions and dropped."""
    if depth > _MAX_DEPTH:
        raise ParseError(f"{where}: nested too deeply")
    if len(text) >= 2 and text[0] in _CLOSERS and text[-1] == _CLOSERS[text[0]] and _closes_at_end(text, where):
        inner = text[1:-1].strip()
        if text[0] == "{":
            return {} if inner in ("", _ELISION) else _read_fields(inner, where, depth + 1)
        return [_read_value(item, where, depth + 1) for item in _split_items(inner, where) if item != _ELISION]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _closes_at_end(text: str, where: str) -> bool:
    """True when the bracket opening ``text`` is the one closing it (``[a] [b]`` is text, not a list)."""
    depths = _depths(text, where)
    return all(d > 0 for d in depths[1:])


def _split_items(inner: str, where: str) -> list[str]:
    depths = _depths(inner, where)
    items, begin = [], 0
    for i, char in enumerate(inner):
        if char == "," and depths[i] == 0:
            items.append(inner[begin:i].strip())
            begin = i + 1
    items.append(inner[begin:].strip())
    return [item for item in items if item]
