"""The precision rules: settings (+ calibration) -> PrecisionPlan, as Torch-TensorRT 2.10-2.14 decides.

The classifier and rewriter are byte-identical in every release modelled (``nodeclassifier.py`` and
``rule_based_autocast.py`` of the 2.10.0-2.14.0 wheels); what differs by target (:mod:`mixprec_explorer.targets`)
is applied here: the convolutions each release runs in PyTorch on TensorRT-RTX (``plan.fallbacks``).

Mirrors ``lowering/passes/rule_based_autocast.py`` and ``nodeclassifier.py`` (rule order: excluded
module regex, excluded op, I/O range, depth of reduction; the first that fires keeps a node in FP32)
and ``conversion/impl/matmul.py`` for ``use_fp32_acc``.

The pass's ``_cast_all_tensor_args_to_dtype`` casts every tensor argument of a classified node to the
node's dtype, integer and bool tensors included (it only compares ``val.dtype`` with the target), and
re-types each classified node's output metadata. The plan lists each integer tensor this turns into a float
as an :class:`IntegerCast` (``plan.integer_casts``), before any compile.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .capture import CapturedGraph, is_autocast_skipped
from .dtypes import PALETTE, display_name
from .errors import UnknownName
from .ops import AUTOCAST_REGION_OP, CONV_DEPTH_OPS, FP32_ACC_OPS, GEMM_DEPTH_OPS, SDPA_OP, op_basename
from .records import CalibrationStat, NodeInfo, NodePrecision
from .settings import Settings
from .targets import SUPPORTED, Target, convolutions, rtx_fallback

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

#: Rules under which the autocast pass classifies a node and casts its tensor arguments (low, then FP32).
CLASSIFIED_RULES = frozenset({"low_precision", "excluded_node", "excluded_op", "io_range", "depth"})

#: Torch-TensorRT releases whose rule-based autocast casts integer tensors to float: every release with the
#: pass so far (``_cast_all_tensor_args_to_dtype`` is unchanged from 2.10 through 2.14).
INTEGER_CAST_RELEASES = SUPPORTED
_RELEASES = f"{INTEGER_CAST_RELEASES[0]}-{INTEGER_CAST_RELEASES[-1]}"

#: (op name, argument) pairs that must hold an integer index tensor; a float there fails the compile or run.
_INDEX_ARGUMENTS = {
    "embedding": ("indices",), "embedding_bag": ("indices", "offsets"), "gather": ("index",),
    "index_select": ("index",), "index": ("indices",), "_unsafe_index": ("indices",), "index_put": ("indices",),
    "_unsafe_index_put": ("indices",), "index_add": ("index",), "index_copy": ("index",),
    "index_fill": ("index",), "index_reduce": ("index",), "scatter": ("index",), "scatter_add": ("index",),
    "scatter_reduce": ("index",), "take": ("index",), "take_along_dim": ("indices",), "one_hot": ("self",),
    "bincount": ("self",), "nll_loss": ("target",), "cross_entropy_loss": ("target",),
}
#: (op name, argument) pairs that must hold a bool mask.
_MASK_ARGUMENTS = {
    "where": ("condition",), "masked_fill": ("mask",), "masked_scatter": ("mask",), "masked_select": ("mask",),
}
#: What the live engine said where it broke (TensorRT-RTX, Torch-TensorRT 2.11, H200), by op and cast dtype.
_SEEN = {
    ("embedding", torch.float16): "Expected tensor for argument #1 'indices' to have one of the following scalar "
                                  "types: Long, Int; but got torch.cuda.HalfTensor",
    ("gather", torch.float16): "gather(): Expected dtype int32/int64 for index, but got torch.float16",
    ("gather", torch.float32): "gather(): Expected dtype int32/int64 for index, but got torch.float32",
}
#: Largest integer each float dtype holds exactly (2 ** (mantissa bits + 1)).
_EXACT_INT = {torch.float16: 2048, torch.bfloat16: 256, torch.float32: 2 ** 24}


@dataclass(frozen=True)
class IntegerCast:
    """One integer (or bool) tensor that Torch-TensorRT's autocast turns into a float at a classified node.

    ``_cast_all_tensor_args_to_dtype`` (``lowering/passes/rule_based_autocast.py``, Torch-TensorRT 2.10-2.14)
    casts every tensor argument of a low or high node to that node's dtype; it never checks for integers.
    Excluding the node or its op only changes the float dtype (FP32 instead of FP16): it fails the same way.
    """

    node: str  #: the classified FX node whose argument the tensor is
    op: str  #: that node's qualified op (``torch.ops.aten.embedding.default``)
    module: str  #: that node's innermost module path ("" for the root)
    input: str  #: FX node producing the tensor: a graph input, a buffer or an op (``ids``, ``arange``)
    argument: str  #: the op's argument it fills (``indices``, ``index``, ``condition``); "" where unknown
    input_dtype: torch.dtype  #: its dtype in the exported graph (``torch.int64``, ``torch.bool`` ...)
    cast_dtype: torch.dtype  #: the float dtype the pass gives it: the node's classified dtype
    via: str  #: "cast": the pass inserts ``aten.to.dtype``; "relabel": its producer is classified too, so the
    #: pass inserts no cast but has already re-typed that producer's integer output as ``cast_dtype``
    fails: bool  #: True where the op needs an integer/bool tensor there (the compile or the run fails)
    why: str  #: what breaks, in words

    def describe(self, why: bool = True) -> str:
        """One line: ``embedding <- ids (int64 'indices') cast to FP16: embedding needs ...`` (``why=False``: no reason)."""
        arg = f" {self.argument!r}" if self.argument else ""
        how = "cast to" if self.via == "cast" else "relabelled"
        text = (f"{self.node} <- {self.input} ({str(self.input_dtype).replace('torch.', '')}{arg}) "
                f"{how} {display_name(self.cast_dtype)}")
        return f"{text}: {self.why}" if why else text


@dataclass(frozen=True)
class _IntArg:
    """A non-float tensor argument of one node, from the exported graph (settings-independent)."""

    input: str  #: producing node, through detach (Torch-TensorRT's remove_detach runs first)
    argument: str  #: schema argument name, "" where unknown
    dtype: torch.dtype  #: its dtype in the exported graph


@dataclass(frozen=True)
class _NodeFacts:
    """Per-node inputs to the rules that do not depend on settings (precomputed once)."""

    io_neighbours: tuple[tuple[str, float], ...]  #: (node, |x| max) of recorded producers then consumers
    io_max: float  #: max of the above, -1 when nothing was recorded
    depth: int | None  #: depth of reduction from reference shapes, None when the rule cannot measure it


_MAX_LISTED = 6


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


class PrecisionPlan:
    """The predicted precision of every call_function node; iterate for records, index by node name."""

    def __init__(self, settings: Settings, records: dict[str, NodePrecision], calibrated: bool,
                 changed: tuple[str, ...] | None = None, integer_casts: tuple[IntegerCast, ...] = (),
                 target: Target | None = None, fallbacks: Mapping[str, str] | None = None,
                 failures: tuple[tuple[str, str], ...] = ()) -> None:
        self.settings = settings
        #: (node, why) where Torch-TensorRT's autocast pass itself raises on this graph, in graph order
        self.failures = failures
        self.target = target if target is not None else settings.target_or()  #: the release the plan is for
        #: node -> why it runs in PyTorch rather than in an engine on this target (TensorRT-RTX BF16 depthwise convs)
        self.fallbacks = dict(fallbacks or {})
        self._records = records
        self.calibrated = calibrated  #: whether calibration data fed the I/O-range and depth rules
        self.changed = changed  #: nodes re-decided incrementally from the previous plan (None: full plan)
        #: integer/bool tensors Torch-TensorRT's autocast would turn into floats, in graph order
        self.integer_casts = integer_casts

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
            raise UnknownName(f"no node {name!r} in this plan (plans cover call_function nodes)") from None

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
                key = display_name(rec.dtype)
                out[key] = out.get(key, 0) + 1
        return out

    def diff(self, other: PrecisionPlan) -> list[str]:
        """Names of nodes whose dtype, accumulation or rule differs between two plans."""
        return [
            name for name, rec in self._records.items()
            if (o := other.get(name)) is None
            or (o.dtype, o.accumulate_dtype, o.rule) != (rec.dtype, rec.accumulate_dtype, rec.rule)
        ]

    def warnings(self) -> list[str]:
        """What will go wrong if this plan is compiled with Torch-TensorRT's autocast ([] when nothing)."""
        out = []
        if self.failures:
            shown = "; ".join(f"{n}: {why}" for n, why in self.failures[:_MAX_LISTED])
            more = f"; and {len(self.failures) - _MAX_LISTED} more" if len(self.failures) > _MAX_LISTED else ""
            out.append(f"Torch-TensorRT {_RELEASES}'s autocast pass raises on this graph, so the compile fails at the "
                       f"first of: {shown}{more}. Remedy: exclude those nodes' modules or ops, leave out the setting "
                       "named, or build the cast graph: ex.compile(settings, backend='tensorrt') does so by itself (build='auto')")
        return out + self._integer_warnings()

    def _integer_warnings(self) -> list[str]:
        casts = self.integer_casts
        if not casts:
            return []
        nodes = list(dict.fromkeys(c.node for c in casts))
        failing = list(dict.fromkeys(c.node for c in casts if c.fails))
        shown = "; ".join(c.describe(why=False) for c in casts[:_MAX_LISTED])
        if len(casts) > _MAX_LISTED:
            shown += f"; and {len(casts) - _MAX_LISTED} more (plan.integer_casts)"
        whys = list(dict.fromkeys(c.why for c in casts))
        why = "; ".join(whys[:3]) + ("; ..." if len(whys) > 3 else "")
        if failing:
            outcome = (f"So the compile or the run fails at {_listed(failing)}. Excluding these nodes or ops does "
                       "not help (they are then cast to FP32, which fails the same way).")
        else:
            outcome = ("So the integer values change without an error; excluding the nodes only changes the float "
                       "they become.")
        return [
            f"Torch-TensorRT {_RELEASES} autocast turns integer tensors into floats at {len(nodes)} node(s): "
            f"{shown}. Why: {why}. {outcome} Remedy: build the cast graph instead, which "
            "applies this plan's casts to floating-point tensors only and compiles with autocast off and strong "
            "typing: ex.compile(settings, backend='tensorrt') does so by itself (build='auto'), and "
            "ex.export_cast_program(path) writes it for your own compile call."
        ]

    def to_rows(self) -> list[dict[str, str]]:
        """One dict per node (name, op, module, dtype, accumulate, rule, reason), for tables and DataFrames."""
        return [{"name": r.name, "op": r.op.replace("torch.ops.", ""), "module": r.module,
                 "dtype": display_name(r.dtype) if r.rule != "removed" else "-",
                 "accumulate": display_name(r.accumulate_dtype) if r.accumulate_dtype else "",
                 "rule": r.rule, "reason": r.reason} for r in self]

    def _repr_html_(self) -> str:
        """The plan as a table in notebooks, dtype cells in the palette's colours."""
        from html import escape

        head = "".join(f"<th style='text-align:left'>{h}</th>"
                       for h in ("node", "op", "module", "dtype", "acc", "reason"))
        body = []
        for row in self.to_rows():
            colour = PALETTE.get(row["dtype"], PALETTE["other"])
            cells = [escape(row["name"]), escape(row["op"]), escape(row["module"] or "(root)"),
                     f"<span style='color:{colour};font-weight:bold'>{row['dtype']}</span>",
                     escape(row["accumulate"]), escape(row["reason"])]
            body.append("<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells) + "</tr>")
        return (f"<p>{escape(repr(self))}</p><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts().items()))
        ints = f", {len(self.integer_casts)} integer cast(s)" if self.integer_casts else ""
        return f"<PrecisionPlan {len(self)} nodes ({counts}){ints}>"


class Policy:
    """Decides plans for one captured graph; holds the settings-independent precomputation."""

    def __init__(self, captured: CapturedGraph, calibration: Mapping[str, CalibrationStat] | None = None) -> None:
        self.captured = captured
        self.calibration = dict(calibration or {})
        self._facts = {name: self._node_facts(name) for name in captured.producers}
        self._match_cache: dict[tuple[str, str], bool] = {}
        self._int_args = _integer_arguments(captured)  #: node -> its non-float tensor arguments

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
        if op == SDPA_OP:
            if len(dims) == 3:
                return dims[2]
            if len(dims) == 4:
                return dims[1] * dims[3]
            return None  # Torch-TensorRT asserts 3-D or 4-D here
        if op in CONV_DEPTH_OPS:
            # the weight is a parameter and never recorded, so in practice this does not fire
            if len(producers) < 2 or producers[1] not in self.calibration:
                return None
            w = self.calibration[producers[1]].shape
            volume = 1
            for d in w[2:]:
                volume *= d
            return w[1] * volume
        if op in GEMM_DEPTH_OPS and dims:
            return dims[-1]
        return 0

    # -- the rules ---------------------------------------------------------------------------------
    def _matches(self, pattern: str, module: str) -> bool:
        key = (pattern, module)
        hit = self._match_cache.get(key)
        if hit is None:
            hit = self._match_cache[key] = re.match(pattern, module) is not None
        return hit

    def decide(self, info: NodeInfo, settings: Settings, target: Target | None = None) -> NodePrecision:
        """The record for one node under ``settings`` on ``target`` (None: the settings' own or the installed one)."""
        rec = self._decide(info, settings, target if target is not None else settings.target_or())
        if rec.rule in CLASSIFIED_RULES and rec.dtype is not None:
            note = self._integer_note(info, rec.dtype)
            if note:
                rec = NodePrecision(rec.name, rec.op, rec.module, rec.dtype, rec.accumulate_dtype, rec.rule,
                                    rec.reason + note)
        return rec

    def _decide(self, info: NodeInfo, settings: Settings, target: Target) -> NodePrecision:
        name, op, module = info.name, info.op, info.module

        def rec(dtype: torch.dtype | None, rule: str, reason: str) -> NodePrecision:
            return NodePrecision(name, op, module, dtype, self._accumulate(info, dtype, settings, target), rule,
                                 reason)

        if info.removed_by:
            return NodePrecision(name, op, module, None, None, "removed",
                                 f"deleted by Torch-TensorRT's {info.removed_by} pass before autocast runs")
        if op == AUTOCAST_REGION_OP:
            shown = ", ".join(display_name(d) for d in dict.fromkeys(info.output_dtypes)) or "no tensor"
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
                       f"explicit typing: {display_name(info.dtype)} as the exported graph gives it{why}")
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
        return rec(low, "low_precision", f"autocast: no rule kept it in FP32 -> {display_name(low)}")

    def _integer_note(self, info: NodeInfo, dtype: torch.dtype) -> str:
        """The reason's note where the pass turns this classified node's integer tensors into floats ("" if not)."""
        args = self._int_args.get(info.name, ())
        shown = display_name(dtype)
        if args:
            listed = ", ".join(f"{a.input} ({str(a.dtype).replace('torch.', '')}"
                               f"{f' {a.argument!r}' if a.argument else ''})" for a in args)
            return (f"; note: Torch-TensorRT {_RELEASES} autocast also turns its integer input(s) {listed} into "
                    f"{shown} ({_consequence(info.op, args[0], dtype)[1]}); excluding it only makes that FP32 - "
                    "see plan.integer_casts and the cast graph")
        if info.dtype is not None and not info.dtype.is_floating_point and not info.dtype.is_complex:
            return (f"; note: Torch-TensorRT {_RELEASES} autocast relabels its "
                    f"{str(info.dtype).replace('torch.', '')} output as {shown}; its consumers then read "
                    "a float - see plan.integer_casts")
        return ""

    @staticmethod
    def _accumulate(info: NodeInfo, dtype: torch.dtype | None, settings: Settings,
                    target: Target) -> torch.dtype | None:
        if not (settings.use_fp32_acc and settings.use_explicit_typing and info.op in FP32_ACC_OPS):
            return None
        if settings.autocast_active:
            first = dtype  # the pass casts every input to the node's dtype
        else:
            first = info.input_dtypes[0] if info.input_dtypes else None
        return torch.float32 if first == torch.float16 else None

    def plan(self, settings: Settings, previous: PrecisionPlan | None = None,
             target: Target | str | None = None) -> PrecisionPlan:
        """The plan under ``settings`` on ``target`` (None: the settings' own, else the installed release); reuses
        ``previous`` where only exclusions changed. Raises SettingsError where the target cannot honour them."""
        t = settings.target_or(target)
        settings.check_target(t)
        nodes = self.captured.nodes
        names = self.captured.producers.keys() | {n for n, i in nodes.items() if i.removed_by}
        touched = self._touched(settings, previous) if previous is not None and previous.target == t else None
        if touched is None:
            records = {n: self.decide(i, settings, t) for n, i in nodes.items() if n in names}
            changed = None
        else:
            records = dict(previous._records)  # type: ignore[union-attr]
            for n in touched:
                records[n] = self.decide(nodes[n], settings, t)
            changed = tuple(touched)
        fallbacks = self._fallbacks(records, t)
        for n, why in fallbacks.items():
            r = records[n]
            if why not in r.reason:
                records[n] = NodePrecision(r.name, r.op, r.module, r.dtype, r.accumulate_dtype, r.rule,
                                           f"{r.reason}; {why}")
        return PrecisionPlan(settings, records, bool(self.calibration), changed,
                             integer_casts=self.integer_casts(records), target=t, fallbacks=fallbacks,
                             failures=self._failures(records, settings))

    def _failures(self, records: Mapping[str, NodePrecision], settings: Settings) -> tuple[tuple[str, str], ...]:
        """Where ``nodeclassifier.py``/``rule_based_autocast.py`` (2.10-2.14, byte-identical) raise on this graph."""
        if not settings.autocast_active:
            return ()
        graph = {n.name: n for n in self.captured.graph_module.graph.nodes}
        cal, out = self.calibration, []
        limit = settings.autocast_max_depth_of_reduction
        for name, r in records.items():
            if r.rule not in CLASSIFIED_RULES:
                continue
            node = graph.get(name)
            stack = node.meta.get("nn_module_stack") if node is not None else None
            if settings.autocast_excluded_nodes and not stack:
                out.append((name, "it has no nn_module_stack, so DisabledNodeNameRegexRule raises ValueError "
                                  "('Failed to get the user specified name of the node')"))
                continue
            reached = r.rule in ("io_range", "depth", "low_precision")  # past the name and op exclusions
            if reached and cal:
                for other in (*self.captured.producers[name], *self.captured.consumers[name]):
                    stat = cal.get(other)
                    if stat is None or stat.numel == 0:
                        continue
                    if stat.dtype == torch.bool:
                        out.append((name, f"IORangeRule calls torch.abs on the recorded bool output of {other!r}: "
                                          "NotImplementedError (\"abs\" not implemented for 'Bool')"))
                        break
                    if stat.max_abs > settings.autocast_max_output_threshold:
                        break
                if out and out[-1][0] == name:
                    continue
            producers = self.captured.producers[name]
            if reached and r.rule != "io_range" and limit is not None and producers and producers[0] in cal:
                if r.op in CONV_DEPTH_OPS and len(producers) > 1 and producers[1] in cal:
                    out.append((name, "DepthOfReductionRule reaches its convolution branch (the weight is an op's "
                                      "output) and calls torch.prod on a torch.Size: TypeError"))
                    continue
                if r.op == SDPA_OP and len(cal[producers[0]].shape) not in (3, 4):
                    out.append((name, "DepthOfReductionRule asserts a 3-D or 4-D attention input: AssertionError"))
                    continue
            val = node.meta.get("val") if node is not None else None
            if isinstance(val, (list, tuple)):
                out.append((name, f"it returns {len(val)} tensors, and rule_based_autocast re-types its output with "
                                  f"node.meta['val'].to(...): AttributeError ('{type(val).__name__}' object has no "
                                  "attribute 'to')"))
        # the classifier's errors come first: it decides every node before the rewrite starts
        return tuple(sorted(out, key=lambda f: "AttributeError" in f[1]))

    def _fallbacks(self, records: Mapping[str, NodePrecision], target: Target) -> dict[str, str]:
        """Convolutions this target runs in PyTorch: TensorRT-RTX's validator, per release (targets.rtx_fallback)."""
        if not target.is_rtx:
            return {}
        convs = self.__dict__.get("_convolutions")
        if convs is None:
            convs = self.__dict__["_convolutions"] = convolutions(self.captured.graph_module)
        out = {}
        for name, conv in convs.items():
            r, info = records.get(name), self.captured.nodes.get(name)
            if r is None or info is None or r.rule == "removed":
                continue
            first = r.dtype if r.rule in CLASSIFIED_RULES else (info.input_dtypes[0] if info.input_dtypes else None)
            why = rtx_fallback(target.release, conv, first)
            if why:
                out[name] = why
        return out

    def integer_casts(self, records: Mapping[str, NodePrecision]) -> tuple[IntegerCast, ...]:
        """Every integer/bool tensor the autocast pass turns into a float under these decisions, in graph order."""
        out = []
        for name, args in self._int_args.items():
            rec = records.get(name)
            if rec is None or rec.rule not in CLASSIFIED_RULES or rec.dtype is None:
                continue
            for arg in args:
                producer = records.get(arg.input)
                # the pass compares with the metadata, which it has re-typed on classified producers
                believed = producer.dtype if producer is not None and producer.rule in CLASSIFIED_RULES else arg.dtype
                fails, why = _consequence(rec.op, arg, rec.dtype)
                out.append(IntegerCast(name, rec.op, rec.module, arg.input, arg.argument, arg.dtype, rec.dtype,
                                       "relabel" if believed == rec.dtype else "cast", fails, why))
        return tuple(out)

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


def _consequence(op: str, arg: _IntArg, dtype: torch.dtype) -> tuple[bool, str]:
    """(fails, why) for one integer argument turned into ``dtype`` at an ``op`` node."""
    stem = op_basename(op)
    shown = display_name(dtype)
    if arg.argument in _INDEX_ARGUMENTS.get(stem, ()):
        seen = f' (seen: "{_SEEN[stem, dtype]}")' if (stem, dtype) in _SEEN else ""
        return True, f"{stem} needs int32/int64 {arg.argument}, a {shown} tensor is rejected{seen}"
    if arg.argument in _MASK_ARGUMENTS.get(stem, ()):
        return True, f"{stem} needs a bool {arg.argument}, a {shown} tensor is rejected"
    exact = _EXACT_INT.get(dtype)
    limit = f"{shown} holds integers exactly only up to {exact}, " if exact else ""
    return False, (f"{stem} computes on {shown} values where the model computes on integers: {limit}"
                   "and any index use downstream receives a float tensor")


def _tensor_dtype(node: torch.fx.Node) -> torch.dtype | None:
    val = node.meta.get("val")
    return val.dtype if isinstance(val, torch.Tensor) else None


def _schema_names(target: Any) -> list[str]:
    schema = getattr(target, "_schema", None)
    return [a.name for a in schema.arguments] if schema is not None else []


def _integer_arguments(captured: CapturedGraph) -> dict[str, tuple[_IntArg, ...]]:
    """Per call_function node the autocast pass may classify: its integer/bool tensor arguments, in order."""
    detach = torch.ops.aten.detach.default

    def source(n: torch.fx.Node) -> torch.fx.Node:
        while n.op == "call_function" and n.target == detach and n.args and isinstance(n.args[0], torch.fx.Node):
            n = n.args[0]
        return n

    def collect(value: Any, argument: str, into: list[_IntArg]) -> None:
        if isinstance(value, torch.fx.Node):
            n = source(value)
            dtype = _tensor_dtype(n)
            if dtype is not None and not dtype.is_floating_point and not dtype.is_complex:
                into.append(_IntArg(n.name, argument, dtype))
        elif isinstance(value, (list, tuple)):
            for v in value:
                collect(v, argument, into)
        elif isinstance(value, dict):
            for v in value.values():
                collect(v, argument, into)

    out: dict[str, tuple[_IntArg, ...]] = {}
    for node in captured.graph_module.graph.nodes:
        if node.op != "call_function" or node.name not in captured.producers:
            continue  # not an op, or deleted by pre-lowering before autocast runs
        names = _schema_names(node.target)
        found: list[_IntArg] = []
        for i, value in enumerate(node.args):
            collect(value, names[i] if i < len(names) else "", found)
        for key, value in node.kwargs.items():
            collect(value, key, found)
        if found:
            out[node.name] = tuple(found)
    return out
