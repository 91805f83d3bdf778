"""Error metrics: one function per metric, used by sensitivity, search, the frontier and accuracy alike.

Every metric is computed in float64 over all floating-point output elements together. **NaN and inf:** an output
(or reference) holding NaN or inf scores ``inf`` for relative L2: it is as wrong as an output gets, it compares
as "over budget" against any finite budget, and it sorts last. (A NaN would compare False with everything and
slip past a budget.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils import _pytree as pytree

from ..errors import OptionError

__all__ = ["METRICS", "Metric", "error_gain", "floating_leaves", "get_metric", "rel_l2"]

Tensors = torch.Tensor | Sequence[torch.Tensor]
Metric = Callable[[Tensors, Tensors], float]


def floating_leaves(value: Any) -> list[torch.Tensor]:
    """The floating-point tensors in ``value`` (a tensor or nested tuples, lists, dicts), in order."""
    return [x for x in pytree.tree_leaves(value) if isinstance(x, torch.Tensor) and x.is_floating_point()]


def _flat64(value: Tensors) -> torch.Tensor:
    parts = [value] if isinstance(value, torch.Tensor) else list(value)
    if not parts:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat([p.detach().to("cpu", torch.float64).reshape(-1) for p in parts])


def rel_l2(out: Tensors, ref: Tensors) -> float:
    """Relative L2 error ``||out - ref||_2 / ||ref||_2`` over all elements of a tensor or a list of tensors.

    float64; 0.0 when both are zero, inf when only ``ref`` is; inf when either holds NaN or inf (module note).

    >>> rel_l2(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 5.0]))
    0.2
    >>> rel_l2([torch.tensor([float("nan")])], [torch.tensor([1.0])])
    inf
    """
    a, b = _flat64(out), _flat64(ref)
    if a.shape != b.shape:
        raise OptionError(f"rel_l2 compares equal numbers of elements; got {a.numel()} and {b.numel()}")
    num = float(torch.linalg.vector_norm(a - b)) if a.numel() else 0.0
    den = float(torch.linalg.vector_norm(b)) if b.numel() else 0.0
    if not (math.isfinite(num) and math.isfinite(den)):
        return math.inf
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


#: Metric name -> function (outputs, reference) -> error; the name is what ``metric=`` takes everywhere.
METRICS: dict[str, Metric] = {"rel_l2": rel_l2}


def get_metric(name: str) -> Metric:
    """The metric called ``name``; :class:`OptionError` naming the known ones otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise OptionError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


def error_gain(before: float, after: float) -> float:
    """Error removed by a change: ``before - after``; inf when it makes a non-finite output finite, 0 when the
    output stays non-finite."""
    if math.isinf(before) and math.isinf(after):
        return 0.0
    return before - after
