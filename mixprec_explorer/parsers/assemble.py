"""Profile assembly: each engine's layer information and timings, joined, placed on the graph's FX nodes, and
summed up in notes; and the folder :meth:`Explorer.load_profile` reads back (traces plus ``mixprec_mapping.json``).

Stage 6 of the mapping (docs/mapping.md). Pure: no TensorRT, no GPU. What comes out is an :class:`Assembly`, the
parts of a profile; the TensorRT backend puts them in its ``Profile`` with the end-to-end timing and the device
(:func:`~mixprec_explorer.backends.tensorrt.profile_from_records`,
:func:`~mixprec_explorer.backends.tensorrt.profile_from_dir`).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mixprec_explorer.errors import ParseError, ProfileMismatch
from mixprec_explorer.parsers.dataflow import FxView
from mixprec_explorer.parsers.layer_info import parse_layer_info
from mixprec_explorer.parsers.mapping import ProfileMatchWarning, check_engines, map_layers
from mixprec_explorer.parsers.trace import read_layer_info_dir, read_trace_dir, trace_records
from mixprec_explorer.records import LayerRecord

__all__ = ["MAPPING_FILE", "RENAMED_NOTE", "Assembly", "assemble", "assemble_folder", "check_recorded",
           "mapping_file_text", "merge_engine_layers", "read_mapping_file", "rename_layers"]

MAPPING_FILE = "mixprec_mapping.json"  #: beside the traces ex.profile records: what placing them needs elsewhere
#: the note of a profile measured on a cast program whose nodes were renamed to the captured graph's
RENAMED_NOTE = "measured on the cast program; nodes named as captured"


@dataclass(frozen=True)
class Assembly:
    """The parts of a profile the engines' files give: layers placed on FX nodes, the rest, and notes."""

    layers: tuple[LayerRecord, ...]  #: attributed layers, in execution order, with ``share`` of all layer time
    unattributed: tuple[LayerRecord, ...]  #: layers no FX node was found for (not guessed)
    notes: tuple[str, ...] = ()
    match_score: float | None = None  #: a recorded folder's fit to the graph (:func:`check_recorded`); None: unchecked


# -- joining and placing ------------------------------------------------------------------------------------------
def merge_engine_layers(info: Sequence[LayerRecord], timings: Sequence[LayerRecord], submodule: str,
                        ) -> tuple[LayerRecord, ...]:
    """Layer-information records with their timings joined by exact layer name, in engine order.

    Timed layers the layer information does not list are appended (not guessed onto another layer); layers
    never timed keep ``latency_ms=None``. ``extra["engine"]`` names the submodule.
    """
    by_name: dict[str, LayerRecord] = {}
    for t in timings:
        by_name.setdefault(t.name, t)
    merged: list[LayerRecord] = []
    for record in info:
        timed = by_name.pop(record.name, None)
        extra = {**record.extra, "engine": submodule}
        if timed is None:
            merged.append(dataclasses.replace(record, extra=extra))
            continue
        extra["profile"] = dict(timed.extra)
        merged.append(dataclasses.replace(record, latency_ms=timed.latency_ms, count=timed.count,
                                          modules=record.modules or timed.modules, extra=extra))
    for timed in by_name.values():
        merged.append(dataclasses.replace(timed, extra={**timed.extra, "engine": submodule, "timed_only": True}))
    return tuple(merged)


def assemble(layer_infos: Mapping[str, str], timings: Mapping[str, Sequence[LayerRecord]], *,
             node_modules: Mapping[str, str], post_to_pre: Mapping[str, str] | None = None,
             notes: Iterable[str] = (), view: FxView | None = None) -> Assembly:
    """Each engine's layer-information JSON and per-run layer timings, joined and placed on FX nodes.

    Keys are submodule names (``_run_on_acc_0``) in execution order. Shares are of the sum over all engines.
    With ``view`` (the captured graph), layers are placed through the engine's dataflow (Myelin kernels too);
    without it, by name only (:func:`~mixprec_explorer.parsers.mapping.map_layers`).
    """
    notes = list(notes)
    layers: list[LayerRecord] = []
    for sub in dict.fromkeys([*layer_infos, *timings]):
        info: tuple[LayerRecord, ...] = ()
        text = layer_infos.get(sub)
        if text is None:
            notes.append(f"{sub}: no layer information; layer datatypes unknown")
        else:
            try:
                info = parse_layer_info(text)
            except ParseError as err:
                notes.append(f"{sub}: its layer information could not be read ({err}); layer datatypes unknown")
            if info and not any(r.output_dtypes or r.input_dtypes for r in info):
                notes.append(f"{sub}: layer information has names only (not built with DETAILED verbosity); "
                             "layer datatypes unknown")
        timed = tuple(timings.get(sub, ()))
        if sub not in timings:
            notes.append(f"{sub}: no layer timings (the engine wrote no profile)")
        layers.extend(merge_engine_layers(info, timed, sub))
    total = sum(r.latency_ms for r in layers if r.latency_ms is not None)
    layers = [dataclasses.replace(r, share=(r.latency_ms / total) if (r.latency_ms is not None and total > 0) else None)
              for r in layers]
    aside = [r for r in layers if r.on_second_stream]
    if aside and total > 0:
        share = sum(r.latency_ms or 0.0 for r in aside) / total
        notes.append(f"{len(aside)} layers ({100 * share:.1f} % of layer time) ran on a second stream beside the main "
                     "one: their time overlaps it, so node latencies add up to more than end-to-end "
                     "(profile.overlapped_ms)")
    attributed, unattributed = map_layers(layers, view, node_modules, post_to_pre)
    timed_left = [r for r in unattributed if r.latency_ms]
    if timed_left:
        notes.append(f"{len(timed_left)} of {len(layers)} timed layers could not be mapped to an FX node "
                     "(kept apart, not guessed)")
    return Assembly(layers=attributed, unattributed=unattributed, notes=tuple(notes))


def rename_layers(layers: Iterable[LayerRecord], rename: Mapping[str, str]) -> tuple[LayerRecord, ...]:
    """Layers measured on a cast program, their nodes renamed to the captured graph's (casts the plan inserted,
    ``"<cast>"`` + the node they feed, are charged to that node; only the model's own nodes keep a measured dtype)."""
    out = []
    for layer in layers:
        weights = layer.node_weights or (1.0 / len(layer.nodes),) * len(layer.nodes)
        merged: dict[str, float] = {}
        for node, w in zip(layer.nodes, weights):
            owner = rename.get(node, node).removeprefix("<cast>")
            merged[owner] = merged.get(owner, 0.0) + w
        own = {rename.get(n, n): d for n, d in layer.node_dtypes if not rename.get(n, n).startswith("<cast>")}
        out.append(dataclasses.replace(layer, nodes=tuple(merged), node_weights=tuple(merged.values()),
                                       node_dtypes=tuple(own.items())))
    return tuple(out)


# -- a recorded folder ----------------------------------------------------------------------------------------------
def mapping_file_text(post_to_pre: Mapping[str, str], rename: Mapping[str, str], view: FxView | None) -> str:
    """The text of a folder's :data:`MAPPING_FILE`: what mapping its engines needs beyond the folder itself
    (post-decomposition names, and for a cast-graph build the graph the engines came from and its node renames)."""
    data: dict[str, object] = {"format": 1, "post_to_pre": dict(post_to_pre), "rename": dict(rename)}
    if view is not None:
        data["graph"] = view.as_dict()
    return json.dumps(data)


def read_mapping_file(folder: Path) -> tuple[dict[str, str], dict[str, str], FxView | None]:
    """``(post_to_pre, rename, cast-graph view or None)`` of ``folder``'s mapping file; empty where it has none.
    Raises ParseError naming the file when it is not one :func:`mapping_file_text` wrote (JSON data only)."""
    path = folder / MAPPING_FILE
    if not path.is_file():
        return {}, {}, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        maps = [{str(k): str(v) for k, v in data[key].items()} for key in ("post_to_pre", "rename")]
        view = FxView.from_dict(data["graph"]) if data.get("graph") is not None else None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ParseError(f"{path}: not a mapping file ex.profile wrote ({type(err).__name__}: {err}); delete it to "
                         "map the folder by the layer information alone") from None
    return maps[0], maps[1], view


def assemble_folder(folder: Path, target: FxView | None) -> Assembly:
    """The :class:`Assembly` of a folder the C++ runtime wrote with ``enable_profiling(..., profile_format="trex")``.

    Reads every ``<engine>_engine_layer_information.json`` and its ``<engine>_engine_engine_execution_profile.trace``
    (per-layer averages over the profiled runs) and places the layers on ``target`` (the explorer's graph), or on
    the graph the folder's mapping file carries where it has one (then checked against ``target``, and renamed).
    Raises ParseError naming the folder when it holds no layer information or no graph is given or carried,
    ProfileMismatch when its engines were built from another graph (:func:`check_recorded`).
    """
    layer_infos = read_layer_info_dir(folder)
    notes = [f"loaded from {folder} (recorded elsewhere); end-to-end latency was not recorded there"]
    post_to_pre, rename, view = read_mapping_file(folder)
    if view is None and len(layer_infos) > 1 and not post_to_pre:
        notes.append(f"{len(layer_infos)} engines and no {MAPPING_FILE}: a later engine's inputs carry "
                     "Torch-TensorRT's post-decomposition names, so its dataflow starts at a layer whose name "
                     "places it (a gemm: module, op and size give one node); layers placed neither way stay "
                     "unattributed (a folder written by ex.profile keeps the names)")
    timings: dict[str, tuple[LayerRecord, ...]] = {}
    for sub, text in read_trace_dir(folder, layer_infos).items():
        records, more = trace_records(text, None, sub)
        notes.extend(more)
        if records or not more:  # an unreadable trace gives no timings (assemble says so)
            timings[sub] = records
    own = view is not None
    if view is None:
        if target is None:
            raise ParseError(f"{folder}: no graph in a {MAPPING_FILE} there; map it with ex.load_profile(folder)")
        view = target
    modules = {n: i.module for n, i in view.nodes.items() if i.kind == "call_function"}
    assembly = assemble(layer_infos, timings, node_modules=modules, post_to_pre=post_to_pre, notes=notes, view=view)
    assembly = check_recorded(assembly, folder, view, post_to_pre, target if own else None, rename)
    if not rename:
        return assembly
    return dataclasses.replace(assembly, layers=rename_layers(assembly.layers, rename),
                               notes=(*assembly.notes, RENAMED_NOTE))


def check_recorded(assembly: Assembly, folder: Path, view: FxView, post_to_pre: Mapping[str, str],
                   target: FxView | None, rename: Mapping[str, str]) -> Assembly:
    """``assembly`` with its ``match_score``: ProfileMismatch where the folder's engines were built from another graph
    or batch size (inputs, module names, layer sizes: :func:`~mixprec_explorer.parsers.mapping.check_engines`), a
    ProfileMatchWarning and a note where they fit only in part. ``target``: the explorer's graph where ``view`` is
    the folder's own."""
    check = check_engines([*assembly.layers, *assembly.unattributed], view, post_to_pre, target=target, rename=rename)
    differ = "; ".join(check.differences)
    if check.contradicts:
        raise ProfileMismatch(
            f"{folder}: its engines were not built from this explorer's graph ({differ}; agreeing: "
            f"{check.summary()}). Load it into an Explorer of the model and example inputs it was recorded with "
            "(the same batch size and input shapes), or measure this one: ex.profile(ex.compile(...)) on a GPU")
    notes = list(assembly.notes)
    if check.score < 1:
        message = (f"{folder}: its engines fit this graph only in part (match score {check.score:.2f}; "
                   f"{differ}; agreeing: {check.summary()}); read per-node figures with care")
        # stacklevel: the line that called ex.load_profile (<- profile_from_dir <- assemble_folder <- here)
        warnings.warn(message, ProfileMatchWarning, stacklevel=5)
        notes.append(message)
    return dataclasses.replace(assembly, match_score=check.score, notes=tuple(notes))
