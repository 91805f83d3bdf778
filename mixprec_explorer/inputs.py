"""One set of rules for inputs, at every door: a tensor, a tuple, or a list of batches, checked against the program.

=====================================  ===========================================================
what is passed                         what it means
=====================================  ===========================================================
``None``                               the explorer's example inputs (one batch)
a tensor ``x``                         one batch with one input: ``(x,)``
a tuple ``(x, y)``                     one batch of positional inputs
a list ``[b0, b1, ...]`` (any          several batches, each a tensor or a tuple (a DataLoader's
non-tuple iterable, a DataLoader)      ``[x]`` batches count as tuples)
=====================================  ===========================================================

Each batch is checked against the captured program's inputs before anything runs: the number of inputs, each
tensor's rank, dtype and every fixed dimension. A dimension the program was exported with as dynamic
(``torch.export.Dim``) may take any size in its range. A batch that does not fit raises :class:`InputError`
naming the input, its shape and the shape the program takes, never torch's ``Guard failed`` AssertionError.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils import _pytree as pytree

from .errors import InputError

if TYPE_CHECKING:
    from .capture import CapturedGraph

__all__ = ["Batch", "Inputs", "as_batches", "check_batch", "expected_inputs", "flatten_batch", "normalize_inputs"]

Batch = tuple[Any, ...]  #: positional inputs of one forward call
#: What every public method that takes inputs accepts (see the module's table).
Inputs = torch.Tensor | Batch | Sequence[torch.Tensor | Batch] | Iterable[Any] | None


def _as_batch(value: Any) -> Batch:
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value,)


def as_batches(inputs: Inputs, default: Batch) -> list[Batch]:
    """The batches ``inputs`` stands for (module table); ``default`` when None. Raises InputError when empty.

    >>> x = torch.ones(2, 3)
    >>> [len(b) for b in as_batches(x, ())], [len(b) for b in as_batches((x, x), ())], len(as_batches([x, x], ()))
    ([1], [2], 2)
    """
    if inputs is None:
        return [tuple(default)]
    if isinstance(inputs, (torch.Tensor, tuple)):
        return [_as_batch(inputs)]
    if isinstance(inputs, (str, bytes, dict)) or not isinstance(inputs, Iterable):
        raise InputError(f"inputs must be a tensor, a tuple of positional inputs or a list of batches; "
                         f"got {type(inputs).__name__}")
    batches = [_as_batch(b) for b in inputs]
    if not batches:
        raise InputError("no batches: pass a tensor, a tuple of inputs, or a non-empty list of batches")
    return batches


def flatten_batch(batch: Batch) -> list[Any]:
    """The program's placeholders, in order, for one batch of positional inputs."""
    return pytree.tree_leaves((tuple(batch), {}))


def expected_inputs(captured: CapturedGraph) -> list[tuple[str, Any]]:
    """(name, example value: a fake tensor with symbolic dims where dynamic) of each user input, in order."""
    ep = captured.exported_program
    user = set(ep.graph_signature.user_inputs)
    return [(n.name, n.meta.get("val")) for n in ep.graph.nodes if n.op == "placeholder" and n.name in user]


def _shape_text(value: Any) -> str:
    """``(1, 10)``, or ``(s0, 10)`` where a dimension is dynamic."""
    dims = [str(d) for d in value.shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _range(ep: torch.export.ExportedProgram, dim: torch.SymInt) -> tuple[int, float] | None:
    """(lowest, highest) size a dynamic dimension may take; None where it is an expression we do not bound."""
    expr = dim.node.expr
    if not getattr(expr, "is_Symbol", False):
        return None
    bounds = ep.range_constraints.get(expr)
    if bounds is None:
        return (0, float("inf"))
    upper = bounds.upper
    return int(bounds.lower), float("inf") if not upper.is_finite else int(upper)


def check_batch(captured: CapturedGraph, batch: Batch, index: int | None = None) -> None:
    """Raise :class:`InputError` unless ``batch`` fits the program's inputs (count, rank, dtype, fixed dims).

    ``index`` is the batch's position among several (named in the message), None for a single batch.
    """
    ep = captured.exported_program
    expected = expected_inputs(captured)
    given = flatten_batch(batch)
    where = f"batch {index}: " if index is not None else ""
    index = index or 0
    if len(given) != len(expected):
        names = ", ".join(name for name, _ in expected)
        raise InputError(f"{where}the captured program takes {len(expected)} input(s) ({names}), got {len(given)}; "
                         "pass one batch as a tuple of positional inputs, several as a list of such tuples",
                         batch=index)
    for position, (value, (name, want)) in enumerate(zip(given, expected)):
        if not isinstance(want, torch.Tensor):
            continue
        label = f"{where}input {position} ({name!r})"
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{label} is a {type(value).__name__}; the program takes a tensor of shape "
                             f"{_shape_text(want)}", position, index)
        if value.dim() != want.dim():
            raise InputError(f"{label} has shape {tuple(value.shape)}, a {value.dim()}-d tensor; the program takes "
                             f"{_shape_text(want)} ({want.dim()}-d)", position, index)
        if value.dtype != want.dtype:
            raise InputError(f"{label} is {str(value.dtype).replace('torch.', '')}; the program was captured with "
                             f"{str(want.dtype).replace('torch.', '')}", position, index)
        for axis, (got, size) in enumerate(zip(value.shape, want.shape)):
            if isinstance(size, int):
                if got != size:
                    raise InputError(
                        f"{label} has shape {tuple(value.shape)}, but the program was captured with "
                        f"{_shape_text(want)}: dimension {axis} is fixed at {size}. To run other sizes, export the "
                        f"model with a dynamic dimension (torch.export.export(model, inputs, dynamic_shapes=...), "
                        "as Torch-TensorRT's Input(min_shape, opt_shape, max_shape) needs) and pass the "
                        "ExportedProgram to Explorer", position, index)
                continue
            bounds = _range(ep, size)
            if bounds is not None and not bounds[0] <= got <= bounds[1]:
                raise InputError(f"{label} has shape {tuple(value.shape)}: dimension {axis} must be in "
                                 f"[{bounds[0]}, {bounds[1]}] (the program's dynamic range)", position, index)


def normalize_inputs(captured: CapturedGraph, inputs: Inputs) -> list[Batch]:
    """Every door's inputs: the batches ``inputs`` stands for, each checked against the program (InputError)."""
    batches = as_batches(inputs, captured.example_inputs)
    for index, batch in enumerate(batches):
        check_batch(captured, batch, index if len(batches) > 1 else None)
    return batches
