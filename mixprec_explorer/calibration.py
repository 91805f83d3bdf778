"""Calibration: reference activations recorded the way Torch-TensorRT records them for autocast.

Torch-TensorRT runs a ``torch.fx.Interpreter`` over the unlifted ``ep.module()`` once per batch
(``tracer.run(tuple(batch))``) and keeps each call_function node's tensor output, concatenated along
dim 0 (``pass_utils.trace_intermediate_node_outputs``). Its rules only need |x| max and the shape, so
we keep those and not the tensors: memory stays flat however many batches are given.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any

import torch

from .errors import SettingsError
from .records import CalibrationStat

_SKIPPED_TARGETS = (torch.ops.higher_order.wrap_with_autocast, operator.getitem)


def _max_abs(t: torch.Tensor) -> float:
    if t.numel() == 0:
        return 0.0
    if t.dtype == torch.bool:
        return float(t.any())
    x = t.detach().abs() if t.is_floating_point() or t.is_complex() else t.detach().to(torch.float64).abs()
    if x.is_floating_point():
        x = torch.nan_to_num(x.float(), nan=0.0, posinf=math.inf)
    return float(x.max())


def trace_reference_stats(ep: torch.export.ExportedProgram, batches: Iterable[Any]) -> dict[str, CalibrationStat]:
    """Per call_function node: |x| max and concatenated shape of its output over all batches.

    Each batch must be a sequence of positional inputs (a ``TensorDataset`` batch ``[x]`` works);
    a bare tensor is rejected with a hint, since Torch-TensorRT would split it along dim 0.
    """
    module = ep.module()
    stats: dict[str, list[Any]] = {}

    class _Tracer(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            out = super().run_node(n)
            if n.op == "call_function" and n.target not in _SKIPPED_TARGETS and isinstance(out, torch.Tensor):
                seen = stats.get(n.name)
                shape = tuple(out.shape)
                if seen is None:
                    stats[n.name] = [_max_abs(out), shape, out.numel()]
                else:
                    seen[0] = max(seen[0], _max_abs(out))
                    if shape and seen[1]:
                        seen[1] = (seen[1][0] + shape[0], *seen[1][1:])
                    seen[2] += out.numel()
            return out

    tracer = _Tracer(module)
    count = 0
    with torch.no_grad():
        for index, batch in enumerate(batches):
            if isinstance(batch, torch.Tensor):
                raise SettingsError(
                    f"calibration batch {index} is a bare tensor; give each batch as a tuple of positional "
                    "inputs, e.g. [(x1,), (x2,)] - Torch-TensorRT would split a bare tensor along dim 0"
                )
            try:
                tracer.run(tuple(batch))  # exactly as Torch-TensorRT calls it
            except Exception as err:
                first = (str(err).strip().splitlines() or [""])[0]
                hint = ""
                if "Guard failed" in first or "size" in first:
                    hint = ("; calibration batches must have the example inputs' shapes unless the model was "
                            "exported with dynamic_shapes (as Torch-TensorRT runs them through ep.module())")
                raise SettingsError(
                    f"calibration batch {index} failed to run through the exported model: "
                    f"{type(err).__name__}: {first}{hint}"
                ) from err
            count += 1
    if count == 0:
        raise SettingsError("calibration got no batches; pass an iterable of input tuples, e.g. [(x,)]")
    return {name: CalibrationStat(max_abs=v[0], shape=v[1], numel=v[2]) for name, v in stats.items()}
