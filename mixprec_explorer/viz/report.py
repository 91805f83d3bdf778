"""A standalone HTML report: the graph, the summary, the settings and the plan table in one offline file."""

from __future__ import annotations

import datetime as _dt
import html
import importlib.metadata
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly.io as pio

from ..dtypes import PALETTE, display_name
from ..settings import write_atomic
from .charts import build_latency_chart
from .graph import NODES
from .hover import short_path

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ..capture import CapturedGraph
    from ..policy import PrecisionPlan
    from ..records import NodeInfo
    from ..settings import Settings

__all__ = ["render_html", "save_html"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.meta { color: #666; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 10px; overflow-x: auto; font-size: 12px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 5px; }
.warn { color: #8a4b00; }
td.src code { color: #555; }
"""

# the mouse wheel scrolls the page: zooming is the toolbar's (an explicit choice), dragging pans
_CONFIG = {"scrollZoom": False, "displaylogo": False, "responsive": True}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _swatch(name: str) -> str:
    return f'<span class="swatch" style="background:{PALETTE.get(name, PALETTE["other"])}"></span>'


def _version() -> str:
    """This package's version, from its installed metadata ("unknown" when run from a bare source tree)."""
    try:
        return importlib.metadata.version("mixprec-explorer")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _summary_table(summary: Mapping[str, Mapping[str, float]]) -> str:
    rows = "".join(
        f"<tr><td>{_swatch(k)}{_e(k)}</td><td class=num>{int(v['nodes'])}</td>"
        f"<td class=num>{v['flops_share']:.1%}</td></tr>"
        for k, v in sorted(summary.items(), key=lambda kv: -kv[1]["flops_share"]))
    return f"<table><tr><th>precision</th><th>nodes</th><th>share of FLOPs</th></tr>{rows}</table>"


def _exclusions(settings: Settings) -> str:
    items = [f"<li><code>{_e(p)}</code> (module-path regex)</li>" for p in sorted(settings.autocast_excluded_nodes)]
    items += [f"<li><code>{_e(o)}</code> (op)</li>" for o in sorted(settings.autocast_excluded_ops)]
    return f"<ul>{''.join(items)}</ul>" if items else "<p>none</p>"


def _source_cell(nodes: Mapping[str, NodeInfo], name: str) -> str:
    """The Python line that made node ``name``: ``file:line`` (full path on hover) and the line's text."""
    info = nodes.get(name)
    if info is None or info.source is None:
        return "<td class=src></td>"
    path, line, code = info.source
    return (f'<td class=src title="{_e(path)}:{line}"><code>{_e(short_path(path))}:{line}</code> '
            f"{_e(code)}</td>")


def _plan_table(nodes: Mapping[str, NodeInfo], plan: PrecisionPlan, profile: Any) -> str:
    latency = profile.node_latency_ms() if profile is not None else {}
    measured = profile.node_dtypes() if profile is not None else {}
    extra = "<th>measured</th><th>latency (ms)</th>" if profile is not None else ""
    head = (f"<tr><th>node</th><th>op</th><th>module</th><th>dtype</th><th>accumulate</th><th>rule</th>"
            f"<th>reason</th><th>source</th>{extra}</tr>")
    body = []
    for r in plan:
        shown = "removed" if r.rule == "removed" else \
            display_name(r.dtype) if r.dtype is not None else "TensorRT decides"
        acc = display_name(r.accumulate_dtype) if r.accumulate_dtype is not None else ""
        cells = (f"<td>{_e(r.name)}</td><td>{_e(r.op.replace('torch.ops.', ''))}</td><td>{_e(r.module or '(root)')}</td>"
                 f"<td>{_swatch(shown)}{_e(shown)}</td><td>{_e(acc)}</td><td>{_e(r.rule)}</td><td>{_e(r.reason)}</td>"
                 + _source_cell(nodes, r.name))
        if profile is not None:
            got = display_name(measured[r.name]) if r.name in measured else ""
            ms = f"{latency[r.name]:.4g}" if r.name in latency else ""
            cells += f"<td>{_e(got)}</td><td class=num>{ms}</td>"
        body.append(f"<tr>{cells}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def render_html(captured: CapturedGraph, plan: PrecisionPlan, *, settings: Settings, figure: go.Figure,
                summary: Mapping[str, Mapping[str, float]], warnings: Sequence[str] = (), profile: Any = None,
                title: str | None = None) -> str:
    """The report as one HTML string with plotly.js inlined (opens offline, no server).

    ``figure`` is the graph drawn (:func:`~mixprec_explorer.viz.graph.build_figure` of ``captured`` and
    ``plan``, which ``settings`` plan); ``summary`` the explorer's per-precision counts
    (``ex.summary(plan)``), ``warnings`` its remarks on the settings (``ex.check_settings``); with a
    ``profile`` the plan table gains measured columns and the page the latency chart and the engine view.
    ``ex.save_html(path)`` gathers all of it.
    """
    graph = pio.to_html(figure, full_html=False, include_plotlyjs=True, config=_CONFIG, div_id="mixprec-graph")
    chart = ""
    if profile is not None:
        chart_fig = build_latency_chart(profile)
        chart = "<h2>Measured latency per layer</h2>" + pio.to_html(
            chart_fig, full_html=False, include_plotlyjs=False, config=_CONFIG, div_id="mixprec-latency")
        chart += _engine_section(captured, figure, profile)
    warn = "".join(f"<li class=warn>{_e(w)}</li>" for w in warnings)
    heading = title or f"Mixed-precision plan: {len(plan)} nodes"
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(heading)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(heading)}</h1>
<p class="meta">mixprec_explorer {_e(_version())} · written {_e(stamp)} · predicted by Torch-TensorRT's
rule-based autocast rules{' · measured on ' + _e(profile.device) if profile is not None else ''}</p>
<h2>Summary</h2>
{_summary_table(summary)}
<h2>Exclusions in force</h2>
{_exclusions(settings)}
{f'<h2>Warnings</h2><ul>{warn}</ul>' if warn else ''}
<h2>Graph</h2>
<p class="meta">Hover a node for its op, module, shapes, dtype, the rule that decided it and the source line
that made it; a hexagon is a collapsed module, its bar the share of each precision. Drag to pan, zoom with the
toolbar, double-click to return to the first view.</p>
{graph}
{chart}
<h2>Settings</h2>
<pre>{_e(settings.to_json())}</pre>
<pre>{_e(settings.to_python(target=plan.target))}</pre>
<h2>Plan</h2>
{_plan_table(captured.nodes, plan, profile)}
</body></html>
"""


def _engine_section(captured: CapturedGraph, fig: Any, profile: Any) -> str:
    """The engine view, linked both ways with the graph: a click on a layer rings its FX nodes, a click on a
    node outlines its layers (plain plotly.js events, no server)."""
    from .engine import build_engine_figure, engine_layers
    from .graph import view_of

    rows = engine_layers(profile)
    if not rows:
        return ""
    view = view_of(fig, captured)
    layer_points = [sorted({view.point_of[n] for n in r.nodes if n in view.point_of}) for r in rows]
    engine = pio.to_html(build_engine_figure(profile), full_html=False, include_plotlyjs=False, config=_CONFIG,
                         div_id="mixprec-engine")
    link = json.dumps({"layerPoints": layer_points, "nodes": NODES})
    return f"""<h2>The engine</h2>
<p class="meta">Layers in the order the engine runs them, coloured by output dtype. Click a layer to ring the FX
nodes it ran in the graph above; click a node in the graph to outline its layers here.</p>
{engine}
<script>(function() {{
  const link = {link};
  const graph = document.getElementById("mixprec-graph"), engine = document.getElementById("mixprec-engine");
  if (!graph || !engine || !graph.on || !engine.on) return;
  function outline(layers) {{
    const lines = engine.data.map(t => ({{
      color: t.customdata.map(k => layers.has(k) ? "#111111" : "rgba(0,0,0,0)"),
      width: t.customdata.map(k => layers.has(k) ? 3 : 0)}}));
    Plotly.restyle(engine, {{"marker.line.color": lines.map(l => l.color),
                            "marker.line.width": lines.map(l => l.width)}});
  }}
  engine.on("plotly_click", ev => {{
    const points = link.layerPoints[ev.points[0].customdata] || [];
    Plotly.restyle(graph, {{selectedpoints: [points]}}, [link.nodes]);
    outline(new Set([ev.points[0].customdata]));
  }});
  graph.on("plotly_click", ev => {{
    const p = ev.points.find(q => q.curveNumber === link.nodes);
    if (!p) return;
    outline(new Set(link.layerPoints.flatMap((pts, k) => pts.includes(p.pointIndex) ? [k] : [])));
  }});
}})();</script>
"""


def save_html(captured: CapturedGraph, path: str | os.PathLike[str], plan: PrecisionPlan, *, settings: Settings,
              figure: go.Figure, summary: Mapping[str, Mapping[str, float]], warnings: Sequence[str] = (),
              profile: Any = None, title: str | None = None) -> Path:
    """Write :func:`render_html` to ``path`` atomically; returns the path. Arguments as for :func:`render_html`."""
    return write_atomic(path, render_html(captured, plan, settings=settings, figure=figure, summary=summary,
                                          warnings=warnings, profile=profile, title=title))
