"""The cast graph: a plan's precisions written into the program itself, for Torch-TensorRT with autocast off.

Torch-TensorRT 2.10-2.14's rule-based autocast casts every tensor argument of a classified node to the node's
dtype, integer tensors included, so a model whose integer tensors feed ``embedding`` or ``gather`` fails to
compile under autocast (``plan.integer_casts`` names them). The cast graph is the way around it: the same plan's
casts applied to floating-point tensors only, by the PyTorch backend's
:func:`~mixprec_explorer.backends.torch_plan.apply_plan` (integer and bool tensors are never cast), re-exported
with ``torch.export``. Compiled with strong typing and autocast off (:func:`compile_kwargs_for_cast_program`),
TensorRT builds every layer at the dtype the graph gives its inputs: the precisions the user chose.

Where it departs from the autocast pass, on purpose:

* integer and bool tensors keep their dtype, and so do nodes with integer outputs (``arange``), which the pass
  relabels as float;
* casts follow the dtype each tensor really has, not the pass's re-typed metadata (an explicit ``.float()``
  classified low still yields FP32, and its consumers are cast from FP32);
* FP32 accumulation is not written into the graph: ``use_fp32_acc`` is passed to the compile, and Torch-TensorRT
  applies it to the matmuls whose first input is FP16, as it would under autocast;
* weights stay the model's own parameters, under their own names, and are cast in the graph (TensorRT folds a
  cast of a constant at build time).

Every call_function node of the program carries ``meta["custom"]["mixprec_node"]`` (the captured graph's node it
belongs to) and ``meta["custom"]["mixprec_role"]`` (``"op"`` or ``"cast"``); both survive ``torch.export.save``
and ``load``, and :func:`node_dtypes` reads them. Cast nodes take their consumer's module path, so TensorRT's
layer names place them in the module they serve.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch.utils import _pytree as pytree

from ..errors import MixprecError, SettingsError
from ..ops import ASSERT_OPS, qualified_op_name
from ..settings import Settings, write_atomic
from .torch_plan import OWNER, ROLE, apply_plan, to_device

if TYPE_CHECKING:
    from ..policy import PrecisionPlan
    from .subject import Model, Planner

__all__ = ["NODE_KEY", "ROLE_KEY", "CastGraphError", "cast_program", "cast_program_with_notes",
           "compile_kwargs_for_cast_program", "compile_snippet", "export_cast_program", "node_dtypes",
           "save_program_atomic", "settings_for_cast_program"]

NODE_KEY = "mixprec_node"  #: ``meta["custom"]`` key: the captured graph's node a program node belongs to
ROLE_KEY = "mixprec_role"  #: ``meta["custom"]`` key: "op" (the model's node) or "cast" (a cast the plan inserted)



#: the notes of apply_plan a cast program's compile repeats (where the program departs from the plan's letter)
_KEPT_NOTES = ("fill values beyond", "cast back to the dtypes")


class CastGraphError(MixprecError, RuntimeError):
    """The cast graph could not be built or re-exported; the message says which step failed and why."""


def settings_for_cast_program(settings: Settings) -> Settings:
    """The Settings to compile a cast program with: strong typing, autocast off, ``use_fp32_acc`` kept.

    These go through the same keyword gating as any compile (the TensorRT backend's ``build_compile_kwargs``).
    Raises :class:`SettingsError` for weak typing, where TensorRT, not the plan, picks each layer's precision.

    >>> import torch
    >>> s = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16, use_fp32_acc=True)
    >>> c = settings_for_cast_program(s)
    >>> c.use_explicit_typing, c.enable_autocast, c.use_fp32_acc
    (True, False, True)
    """
    if not settings.use_explicit_typing:
        raise SettingsError(
            "the cast graph needs strong typing: with use_explicit_typing=False TensorRT picks each layer's "
            "precision, so there is no plan to write into the graph; use explicit typing or autocast settings"
        )
    return Settings(use_explicit_typing=True, enable_autocast=False, use_fp32_acc=settings.use_fp32_acc)


def compile_kwargs_for_cast_program(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``torch_tensorrt.dynamo.compile(cast_program, ...)``: strong typing, autocast off.

    ``use_fp32_acc`` is the planned settings' own. Torch-TensorRT 2.13+ has no ``use_explicit_typing`` (strong
    typing is its only mode): leave that key out there, as the TensorRT backend's keyword gating does.

    >>> import torch
    >>> compile_kwargs_for_cast_program(Settings(enable_autocast=True, autocast_low_precision_type=torch.float16))
    {'use_explicit_typing': True, 'enable_autocast': False, 'use_fp32_acc': False}
    """
    s = settings_for_cast_program(settings)
    return {"use_explicit_typing": True, "enable_autocast": False, "use_fp32_acc": s.use_fp32_acc}


# -- building the program ------------------------------------------------------------------------------------------
def _program_device(ep: torch.export.ExportedProgram) -> str:
    """Where the program's weights live ("cpu" when it has none)."""
    for value in itertools.chain(ep.state_dict.values(), ep.constants.values()):
        if isinstance(value, torch.Tensor):
            return str(value.device)
    return "cpu"


def _without_accumulation(plan: PrecisionPlan) -> PrecisionPlan:
    """The plan with FP32 accumulation left to Torch-TensorRT's ``use_fp32_acc`` rather than written as casts."""
    if not any(r.accumulate_dtype is not None for r in plan):
        return plan
    from ..policy import PrecisionPlan

    records = {r.name: dataclasses.replace(r, accumulate_dtype=None) for r in plan}
    return PrecisionPlan(plan.settings, records, plan.calibrated, integer_casts=plan.integer_casts)


def _label(gm: torch.fx.GraphModule) -> None:
    """Record each node's owner and role where ``torch.export`` keeps them; casts take their consumer's module."""
    by_name = {n.name: n for n in gm.graph.nodes}
    for node in gm.graph.nodes:
        owner = node.meta.get(OWNER)
        if node.op != "call_function" or owner is None:
            continue
        role = "op" if node.meta.get(ROLE) == "op" else "cast"
        node.meta["custom"] = {**(node.meta.get("custom") or {}), NODE_KEY: owner, ROLE_KEY: role}
        source = by_name.get(owner)
        if role == "cast" and source is not None and source.meta.get("nn_module_stack"):
            node.meta["nn_module_stack"] = dict(source.meta["nn_module_stack"])


def _unpacked(node: torch.fx.Node) -> tuple[str, Any] | None:
    """(the node a ``getitem`` unpacks, its index), or None for any other node."""
    if node.op != "call_function" or node.target is not operator.getitem or len(node.args) != 2:
        return None
    source, index = node.args
    return (source.name, index) if isinstance(source, torch.fx.Node) else None


def _relabel_getitems(program: torch.export.ExportedProgram, captured: torch.export.ExportedProgram) -> None:
    """Give each ``getitem`` of the program the captured ``getitem`` it stands for.

    Re-export creates a multi-output op's ``getitem`` nodes while it traces that op, so they inherit its labels
    (LeViT's ``split_with_sizes``): each would be renamed to the op, not to its own output. Where the captured
    graph has no ``getitem`` for that output, the label names the op the output belongs to, as before.
    """
    own = {key: n.name for n in captured.graph.nodes if (key := _unpacked(n)) is not None}
    labels = {n.name: (n.meta.get("custom") or {}).get(NODE_KEY) for n in program.graph.nodes}
    for node in program.graph.nodes:
        key = _unpacked(node)
        custom = node.meta.get("custom") or {}
        if key is None or custom.get(ROLE_KEY) != "op" or custom.get(NODE_KEY) != labels.get(key[0]):
            continue
        source = labels.get(key[0])
        name = own.get((source, key[1])) if source is not None else None
        if name is not None:
            node.meta["custom"] = {**custom, NODE_KEY: name}


def _symbol(size: torch.SymInt) -> Any:
    """The symbol a symbolic size stands for, following the shape environment's symbol-to-symbol replacements.

    Not ``size.node.expr``: once anything has called ``int()`` on the size, that reads the example's value.
    """
    try:
        expr = size.node._expr
        shape_env = size.node.shape_env
        replacements = shape_env.replacements if shape_env is not None else {}
        for _ in range(64):
            nxt = replacements.get(expr)
            if nxt is None or not getattr(nxt, "is_symbol", False):
                break
            expr = nxt
    except AttributeError:
        return None
    return expr if getattr(expr, "is_symbol", False) else None


def _dynamic_shapes(ep: torch.export.ExportedProgram, args: tuple[Any, ...], *, auto: bool = False) -> Any:
    """``dynamic_shapes`` that keep the captured program's symbolic input dims (None when all are static).

    Each symbol becomes one ``Dim`` with the captured range, shared by the dims it sizes; ``auto=True`` (or a
    size that is not a plain symbol) leaves it to export (``Dim.AUTO``), which keeps the dims dynamic but may
    widen their range.
    """
    user = set(ep.graph_signature.user_inputs)
    vals = [n.meta.get("val") for n in ep.graph.nodes if n.op == "placeholder" and n.name in user]
    if not any(isinstance(v, torch.Tensor) and any(isinstance(d, torch.SymInt) for d in v.shape) for v in vals):
        return None
    leaves, spec = pytree.tree_flatten(args)
    if len(leaves) != len(vals):
        raise CastGraphError(
            f"the captured program has dynamic input shapes and {len(vals)} inputs, but the example inputs "
            f"flatten to {len(leaves)}: pass the program's own example inputs to the Explorer")
    dims: dict[Any, Any] = {}

    def dim_for(size: Any) -> Any:
        symbol = None if auto else _symbol(size)
        bounds = ep.range_constraints.get(symbol) if symbol is not None else None
        if bounds is None:
            return torch.export.Dim.AUTO
        if symbol not in dims:
            high = int(bounds.upper) if bounds.upper.is_finite else None
            dims[symbol] = torch.export.Dim(f"mixprec_{symbol}", min=int(bounds.lower), max=high)
        return dims[symbol]

    specs: list[Any] = []
    for val in vals:
        if not isinstance(val, torch.Tensor):
            specs.append(None)
            continue
        specs.append({i: dim_for(d) for i, d in enumerate(val.shape) if isinstance(d, torch.SymInt)} or None)
    return pytree.tree_unflatten(specs, spec)


def _planner(model: Model) -> Planner:
    if not callable(getattr(model, "plan", None)):
        raise SettingsError("this model does not decide plans: pass settings and plan to cast_program")
    return cast("Planner", model)


def cast_program(explorer: Model, settings: Settings | None = None, *, device: str | None = None,
                 plan: PrecisionPlan | None = None) -> torch.export.ExportedProgram:
    """The plan for ``settings`` (None: the explorer's current ones) as an ExportedProgram with the casts in it.

    ``plan`` is that plan where the caller already has it (a compile passes the one it decided, with any
    captured graph, an Explorer or not).

    Floating-point tensors are cast to each classified node's planned dtype; integer and bool tensors never are.
    Compile it with :func:`compile_kwargs_for_cast_program` (autocast off, strong typing). ``device`` is where the
    program's weights go (default: where the captured program's are). Dynamic input dims of the captured program
    stay dynamic. Raises :class:`SettingsError` for weak typing and :class:`CastGraphError` if the casts cannot
    be applied or the result cannot be exported.
    """
    return cast_program_with_notes(explorer, settings, device=device, plan=plan)[0]


def cast_program_with_notes(explorer: Model, settings: Settings | None = None, *, device: str | None = None,
                            plan: PrecisionPlan | None = None) -> tuple[torch.export.ExportedProgram, tuple[str, ...]]:
    """:func:`cast_program` and what building it departed from the plan's autocast semantics, in words (fill values
    written as the low dtype's extreme, an autocast region's inputs cast back)."""
    s = _planner(explorer).settings if settings is None else settings
    settings_for_cast_program(s)  # refuses weak typing
    ep = explorer.exported_program
    dev = device or _program_device(ep)
    plan = _without_accumulation(plan if plan is not None else _planner(explorer).plan(s))
    try:
        planned = apply_plan(ep, plan, device=dev, cast_non_float=False, fold_weight_casts=False, saturate_fills=True,
                             restore_regions=True)
    except Exception as err:
        raise CastGraphError(f"could not apply the plan's casts on {dev}: {type(err).__name__}: {err}") from err
    _label(planned.module)
    args = to_device(tuple(explorer.example_inputs), dev)
    dynamic = _dynamic_shapes(ep, args)
    notes = tuple(n for n in planned.notes if n.startswith(_KEPT_NOTES))
    try:
        try:
            program = torch.export.export(planned.module, args, dynamic_shapes=dynamic, strict=False)
        except Exception:
            if dynamic is None:
                raise
            # the captured ranges could not be restated: let export infer the dynamic dims itself
            auto = _dynamic_shapes(ep, args, auto=True)
            program = torch.export.export(planned.module, args, dynamic_shapes=auto, strict=False)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CastGraphError(f"torch.export could not re-export the cast graph: {type(err).__name__}: {first}") \
            from err
    _relabel_getitems(program, ep)
    return program, notes


def node_dtypes(program: torch.export.ExportedProgram) -> dict[str, torch.dtype]:
    """Captured-graph node name -> the dtype its op yields in a cast program (read from the program's metadata).

    Nodes the program does not hold (assert and detach nodes, which Torch-TensorRT deletes too) are absent.
    """
    out: dict[str, torch.dtype] = {}
    for node in program.graph.nodes:
        custom = node.meta.get("custom") or {}
        if node.op != "call_function" or custom.get(ROLE_KEY) != "op" or qualified_op_name(node.target) in ASSERT_OPS:
            continue
        val = node.meta.get("val")
        first = next((v for v in (val if isinstance(val, (list, tuple)) else [val]) if isinstance(v, torch.Tensor)),
                     None)
        if first is not None:
            out[custom[NODE_KEY]] = first.dtype  # the last node of an owner yields what its users read
    return out


# -- export ------------------------------------------------------------------------------------------------------
def _describe_settings(settings: Settings) -> str:
    shown = [f"{k}={v!r}" for k, v in settings.to_compile_kwargs().items() if getattr(settings, k) !=
             getattr(Settings(), k)]
    return ", ".join(shown).replace("'", '"') or "Torch-TensorRT's defaults"


def _input_literal(value: Any, device: str) -> str | None:
    """Python that makes a tensor like ``value`` on ``device`` (random values in its range), or None."""
    if isinstance(value, torch.Tensor):
        shape = tuple(value.shape)
        if value.dtype == torch.bool:
            return f"torch.rand({shape}, device={device!r}) > 0.5"
        if value.dtype.is_floating_point:
            return f"torch.randn({shape}, dtype={value.dtype}, device={device!r})"
        if value.numel() and not value.dtype.is_complex:
            low, high = int(value.min()), int(value.max())
            return f"torch.randint({low}, {high + 1}, {shape}, dtype={value.dtype}, device={device!r})"
        return None
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return None


def compile_snippet(program_file: str, settings: Settings, *, example_inputs: Sequence[Any] = (),
                    saved_on: str = "cpu") -> str:
    """A runnable ``.py`` that loads the cast program saved as ``program_file`` (beside it) and compiles it."""
    kwargs = compile_kwargs_for_cast_program(settings)
    literals = [_input_literal(v, "cuda") for v in example_inputs]
    if example_inputs and all(lit is not None for lit in literals):
        inputs = f"inputs = [{', '.join(lit or '' for lit in literals)}]  # shaped like the example inputs; use yours"
    else:
        inputs = "inputs = [...]  # your positional inputs, on the GPU"
    lines = [
        '"""Compile the cast graph mixprec_explorer exported: the plan\'s precisions are casts inside the program.',
        "",
        *textwrap.wrap(f"Planned with: {_describe_settings(settings)}.", 110, break_on_hyphens=False),
        "Floating-point tensors are cast to each node's planned dtype; integer tensors keep theirs. Torch-TensorRT's",
        "own autocast stays off (2.10-2.14 would cast integer tensors such as embedding indices to float) and strong",
        "typing builds every layer at the dtype the graph gives it.",
        '"""',
        "",
        "import inspect",
        "from pathlib import Path",
        "",
        "import torch",
        "import torch_tensorrt",
    ]
    on_gpu = torch.device(saved_on).type == "cuda"
    if not on_gpu:
        lines.append("from torch.export.passes import move_to_device_pass")
    lines += ["", f"ep = torch.export.load(Path(__file__).with_name({program_file!r}))"]
    if not on_gpu:
        lines.append(f'ep = move_to_device_pass(ep, "cuda")  # it was saved with its weights on {saved_on}')
    lines += [
        inputs,
        "# torch-tensorrt 2.13+ has no use_explicit_typing: strong typing is its only mode",
        "strong_typing = ({\"use_explicit_typing\": True}",
        "                 if \"use_explicit_typing\" in inspect.signature(torch_tensorrt.dynamo.compile).parameters "
        "else {})",
        "trt_gm = torch_tensorrt.dynamo.compile(",
        "    ep,",
        "    inputs=inputs,",
        f"    enable_autocast={kwargs['enable_autocast']!r},  # the casts are already in the graph",
        f"    use_fp32_acc={kwargs['use_fp32_acc']!r},",
        "    **strong_typing,",
        ")",
        "print(trt_gm(*inputs))",
    ]
    return "\n".join(lines) + "\n"


def save_program_atomic(program: torch.export.ExportedProgram, path: str | os.PathLike[str]) -> Path:
    """``torch.export.save`` to a temporary file beside ``path``, then rename it into place."""
    return write_atomic(path, lambda handle: torch.export.save(program, handle))


def export_cast_program(explorer: Planner, path: str | os.PathLike[str], settings: Settings | None = None, *,
                        device: str | None = None) -> tuple[Path, Path]:
    """Write the cast program (``torch.export.save``, atomic) and, beside it, a ``.py`` that compiles it.

    ``path`` is the program file (``encoder_fp16.pt2``); the snippet takes its name with ``.py``
    (``encoder_fp16.py``). Returns both paths. Raises :class:`SettingsError` for a ``.py`` path.
    """
    target = Path(path)
    if target.suffix == ".py":
        raise SettingsError(f"{str(path)!r} is where the program goes (e.g. 'cast_program.pt2'); "
                            "the compile snippet is written beside it with the suffix .py")
    s = explorer.settings if settings is None else settings
    program = cast_program(explorer, s, device=device)
    saved = save_program_atomic(program, target)
    snippet = write_atomic(target.with_suffix(".py"), compile_snippet(
        target.name, s, example_inputs=explorer.example_inputs, saved_on=_program_device(program)))
    return saved, snippet
