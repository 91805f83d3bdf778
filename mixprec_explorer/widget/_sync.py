"""The browser's copy of the graph, kept in step with a plain plotly Figure by sending only what changed.

The app draws into a plain ``go.Figure`` (built and recoloured by :mod:`mixprec_explorer.viz.graph`);
:class:`FigureSync` holds the FigureWidget the browser shows and, on :meth:`FigureSync.push`, sends the
difference as one ``plotly_update`` message: changed properties only, and for an array of which few items
changed (a click recolours a handful of nodes) only those items (``marker.color[12]``).

Three things make a click cheap in the browser, each measured on ResNet-50 in headless Chromium on 2 cores:

- **Plain lists, never NumPy arrays.** plotly.js echoes each update's trace data back to the kernel, where
  ``BaseFigureWidget._remove_overlapping_props`` tests ``not value`` on the stored value: on an array of more
  than one element that raised ``ValueError: The truth value of an array ... is ambiguous``, a traceback on
  every click that only JupyterLab's Log Console showed (plotly.js keeps an array it received as binary apart
  from the copy it draws, so it echoed x, y and sizes after every update).
- **Style edits only.** A changed ``x``/``y``, or a whole new array of an ``arrayOk`` property such as
  ``marker.color``, makes plotly.js recompute and redraw every trace; single items are restyled in place.
  The mark traces (excluded, FP32 accumulation, mixed module, highlight ring), which the figure draws at the
  marked points only and so move on every click, are drawn in the browser as layout shapes anchored at their
  nodes, in pixels (:func:`mark_shapes`); a new mark is one new shape (a shape replaced whole is redrawn alone).
- **A mended front end.** plotly's FigureWidget front end (plotly.py 6 and 7) marks each update from Python by
  adding ``_doNotReportToPy: true`` to the style data it hands to ``Plotly.update``, so that the resulting
  ``plotly_update`` event is not echoed back; plotly.js takes the key for an unknown trace attribute and
  recomputes everything (a title-only update: 10 ms without the key, 220 ms with it). :class:`QuietFigureWidget`
  is the same widget with that front end mended: the updates are counted instead of marked, and the event
  handler skips as many events as updates were applied; a recolour in place is painted before the rest of its
  update (title, marks) is laid out. Where plotly's bundle does not have the expected shape (another plotly
  version) it is the stock FigureWidget, correct but slower (``QuietFigureWidget.mended``).
"""

from __future__ import annotations

import functools
import math
import pathlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.basedatatypes import BasePlotlyType, Undefined

__all__ = ["FigureSync", "Pushed", "QuietFigureWidget", "mark_shapes", "plain"]

#: an array of which at most this share, or at most this many items, changed is sent item by item (so that the
#: browser recolours those points in place, even in a small graph such as ResNet-50's grouped view of 13 points)
_ITEMWISE_MAX_SHARE = 0.25
_ITEMWISE_MAX_ITEMS = 8
_MISSING = object()
#: relayouts that plotly.js draws without a replot. Any other (``height``, ``margin``, ``meta`` ...) replots from
#: calcdata that an item-wise restyle in the same call did not refresh (plotly.js 3 loses the new items), so
#: those go in a second message, after the restyle
_LIGHT_RELAYOUT = re.compile(r"^(title\.text|(shapes|annotations)(\[\d+\])?|[xy]axis\d*\.range(\[\d\])?)$")

# the front end's update: ``<style>._doNotReportToPy=!0,<Plotly>.default.update(this.el,<style>,<layout>,<traces>)``
# (minified names vary)
# then the deltas it sends back: ``,this._sendTraceDeltas(<msg>.trace_edit_id);var <id>=<msg>.layout_edit_id;
# this._sendLayoutDelta(<id>)``
_MARKED_UPDATE = re.compile(r"(\w+)\._doNotReportToPy=!0,(\w+)\.default\.update\(this\.el,(\w+),(\w+),(\w+)\),"
                            r"this\._sendTraceDeltas\((\w+)\.trace_edit_id\);var (\w+)=\6\.layout_edit_id;"
                            r"this\._sendLayoutDelta\(\7\)")

#: Recolours in place: item-wise ``marker.color`` and ``hovertext`` edits of SVG scatter traces go into the trace's
#: data, its full data and its calcdata, and only the edited points' SVG paths get the new fill (a number through
#: the marker's colour scale, as plotly.js maps it: linear RGB between the stops around it); whatever else the
#: update carries (title, shapes) still goes through ``Plotly.update``, with the deltas the front end sends back,
#: after the next frame (:func:`__mxAfterPaint`): the new colours are painted first (that layout pass and the deltas
#: took 25-30 ms at 2,000 nodes). Anything else (another key, a reversed scale, a WebGL trace) returns false and
#: takes plotly's own path. A plotly.js restyle, even of one item, restyles every point and label of every trace
#: (75 ms on ResNet-50, 230-450 ms at 2,000 nodes in Chromium).
_FAST_RESTYLE_JS = r"""
var __mxRgbCache = {};
function __mxRgb(color) {
  if (!(color in __mxRgbCache)) {
    var ctx = document.createElement("canvas").getContext("2d");
    ctx.fillStyle = "#000"; ctx.fillStyle = color;
    var c = ctx.fillStyle, m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(c);
    var rgba = m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16), 1]
                 : (/rgba?\(([^)]*)\)/.exec(c) || [0, "0,0,0,1"])[1].split(",").map(Number);
    if (rgba.length < 4) rgba.push(1);
    __mxRgbCache[color] = rgba;
  }
  return __mxRgbCache[color];
}
function __mxFill(marker, v) {
  if (typeof v === "string") return v;
  var scale = marker.colorscale, lo = marker.cmin, hi = marker.cmax;
  if (typeof v !== "number" || !isFinite(v) || !Array.isArray(scale) || scale.length < 2 || marker.reversescale ||
      typeof lo !== "number" || typeof hi !== "number") return null;
  var t = hi > lo ? Math.min(1, Math.max(0, (v - lo) / (hi - lo))) : 0.5, k = 0;
  while (k < scale.length - 2 && scale[k + 1][0] <= t) k++;  // d3's polylinear scale: the last stop at or below t
  var a = __mxRgb(scale[k][1]), b = __mxRgb(scale[k + 1][1]), span = scale[k + 1][0] - scale[k][0];
  var f = span > 0 ? Math.min(1, Math.max(0, (t - scale[k][0]) / span)) : 0, c = [];
  for (var j = 0; j < 4; j++) c.push(a[j] + (b[j] - a[j]) * f);
  return "rgba(" + Math.round(c[0]) + "," + Math.round(c[1]) + "," + Math.round(c[2]) + "," + c[3] + ")";
}
function __mxAfterPaint(f) {  // after the next frame is painted; within 200 ms where no frame comes (hidden tab)
  var done = false, run = function () { if (!done) { done = true; f(); } };
  requestAnimationFrame(function () { setTimeout(run, 0); });
  setTimeout(run, 200);
}
function __mxFastRestyle(gd, style, traces) {
  var keys = Object.keys(style), edits = [], k, j;
  if (!keys.length || !gd.calcdata || !gd._fullData || !gd.data) return false;
  for (k = 0; k < keys.length; k++) {
    var m = /^(marker\.color|hovertext)\[(\d+)\]$/.exec(keys[k]), values = style[keys[k]];
    if (!m || !Array.isArray(values) || values.length !== traces.length) return false;
    for (j = 0; j < traces.length; j++) {
      var v = values[j], t = traces[j], i = +m[2], hover = m[1] === "hovertext";
      if (v === undefined || v === "__undefined__") continue;
      var data = gd.data[t], full = gd._fullData[t], cd = gd.calcdata[t];
      if (!data || !full || full.type !== "scatter" || !cd || !cd[i]) return false;
      var fill = hover ? null : __mxFill(full.marker || {}, v);
      if (hover ? typeof v !== "string" : fill === null) return false;
      var own = hover ? data.hovertext : data.marker && data.marker.color;
      var drawn = hover ? full.hovertext : full.marker && full.marker.color;
      if (!Array.isArray(own) || !Array.isArray(drawn) || i >= own.length || i >= drawn.length) return false;
      edits.push({t: t, i: i, hover: hover, v: v, fill: fill, own: own, drawn: drawn, point: cd[i]});
    }
  }
  var groups = gd.querySelectorAll(".scatterlayer .trace");
  for (k = 0; k < edits.length; k++) {
    var e = edits[k];
    e.own[e.i] = e.v; e.drawn[e.i] = e.v;
    if (e.hover) { e.point.htx = e.v; continue; }
    e.point.mc = e.v;
    for (j = 0; j < groups.length; j++) {
      var gcd = groups[j].__data__;
      if (!gcd || !gcd[0] || !gcd[0].trace || gcd[0].trace.index !== e.t) continue;
      var paths = groups[j].querySelectorAll("path.point");
      for (var p = 0; p < paths.length; p++)
        if (paths[p].__data__ === e.point || (paths[p].__data__ && paths[p].__data__.i === e.i)) {
          var rgba = __mxRgb(e.fill);
          paths[p].style.fill = "rgb(" + rgba[0] + ", " + rgba[1] + ", " + rgba[2] + ")";
          paths[p].style.fillOpacity = rgba[3];
        }
    }
  }
  return true;
}
"""

_UPDATE_HANDLER = re.compile(r"handle_plotly_update\((\w+)\)\{")


@functools.cache
def _mended_bundle() -> str | None:
    """plotly's widget front end with its updates counted rather than marked, or None if it cannot be mended."""
    esm = getattr(go.FigureWidget, "_esm", None)  # a path, or anywidget's FileContents (str() is the text)
    try:
        source = esm.read_text(encoding="utf-8") if isinstance(esm, pathlib.Path) else str(esm or "")
    except OSError:
        return None
    def mended(m: re.Match[str]) -> str:
        plotly, style, layout, traces, msg = m.group(2), m.group(3), m.group(4), m.group(5), m.group(6)
        deltas = f"__v._sendTraceDeltas({msg}.trace_edit_id);__v._sendLayoutDelta({msg}.layout_edit_id)"
        return (f"this.__mxQuiet=(this.__mxQuiet||0)+1;var __v=this;"
                f"if(__mxFastRestyle(this.el,{style},{traces}))"
                f"__mxAfterPaint(function(){{{plotly}.default.update(__v.el,{{}},{layout},[]);{deltas}}});"
                f"else{{{plotly}.default.update(this.el,{style},{layout},{traces});{deltas}}}")

    source, marked = _MARKED_UPDATE.subn(mended, source)
    source, handlers = _UPDATE_HANDLER.subn(
        lambda m: f"handle_plotly_update({m.group(1)}){{if(this.__mxQuiet>0){{this.__mxQuiet--;return}}", source)
    if marked != 1 or handlers != 1:
        return None
    # a first line of comment: anywidget takes a one-line string for a file path
    return ("// plotly's FigureWidget front end; updates from Python counted, not marked; recolours in place "
            "(mixprec_explorer)\n" + _FAST_RESTYLE_JS + source)


class QuietFigureWidget(go.FigureWidget):
    """plotly's FigureWidget whose updates from Python are restyled in place in the browser, not redrawn."""

    mended = _mended_bundle() is not None  #: False: plotly's bundle did not match; this is the stock widget
    if mended:
        _esm = _mended_bundle()


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _no_nan(items: list[Any]) -> list[Any]:
    return [None if type(v) is float and v != v else v for v in items]


def plain(value: Any) -> Any:
    """``value`` with every NumPy array and scalar turned into Python lists and numbers (NaN becomes None:
    plotly.js breaks a line at null as at NaN, and JSON has no NaN); containers are new, never shared."""
    kind = type(value)
    if kind is dict:
        return {k: plain(v) for k, v in value.items()}
    if kind is np.ndarray:
        if value.dtype.kind in "iub":
            return value.tolist()
        if value.dtype.kind == "f":
            return _no_nan(value.tolist()) if np.isnan(value).any() else value.tolist()
        return plain(value.tolist())
    if kind is list or kind is tuple:
        if all(type(v) in _SCALARS for v in value):  # the usual array: no nesting to walk
            return _no_nan(value) if any(type(v) is float and v != v for v in value) else list(value)
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# -- mark traces as shapes ------------------------------------------------------------------------------------
def _symbol_shape(symbol: str, size: float, color: Any, line_width: float, line_color: Any) -> dict[str, Any] | None:
    """The shape that draws one marker as plotly.js does (pixels around its anchor), or None for other symbols."""
    base, is_open = (symbol[:-5], True) if symbol.endswith("-open") else (symbol, False)
    r = round(float(size) / 2, 2)
    if base in ("circle", "square"):
        geometry = {"type": "circle" if base == "circle" else "rect", "x0": -r, "x1": r, "y0": -r, "y1": r}
    elif base == "diamond":
        d = round(r * 1.3, 2)
        geometry = {"type": "path", "path": f"M{d},0L0,{d}L{-d},0L0,{-d}Z"}
    else:
        return None
    if is_open:  # an open symbol is stroked in the marker colour, at least 1 px
        style = {"fillcolor": "rgba(0,0,0,0)", "line": {"color": color, "width": max(float(line_width or 0), 1.0)}}
    else:
        style = {"fillcolor": color, "line": {"color": line_color, "width": float(line_width or 0)}}
    return {**geometry, **style}


def mark_shapes(mark: dict[str, Any], base: dict[str, Any]) -> dict[int, dict[str, Any]] | None:
    """The points of a mark trace (plain JSON) as shapes keyed by the index of the ``base`` point they mark.

    Each shape sits at its node (``xanchor``/``yanchor`` in data units, size in pixels), drawn as the marker
    would be. None when a point of ``mark`` is not a point of ``base`` or a symbol has no shape here.
    """
    bx, by = base.get("x") or [], base.get("y") or []
    at = {(x, y): i for i, (x, y) in enumerate(zip(bx, by))}
    marker = mark.get("marker") or {}
    line = marker.get("line") or {}

    def per(source: dict[str, Any], key: str, j: int, default: Any) -> Any:
        value = source.get(key, default)
        value = value[j] if isinstance(value, list) else value
        return default if value is None else value

    shapes: dict[int, dict[str, Any]] = {}
    for j, (x, y) in enumerate(zip(mark.get("x") or [], mark.get("y") or [])):
        i = at.get((x, y))
        if i is None:
            return None
        shape = _symbol_shape(str(per(marker, "symbol", j, "circle")), per(marker, "size", j, 6.0),
                              per(marker, "color", j, "#444444"), per(line, "width", j, 0.0),
                              per(line, "color", j, "#444444"))
        if shape is None:
            return None
        shapes[i] = {**shape, "xref": mark.get("xaxis", "x"), "yref": mark.get("yaxis", "y"), "xsizemode": "pixel",
                     "ysizemode": "pixel", "xanchor": x, "yanchor": y, "layer": "above"}
    return shapes


class _ShapeSlots:
    """Stable places in ``layout.shapes`` for the marks: a mark keeps its slot, a freed slot is hidden and reused,
    so that a click replaces or adds single shapes."""

    def __init__(self) -> None:
        self.owner: list[tuple[int, int] | None] = []  #: (mark trace, point) per slot; None: free
        self.shapes: list[dict[str, Any]] = []

    def place(self, marks: dict[tuple[int, int], dict[str, Any]]) -> list[dict[str, Any]]:
        slot_of = {key: s for s, key in enumerate(self.owner) if key is not None}
        for s, key in enumerate(self.owner):
            if key is not None and key not in marks:
                self.owner[s] = None
                self.shapes[s] = {**self.shapes[s], "visible": False}
        free = [s for s, key in enumerate(self.owner) if key is None]
        for key, shape in marks.items():
            slot = slot_of.get(key)
            if slot is None:
                if free:
                    slot = free.pop(0)
                else:
                    slot = len(self.owner)
                    self.owner.append(None)
                    self.shapes.append({})
                self.owner[slot] = key
            self.shapes[slot] = shape
        return list(self.shapes)


# -- diffs ----------------------------------------------------------------------------------------------------
#: (plotly class, key) -> an object of the child's class where ``key`` is compound there, else None: which keys are
#: compound is plotly's schema, the same for every object of a class, and asking an object costs its validators
_COMPOUND: dict[tuple[type, str], Any] = {}


def _compound(obj: Any, key: str) -> Any:
    """A plotly object of the class at ``obj[key]`` if that is one (``marker``, ``title``), else None (``meta``,
    ``x``); only its class's keys are read from it (see :data:`_COMPOUND`)."""
    slot = (type(obj), key)
    if slot not in _COMPOUND:
        try:
            child = obj[key]
        except (KeyError, ValueError, TypeError, IndexError):
            child = None
        _COMPOUND[slot] = type(child)() if isinstance(child, BasePlotlyType) else None  # detached: holds no figure
    return _COMPOUND[slot]


def _flatten(tree: dict[str, Any], obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, leaf) of the plotly JSON of ``obj``: dicts of plotly objects are walked, anything else
    (arrays, free-form values such as ``meta``) is a leaf."""
    for key, value in tree.items():
        path = f"{prefix}{key}"
        child = _compound(obj, key) if isinstance(value, dict) and value else None
        if child is not None:
            yield from _flatten(value, child, path + ".")
        else:
            yield path, value


def _same(old: Any, new: Any) -> bool:
    return old is not _MISSING and bool(old == new)


def _is_flat_array(value: Any) -> bool:
    return isinstance(value, list) and not any(isinstance(v, (list, dict)) for v in value[:4])


def _changed_items(old: Any, new: Any) -> list[int] | None:
    """Indices of the items of ``new`` that differ from ``old`` when few of a flat array changed, else None."""
    if not (_is_flat_array(old) and _is_flat_array(new)) or len(old) != len(new) or len(new) < 2:
        return None
    changed = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    return changed if len(changed) <= max(_ITEMWISE_MAX_SHARE * len(new), _ITEMWISE_MAX_ITEMS) else None


def _is_dict_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _layout_changes(old: dict[str, Any], new: dict[str, Any], obj: Any, prefix: str = ""
                    ) -> Iterator[tuple[str, Any]]:
    """Relayout (path, value) pairs that turn the JSON ``old`` of layout ``obj`` into ``new`` (None removes a key).

    A list of objects (``shapes``, ``annotations``) that only changed or grew is sent item by item, each item
    whole: plotly.js then redraws those items alone.
    """
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if _same(before, value):
            continue
        path = f"{prefix}{key}"
        child = _compound(obj, key) if isinstance(value, dict) and isinstance(before, dict) else None
        if child is not None:
            yield from _layout_changes(before, value, child, path + ".")
        elif _is_dict_list(value) and _is_dict_list(before) and len(value) >= len(before) and before:
            for i, item in enumerate(value):
                if i >= len(before) or item != before[i]:
                    yield f"{path}[{i}]", item
        else:
            yield path, value
    for key in old.keys() - new.keys():
        yield f"{prefix}{key}", None


@dataclass
class Pushed:
    """What one :meth:`FigureSync.push` sent: property paths (``marker.color[3]`` for one item) and traces."""

    trace_props: list[str] = field(default_factory=list)  #: "trace index: path" of every restyled value
    layout_props: list[str] = field(default_factory=list)  #: relayout paths sent with the restyle
    replot_props: list[str] = field(default_factory=list)  #: relayout paths that replot, sent after it
    items: int = 0  #: array items sent one by one
    arrays: int = 0  #: whole arrays sent

    def __bool__(self) -> bool:
        return bool(self.trace_props or self.layout_props or self.replot_props)


class FigureSync:
    """A FigureWidget that mirrors ``figure``; :meth:`push` sends what changed in ``figure`` since the last push.

    ``figure`` is the plain Figure the app draws into (replace it with :meth:`replace`); ``widget`` is the
    FigureWidget to display; ``last`` is what the last push sent. The traces ``marks`` mark points of trace
    ``points``: the browser draws them as shapes (see the module's notes).
    """

    def __init__(self, figure: go.Figure, config: dict[str, Any] | None = None, *, points: int | None = None,
                 marks: Sequence[int] = ()) -> None:
        self.figure = figure
        self.points = points
        self.marks = tuple(marks)
        self._slots = _ShapeSlots()
        data, layout = self._state(figure)
        self.widget = QuietFigureWidget(data=data, layout=layout)
        if config:
            self.widget._config = config
        self._sent = [dict(_flatten(t, w)) for t, w in zip(data, self.widget.data)]
        self._sent_layout = layout
        self.last = Pushed()

    def _state(self, figure: go.Figure) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The traces and layout as the browser gets them: plain values, the marks as shapes."""
        # each trace's own properties, read without the deep copy of to_plotly_json() (plain() copies them);
        # Figure.to_plotly_json() would encode the arrays as base64 dicts
        data = [plain(getattr(t, "_props", None) or t.to_plotly_json()) for t in figure.data]
        for t in data:  # the widget sets uids (it aligns traces by them): never diff or resend them
            t.pop("uid", None)
        layout = plain(figure.layout._props or {})  # as to_plotly_json() gives it, without its deep copy
        if self.points is None or self.points >= len(data):
            return data, layout
        marks: dict[tuple[int, int], dict[str, Any]] = {}
        for m in self.marks:
            if m >= len(data):
                continue
            shapes = mark_shapes(data[m], data[self.points])
            if shapes is None:  # not drawable as shapes: stays a trace
                continue
            marks.update({(m, i): shape for i, shape in shapes.items()})
            data[m] = {k: v for k, v in data[m].items() if k not in ("x", "y", "marker")} | {"x": [], "y": []}
        own = layout.get("shapes") or []
        layout["shapes"] = list(own) + self._slots.place(marks)
        return data, layout

    def adopt_view(self) -> None:
        """Take the axis ranges the reader has panned or zoomed to in the browser into ``figure``."""
        for axis in ("xaxis", "yaxis"):
            shown = self.widget.layout[axis].range
            if shown is not None:
                self.figure.layout[axis].range = list(shown)
                self._sent_layout.setdefault(axis, {})["range"] = plain(list(shown))

    def replace(self, figure: go.Figure) -> bool:
        """Mirror a new ``figure`` from now on (a redraw: grouping, expand); the next :meth:`push` sends the change.

        Returns True if the widget's traces had to be replaced at once (their types changed, e.g. across the
        WebGL threshold): their click callbacks must then be wired again.
        """
        self.figure = figure
        if [t.type for t in figure.data] == [t.type for t in self.widget.data]:
            return False
        self._slots = _ShapeSlots()
        data, layout = self._state(figure)
        fw = self.widget
        fw.data = ()
        fw.add_traces(data)
        fw.layout.update(layout, overwrite=True)
        self._sent = [dict(_flatten(t, w)) for t, w in zip(data, fw.data)]
        self._sent_layout = layout
        return True

    def push(self) -> Pushed:
        """Send to the browser, in one message, every property of ``figure`` that differs from what it shows."""
        data, layout = self._state(self.figure)
        relayout = dict(_layout_changes(self._sent_layout, layout, self.widget.layout))
        self._sent_layout = layout
        replot = {path: v for path, v in relayout.items() if not _LIGHT_RELAYOUT.match(path)}
        relayout = {path: v for path, v in relayout.items() if path not in replot}
        restyle: dict[str, dict[int, Any]] = {}
        pushed = Pushed()
        for index, trace in enumerate(data):
            want = dict(_flatten(trace, self.widget.data[index]))
            sent = self._sent[index]
            for path, new in want.items():
                old = sent.get(path, _MISSING)
                if _same(old, new):
                    continue
                items = _changed_items(old, new)
                if items is not None:
                    for i in items:
                        restyle.setdefault(f"{path}[{i}]", {})[index] = new[i]
                    pushed.items += len(items)
                else:
                    restyle.setdefault(path, {})[index] = new
                    pushed.arrays += isinstance(new, list)
                sent[path] = new
            for path in [p for p in sent if p not in want]:
                restyle.setdefault(path, {})[index] = None  # null: back to plotly's default
                del sent[path]
        traces = sorted({i for per in restyle.values() for i in per})
        restyle_data = {path: [per.get(i, Undefined) for i in traces] for path, per in restyle.items()}
        pushed.trace_props = [f"{i}: {p}" for p, per in restyle.items() for i in per]
        pushed.layout_props, pushed.replot_props = list(relayout), list(replot)
        if restyle_data or relayout:
            self.widget.plotly_update(restyle_data=restyle_data, relayout_data=relayout, trace_indexes=traces)
        if replot:
            self.widget.plotly_update(relayout_data=replot)
        self.last = pushed
        return pushed
