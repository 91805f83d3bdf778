"""Hover text of the graph figure, in two parts.

The static part (name, op, module, shapes, FLOPs) does not depend on the settings: :func:`build_view` makes it once
per view. The per-plan part (predicted dtype and rule, measured dtype and latency, why a measured dtype differs where
the engine's kernels show it, error, sensitivity, the change from a compared plan) is made on every draw and
recolour; a record's predicted text is cached, as the plans of nearby settings share their records.
"""

from __future__ import annotations

import functools
import html
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..dtypes import display_name
from ..numbers import format_number, format_si
from .colors import UNCHANGED, change_label, mismatch_explanations, precision_label
from .layout import GROUP_PREFIX

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..policy import PrecisionPlan
    from ..records import NodeInfo, NodePrecision
    from ..results import Sensitivity
    from .layout import GraphView
    from .overlay import Overlay

__all__ = ["group_static_hover", "node_static_hover", "plan_hover", "record_hover", "short_path", "source_text"]


# -- the static part ----------------------------------------------------------------------------------------
def _tensors(shapes: tuple[tuple[int, ...], ...], types: tuple[Any, ...]) -> str:
    parts = [f"{tuple(s)} {display_name(d)}" for s, d in zip(shapes[:4], types[:4])]
    if len(shapes) > 4:
        parts.append(f"+{len(shapes) - 4} more")
    return ", ".join(parts) or "-"


def _wrap(text: str, width: int = 90) -> str:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "<br>   ".join(lines)


def short_path(path: str, parts: int = 2) -> str:
    """The last ``parts`` components of a file path, enough to recognise it.

    >>> short_path("/home/me/project/models/encoder.py")
    'models/encoder.py'
    """
    return "/".join(path.replace("\\", "/").split("/")[-parts:])


def source_text(info: NodeInfo, *, width: int = 100) -> str | None:
    """The Python line that made a node as ``file:line  code`` (the file shortened, the code cut to ``width``
    characters), or None where the capture recorded none. Plain text: escape it for HTML.

    >>> from mixprec_explorer.records import NodeInfo
    >>> info = NodeInfo("linear", "call_function", "torch.ops.aten.linear.default", "fc", "", (), (), (), (), 0, 0, 0,
    ...                 source=("/home/me/models/net.py", 12, "return self.fc(x)"))
    >>> source_text(info)
    'models/net.py:12  return self.fc(x)'
    """
    if info.source is None:
        return None
    path, line, code = info.source
    if len(code) > width:
        code = code[: width - 1] + "\u2026"
    return f"{short_path(path)}:{line}  {code}".rstrip()


def node_static_hover(info: NodeInfo) -> str:
    """The settings-independent hover of one node: name, op, module, tensors, FLOPs, bytes, parameters, and the
    source line that made it."""
    if info.kind != "call_function":
        what = "graph input" if info.kind == "input" else "graph output" if info.kind == "output" else info.kind
        return (f"<b>{info.name}</b> ({what})<br>shapes: "
                f"{_tensors(info.output_shapes or info.input_shapes, info.output_dtypes or info.input_dtypes)}")
    module = info.module or "(root)"
    return (f"<b>{info.name}</b>  {info.op}<br>module: {module}" + (f"  [{info.module_type}]" if info.module_type else "")
            + f"<br>in: {_tensors(info.input_shapes, info.input_dtypes)}"
            + f"<br>out: {_tensors(info.output_shapes, info.output_dtypes)}"
            + f"<br>FLOPs: {format_si(info.flops)} · bytes: {format_si(info.bytes_moved)} · params: {format_si(info.param_count)}"
            + _source_hover(info))


def _source_hover(info: NodeInfo) -> str:
    text = source_text(info, width=80)
    return f"<br>source: {html.escape(text, quote=False)}" if text else ""


def group_static_hover(path: str, infos: list[NodeInfo]) -> str:
    """The settings-independent hover of a collapsed module: its path, type, node count and FLOPs."""
    types = {i.module_type for i in infos if i.module == path and i.module_type}
    flops = sum(i.flops for i in infos)
    return (f"<b>module {path}</b>" + (f"  [{types.pop()}]" if len(types) == 1 else "")
            + f"<br>collapsed: {len(infos)} nodes (click to expand)<br>FLOPs: {format_si(flops)}")


# -- the per-plan part -------------------------------------------------------------------------------------
_SENSITIVITY_TEXT: list[tuple[Any, dict[str, str]]] = []  # a few recent results and their hover lines


def _sensitivity_text(sens: Sensitivity) -> dict[str, str]:
    """Hover lines per node (and "module:<path>") for one sensitivity result, made once per result."""
    for known, text in _SENSITIVITY_TEXT:
        if known is sens:
            return text
    low = display_name(sens.low_dtype)
    rank = {name: i + 1 for i, (name, _) in enumerate(sens.ranking("node"))}
    out: dict[str, str] = {}
    for name, err in sens.node_low_error.items():
        gain = sens.node_fp32_gain.get(name)
        out[name] = (f"<br>sensitivity ({sens.metric}): alone in {low}: <b>{format_number(err)}</b>"
                     + (f" · alone kept FP32: removes {format_number(gain)} of all-{low} {format_number(sens.all_low_error)}"
                        f" (#{rank[name]} of {len(rank)})" if gain is not None else ""))
    for module, err in sens.module_low_error.items():
        gain = sens.module_fp32_gain.get(module)
        out[GROUP_PREFIX + module] = (
            f"<br>module {module or '(root)'}: alone in {low}: {format_number(err)}"
            + (f" · alone kept FP32: removes {format_number(gain)}" if gain is not None else ""))
    _SENSITIVITY_TEXT.insert(0, (sens, out))
    del _SENSITIVITY_TEXT[4:]
    return out


def _dtype_text(rec: NodePrecision | None) -> str:
    if rec is None:
        return "-"
    return display_name(rec.dtype) if rec.dtype is not None else "TensorRT decides"


def plan_hover(view: GraphView, nodes: Mapping[str, NodeInfo], plan: PrecisionPlan, ov: Overlay) -> list[str]:
    """The full hover text of every point of ``view`` (drawing ``nodes``): its static part, then what ``plan`` and
    ``ov`` add (a measured dtype that differs says why where the engine's kernels show it)."""
    out = []
    sens_text = _sensitivity_text(ov.sensitivity) if ov.sensitivity is not None else None
    why = mismatch_explanations(plan, ov)
    for key, static, names in zip(view.keys, view.static_hover, view.members):
        if len(names) == 1:
            text = static + _node_dynamic_hover(nodes, plan, ov, names[0], why)
            if sens_text is not None and names[0] in sens_text:
                text += sens_text[names[0]] + sens_text.get(GROUP_PREFIX + nodes[names[0]].module, "")
            out.append(text)
            continue
        recs = [plan.get(n) for n in names]
        live = [r for r in recs if r is not None and r.rule != "removed"]
        mix = Counter(precision_label(nodes, plan, r.name) for r in live)
        rules = Counter(r.rule for r in live)
        text = static + "<br>precisions: " + " · ".join(f"{k} {v}" for k, v in mix.most_common())
        text += "<br>rules: " + ", ".join(f"{k} {v}" for k, v in rules.most_common())
        excluded = sum(r.is_excluded for r in live)
        acc = sum(r.accumulate_dtype is not None for r in live)
        if excluded:
            text += f"<br>excluded from autocast: {excluded} of {len(live)}"
        if acc:
            text += f"<br>FP32 accumulation: {acc}"
        if ov.latency_ms is not None:
            ms = sum(ov.latency_ms.get(n, 0.0) for n in names)
            text += f"<br>measured: {ms:.4g} ms" + (f" ({ms / ov.total_ms:.1%})" if ov.total_ms else "")
        differ = [why[n] for n in names if n in why]
        if differ:
            explained = Counter(r for r in differ if r is not None)
            text += f"<br>measured dtype differs: {len(differ)} nodes" + (
                f", {explained.total()} explained (" + ", ".join(
                    k if len(explained) == 1 else f"{k}: {v}" for k, v in explained.most_common()) + ")"
                if explained else "")
        if ov.errors is not None:
            worst = max((ov.errors[n] for n in names if n in ov.errors), default=None)
            if worst is not None:
                text += f"<br>max relative error: {format_number(worst)}"
        if sens_text is not None and ov.sensitivity is not None:
            low = ov.sensitivity.node_low_error
            worst = max((low[n] for n in names if n in low), default=None)
            if worst is not None:
                text += f"<br>most sensitive node, alone in low precision: {format_number(worst)}"
            text += sens_text.get(key, "")
        if ov.other is not None:
            moved = Counter(change_label(r, ov.other.get(r.name)) for r in live)
            moved.pop(UNCHANGED, None)
            if moved:
                a, b = ov.labels
                text += f"<br>{a} \u2192 {b}: " + ", ".join(f"{k} {v}" for k, v in moved.most_common())
        out.append(text)
    return out


@functools.lru_cache(maxsize=1 << 16)
def record_hover(rec: NodePrecision) -> str:
    """The predicted part of a node's hover (records are reused across incremental plans, so this caches well)."""
    acc = display_name(rec.accumulate_dtype) if rec.accumulate_dtype is not None else "-"
    shown = "none (removed before autocast)" if rec.rule == "removed" else \
        display_name(rec.dtype) if rec.dtype is not None else "TensorRT decides"
    return f"<br>dtype: <b>{shown}</b> · accumulate: {acc}<br>rule: {rec.rule}: {_wrap(rec.reason)}"


def _short_layer(text: str) -> str:
    return text if len(text) <= 70 else text[:40] + "…" + text[-29:]


def _node_dynamic_hover(nodes: Mapping[str, NodeInfo], plan: PrecisionPlan, ov: Overlay, name: str,
                        why: Mapping[str, str | None]) -> str:
    rec = plan.get(name)
    if rec is None:
        return f"<br>dtype: {display_name(nodes[name].dtype)} (as given)"
    text = record_hover(rec)
    if ov.measured is not None:
        shown = display_name(rec.dtype) if rec.dtype is not None else "TensorRT decides"
        if name in ov.measured:
            got = display_name(ov.measured[name])
            ms = (ov.latency_ms or {}).get(name)
            text += f"<br>measured: {got}" + (f" · {ms:.4g} ms" if ms is not None else "")
            if ms is not None and ov.total_ms:
                text += f" ({ms / ov.total_ms:.1%})"
            if rec.dtype is not None and got != shown:
                text += f"  <b>differs from predicted {shown}</b>"
                if why.get(name):
                    text += f"<br>explained: {why[name]}"
            ran = (ov.layers or {}).get(name, ())
            if ran:
                text += "<br>engine: " + ", ".join(_short_layer(x) for x in ran[:3]) + (
                    f" +{len(ran) - 3}" if len(ran) > 3 else "")
        else:
            text += "<br>measured: not attributed"
    if ov.errors is not None and name in ov.errors:
        text += f"<br>relative error: {format_number(ov.errors[name])}"
    if ov.other is not None:
        other = ov.other.get(name)
        a, b = ov.labels
        if change_label(rec, other) == UNCHANGED:
            text += f"<br>{a} \u2192 {b}: unchanged"
        else:
            text += f"<br><b>{a} \u2192 {b}: {_dtype_text(other)} \u2192 {_dtype_text(rec)}</b>"
            if other is not None and other.rule != rec.rule:
                text += f" (rule {other.rule} \u2192 {rec.rule})"
            if other is not None and other.accumulate_dtype != rec.accumulate_dtype:
                text += (f" (accumulate {display_name(other.accumulate_dtype) if other.accumulate_dtype else '-'}"
                         f" \u2192 {display_name(rec.accumulate_dtype) if rec.accumulate_dtype else '-'})")
    return text

