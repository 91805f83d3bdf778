"""The engine itself: its layers in execution order (kernel, dtype, latency, share), linked both ways to FX nodes.

``build_engine_figure(profile)`` draws one bar per timed layer, top to bottom in the order the engine runs them,
coloured by output dtype. Selecting FX nodes outlines the layers that ran them (:func:`layers_for_nodes`);
selecting a layer gives the FX nodes it covers (:func:`nodes_for_layer`) for the graph to highlight.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import plotly.graph_objects as go

from ..dtypes import PALETTE, display_name
from ..errors import MissingResult, UnknownName
from ..parsers.trace import engine_order
from ..records import LayerRecord
from .charts import layer_hover

__all__ = ["build_engine_figure", "engine_layers", "layers_for_nodes", "nodes_for_layer", "window_range"]

_SELECTED = "#111111"


def engine_layers(profile: Any) -> list[LayerRecord]:
    """Every layer with a latency, attributed or not, in execution order (engine by engine, as profiled)."""
    rows = [r for r in (*profile.layers, *profile.unattributed) if r.latency_ms]
    order = {id(r): k for k, r in enumerate(rows)}
    return sorted(rows, key=lambda r: (engine_order(r.extra.get("engine", "")), r.extra.get("index", order[id(r)]),
                                       order[id(r)]))


def _engine_tag(engine: str) -> str:
    """``_run_on_acc_10`` -> ``acc_10``: the engine's name, short enough for an axis label."""
    return engine.removeprefix("_run_on_") or "?"


def layers_for_nodes(profile: Any, nodes: Iterable[str]) -> list[int]:
    """Positions in :func:`engine_layers` of the layers that ran any of ``nodes`` (FX node names)."""
    wanted = set(nodes)
    return [k for k, r in enumerate(engine_layers(profile)) if wanted.intersection(r.nodes)]


def nodes_for_layer(profile: Any, layer: int | str) -> tuple[str, ...]:
    """The FX nodes the layer at position ``layer`` (or named ``layer``) covers; () for an unmatched one.

    Raises KeyError naming the layer when no layer has that name or position.
    """
    rows = engine_layers(profile)
    if isinstance(layer, int):
        if not 0 <= layer < len(rows):
            raise UnknownName(f"no engine layer at position {layer}; the engine has {len(rows)} timed layers")
        return rows[layer].nodes
    for r in rows:
        if r.name == layer:
            return r.nodes
    raise UnknownName(f"no engine layer named {layer!r}")


def window_range(first: int, rows: int, window: int) -> list[float]:
    """The y range (reversed category positions) that shows ``window`` rows from ``first``, kept inside the rows."""
    first = max(0, min(first, rows - window))
    return [first + window - 0.5, first - 0.5]


def build_engine_figure(profile: Any, *, selected_nodes: Iterable[str] = (), selected_layer: int | str | None = None,
                        title: str | None = None, height: int | None = None, window: int | None = None) -> go.Figure:
    """One bar per timed engine layer in execution order, coloured by output dtype; selections outlined. A graph
    split into several engines labels each layer with its engine (``acc_2``) and draws a line where the next starts.

    ``selected_nodes`` outlines the layers that ran those FX nodes; ``selected_layer`` (position or name) outlines
    that layer. Each bar's ``customdata`` is its position, for click handlers. ``window`` shows that many rows at a
    time (from the first outlined one), every one labelled and tall enough to click, the rest a vertical drag away.
    Raises ValueError when the profile holds no timed layer.
    """
    rows = engine_layers(profile)
    if not rows:
        raise MissingResult("this profile holds no timed engine layer; profile a compiled plan first (ex.profile)")
    total_ms = sum(r.latency_ms or 0.0 for r in rows)
    outlined = set(layers_for_nodes(profile, selected_nodes))
    if selected_layer is not None:
        names = [r.name for r in rows]
        outlined.add(selected_layer if isinstance(selected_layer, int) else names.index(selected_layer))
    engines = [str(r.extra.get("engine", "")) for r in rows]
    split = len(set(engines)) > 1  # a graph split into several engines: say which engine each layer ran in
    labels = [f"{k:>3} {_engine_tag(e) + ' ' if split else ''}"
              f"{r.name if len(r.name) <= 48 else r.name[:22] + '…' + r.name[-24:]}"
              for k, (r, e) in enumerate(zip(rows, engines))]
    fig = go.Figure(layout={
        "template": "plotly_white",
        "height": height or max(320, 80 + 16 * len(rows)),
        "margin": {"l": 10, "r": 10, "t": 84, "b": 40},  # the title above the top axis's ticks and title
        "barmode": "overlay",
        "xaxis": {"title": {"text": "latency per run (ms)"}, "side": "top"},
        "yaxis": {"categoryorder": "array", "categoryarray": labels, "autorange": "reversed", "automargin": True,
                  "tickfont": {"family": "monospace", "size": 10}},
        "legend": {"title": {"text": "output dtype"}, "orientation": "h", "y": -0.02, "yanchor": "top"},
        "title": {"text": title or (f"Engine layers in execution order: {len(rows)} layers, {total_ms:.4g} ms, "
                                    f"{sum(r.latency_ms or 0 for r in rows if r.nodes) / total_ms:.1%} on FX nodes"),
                  "font": {"size": 13}, "y": 0.99, "yanchor": "top"},
        "meta": {"mixprec": {"kind": "engine", "layers": [r.name for r in rows], "engines": engines}},
    })
    if window and len(rows) > window:
        fig.update_layout(dragmode="pan", xaxis_fixedrange=True, yaxis_autorange=False,
                          yaxis_range=window_range(min(outlined, default=0), len(rows), window))
        fig.layout.title.text += f" · {window} at a time: drag up or down"
    for k in range(1, len(rows)) if split else ():  # a dotted line where the next engine starts
        if engines[k] != engines[k - 1]:
            fig.add_shape(type="line", xref="paper", x0=0, x1=1, yref="y", y0=k - 0.5, y1=k - 0.5,
                          line={"color": "#888888", "width": 1, "dash": "dot"})
    groups: dict[str, list[int]] = {}
    for k, r in enumerate(rows):
        key = display_name(r.output_dtypes[0] if r.output_dtypes else None)
        groups.setdefault(key if key in PALETTE else "other", []).append(k)
    for key in [k for k in PALETTE if k in groups] + (["other"] if "other" in groups else []):
        idx = groups[key]
        fig.add_bar(
            orientation="h", name=key, marker={
                "color": PALETTE.get(key, "#999999"),
                "line": {"color": [_SELECTED if k in outlined else "rgba(0,0,0,0)" for k in idx],
                         "width": [3 if k in outlined else 0 for k in idx]}},
            x=[rows[k].latency_ms for k in idx], y=[labels[k] for k in idx], customdata=list(idx),
            hovertext=[layer_hover(rows[k], bool(rows[k].nodes), total_ms) for k in idx], hoverinfo="text",
        )
    return fig
