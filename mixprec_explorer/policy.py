"""The precision rules: settings (+ calibration) -> PrecisionPlan, as Torch-TensorRT 2.10-2.13 decides.

Mirrors ``lowering/passes/rule_based_autocast.py`` and ``nodeclassifier.py`` (rule order: excluded
module regex, excluded op, I/O range, depth of reduction; the first that fires keeps a node in FP32)
and ``conversion/impl/matmul.py`` for ``use_fp32_acc``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from . import dtypes
from .capture import CapturedGraph, is_autocast_skipped
from .records import CalibrationStat, NodeInfo, NodePrecision
from .settings import Settings

#: Rule codes a NodePrecision can carry, and what they mean.
RULES = {
    "explicit": "explicit typing: the dtype the exported graph gives",
    "weak_typing": "weak typing: TensorRT picks the precision",
    "low_precision": "autocast: no rule kept it in FP32",
    "excluded_node": "autocast_excluded_nodes: module path matched",
    "excluded_op": "autocast_excluded_ops: op matched",
    "io_range": "I/O range above autocast_max_output_threshold",
    "depth": "depth of reduction above autocast_max_depth_of_reduction",
    "autocast_region": "inside torch.autocast: PyTorch autocast semantics",
    "getitem": "getitem: not classified, follows its producer",
    "removed": "deleted by Torch-TensorRT pre-lowering",
}

#: Targets whose converters go through ``impl.matmul.matrix_multiply`` (FP32 accumulation applies).
FP32_ACC_OPS = frozenset(
    f"torch.ops.aten.{op}.default" for op in ("linear", "matmul", "mm", "bmm", "mv", "dot", "addmm")
)
_GEMM_DEPTH_OPS = frozenset(f"torch.ops.aten.{op}.default" for op in ("matmul", "dot", "mm", "mv", "bmm"))
_CONV_DEPTH_OPS = frozenset(
    f"torch.ops.aten.{op}.default" for op in ("convolution", "conv1d", "conv2d", "conv3d")
)
_SDPA = "torch.ops.aten.scaled_dot_product_attention.default"


@dataclass(frozen=True)
class _NodeFacts:
    """Per-node inputs to the rules that do not depend on settings (precomputed once)."""

    io_neighbours: tuple[tuple[str, float], ...]  #: (node, |x| max) of recorded producers then consumers
    io_max: float  #: max of the above, -1 when nothing was recorded
    depth: int | None  #: depth of reduction from reference shapes, None when the rule cannot measure it


class PrecisionPlan:
    """The predicted precision of every call_function node; iterate for records, index by node name."""

    def __init__(self, settings: Settings, records: dict[str, NodePrecision], calibrated: bool,
                 changed: tuple[str, ...] | None = None) -> None:
        self.settings = settings
        self._records = records
        self.calibrated = calibrated  #: whether calibration data fed the I/O-range and depth rules
        self.changed = changed  #: nodes re-decided incrementally from the previous plan (None: full plan)

    def __iter__(self) -> Iterator[NodePrecision]:
        return iter(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __getitem__(self, name: str) -> NodePrecision:
        try:
            return self._records[name]
        except KeyError:
            raise KeyError(f"no node {name!r} in this plan (plans cover call_function nodes)") from None

    def get(self, name: str) -> NodePrecision | None:
        return self._records.get(name)

    def as_dict(self) -> Mapping[str, NodePrecision]:
        """Read-only view keyed by node name."""
        return dict(self._records)

    def counts(self) -> dict[str, int]:
        """Nodes per display dtype ("FP32", "FP16", ...), removed nodes left out."""
        out: dict[str, int] = {}
        for rec in self._records.values():
            if rec.rule != "removed":
                key = dtypes.display_name(rec.dtype)
                out[key] = out.get(key, 0) + 1
        return out

    def diff(self, other: PrecisionPlan) -> list[str]:
        """Names of nodes whose dtype, accumulation or rule differs between two plans."""
        return [
            name for name, rec in self._records.items()
            if (o := other.get(name)) is None
            or (o.dtype, o.accumulate_dtype, o.rule) != (rec.dtype, rec.accumulate_dtype, rec.rule)
        ]

    def to_rows(self) -> list[dict[str, str]]:
        """One dict per node (name, op, module, dtype, accumulate, rule, reason), for tables and DataFrames."""
        return [{"name": r.name, "op": r.op.replace("torch.ops.", ""), "module": r.module,
                 "dtype": dtypes.display_name(r.dtype) if r.rule != "removed" else "-",
                 "accumulate": dtypes.display_name(r.accumulate_dtype) if r.accumulate_dtype else "",
                 "rule": r.rule, "reason": r.reason} for r in self]

    def _repr_html_(self) -> str:
        """The plan as a table in notebooks, dtype cells in the palette's colours."""
        from html import escape

        head = "".join(f"<th style='text-align:left'>{h}</th>"
                       for h in ("node", "op", "module", "dtype", "acc", "reason"))
        body = []
        for row in self.to_rows():
            colour = dtypes.PALETTE.get(row["dtype"], dtypes.PALETTE["other"])
            cells = [escape(row["name"]), escape(row["op"]), escape(row["module"] or "(root)"),
                     f"<span style='color:{colour};font-weight:bold'>{row['dtype']}</span>",
                     escape(row["accumulate"]), escape(row["reason"])]
            body.append("<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells) + "</tr>")
        return (f"<p>{escape(repr(self))}</p><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts().items()))
        return f"<PrecisionPlan {len(self)} nodes ({counts})>"


class Policy:
    """Decides plans for one captured graph; holds the settings-independent precomputation."""

    def __init__(self, captured: CapturedGraph, calibration: Mapping[str, CalibrationStat] | None = None) -> None:
        self.captured = captured
        self.calibration = dict(calibration or {})
        self._facts = {name: self._node_facts(name) for name in captured.producers}
        self._match_cache: dict[tuple[str, str], bool] = {}

    # -- precomputation ---------------------------------------------------------------------------
    def _node_facts(self, name: str) -> _NodeFacts:
        cal = self.calibration
        neighbours = []
        for other in (*self.captured.producers[name], *self.captured.consumers[name]):
            stat = cal.get(other)
            if stat is not None and stat.numel > 0:
                neighbours.append((other, stat.max_abs))
        io_max = max((v for _, v in neighbours), default=-1.0)
        return _NodeFacts(tuple(neighbours), io_max, self._depth(name))

    def _depth(self, name: str) -> int | None:
        producers = self.captured.producers[name]
        if not producers or producers[0] not in self.calibration:
            return None
        dims = self.calibration[producers[0]].shape
        op = self.captured.nodes[name].op
        if op == _SDPA:
            if len(dims) == 3:
                return dims[2]
            if len(dims) == 4:
                return dims[1] * dims[3]
            return None  # Torch-TensorRT asserts 3-D or 4-D here
        if op in _CONV_DEPTH_OPS:
            # the weight is a parameter and never recorded, so in practice this does not fire
            if len(producers) < 2 or producers[1] not in self.calibration:
                return None
            w = self.calibration[producers[1]].shape
            volume = 1
            for d in w[2:]:
                volume *= d
            return w[1] * volume
        if op in _GEMM_DEPTH_OPS and dims:
            return dims[-1]
        return 0

    # -- the rules ---------------------------------------------------------------------------------
    def _matches(self, pattern: str, module: str) -> bool:
        key = (pattern, module)
        hit = self._match_cache.get(key)
        if hit is None:
            hit = self._match_cache[key] = re.match(pattern, module) is not None
        return hit

    def decide(self, info: NodeInfo, settings: Settings) -> NodePrecision:
        """The record for one node under ``settings``."""
        name, op, module = info.name, info.op, info.module

        def rec(dtype: torch.dtype | None, rule: str, reason: str) -> NodePrecision:
            return NodePrecision(name, op, module, dtype, self._accumulate(info, dtype, settings), rule, reason)

        if info.removed_by:
            return NodePrecision(name, op, module, None, None, "removed",
                                 f"deleted by Torch-TensorRT's {info.removed_by} pass before autocast runs")
        if op == "torch.ops.higher_order.wrap_with_autocast":
            shown = ", ".join(dtypes.display_name(d) for d in dict.fromkeys(info.output_dtypes)) or "no tensor"
            return rec(info.dtype, "autocast_region",
                       f"torch.autocast region: its ops keep PyTorch autocast semantics ({shown} out); "
                       "Torch-TensorRT autocast does not look inside")
        if is_autocast_skipped(info):
            return rec(info.dtype, "getitem", "getitem: not classified; carries its producer's dtype")
        if not settings.use_explicit_typing:
            return rec(None, "weak_typing",
                       "weak typing (use_explicit_typing=False): TensorRT picks each layer's precision; "
                       "deprecated since TensorRT 10.12")
        if not settings.autocast_active:
            why = " (autocast enabled without autocast_low_precision_type: the pass does nothing)" \
                if settings.enable_autocast else ""
            return rec(info.dtype, "explicit",
                       f"explicit typing: {dtypes.display_name(info.dtype)} as the exported graph gives it{why}")
        low = settings.autocast_low_precision_type
        for pattern in sorted(settings.autocast_excluded_nodes):
            if self._matches(pattern, module):
                return rec(torch.float32, "excluded_node",
                           f"autocast_excluded_nodes: module path {module!r} matches {pattern!r} (re.match)")
        if op in settings.autocast_excluded_ops:
            return rec(torch.float32, "excluded_op", f"autocast_excluded_ops: {op!r}")
        facts = self._facts[name]
        threshold = settings.autocast_max_output_threshold
        if self.calibration and facts.io_max > threshold:
            other, value = next((n, v) for n, v in facts.io_neighbours if v > threshold)
            side = "input" if other in self.captured.producers[name] else "user"
            return rec(torch.float32, "io_range",
                       f"I/O range: reference output of {side} {other!r} reaches |x| = {value:.4g} "
                       f"> autocast_max_output_threshold {threshold:g}")
        limit = settings.autocast_max_depth_of_reduction
        if limit is not None and facts.depth is not None and facts.depth > limit:
            return rec(torch.float32, "depth",
                       f"depth of reduction {facts.depth} > autocast_max_depth_of_reduction {limit}")
        reason = f"autocast: no rule kept it in FP32 -> {dtypes.display_name(low)}"
        casts = [d for d in info.input_dtypes if d is not None and not d.is_floating_point]
        if casts or (info.dtype is not None and not info.dtype.is_floating_point):
            reason += (f"; note: Torch-TensorRT also casts this node's non-float tensors "
                       f"({', '.join(sorted({str(d) for d in casts} or {str(info.dtype)}))}) to "
                       f"{dtypes.display_name(low)} - exclude the op if that breaks it")
        return rec(low, "low_precision", reason)

    @staticmethod
    def _accumulate(info: NodeInfo, dtype: torch.dtype | None, settings: Settings) -> torch.dtype | None:
        if not (settings.use_fp32_acc and settings.use_explicit_typing and info.op in FP32_ACC_OPS):
            return None
        if settings.autocast_active:
            first = dtype  # the pass casts every input to the node's dtype
        else:
            first = info.input_dtypes[0] if info.input_dtypes else None
        return torch.float32 if first == torch.float16 else None

    def plan(self, settings: Settings, previous: PrecisionPlan | None = None) -> PrecisionPlan:
        """The plan under ``settings``; reuses ``previous`` where only exclusions changed."""
        nodes = self.captured.nodes
        names = self.captured.producers.keys() | {n for n, i in nodes.items() if i.removed_by}
        touched = self._touched(settings, previous) if previous is not None else None
        if touched is None:
            records = {n: self.decide(i, settings) for n, i in nodes.items() if n in names}
            return PrecisionPlan(settings, records, bool(self.calibration))
        records = dict(previous._records)  # type: ignore[union-attr]
        for n in touched:
            records[n] = self.decide(nodes[n], settings)
        return PrecisionPlan(settings, records, bool(self.calibration), tuple(touched))

    def _touched(self, settings: Settings, previous: PrecisionPlan) -> list[str] | None:
        """Nodes a change of exclusions can affect, or None when a full plan is needed."""
        old = previous.settings
        if previous.calibrated != bool(self.calibration) or not settings.autocast_active or not old.autocast_active:
            return None
        if old.replace(autocast_excluded_nodes=settings.autocast_excluded_nodes,
                       autocast_excluded_ops=settings.autocast_excluded_ops) != settings:
            return None
        touched: dict[str, None] = {}
        for pattern in old.autocast_excluded_nodes ^ settings.autocast_excluded_nodes:
            for module, members in self.captured.module_nodes.items():
                if self._matches(pattern, module):
                    touched.update(dict.fromkeys(members))
        ops = old.autocast_excluded_ops ^ settings.autocast_excluded_ops
        if ops:
            touched.update(dict.fromkeys(n for n, i in self.captured.nodes.items() if i.op in ops))
        return list(touched)
