"""Capture: model + example inputs -> ExportedProgram -> node records and a networkx graph.

The graph is the ExportedProgram's own, before any decomposition: the graph Torch-TensorRT's
rule-based autocast classifies (it runs as a pre-lowering pass, ahead of ``run_decompositions``).
"""

from __future__ import annotations

import contextlib
import io
import linecache
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import torch

from .costs import estimate_bytes, estimate_flops, numel
from .errors import CaptureError
from .ops import REMOVED_BY, UNCLASSIFIED_OPS, qualified_op_name
from .records import NodeInfo


@dataclass
class CapturedGraph:
    """Everything capture learns about one ExportedProgram; read-only after :func:`capture`."""

    exported_program: torch.export.ExportedProgram
    nodes: dict[str, NodeInfo]  #: every drawn node in graph order (inputs, ops, output)
    graph: nx.DiGraph  #: keyed by FX node name; node attributes are the NodeInfo fields
    producers: dict[str, tuple[str, ...]]  #: call_function node -> input nodes after pre-lowering removals
    consumers: dict[str, tuple[str, ...]]  #: call_function node -> user nodes after pre-lowering removals
    module_nodes: dict[str, tuple[str, ...]]  #: module path -> call_function nodes whose innermost module it is
    example_inputs: tuple[Any, ...]

    @property
    def graph_module(self) -> torch.fx.GraphModule:
        return self.exported_program.graph_module


def export_model(model: torch.nn.Module, example_inputs: Sequence[Any] | Any, strict: bool = False
                 ) -> torch.export.ExportedProgram:
    """``torch.export.export`` as Torch-TensorRT's tracer calls it (non-strict); raises CaptureError."""
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    if not isinstance(model, torch.nn.Module):
        raise CaptureError(
            f"expected a torch.nn.Module or a torch.export.ExportedProgram, got {type(model).__name__}"
        )
    if model.training:
        warnings.warn(
            "the model is in training mode; Torch-TensorRT users export model.eval() "
            "(batch norm and dropout capture differently) - call model.eval() first",
            stacklevel=4,  # the user line that built the Explorer
        )
    printed = io.StringIO()
    try:
        with _stderr_held(printed):
            return torch.export.export(model, args, strict=strict)
    except Exception as err:  # torch.export raises many types; all mean "cannot capture"
        reason = str(err).strip().splitlines()
        first = reason[0] if reason else type(err).__name__
        saved = _keep_printed(printed.getvalue(), type(model).__name__)
        raise CaptureError(
            f"torch.export could not capture {type(model).__name__}: {type(err).__name__}: {first}\n"
            + "".join(f"Hint: {hint}\n" for hint in capture_hints(model, args, err))
            + "Hint: Torch-TensorRT needs the same export to succeed. Other common fixes: make data-dependent "
            "control flow static (torch.cond), pass example inputs of the right shapes and dtypes as a tuple, "
            "or export it yourself and pass the ExportedProgram."
            + (f"\nWhat torch.export printed while failing (the graph it had traced, where it prints one): {saved}"
               if saved else "")
        ) from err


@contextlib.contextmanager
def _stderr_held(printed: io.StringIO) -> Iterator[None]:
    """Hold what is printed to stderr in ``printed``: passed on if the block succeeds, kept by the caller if it
    fails (torch.export prints a failed trace's partial graph there: 180 kB for a detection model). Warnings
    are re-issued as they came, either way."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(printed):
            yield
        sys.stderr.write(printed.getvalue())
    finally:
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _keep_printed(text: str, model: str) -> str | None:
    """``text`` in a new file of the temporary directory (its path), or None when there is nothing to keep."""
    if not text.strip():
        return None
    with tempfile.NamedTemporaryFile("w", prefix=f"mixprec_capture_{model}_", suffix=".log", delete=False,
                                     encoding="utf-8") as f:
        f.write(text)
    return f.name


_UNKNOWN_TYPE = re.compile(r"Found <class '(?P<type>[\w.<>]+)'> in (?P<where>output|input)|"
                           r"Unsupported input type <class '(?P<input>[\w.<>]+)'>")


def capture_hints(model: torch.nn.Module, args: tuple[Any, ...], err: BaseException) -> tuple[str, ...]:
    """The fixes for the causes of a failed export that name their remedy (Hugging Face's cache, ``ModelOutput``
    and ``return_dict``, a tokenizer's dict as input, an encoder-decoder without decoder inputs), most specific
    first; empty when none applies."""
    text = str(err)
    config = getattr(model, "config", None)
    found = _UNKNOWN_TYPE.search(text)
    typ = (found["type"] or found["input"]) if found else ""
    short = typ.rsplit(".", 1)[-1]
    hints: list[str] = []
    if "Cache" in short or (getattr(config, "use_cache", False) and "past_key_values" in text):
        hints.append(f"the model returns its key/value cache ({short or 'past_key_values'}), which torch.export "
                     "cannot capture: pass use_cache=False (model.config.use_cache = False before capturing, or a "
                     "wrapper whose forward calls model(..., use_cache=False))")
    elif found and found["where"] == "output":
        if config is not None and (short.endswith("Output") or typ.startswith("transformers.")):
            hints.append(f"torch.export cannot flatten the model's output type {short}: set "
                         "model.config.return_dict = False (it then returns a tuple of tensors), or wrap the model "
                         "to return the tensors you need (model(...).last_hidden_state)")
        else:
            hints.append(f"the model's output type {typ} is unknown to torch.export: register it "
                         "(torch.export.register_dataclass for a dataclass), or wrap the model to return tensors")
    if (found is not None and (found["input"] or found["where"] == "input")) or any(isinstance(a, Mapping) for a in args):
        hints.append(f"an example input is of type {short or 'dict'} (a tokenizer's output?): pass its tensors as a tuple "
                     "of positional inputs in forward's order, e.g. (enc['input_ids'], enc['attention_mask'])")
    if "return_dict" in text and not any("return_dict" in h for h in hints):
        hints.append("set model.config.return_dict = False (or call with return_dict=False in a wrapper): the "
                     "model then returns a tuple of tensors")
    if "decoder_input_ids" in text or (getattr(config, "is_encoder_decoder", False) and "inputs_embeds" in text):
        hints.append("an encoder-decoder needs decoder inputs: capture its encoder alone (model.get_encoder(), or "
                     "T5EncoderModel), or pass decoder_input_ids positionally in a wrapper")
    return tuple(hints)


def _tensors(val: Any) -> list[Any]:
    if isinstance(val, (list, tuple)):
        return [v for v in val if hasattr(v, "dtype") and hasattr(v, "shape")]
    return [val] if hasattr(val, "dtype") and hasattr(val, "shape") else []


def _shape(t: Any) -> tuple[int, ...]:
    """Concrete sizes; a symbolic (dynamic) size gives its hint. ``int()`` is never called on a SymInt: it would
    specialise the program's dynamic dimension to the example's size."""
    out = []
    for d in t.shape:
        if isinstance(d, torch.SymInt):
            hint = getattr(d.node, "hint", None)
            out.append(int(hint) if hint is not None else 1)
        else:
            out.append(int(d))
    return tuple(out)


def _module_of(node: torch.fx.Node) -> tuple[str, str]:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return "", ""
    path, typ = stack[next(reversed(stack))]
    typ = typ if isinstance(typ, str) else f"{typ.__module__}.{typ.__qualname__}"
    return str(path), typ


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in ')
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


def _is_torch_internal(path: str) -> bool:
    """True for a file of torch itself (this install's, or any ``site-packages/torch/`` of the machine that
    exported the program)."""
    norm = path.replace("\\", "/")
    return os.path.abspath(path).startswith(_TORCH_DIR) or "/site-packages/torch/" in norm \
        or "/dist-packages/torch/" in norm


def source_line(stack_trace: str | None) -> tuple[str, int, str] | None:
    r"""(file, line number, the line's text) of the innermost frame of an FX ``stack_trace`` outside torch:
    the user's line that made the node, not the ``F.linear`` inside ``nn.Linear``. None when there is none.

    >>> trace = ('File "/home/me/model.py", line 12, in forward\n    return self.fc(x)\n'
    ...          '  File "/venv/lib/python3.11/site-packages/torch/nn/modules/linear.py", line 134, in forward\n'
    ...          '    return F.linear(input, self.weight, self.bias)')
    >>> source_line(trace)
    ('/home/me/model.py', 12, 'return self.fc(x)')
    """
    if not stack_trace:
        return None
    lines = stack_trace.splitlines()
    found: tuple[str, int, str] | None = None
    for i, text in enumerate(lines):
        match = _FRAME.match(text)
        if match is None or _is_torch_internal(match["file"]):
            continue
        code = lines[i + 1].strip() if i + 1 < len(lines) and not _FRAME.match(lines[i + 1]) else ""
        line = int(match["line"])
        found = (match["file"], line, code or linecache.getline(match["file"], line).strip())
    return found


def capture(model_or_ep: torch.nn.Module | torch.export.ExportedProgram,
            example_inputs: Sequence[Any] | Any | None = None) -> CapturedGraph:
    """Export (unless given an ExportedProgram) and build the node records and graph.

    Raises CaptureError if the model cannot be exported; nothing is kept in that case.
    """
    if isinstance(model_or_ep, torch.export.ExportedProgram):
        ep = model_or_ep
        if example_inputs is None:
            example_inputs = (ep.example_inputs or ((), {}))[0]
    else:
        if example_inputs is None:
            raise CaptureError("example_inputs are required to export a model: pass a tuple of tensors")
        ep = export_model(model_or_ep, example_inputs)
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)

    sig = ep.graph_signature
    user_inputs = set(sig.user_inputs)
    gm = ep.graph_module
    nodes: dict[str, NodeInfo] = {}
    hidden: set[str] = set()  # parameter/buffer placeholders and get_attr submodules: folded into users
    removed: dict[str, torch.fx.Node] = {}
    tensors: dict[str, list[tuple[tuple[int, ...], torch.dtype, int]]] = {}  # node -> (shape, dtype, bytes)
    op_names: dict[Any, str] = {}
    edges: list[tuple[str, str]] = []

    for node in gm.graph.nodes:
        described = []
        for t in _tensors(node.meta.get("val")):
            shape = _shape(t)
            described.append((shape, t.dtype, numel(shape) * t.dtype.itemsize))
        tensors[node.name] = described
        if node.op == "placeholder" and node.name not in user_inputs or node.op == "get_attr":
            hidden.add(node.name)
            continue
        inputs = node.all_input_nodes
        in_shapes, in_dtypes, in_bytes, params = [], [], [], 0
        for arg in inputs:
            folded = arg.name in hidden
            for shape, dtype, size in tensors[arg.name]:
                in_shapes.append(shape)
                in_dtypes.append(dtype)
                in_bytes.append(size)
                if folded:
                    params += size // dtype.itemsize
            if not folded:
                edges.append((arg.name, node.name))
        if node.op == "placeholder":
            kind, op = "input", "input"
        elif node.op == "output":
            kind, op = "output", "output"
        else:
            kind = node.op
            known = op_names.get(node.target)
            if known is None:
                known = op_names[node.target] = qualified_op_name(node.target)
            op = known
        module, module_type = _module_of(node)
        is_call = kind == "call_function"
        outs = tensors[node.name]
        out_shapes = tuple(d[0] for d in outs)
        info = NodeInfo(
            name=node.name,
            kind=kind,
            op=op,
            module=module,
            module_type=module_type,
            input_shapes=tuple(in_shapes),
            input_dtypes=tuple(in_dtypes),
            output_shapes=out_shapes,
            output_dtypes=tuple(d[1] for d in outs),
            param_count=params,
            flops=estimate_flops(op, in_shapes, out_shapes) if is_call else 0,
            bytes_moved=estimate_bytes(op, in_bytes, [d[2] for d in outs]) if is_call else 0,
            removed_by=REMOVED_BY.get(op) if is_call else None,
            source=source_line(node.meta.get("stack_trace")) if is_call else None,
        )
        nodes[node.name] = info
        if info.removed_by:
            removed[node.name] = node
    graph = nx.DiGraph()
    graph.add_nodes_from((name, vars(info)) for name, info in nodes.items())
    graph.add_edges_from(edges)

    def through_detach(n: torch.fx.Node) -> torch.fx.Node:
        # remove_detach rewires users of a detach to its input
        while n.name in removed and removed[n.name].target == torch.ops.aten.detach.default:
            n = n.all_input_nodes[0]
        return n

    def users_of(n: torch.fx.Node) -> list[str]:
        out: list[str] = []
        for user in n.users:
            if user.name in removed:
                if user.target == torch.ops.aten.detach.default:
                    out.extend(users_of(user))
                continue  # assert nodes vanish
            out.append(user.name)
        return out

    producers: dict[str, tuple[str, ...]] = {}
    consumers: dict[str, tuple[str, ...]] = {}
    module_nodes: dict[str, list[str]] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.name in removed:
            continue
        producers[node.name] = tuple(dict.fromkeys(through_detach(a).name for a in node.all_input_nodes))
        consumers[node.name] = tuple(dict.fromkeys(users_of(node)))
        module_nodes.setdefault(nodes[node.name].module, []).append(node.name)

    return CapturedGraph(
        exported_program=ep,
        nodes=nodes,
        graph=graph,
        producers=producers,
        consumers=consumers,
        module_nodes={k: tuple(v) for k, v in module_nodes.items()},
        example_inputs=args,
    )


def is_autocast_skipped(info: NodeInfo) -> bool:
    """True for the call_function nodes Torch-TensorRT's classifier never visits (getitem, autocast regions)."""
    return info.op in UNCLASSIFIED_OPS
