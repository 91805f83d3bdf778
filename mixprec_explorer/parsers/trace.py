"""The folder Torch-TensorRT's C++ runtime writes when profiling (``enable_profiling(..., profile_format="trex")``).

Per engine it writes ``<engine>_layer_information.json`` (the layer information) and
``<engine>_engine_execution_profile.trace`` (per-layer totals since profiling was enabled), where ``<engine>`` is
the submodule's name plus ``_engine`` with dots slugged. These functions find and read those files and turn a trace
into per-run :class:`~mixprec_explorer.records.LayerRecord` timings; they raise :class:`ParseError` naming the
folder, and never import TensorRT.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import ParseError
from ..records import LayerRecord
from .profile import parse_profile

__all__ = ["LAYER_INFO_SUFFIX", "TRACE_SUFFIX", "engine_name", "engine_order", "read_layer_info_dir",
           "read_trace_dir", "trace_records", "trace_timings"]

#: File the C++ runtime writes per engine (``core/runtime/TRTEngine.cpp`` ``set_profiling_paths``).
TRACE_SUFFIX = "_engine_execution_profile.trace"
#: The layer information the runtime dumps beside it.
LAYER_INFO_SUFFIX = "_layer_information.json"


def engine_name(submodule: str) -> str:
    """The engine name the runtime uses in file names: ``f"{name}_engine"`` (``_pack_engine_info``), dots slugged.

    >>> engine_name("_run_on_acc_0")
    '_run_on_acc_0_engine'
    """
    return f"{submodule}_engine".replace(".", "_")


def engine_order(engine: object) -> tuple[int, str]:
    """Sort key for execution order of Torch-TensorRT's submodules: ``_run_on_acc_10`` after ``_run_on_acc_2``.

    >>> sorted(["_run_on_acc_10", "_run_on_acc_2"], key=engine_order)
    ['_run_on_acc_2', '_run_on_acc_10']
    """
    found = re.search(r"(\d+)$", str(engine or ""))
    return (int(found.group(1)) if found else -1, str(engine))


def read_trace_dir(directory: str | Path, submodules: Iterable[str]) -> dict[str, str]:
    """Each engine's execution-profile trace text in ``directory``, keyed by submodule name.

    Only ``<engine>_engine_execution_profile.trace`` files are read; the runtime's other traces (input/output
    packing, enqueue) and layer-information dumps in the same folder are ignored. Engines without a file are absent.
    """
    folder = Path(directory)
    out: dict[str, str] = {}
    for sub in submodules:
        path = folder / f"{engine_name(sub)}{TRACE_SUFFIX}"
        if path.is_file():
            out[sub] = path.read_text(encoding="utf-8", errors="replace")
    return out


def read_layer_info_dir(directory: str | Path) -> dict[str, str]:
    """Each engine's layer-information JSON text in a profiling folder, keyed by submodule name, in execution order
    (:func:`engine_order`). Raises ParseError naming the folder when it is not one or holds no layer information."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ParseError(f"{folder}: not a folder; pass the profiling_results_dir given to enable_profiling()")
    infos = sorted(folder.glob(f"*{LAYER_INFO_SUFFIX}"))
    if not infos:
        raise ParseError(
            f"{folder}: no *{LAYER_INFO_SUFFIX} file; expected the folder Torch-TensorRT's runtime writes with "
            "module.enable_profiling(profiling_results_dir=..., profile_format='trex')")
    out: dict[str, str] = {}
    for path in infos:
        engine = path.name[: -len(LAYER_INFO_SUFFIX)]
        sub = engine[: -len("_engine")] if engine.endswith("_engine") else engine
        out[sub] = path.read_text(encoding="utf-8", errors="replace")
    return {sub: out[sub] for sub in sorted(out, key=engine_order)}


def trace_records(text: str, runs: int | None, submodule: str) -> tuple[tuple[LayerRecord, ...], list[str]]:
    """``(per-run layer timings, notes)`` from one engine's trace.

    The runtime accumulates totals since ``enable_profiling``: ``runs`` (the forward calls since then) turns them
    into per-run figures; None keeps the trace's own averages. An unreadable trace gives no records and a note; so
    does a layer that ran a different number of times than ``runs``.
    """
    notes: list[str] = []
    try:
        records = parse_profile(text, runs=runs)
    except ParseError as err:
        return (), [f"{submodule}: its execution-profile trace could not be read ({err}); no layer latencies"]
    odd = []
    for r in records if runs is not None else ():
        total, average = r.extra.get("timeMs"), r.extra.get("averageMs")
        if isinstance(total, (int, float)) and isinstance(average, (int, float)) and average > 0:
            seen = round(total / average)
            if seen != runs:
                odd.append(f"{r.name} ({seen})")
    if odd:
        notes.append(f"{submodule}: {len(odd)} layers ran a different number of times than the {runs} profiled "
                     f"runs: {', '.join(odd[:3])}")
    return records, notes


def trace_timings(traces: Mapping[str, str], runs: int, notes: list[str]) -> dict[str, tuple[LayerRecord, ...]]:
    """Per-run layer timings of each engine's trace (:func:`trace_records`); what could not be read goes to
    ``notes``."""
    out = {}
    for sub, text in traces.items():
        out[sub], more = trace_records(text, runs, sub)
        notes.extend(more)
    return out
