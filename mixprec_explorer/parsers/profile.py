"""Parse per-layer TensorRT profiles into :class:`LayerRecord` tuples (latency in ms, share of total 0..1).

Three formats, all holding cumulative totals over every profiled run:

* ``trtexec --exportProfile``: ``[{"count": N}, {"name", "timeMs", "averageMs", "medianMs", "percentage"}, ...]``;
* Torch-TensorRT C++ runtime, ``profile_format="trex"``: ``[{"name", "timeMs", "averageMs", "percentage"}, ...]``;
* Torch-TensorRT C++ runtime, ``profile_format="perfetto"`` (the default): Chrome trace events
  ``{"name", "ph": "X", "ts", "dur", "tid", "pid", "args"}`` with ``dur`` the total in microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mixprec_explorer.errors import ParseError
from mixprec_explorer.parsers.layer_info import kind_of, load_json
from mixprec_explorer.parsers.names import decode_layer_name, modules_of
from mixprec_explorer.records import LayerRecord

__all__ = ["parse_profile"]


def parse_profile(text: str, *, runs: int | None = None) -> tuple[LayerRecord, ...]:
    """One record per profiled layer, in file order, with ``latency_ms`` per run where the run count is known.

    ``runs`` is how many forward calls the totals cover; trtexec and trex files carry it (``count``,
    ``timeMs / averageMs``), perfetto traces do not, so without ``runs`` their ``latency_ms`` is the cumulative
    total and ``count`` is None. Raises ParseError naming the place ("record 3: ...", the JSON array index).

    >>> r, = parse_profile('[{"name": "[RELU]-[aten_ops.relu.default]-[/relu]", "timeMs": 2.0, "averageMs": 0.5, "percentage": 100}]')
    >>> r.latency_ms, r.count, r.share, r.modules
    (0.5, 4, 1.0, ('',))
    """
    if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
        raise ParseError(f"runs should be a positive integer, got {runs!r}")
    data = _load_profile(text)
    if isinstance(data, Mapping) and "traceEvents" in data:
        return _perfetto(_chrome_trace_events(data), runs)
    if not isinstance(data, list):
        raise ParseError(f"top level: expected a JSON array of per-layer records, got {kind_of(data)}")
    if not data:
        return ()
    first = data[0]
    if isinstance(first, Mapping) and "count" in first and "name" not in first:
        return _trtexec(data, runs)
    if isinstance(first, Mapping) and ("dur" in first or "ph" in first):
        return _perfetto(data, runs)
    if isinstance(first, Mapping) and "timeMs" in first:
        return _trex(data, runs)
    raise ParseError(
        'record 0: not a known profile record; expected {"count": N} (trtexec), '
        '{"name", "timeMs", ...} (trex) or {"name", "ph", "dur", ...} (perfetto)'
    )


def _load_profile(text: str) -> Any:
    """JSON, or failing that Torch-TensorRT's hand-written trace layout (see :func:`_read_torchtrt_trace`)."""
    try:
        return load_json(text, "profile")
    except ParseError:
        fallback = _read_torchtrt_trace(text) if isinstance(text, str) else None
        if fallback is None:
            raise
        return fallback


def _read_torchtrt_trace(text: str) -> list[dict[str, Any]] | None:
    """Torch-TensorRT's ``TRTEngineProfiler::dump_trace`` (2.x) writes JSON by hand: layer names unescaped and
    ``nan``/``-nan`` percentages when every layer took 0 ms. Read that exact one-field-per-line layout; None if
    the text is not in it.
    """
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) < 2 or lines[0] != "[" or lines[-1] != "]":
        return None
    records: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in lines[1:-1]:
        if line == "{" and current is None:
            current = {}
        elif line in ("}", "},") and current is not None:
            records.append(current)
            current = None
        elif current is not None and line.startswith('"') and '": ' in line:
            key, _, value = line[1:].partition('": ')
            value = value.removesuffix(",")
            if len(value) >= 2 and value[0] == value[-1] == '"':
                current[key] = value[1:-1]  # names are written unescaped: keep every character between
            elif value == "{}":
                current[key] = {}
            else:
                try:
                    current[key] = float(value)
                except ValueError:
                    return None
        else:
            return None
    return records if records and current is None else None


def _chrome_trace_events(data: Mapping[str, Any]) -> list[Any]:
    """Chrome's object form ``{"traceEvents": [...]}``, as other tools save perfetto traces."""
    events = data["traceEvents"]
    if not isinstance(events, list):
        raise ParseError(f"top level: 'traceEvents' should be a list, got {kind_of(events)}")
    return events


def _trtexec(data: Sequence[Any], runs: int | None) -> tuple[LayerRecord, ...]:
    """trtexec ``--exportProfile``: a leading ``{"count": N}`` (runs profiled), then one record per layer."""
    count = data[0]["count"]
    integral = isinstance(count, int) or (isinstance(count, float) and count.is_integer())
    if isinstance(count, bool) or not integral or count < 0:
        raise ParseError(f"record 0: 'count' should be a non-negative integer, got {count!r}")
    count = runs if runs is not None else int(count)
    rows = [_layer_row(rec, index, "timeMs") for index, rec in enumerate(data[1:], start=1)]
    total = sum(time for _, time, _ in rows)
    records = []
    for index, (rec, time, where) in enumerate(rows, start=1):
        latency = _latency_trtexec(rec, where, time, count)
        records.append(_record(rec, "trtexec", latency, _share(rec, where, time, total), count, index))
    return tuple(records)


def _latency_trtexec(rec: Mapping[str, Any], where: str, total_ms: float, count: int) -> float | None:
    """Median per run; TensorRT 8.0 and older trtexec wrote no ``medianMs``, so fall back to ``averageMs``."""
    for key in ("medianMs", "averageMs"):
        value = _number(rec, key, where, required=False)
        if value is not None:
            return value
    return total_ms / count if count else None


def _trex(data: Sequence[Any], runs: int | None) -> tuple[LayerRecord, ...]:
    """Torch-TensorRT ``profile_format="trex"``: totals and averages, no count record (it is timeMs / averageMs)."""
    rows = [_layer_row(rec, index, "timeMs") for index, rec in enumerate(data)]
    total = sum(time for _, time, _ in rows)
    records = []
    for index, (rec, time, where) in enumerate(rows):
        average = _number(rec, "averageMs", where, required=False)
        count = runs
        if count is None and average:
            count = max(round(time / average), 1)
        if average is None:
            average = time / count if count else time
        records.append(_record(rec, "trex", average, _share(rec, where, time, total), count, index))
    return tuple(records)


def _perfetto(data: Sequence[Any], runs: int | None) -> tuple[LayerRecord, ...]:
    """Torch-TensorRT ``profile_format="perfetto"``: ``dur`` is the layer's total in µs since profiling began."""
    rows = []
    for index, rec in enumerate(data):
        if isinstance(rec, Mapping) and rec.get("ph", "X") != "X":
            continue  # metadata or instant events of a full Chrome trace, not layer timings
        rec, dur_us, _ = _layer_row(rec, index, "dur")
        rows.append((rec, dur_us / 1000.0, index))
    total = sum(time for _, time, _ in rows)
    records = []
    for rec, time, index in rows:
        latency = time / runs if runs else time
        share = time / total if total > 0 else None
        records.append(_record(rec, "perfetto", latency, share, runs, index, total_ms=time))
    return tuple(records)


def _layer_row(rec: Any, index: int, time_key: str) -> tuple[Mapping[str, Any], float, str]:
    where = f"record {index}"
    if not isinstance(rec, Mapping):
        raise ParseError(f"{where}: expected an object, got {kind_of(rec)}")
    if not isinstance(rec.get("name"), str):
        raise ParseError(f"{where}: 'name' is missing or not a string")
    time = _number(rec, time_key, where, required=True)
    assert time is not None
    return rec, time, where


def _number(rec: Mapping[str, Any], key: str, where: str, *, required: bool) -> float | None:
    """A finite, non-negative number field."""
    value = rec.get(key)
    if value is None:
        if required:
            raise ParseError(f"{where}: '{key}' is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParseError(f"{where}: '{key}' should be a number, got {kind_of(value)}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ParseError(f"{where}: '{key}' should be a finite non-negative number, got {value!r}")
    return value


def _share(rec: Mapping[str, Any], where: str, time: float, total: float) -> float | None:
    """``percentage`` / 100; TRTEngineProfiler writes nan when all layers took 0 ms, so recompute from times."""
    value = rec.get("percentage")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ParseError(f"{where}: 'percentage' should be a number, got {kind_of(value)}")
    if value is not None and math.isfinite(value):
        if value < 0:
            raise ParseError(f"{where}: 'percentage' should not be negative, got {value!r}")
        return float(value) / 100.0
    return time / total if total > 0 else None


def _record(
    rec: Mapping[str, Any],
    fmt: str,
    latency: float | None,
    share: float | None,
    count: int | None,
    index: int,
    **more: Any,
) -> LayerRecord:
    name = rec["name"]
    extra = {key: value for key, value in rec.items() if key != "name"}
    extra.update(format=fmt, index=index, **more)
    return LayerRecord(
        name=name,
        latency_ms=latency,
        share=share,
        modules=modules_of(decode_layer_name(name).refs),
        count=count,
        extra=extra,
    )
