"""Programs that travel to another process (the worker): saved here, rebuilt there as the user's process would.

``torch.export.load`` rebuilds the pytree of a program's inputs and outputs, and a fresh process knows only
Python's containers: a Hugging Face ``ModelOutput`` (or any type registered with pytree) is unknown there until
the module that registers it is imported. The output structure is therefore shipped flat (a tuple of the output
tensors, which any process rebuilds) and put back in this process with the program's own ``out_spec``
(:func:`restore_outputs`); the output's type never has to exist in the worker, even a class of ``__main__``. The
rarer custom types of the inputs cannot be flattened away (batches are sent as the model takes them): their
defining modules travel by name and are imported in the worker before loading, and a type no other process can
import (``__main__``, a class defined in a function) is refused here, before anything is sent.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import _pytree as pytree

from ..errors import OptionTypeError

__all__ = ["Shipment", "custom_types", "ensure_flatten_specs", "load_program", "restore_outputs", "save_program"]

#: pytree node types every process knows without importing anything
_BUILTIN: frozenset[Any] = frozenset({tuple, list, dict, collections.OrderedDict, collections.defaultdict,
                                      collections.deque, type(None)})


def _type_name(typ: type) -> str:
    return f"{typ.__module__}.{typ.__qualname__}"


def _walk(spec: Any) -> Iterator[type]:
    if spec is None or spec.is_leaf():
        return
    typ = spec.type
    if typ is collections.namedtuple:  # namedtuple nodes keep the class as context
        yield spec.context
    elif typ not in _BUILTIN:
        yield typ
    # TreeSpec.children() since torch 2.8 or so; children_specs before (torch 2.6)
    for child in spec.children() if hasattr(spec, "children") else spec.children_specs:
        yield from _walk(child)


def custom_types(spec: Any) -> tuple[type, ...]:
    """The pytree node types in ``spec`` (a TreeSpec or None) that a fresh process does not know, in first-seen order.

    >>> custom_types(pytree.tree_structure(((1, [2]), {"a": 3})))
    ()
    """
    return tuple(dict.fromkeys(_walk(spec)))


def ensure_flatten_specs(ep: torch.export.ExportedProgram) -> None:
    """Let ``ep.module()`` take the program's custom input types on torch 2.6, whose unflattened module needs an fx
    flatten spec for each (``torch.export.register_dataclass`` does not add one there; later torch flattens any
    registered pytree type itself)."""
    from torch.fx import _pytree as fx_pytree

    signature = ep.call_spec
    for typ in custom_types(signature.in_spec) if signature is not None and signature.in_spec is not None else ():
        if typ in pytree.SUPPORTED_NODES and typ not in fx_pytree.SUPPORTED_NODES:
            fx_pytree.register_pytree_flatten_spec(typ, lambda value, spec: pytree.SUPPORTED_NODES[
                type(value)].flatten_fn(value)[0])


def _flat_output(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """``ep`` sharing its graph and weights, its outputs declared as a plain tuple of the same tensors."""
    root = ep.module_call_graph[0]
    signature = root.signature
    if signature is None or not custom_types(signature.out_spec):
        return ep
    flat = pytree.tree_structure(tuple(range(signature.out_spec.num_leaves)))
    shipped = copy.copy(ep)  # shallow: graph and state dict shared, saved as they are
    shipped._module_call_graph = [dataclasses.replace(root, signature=dataclasses.replace(signature, out_spec=flat)),
                                  *ep.module_call_graph[1:]]
    return shipped


def _unshippable(typ: type, why: str) -> OptionTypeError:
    return OptionTypeError(
        f"the model's inputs are a {_type_name(typ)} ({why}), so the worker process cannot rebuild the program. "
        "Compile in this process with isolate=False, or wrap the model so that it takes tensors "
        "(a module whose forward builds the structure from them)")


@dataclass(frozen=True)
class Shipment:
    """What the worker needs besides the saved file: modules to import first, and the types they define."""

    modules: tuple[str, ...] = ()  #: modules that register the inputs' pytree types, imported before loading
    types: tuple[str, ...] = ()  #: those types' qualified names (for the error message)


def save_program(ep: torch.export.ExportedProgram, path: str | os.PathLike[str]) -> Shipment:
    """Save ``ep`` to ``path`` so that another process can load it with :func:`load_program`.

    The outputs' structure is written as a plain tuple; the inputs' custom types are named in the Shipment.
    Raises OptionTypeError (naming the type and the way around) for an input type no other process can import
    or a structure torch.export cannot save.
    """
    signature = ep.module_call_graph[0].signature if ep.module_call_graph else None
    types = custom_types(signature.in_spec) if signature is not None else ()
    for typ in types:
        if typ.__module__ == "__main__":
            raise _unshippable(typ, "a class of the __main__ script or notebook")
        if "<locals>" in typ.__qualname__:
            raise _unshippable(typ, "a class defined inside a function")
    try:
        torch.export.save(_flat_output(ep), path)
    except Exception as err:  # torch.export's serialiser raises several types for an unregistered structure
        named = ", ".join(_type_name(t) for t in types) or "its inputs' structure"
        raise OptionTypeError(
            f"the program cannot be saved for the worker process ({type(err).__name__}: {err}; types: {named}). "
            "Compile in this process with isolate=False, or wrap the model so that it takes and returns tensors"
        ) from err
    return Shipment(tuple(dict.fromkeys(t.__module__ for t in types)), tuple(_type_name(t) for t in types))


def load_program(path: str | os.PathLike[str], shipment: Shipment = Shipment()) -> torch.export.ExportedProgram:
    """(worker) The program :func:`save_program` wrote, after importing the modules its input types need.
    Raises OptionTypeError naming the types and the way around when it cannot be rebuilt here."""
    advice = ("compile in the user's process with isolate=False, or wrap the model so that it takes and returns "
              "tensors")
    for module in shipment.modules:
        try:
            importlib.import_module(module)
        except Exception as err:
            raise OptionTypeError(
                f"the worker process cannot import {module!r}, which defines the model's input type(s) "
                f"{', '.join(shipment.types)} ({type(err).__name__}: {err}); {advice}") from err
    try:
        return torch.export.load(path)
    except Exception as err:  # torch.export.load reports an unknown pytree type as a bare RuntimeError
        named = f" (input types: {', '.join(shipment.types)})" if shipment.types else ""
        raise OptionTypeError(
            f"the worker process could not rebuild the program{named}: {type(err).__name__}: "
            f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}; {advice}") from err


def restore_outputs(ep: torch.export.ExportedProgram, outputs: Any) -> Any:
    """Outputs that came back flat from the worker, in the structure ``ep`` returns in this process (a
    ``ModelOutput``...); unchanged where ``ep``'s outputs are plain containers or the count does not match."""
    spec = ep.call_spec.out_spec
    if not custom_types(spec):
        return outputs
    leaves = pytree.tree_leaves(outputs)
    return pytree.tree_unflatten(leaves, spec) if len(leaves) == spec.num_leaves else outputs
