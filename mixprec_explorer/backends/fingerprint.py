"""Fingerprints for the compile cache: a model (graph + weights), a plan, and input signatures.

Weights are hashed once per ExportedProgram object (kept in a weak map); mutating a program's weights in
place after its first compile is not noticed.
"""

from __future__ import annotations

import contextlib
import hashlib
import weakref
from collections.abc import Iterable
from typing import Any

import torch

from ..dtypes import to_name

_PROGRAMS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _hash_tensor(digest: Any, name: str, tensor: torch.Tensor) -> None:
    t = tensor.detach()
    digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
    if t.is_sparse or t.layout != torch.strided or getattr(t, "is_meta", False):
        return  # shape and dtype only
    data = t.to("cpu").contiguous().reshape(-1)
    if data.numel():
        digest.update(data.view(torch.uint8).numpy().tobytes())


def fingerprint_program(ep: torch.export.ExportedProgram) -> str:
    """Hex SHA-256 of the graph text, its signature, its inputs' shapes and dynamic ranges, and every weight, buffer
    and constant (cached per object)."""
    try:
        cached = _PROGRAMS.get(ep)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    digest.update(str(ep.graph_module.graph).encode())
    digest.update(str(ep.graph_signature).encode())
    # the inputs it takes: a program exported with a dynamic batch has the same graph text as a static one
    shapes = [str(getattr(n.meta.get("val"), "shape", "")) for n in ep.graph.nodes if n.op == "placeholder"]
    digest.update(f"{shapes}|{sorted((str(k), str(v)) for k, v in ep.range_constraints.items())}".encode())
    tensors = {**dict(ep.state_dict), **{f"const:{k}": v for k, v in dict(ep.constants).items()}}
    for name in sorted(tensors):
        value = tensors[name]
        if isinstance(value, torch.Tensor):
            _hash_tensor(digest, name, value)
        else:
            digest.update(f"{name}|{type(value).__name__}".encode())
    result = digest.hexdigest()
    with contextlib.suppress(TypeError):  # not weak-referenceable: recomputed next time
        _PROGRAMS[ep] = result
    return result


def fingerprint_plan(plan: Iterable[Any]) -> str:
    """Hex SHA-256 of every NodePrecision's (name, dtype, accumulate_dtype, rule): what a backend compiles."""
    digest = hashlib.sha256()
    for rec in sorted(plan, key=lambda r: r.name):
        digest.update(f"{rec.name}|{to_name(rec.dtype)}|{to_name(rec.accumulate_dtype)}|{rec.rule}\n"
                      .encode())
    return digest.hexdigest()


def describe_inputs(inputs: Iterable[Any]) -> tuple[tuple[tuple[int, ...], ...], tuple[str, ...]]:
    """(shapes, dtype names) of the tensors among ``inputs`` (flattened); non-tensors show as ``()``/type name."""
    leaves = torch.utils._pytree.tree_leaves(tuple(inputs))
    shapes = tuple(tuple(int(d) for d in x.shape) if isinstance(x, torch.Tensor) else () for x in leaves)
    names = tuple(to_name(x.dtype) or "" if isinstance(x, torch.Tensor) else type(x).__name__
                  for x in leaves)
    return shapes, names
