"""The TensorRT backend: build with ``torch_tensorrt.dynamo.compile``, profile every engine layer, map it to FX nodes.

What it does, in Torch-TensorRT's terms (read from its source, releases 2.10 to 2.14):

* **compile**: ``Settings.to_compile_kwargs()`` gated on the installed ``dynamo.compile`` signature (2.13 removed
  ``use_explicit_typing`` and ``enabled_precisions``; a keyword it lacks would vanish into ``**kwargs``), the
  explorer's calibration batches as ``autocast_calibration_dataloader`` (a DataLoader over a TensorDataset), all
  inside ``Debugger(save_engine_profile=True, ...)`` so engines are built with ``ProfilingVerbosity.DETAILED``; then
  ``get_layer_info()`` of every ``_run_on_acc_N`` submodule, and profiling switched off again.
* **profile**: C++ runtime: ``enable_profiling(profiling_results_dir=..., profile_format="trex")`` writes
  ``<submodule>_engine_engine_execution_profile.trace`` after every forward, with totals since profiling was
  enabled; Python runtime: our own ``tensorrt.IProfiler`` receives ``report_layer_time(name, ms)`` per layer and
  run. Then ``disable_profiling()`` on every engine and end-to-end timing with device synchronisation.

Nothing here imports torch_tensorrt or tensorrt until a compile is asked for. The pure parts (signature gating,
the calibration DataLoader, reading a trace directory, building a Profile from texts, the timing summary) run on
CPU and are tested there; the parts that call a live TensorRT were written against the source and are not run
in this project's CI.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import inspect
import re
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch

from .._optional import install_hint, require
from ..errors import BackendUnavailable, CompileFailure, OptionError, OptionTypeError, ParseError, SettingsError
from ..ops import SDPA_OP, masked_attention
from ..parsers.assemble import (
    MAPPING_FILE,
    RENAMED_NOTE,
    Assembly,
    assemble,
    assemble_folder,
    mapping_file_text,
    rename_layers,
)
from ..parsers.dataflow import FxView
from ..parsers.mapping import map_post_to_pre
from ..parsers.trace import LAYER_INFO_SUFFIX, TRACE_SUFFIX, engine_name, read_trace_dir, trace_timings
from ..records import EndToEnd, LayerRecord
from ..settings import PRECISION_KEYWORDS, Settings, write_atomic
from ..targets import SUPPORTED, Target, attention_options
from .base import Compiled, Profile
from .options import check_annotated, check_bool, check_int, check_one_of, check_path, check_str_collection
from .timing import device_synchronizer, summarize_ms, time_runs
from .torch_plan import copy_program, move_program, overflowing_fills, to_device

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

    from ..policy import PrecisionPlan
    from .subject import Model

__all__ = [
    "ACC_PREFIX",
    "LAYER_INFO_SUFFIX",
    "TESTED_RELEASES",
    "TRACE_SUFFIX",
    "LayerTimeCollector",
    "RuntimeChoice",
    "TensorRTBackend",
    "TensorRTHandle",
    "build_calibration_dataloader",
    "build_compile_kwargs",
    "build_mode",
    "check_compile_options",
    "choose_runtime",
    "debugger_kwargs",
    "engine_name",
    "gate_compile_kwargs",
    "profile_from_dir",
    "profile_from_records",
    "profile_from_texts",
    "read_trace_dir",
    "rename_profile",
    "signature_from_source",
    "summarize_ms",
    "time_runs",
]

NAME = "tensorrt"
EXTRA = "tensorrt"
#: torch-tensorrt releases whose real ``dynamo.compile`` signature the contract test checks our keywords against.
TESTED_RELEASES = ("2.10.0", "2.11.0", "2.12.1", "2.13.0", "2.14.0")
#: Submodules holding TensorRT engines (``partitioning/_adjacency_partitioner.py``); ``_run_on_gpu_N`` run in PyTorch.
ACC_PREFIX = "_run_on_acc"
#: Warning every 2.10-2.12 ``dynamo.compile`` call emits (its check reads ``kwargs``, which never hold the
#: named parameter), whatever ``use_explicit_typing`` is; silenced around our call only.
_EXPLICIT_TYPING_WARNING = r"`use_explicit_typing` is deprecated"
#: Keywords consumed by the backend itself rather than passed to ``dynamo.compile``.
_BACKEND_OPTIONS = ("use_python_runtime", "log_level", "logging_dir")
_RESERVED = ("inputs", "arg_inputs", "kwarg_inputs", "device", "exported_program")


# -- the compile call: which keywords a release accepts -------------------------------------------------------------
class _SourceDefault:
    """A default read from source text and not evaluated (``_defaults.USE_FP32_ACC``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def signature_from_source(source: str, function: str = "compile") -> inspect.Signature:
    """The signature of a function (``"compile"``) or method (``"Debugger.__init__"``) read from source text.

    Nothing is imported and defaults stay unevaluated (their ``repr`` is the source text), keyword-only
    annotations are kept as text; ``self`` is kept.
    Used to check our keywords against a Torch-TensorRT release's files without importing tensorrt.

    >>> sig = signature_from_source("def compile(ep, inputs=None, *, arg_inputs=None, **kwargs): ...")
    >>> list(sig.parameters)
    ['ep', 'inputs', 'arg_inputs', 'kwargs']
    """
    body: list[ast.stmt] = ast.parse(source).body
    *owners, name = function.split(".")
    for owner in owners:
        classes = [n for n in body if isinstance(n, ast.ClassDef) and n.name == owner]
        if not classes:
            raise ParseError(f"no class {owner!r} in the source")
        body = classes[-1].body
    found = [n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    if not found:
        raise ParseError(f"no function {function!r} in the source")
    args = found[-1].args
    P = inspect.Parameter
    params: list[inspect.Parameter] = []
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for index, (arg, default) in enumerate(zip(positional, defaults)):
        kind = P.POSITIONAL_ONLY if index < len(args.posonlyargs) else P.POSITIONAL_OR_KEYWORD
        params.append(P(arg.arg, kind, default=P.empty if default is None else _SourceDefault(ast.unparse(default))))
    if args.vararg is not None:
        params.append(P(args.vararg.arg, P.VAR_POSITIONAL))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append(P(arg.arg, P.KEYWORD_ONLY, default=P.empty if default is None else _SourceDefault(ast.unparse(default)),
                        annotation=P.empty if arg.annotation is None else ast.unparse(arg.annotation)))
    if args.kwarg is not None:
        params.append(P(args.kwarg.arg, P.VAR_KEYWORD))
    return inspect.Signature(params)


def _keyword_names(signature: inspect.Signature) -> frozenset[str]:
    """Parameters a caller can name (what ``**kwargs`` would otherwise swallow without a word)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(name for name, p in signature.parameters.items() if p.kind in kinds)


def _is_neutral(key: str, value: Any) -> bool:
    """True when leaving ``key`` out gives what ``value`` asks for (so a release without it may drop it)."""
    if key == "use_explicit_typing":
        return value is True  # 2.13+: strong typing is the only mode
    if key == "enabled_precisions":
        return value is None or (len(value) == 1 and next(iter(value)) in (torch.float32, "f32", "float32"))
    if key == "autocast_calibration_dataloader":
        return value is None
    defaults = Settings().to_compile_kwargs()
    return key in defaults and value == defaults[key]


def _missing_keyword_error(key: str, value: Any, version: str) -> SettingsError:
    if key in ("use_explicit_typing", "enabled_precisions"):
        return SettingsError(
            f"torch_tensorrt {version} removed weak typing: dynamo.compile has no {key!r} (Torch-TensorRT 2.13 "
            f"dropped it), so {key}={value!r} cannot be honoured. Use rule-based autocast instead "
            "(Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)), or install "
            "torch-tensorrt<2.13 for weak typing"
        )
    if key.startswith("autocast_") or key == "enable_autocast":
        return SettingsError(
            f"torch_tensorrt {version} has no {key!r} (rule-based autocast arrived in Torch-TensorRT 2.10), so "
            f"{key}={value!r} would be silently ignored; upgrade with {install_hint(EXTRA)} "
            "(torch-tensorrt>=2.10) or leave the autocast settings at their defaults"
        )
    return SettingsError(
        f"torch_tensorrt {version}'s dynamo.compile has no parameter {key!r}; it would be silently ignored"
    )


def gate_compile_kwargs(kwargs: Mapping[str, Any], signature: inspect.Signature, *,
                        version: str = "(installed)") -> tuple[dict[str, Any], tuple[str, ...]]:
    """Keep the keywords ``signature`` names; drop absent ones only where leaving them out changes nothing.

    Returns ``(kwargs to pass, notes)``. Raises :class:`SettingsError` for a keyword the release lacks whose
    value matters (``use_explicit_typing=False`` on 2.13+, any autocast setting before 2.10): ``dynamo.compile``
    takes ``**kwargs`` and would ignore it without a word.
    """
    named = _keyword_names(signature)
    kept: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in kwargs.items():
        if key in named:
            kept[key] = value
        elif _is_neutral(key, value):
            notes.append(f"torch_tensorrt {version} has no {key!r}; left it out ({key}={value!r} is its behaviour)")
        else:
            raise _missing_keyword_error(key, value, version)
    return kept, tuple(notes)


def _inputs_keyword(signature: inspect.Signature) -> str:
    return "arg_inputs" if "arg_inputs" in signature.parameters else "inputs"


def _refuse_reserved(key: str) -> None:
    """SettingsError for a compile option that belongs in Settings or that the backend sets itself."""
    if key in PRECISION_KEYWORDS:
        raise SettingsError(f"{key!r} is a precision setting: set it through Settings, not as a compile option")
    if key in _RESERVED or key == "autocast_calibration_dataloader":
        raise SettingsError(f"{key!r} is set by the TensorRT backend itself; it cannot be passed as an option")


#: ``Debugger(log_level=...)`` values (torch_tensorrt ``dynamo/debug/_Debugger.py``, 2.10-2.14)
LOG_LEVELS = ("debug", "info", "warning", "error", "internal_errors", "graphs")
#: value checks of common ``dynamo.compile`` options beyond their annotated kind (``_defaults.py``, 2.10-2.14)
_OPTION_CHECKS: dict[str, Any] = {
    "min_block_size": lambda w, n, v: check_int(w, n, v, low=1),
    "optimization_level": lambda w, n, v: check_int(w, n, v, low=0, high=5, optional=True),
    "num_avg_timing_iters": lambda w, n, v: check_int(w, n, v, low=0),
    "workspace_size": lambda w, n, v: check_int(w, n, v, low=0),
    "max_aux_streams": lambda w, n, v: check_int(w, n, v, low=0, optional=True),
    "tiling_optimization_level": lambda w, n, v: check_one_of(w, n, v, ("none", "fast", "moderate", "full")),
    "torch_executed_ops": lambda w, n, v: check_str_collection(w, n, v, optional=True),
    "torch_executed_modules": lambda w, n, v: check_str_collection(w, n, v, optional=True),
}


def check_compile_options(options: Mapping[str, Any], signature: inspect.Signature | None = None, *,
                          version: str = "(installed)") -> None:
    """Check the TensorRT backend's compile options by name and value before any work.

    The backend's own (``build``, ``use_python_runtime``, ``log_level``, ``logging_dir``) always; ``dynamo.compile``
    options against ``signature`` (the installed release's: names, and the kinds its annotations give) where given,
    and common ones' ranges (``min_block_size >= 1``, ``optimization_level`` 0-5, ``torch_executed_ops`` a set).
    Raises OptionError / OptionTypeError naming the option and what it takes; SettingsError for a precision setting
    or a keyword the backend sets itself.
    """
    where = "the tensorrt backend's compile"
    named = _keyword_names(signature) if signature is not None else None
    for key, value in options.items():
        if key == "build":
            check_one_of(where, "build", value, BUILDS)
        elif key == "use_python_runtime":
            check_bool(where, key, value)
        elif key == "log_level":
            check_one_of(where, key, value, LOG_LEVELS)
        elif key == "logging_dir":
            check_path(where, key, value, optional=True)
        else:
            _refuse_reserved(key)
            if named is not None and signature is not None:
                if key not in named:
                    close = difflib.get_close_matches(key, sorted(named), n=3)
                    raise OptionTypeError(
                        f"{where}: torch_tensorrt {version}'s dynamo.compile has no option {key!r}"
                        + (f"; did you mean {', '.join(map(repr, close))}?" if close else ""))
                check_annotated(where, key, value, signature.parameters[key].annotation)
            if key in _OPTION_CHECKS:
                _OPTION_CHECKS[key](where, key, value)


def keyword_target(version: str, rtx: bool = False) -> Target | None:
    """The modelled release whose keywords a torch_tensorrt ``version`` takes ("2.11.0" -> 2.11; older ones, which
    still have use_explicit_typing, -> 2.10; newer -> the newest); None where ``version`` names no release."""
    found = re.search(r"(\d+)\.(\d+)", version)
    if found is None:
        return None
    key = (int(found.group(1)), int(found.group(2)))
    known = [r for r in SUPPORTED if tuple(int(x) for x in r.split(".")) <= key]
    return Target(known[-1] if known else SUPPORTED[0], "tensorrt_rtx" if rtx else "tensorrt")


def graph_options(graph: torch.fx.Graph, signature: inspect.Signature, version: str, notes: list[str],
                  given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Compile options ``graph`` needs to build what it computes on the installed release (one that takes them),
    with a note in ``notes``: ``attn_bias_is_causal=False`` for an attention with a non-causal mask. An option the
    user ``given`` is theirs: left alone."""
    target = keyword_target(version)
    if target is None or "attn_bias_is_causal" not in signature.parameters or "attn_bias_is_causal" in (given or {}):
        return {}
    options, note = attention_options(masked_attention(graph.nodes), target.release)
    if note:
        notes.append(note)
    return options


def build_compile_kwargs(settings: Settings, signature: inspect.Signature, *, version: str = "(installed)",
                         inputs: Sequence[Any] = (), device: Any = None, calibration: Any = None,
                         pass_python_runtime: bool = False, options: Mapping[str, Any] | None = None,
                         ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Every keyword of our ``dynamo.compile(ep, **kwargs)`` call for one release, and notes on what was dropped.

    ``calibration`` is the DataLoader (None: none), ``pass_python_runtime`` asks for ``use_python_runtime=True``
    (see :func:`choose_runtime`), ``options`` are further compile options by their Torch-TensorRT names
    (``min_block_size``, ``optimization_level`` ...). Raises :class:`SettingsError` for anything the release
    would silently ignore and for options that belong in :class:`Settings`.
    """
    requested = settings.to_compile_kwargs(target=keyword_target(version))
    for key, value in (options or {}).items():
        _refuse_reserved(key)
        requested[key] = value
    if calibration is not None:
        requested["autocast_calibration_dataloader"] = calibration
    if pass_python_runtime:
        requested["use_python_runtime"] = True
    kwargs, notes = gate_compile_kwargs(requested, signature, version=version)
    kwargs[_inputs_keyword(signature)] = list(inputs)
    if device is not None and "device" in signature.parameters:
        kwargs["device"] = device
    return kwargs, notes


@dataclass(frozen=True)
class RuntimeChoice:
    """Which Torch-TensorRT runtime runs the engines, and how we ask for it."""

    kind: str  #: "cpp" (TorchTensorRTModule over the C++ engine) or "python" (engine driven from Python)
    pass_python_runtime: bool  #: pass ``use_python_runtime=True`` to ``dynamo.compile``
    notes: tuple[str, ...] = ()


def choose_runtime(use_python_runtime: bool, *, cpp_available: bool, separate_python_module: bool) -> RuntimeChoice:
    """The runtime a compile will get, following Torch-TensorRT's own rules.

    ``cpp_available`` is ``torch_tensorrt.ENABLED_FEATURES.torch_tensorrt_runtime``; ``separate_python_module``
    is whether ``dynamo.runtime.PythonTorchTensorRTModule`` exists (2.10-2.12). From 2.13 the runtimes are
    merged: ``use_python_runtime`` is deprecated and has no effect, the Python engine is used only where the
    C++ runtime library is absent. Before 2.13, ``Debugger(save_engine_profile=True)`` tests
    ``settings.use_python_runtime`` (not the library), so we pass it whenever the Python runtime will be used.
    """
    if separate_python_module:
        if use_python_runtime or not cpp_available:
            notes = () if use_python_runtime else (
                "the Torch-TensorRT C++ runtime is not available here; engines run on the Python runtime",)
            return RuntimeChoice("python", True, notes)
        return RuntimeChoice("cpp", False)
    if not cpp_available:
        notes = () if use_python_runtime else (
            "the Torch-TensorRT C++ runtime is not available here; engines run on the Python runtime",)
        return RuntimeChoice("python", False, notes)
    notes = ("use_python_runtime has no effect in this torch_tensorrt (runtimes merged in 2.13); "
             "the C++ runtime runs the engines",) if use_python_runtime else ()
    return RuntimeChoice("cpp", False, notes)


def debugger_kwargs(runtime: str, logging_dir: str | Path, log_level: str = "info") -> dict[str, Any]:
    """Arguments of ``torch_tensorrt.dynamo.Debugger`` that make engines DETAILED and set up their profiling.

    ``save_engine_profile=True`` is what raises ``ProfilingVerbosity`` to DETAILED (``_TRTInterpreter.py``), the
    only way to get per-layer datatypes. The C++ runtime takes "trex"; the Python runtime accepts only
    "cudagraph" there (``compile_module`` raises ValueError otherwise).
    """
    if runtime not in ("cpp", "python"):
        raise OptionError(f"runtime must be 'cpp' or 'python', got {runtime!r}")
    return {
        "log_level": log_level,
        "save_engine_profile": True,
        "profile_format": "trex" if runtime == "cpp" else "cudagraph",
        "logging_dir": str(logging_dir),
    }


# -- calibration ----------------------------------------------------------------------------------------------------
def build_calibration_dataloader(batches: Iterable[Any], device: str | torch.device | None = None) -> DataLoader:
    """A picklable DataLoader that yields exactly the given batches, for ``autocast_calibration_dataloader``.

    Torch-TensorRT runs ``tracer.run(tuple(batch))`` per batch and deep-copies and pickles its settings (the
    DataLoader included) into every engine, so this is a plain DataLoader over one TensorDataset, with a
    batch sampler that reproduces each batch's rows. Every batch is a tuple of tensors with the same number
    of inputs, each input with the same trailing shape and dtype across batches. ``device``: where the tensors
    go (the exported program's device; Torch-TensorRT does not move them).
    """
    from torch.utils.data import DataLoader, TensorDataset

    rows: list[tuple[torch.Tensor, ...]] = []
    for index, batch in enumerate(batches):
        if isinstance(batch, torch.Tensor) or not isinstance(batch, (tuple, list)):
            raise SettingsError(
                f"calibration batch {index} is a {type(batch).__name__}; give each batch as a tuple of positional "
                "input tensors, e.g. [(x1,), (x2,)]"
            )
        rows.append(tuple(batch))
    if not rows:
        raise SettingsError("no calibration batches: pass an iterable of input tuples, e.g. [(x,)]")
    arity = len(rows[0])
    sizes: list[int] = []
    for index, batch in enumerate(rows):
        where = f"calibration batch {index}"
        if len(batch) != arity:
            raise SettingsError(f"{where} has {len(batch)} inputs, batch 0 has {arity}")
        first = None
        for position, t in enumerate(batch):
            if not isinstance(t, torch.Tensor):
                raise SettingsError(
                    f"{where}, input {position} is a {type(t).__name__}: a TensorDataset holds tensors only")
            if t.dim() == 0:
                raise SettingsError(f"{where}, input {position} is a 0-d tensor: it has no batch dimension")
            ref = rows[0][position]
            if t.shape[1:] != ref.shape[1:] or t.dtype != ref.dtype:
                raise SettingsError(
                    f"{where}, input {position} is {tuple(t.shape)} {t.dtype}, batch 0's is {tuple(ref.shape)} "
                    f"{ref.dtype}: Torch-TensorRT concatenates calibration outputs along dim 0, so only the "
                    "first dimension may differ"
                )
            if first is None:
                first = t.shape[0]
            elif t.shape[0] != first:
                raise SettingsError(f"{where}: its inputs disagree on the batch size ({first} vs {t.shape[0]})")
        sizes.append(int(first or 0))
    target = torch.device(device) if device is not None else None
    columns = []
    for position in range(arity):
        column = torch.cat([batch[position].detach() for batch in rows], dim=0)
        columns.append(column.to(target) if target is not None else column)
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    sampler = [list(range(start, start + size)) for start, size in zip(starts, sizes)]
    return DataLoader(TensorDataset(*columns), batch_sampler=sampler)


# -- what the runtime wrote, and the Profile (assembled in parsers/assemble.py) -----------------------------------
def profile_from_dir(directory: str | Path, explorer: Model | None) -> Profile:
    """The :class:`Profile` of a folder the C++ runtime wrote with ``enable_profiling(..., profile_format="trex")``.

    Maps the layers onto ``explorer``'s graph (None: the graph the folder's mapping file carries;
    :func:`~mixprec_explorer.parsers.assemble.assemble_folder`) and returns what :meth:`TensorRTBackend.profile`
    returns, without TensorRT or a GPU. The folder records no end-to-end latency: ``end_to_end`` is NaN with
    ``runs=0`` and a note says so. Raises ParseError naming the folder when it holds no layer information,
    ProfileMismatch when its engines were built from another graph.
    """
    target = FxView.of(explorer.captured) if explorer is not None else None
    nan = float("nan")
    return _profile(assemble_folder(Path(directory), target), end_to_end=EndToEnd(nan, nan, nan, 0),
                    device="recorded elsewhere", versions={})


def write_mapping_file(folder: Path, handle: TensorRTHandle) -> Path:
    """Write what mapping ``folder``'s engines needs beyond the folder itself (post-decomposition names, and for a
    cast-graph build its graph and node renames), so ``ex.load_profile(folder)`` maps as the live profile did."""
    view = FxView.of(handle.graph.captured) if handle.graph is not None else None
    return write_atomic(folder / MAPPING_FILE, mapping_file_text(handle.post_to_pre, handle.rename, view))


def profile_from_records(layer_infos: Mapping[str, str], timings: Mapping[str, Sequence[LayerRecord]], *,
                         node_modules: Mapping[str, str], end_to_end: EndToEnd, device: str,
                         versions: Mapping[str, str], post_to_pre: Mapping[str, str] | None = None,
                         notes: Iterable[str] = (), view: FxView | None = None) -> Profile:
    """A :class:`Profile` from each engine's layer-information JSON and per-run layer timings
    (:func:`~mixprec_explorer.parsers.assemble.assemble`: keys are submodule names in execution order; with ``view``
    layers are placed through the engine's dataflow, without it by name only)."""
    assembly = assemble(layer_infos, timings, node_modules=node_modules, post_to_pre=post_to_pre, notes=notes,
                        view=view)
    return _profile(assembly, end_to_end=end_to_end, device=device, versions=versions)


def profile_from_texts(layer_infos: Mapping[str, str], traces: Mapping[str, str], *, runs: int,
                       node_modules: Mapping[str, str], end_to_end: EndToEnd, device: str,
                       versions: Mapping[str, str], post_to_pre: Mapping[str, str] | None = None,
                       notes: Iterable[str] = (), view: FxView | None = None) -> Profile:
    """A :class:`Profile` from the texts the C++ runtime gives: ``get_layer_info()`` JSON and trex/perfetto traces.

    ``runs`` is the number of forward calls since profiling was (re)enabled: the traces hold totals over them.
    """
    notes = list(notes)
    timings = trace_timings(traces, runs, notes)
    return profile_from_records(layer_infos, timings, node_modules=node_modules, end_to_end=end_to_end,
                                device=device, versions=versions, post_to_pre=post_to_pre, notes=notes, view=view)


def _profile(assembly: Assembly, *, end_to_end: EndToEnd, device: str, versions: Mapping[str, str]) -> Profile:
    """The backend's :class:`Profile` of an assembly, with the timing and the device it was measured on."""
    return Profile(backend=NAME, device=device, versions=dict(versions), layers=assembly.layers,
                   unattributed=assembly.unattributed, end_to_end=end_to_end, mode="tensorrt", notes=assembly.notes,
                   match_score=assembly.match_score)


# -- the Python runtime's layer times (a tensorrt.IProfiler) ---------------------------------------------------
class LayerTimeCollector:
    """Collects ``report_layer_time(layer_name, ms)`` calls, as TensorRT's ``IProfiler`` makes them, per layer."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        self.samples.setdefault(str(layer_name), []).append(float(ms))

    def records(self) -> tuple[LayerRecord, ...]:
        """One record per layer, in first-reported order: median ms per run, count of reports."""
        total = sum(statistics.median(v) for v in self.samples.values()) if self.samples else 0.0
        out = []
        for index, (name, values) in enumerate(self.samples.items()):
            median = statistics.median(values)
            out.append(LayerRecord(
                name=name, latency_ms=median, share=median / total if total > 0 else None, count=len(values),
                extra={"format": "iprofiler", "index": index, "min_ms": min(values), "max_ms": max(values)},
            ))
        return tuple(out)


def _profiler_class(trt: Any) -> type:
    """``LayerTimeCollector`` as a real ``tensorrt.IProfiler`` subclass (needs TensorRT)."""

    class _LayerTimes(LayerTimeCollector, trt.IProfiler):
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            LayerTimeCollector.__init__(self)

    return _LayerTimes


# -- FX bookkeeping ---------------------------------------------------------------------------------------------------
def _node_modules(explorer: Model) -> dict[str, str]:
    return {name: info.module for name, info in explorer.nodes.items() if info.kind == "call_function"}


# -- building through the cast graph, and failures ----------------------------------------------------------------
BUILDS = ("auto", "autocast", "cast_graph")
#: what ``build="auto"`` (the default) picked, in the compiled notes
AUTO_CAST_GRAPH_NOTE = "build='auto' built the cast graph by itself"


def build_mode(plan: PrecisionPlan, build: str = "auto", graph: torch.fx.Graph | None = None) -> tuple[str, str]:
    """How the TensorRT backend builds ``plan``: ``("autocast" or "cast_graph", note)``; the note is "" unless
    ``build="auto"`` chose the cast graph.

    "auto" builds the cast graph where Torch-TensorRT's autocast would break the plan, which it builds with autocast
    off (``lowering/passes/rule_based_autocast.py``, 2.10-2.14):

    * it turns integer tensors into floats (``plan.integer_casts``): where an op needs the integers (embedding
      indices) the build or the run fails, elsewhere integer values change without a word (FP16 holds integers
      exactly only up to 2048);
    * the pass itself raises on a node (``plan.failures``: a chunk/split/unbind output re-typed with
      ``node.meta["val"].to(...)``, "'tuple' object has no attribute 'to'");
    * a node it runs in FP16/BF16 fills with a value beyond that type (``graph`` given: Hugging Face's
      ``finfo(float32).min`` masks; :func:`~mixprec_explorer.backends.torch_plan.overflowing_fills`), which the
      cast graph writes as the type's extreme.

    The cast graph applies the same plan's casts to floating-point tensors only. "autocast" and "cast_graph" are
    taken as given.
    """
    check_one_of("the tensorrt backend's compile", "build", build, BUILDS)
    if build != "auto":
        return build, ""
    casts = tuple(getattr(plan, "integer_casts", ()))
    failures = tuple(getattr(plan, "failures", ()))
    fills = overflowing_fills(graph, plan) if graph is not None else []
    if not (casts or failures or fills):
        return "autocast", ""

    def listed(nodes: Sequence[str]) -> str:
        nodes = list(dict.fromkeys(nodes))
        return ", ".join(nodes[:4]) + (f" and {len(nodes) - 4} more" if len(nodes) > 4 else "")

    why = []
    if casts:
        failing = [c.node for c in casts if c.fails]
        effect = (f"which fails at {listed(failing)}" if failing
                  else f"which changes their values at {listed([c.node for c in casts])}")
        why.append(f"autocast would turn integer tensors into floats ({len(casts)} in plan.integer_casts), {effect}")
    if failures:
        why.append(f"Torch-TensorRT's autocast pass raises at {listed([n for n, _ in failures])} "
                   f"({failures[0][1]}; plan.failures)")
    if fills:
        name, value, dtype = fills[0]
        why.append(f"{listed([n for n, _, _ in fills])} fill with {value:.4g}, beyond {str(dtype).replace('torch.', '')} "
                   "(Torch-TensorRT's constant folding raises 'value cannot be converted ... without overflow'; "
                   "the cast graph writes the type's extreme)")
    return "cast_graph", (f"{AUTO_CAST_GRAPH_NOTE}: " + "; ".join(why) + "; the same plan's casts were applied to "
                          "floating-point tensors only and compiled with autocast off (build='autocast' forces "
                          "autocast)")


_EXECUTING = re.compile(r"While executing %(?P<node>\w+) : .*?call_function\[target=(?P<op>[\w.]+)\]")


def _cast_build(explorer: Model, plan: PrecisionPlan,
                device: str) -> tuple[Model, Settings, dict[str, str], tuple[str, ...]]:
    """The plan's casts applied by mixprec_explorer (floats only): (the cast program as a Subject, its settings,
    rename, notes)."""
    from .cast_graph import NODE_KEY, ROLE_KEY, cast_program_with_notes, settings_for_cast_program
    from .subject import subject_of

    settings = plan.settings
    program, notes = cast_program_with_notes(explorer, settings, device=device, plan=plan)
    rename = {}
    for n in program.graph.nodes:
        custom = n.meta.get("custom") or {}
        if n.op == "call_function" and NODE_KEY in custom:
            # a cast the plan inserted is written "<cast>" + its consumer: charged to it, its dtype not the node's
            rename[n.name] = ("<cast>" if custom.get(ROLE_KEY) == "cast" else "") + custom[NODE_KEY]
    return subject_of(program), settings_for_cast_program(settings), rename, notes


def rename_profile(profile: Profile, rename: Mapping[str, str]) -> Profile:
    """``profile`` measured on a cast program, its layers' nodes renamed to the captured graph's
    (:func:`~mixprec_explorer.parsers.assemble.rename_layers`)."""
    return dataclasses.replace(profile, layers=rename_layers(profile.layers, rename),
                               notes=(*profile.notes, RENAMED_NOTE))


#: what Torch-TensorRT raises when an engine builds but gets no execution context (TRTEngine.cpp)
_NO_CONTEXT = re.compile(r"exec_ctx|execution context", re.IGNORECASE)
_ATTENTION = re.compile(r"attention|attn", re.IGNORECASE)


def _low_attention_pattern(explorer: Model, plan: PrecisionPlan) -> str | None:
    """One regex for every attention module the plan runs in low precision, layer numbers as any number, or None
    (``bert.encoder.layer.0.attention.self.query`` gives ``^bert\\.encoder\\.layer\\.\\d+\\.attention(\\.|$)``)."""
    tops = set()
    for name, info in explorer.nodes.items():
        rec = plan.get(name)
        if rec is None or rec.dtype in (None, torch.float32) or not info.module:
            continue
        parts = info.module.split(".")
        hit = next((k for k, part in enumerate(parts) if _ATTENTION.search(part)), None)
        if hit is not None:
            tops.add(r"\.".join(r"\d+" if p.isdigit() else re.escape(p) for p in parts[:hit + 1]))
    if not tops:
        return None
    return "^" + (tops.pop() if len(tops) == 1 else "(" + "|".join(sorted(tops)) + ")") + r"(\.|$)"


#: the fused attention ops torch's SDPA decomposes to on a GPU (cuDNN, memory-efficient, flash) and SDPA itself
_ATTENTION_OP = re.compile(r"scaled_dot_product_\w*attention")


def _attention_ops_pattern(explorer: Model) -> str | None:
    """One regex for the modules that call ``scaled_dot_product_attention`` themselves, exactly (their own ops, not
    their projections), layer numbers as any number: ``^h\\.\\d+\\.attn$`` for GPT-2; None without SDPA."""
    modules = {
        r"\.".join(r"\d+" if p.isdigit() else re.escape(p) for p in info.module.split("."))
        for info in explorer.nodes.values() if info.op == SDPA_OP and info.module}
    if not modules:
        return None
    return "^" + (modules.pop() if len(modules) == 1 else "(" + "|".join(sorted(modules)) + ")") + "$"


def _attention_remedies(text: str, op: str, explorer: Model) -> list[str]:
    """Remedies for a failure in a fused attention converter (GPT-2 and BART under FP16, Torch-TensorRT 2.11)."""
    if not _ATTENTION_OP.search(op or ""):
        return []
    out = []
    if "add_cast" in text:
        out.append("Torch-TensorRT 2.11-2.13's fused attention converter (conversion/impl/attention.py, "
                   "scaled_dot_product_efficient_attention, which cuDNN attention reuses) hands a constant attention "
                   "mask (a causal mask folded to a constant) to add_cast when its dtype is not the query's; fixed "
                   "upstream after 2.13 (pytorch/TensorRT#4370). Decompose attention into matmul and softmax: "
                   "ex.compile(..., decompose_attention=True) (Torch-TensorRT 2.11+)")
    else:
        out.append("decompose attention into matmul and softmax, away from the fused attention converter: "
                   "ex.compile(..., decompose_attention=True) (Torch-TensorRT 2.11+)")
    pattern = _attention_ops_pattern(explorer)
    if pattern:
        out.append("or keep the attention op in FP32 (its projections stay low): autocast_excluded_nodes="
                   f"{{{pattern!r}}}")
    return out


def compile_failure(err: Exception, built: Model, explorer: Model, plan: PrecisionPlan,
                    rename: Mapping[str, str], build: str, log: Path) -> CompileFailure:
    """Torch-TensorRT's exception as a :class:`CompileFailure` naming the FX node it stopped at and the remedies."""
    text = str(err)
    found = _EXECUTING.search(text)
    node = op = None
    if found:
        name, op = found.group("node"), found.group("op")
        name = rename.get(name, name).removeprefix("<cast>")
        node = name if name in explorer.nodes else None
    first = (text.strip().splitlines() or [type(err).__name__])[0]
    remedies: list[str] = []
    settings = plan.settings
    failing = [c for c in getattr(plan, "integer_casts", ()) if getattr(c, "fails", False)]
    if failing and build != "cast_graph":
        remedies.append("autocast casts integer tensors here (" + ", ".join(sorted({c.node for c in failing})[:4])
                        + "): build the plan's casts yourself with ex.compile(settings, backend='tensorrt', "
                        "build='cast_graph')")
    if build != "cast_graph":
        raising = list(dict.fromkeys(n for n, _ in getattr(plan, "failures", ())))
        if raising:
            remedies.append(f"Torch-TensorRT's autocast pass raises at {', '.join(raising[:4])} (plan.failures); the "
                            "cast graph compiles with autocast off: ex.compile(settings, backend='tensorrt', "
                            "build='cast_graph')")
        fills = list(dict.fromkeys(n for n, _, _ in overflowing_fills(explorer.captured.graph_module.graph, plan)))
        if fills:
            remedies.append(f"{', '.join(fills[:4])} fill with a value beyond the low type (a finfo(float32).min "
                            "mask); the cast graph writes the type's extreme: ex.compile(settings, "
                            "backend='tensorrt', build='cast_graph')")
    if node is not None:
        module = explorer.nodes[node].module
        remedies.append(f"run {explorer.nodes[node].op} in PyTorch: ex.compile(..., torch_executed_ops="
                        f"{{'{explorer.nodes[node].op}'}})")
        if module and settings.enable_autocast:
            remedies.append(f"keep its module in FP32: ex.exclude({module!r})")
    remedies.extend(_attention_remedies(text, op or "", explorer))
    attention = _low_attention_pattern(explorer, plan) if _NO_CONTEXT.search(text) else None
    if attention:
        remedies.append("the engine built but TensorRT could not create its execution context; on TensorRT-RTX 1.4 "
                        "an FP16 attention block does this (Myelin's cuDNN graph fails; BERT-base, "
                        "docs/live-engine.md): keep attention in FP32, autocast_excluded_nodes="
                        f"{{{attention!r}}}")
    where = f" at FX node {node!r} ({op})" if node else (f" at {op}" if op else "")
    message = (f"Torch-TensorRT could not build this plan{where}: {type(err).__name__}: {first}\n"
               + "".join(f"  remedy: {r}\n" for r in remedies) + f"  Torch-TensorRT's log: {log}")
    return CompileFailure(message, node=node, op=explorer.nodes[node].op if node else (op or ""),
                          remedies=tuple(remedies))


# -- the backend ------------------------------------------------------------------------------------------------------
@dataclass
class TensorRTHandle:
    """What :meth:`TensorRTBackend.compile` keeps for profiling: the module and each engine's layer information."""

    module: torch.nn.Module  #: the compiled fx.GraphModule returned by ``dynamo.compile``
    engines: tuple[str, ...]  #: ``_run_on_acc_N`` submodule names, in graph order
    layer_info: dict[str, str]  #: submodule -> ``get_layer_info()`` JSON (DETAILED)
    runtime: str  #: "cpp" or "python"
    logging_dir: str  #: the Debugger's folder (``torch_tensorrt_logging.log``, engine profiles)
    fallback: tuple[str, ...] = ()  #: ``_run_on_gpu_N`` submodules that run in PyTorch
    graph: Any = None  #: for build="cast_graph": the Subject of the cast program the engines were built from
    rename: dict[str, str] = field(default_factory=dict)  #: cast-program node -> the captured node it belongs to
    post_to_pre: dict[str, str] = field(default_factory=dict)  #: post- -> pre-decomposition node names
    versions: dict[str, str] = field(default_factory=dict)


def _load() -> SimpleNamespace:
    """torch_tensorrt and tensorrt, or BackendUnavailable naming what to install and that a CUDA GPU is needed."""
    from .tensorrt_rtx import block_broken_plugin

    blocked = block_broken_plugin()
    try:
        torch_tensorrt = require("torch_tensorrt", EXTRA)
        trt = require("tensorrt", EXTRA)
    except BackendUnavailable as err:
        raise BackendUnavailable(f"the TensorRT backend needs torch_tensorrt with TensorRT and a CUDA GPU: {err}") from err
    except Exception as err:  # torch_tensorrt's import runs native checks that can fail many ways
        raise BackendUnavailable(
            f"the TensorRT backend needs torch_tensorrt with TensorRT ({install_hint(EXTRA)}) and a CUDA GPU: "
            f"importing it failed with {type(err).__name__}: {err}"
        ) from err
    return SimpleNamespace(torch_tensorrt=torch_tensorrt, tensorrt=trt, plugin_blocked=blocked)


def _cuda_device(device: str | torch.device | None) -> str:
    if device is None or str(device) == "cuda":
        return f"cuda:{torch.cuda.current_device()}"
    dev = torch.device(device)
    if dev.type != "cuda":
        raise BackendUnavailable(f"TensorRT builds engines for CUDA devices only; got device {str(device)!r}")
    return str(dev)


def _versions(mods: SimpleNamespace) -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "torch_tensorrt": str(getattr(mods.torch_tensorrt, "__version__", "unknown")),
        "tensorrt": str(getattr(mods.tensorrt, "__version__", "unknown")),
        "tensorrt_package": str(getattr(mods.tensorrt, "_package_name", "tensorrt")),
        "cuda": str(torch.version.cuda or "unknown"),
    }


def is_rtx(mods: SimpleNamespace) -> bool:
    """True when the TensorRT in use is TensorRT-RTX (strong typing only, no BF16, Myelin kernels)."""
    return getattr(mods.tensorrt, "_package_name", "tensorrt") == "tensorrt_rtx"


def _enable_trace(module: Any, directory: Path) -> None:
    """C++ runtime: a fresh ``TRTEngineProfiler`` (totals restart) writing traces into ``directory``."""
    module.enable_profiling(profiling_results_dir=str(directory), profile_format="trex")


def _attach_profiler(module: Any, profiler: Any) -> None:
    """Python runtime: make ``profiler`` the execution context's IProfiler.

    2.10-2.12 ``PythonTorchTensorRTModule.enable_profiling(profiler)`` sets it only when the context has none,
    so the caller disables profiling first (a fresh context). 2.13+ drives the Python ``TRTEngine`` through
    ``TorchTensorRTModule``; its ``enable_profiling()`` keeps a profiler already on the context.
    """
    if "profiler" in inspect.signature(module.enable_profiling).parameters:
        module.enable_profiling(profiler=profiler)
    else:
        module.get_engine().context.profiler = profiler
        module.enable_profiling()


class TensorRTBackend:
    """Torch-TensorRT: compile a plan's settings into engines, then per-layer dtypes and latency per FX node."""

    name = NAME

    def availability(self) -> tuple[bool, str]:
        """(True, "") where torch_tensorrt, tensorrt and a CUDA device are all present; else False and why."""
        try:
            _load()
        except BackendUnavailable as err:
            return False, str(err)
        if not torch.cuda.is_available():
            return False, (f"the TensorRT backend needs a CUDA GPU; torch.cuda.is_available() is False here "
                           f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
                           f"torch_tensorrt itself is installed ({install_hint(EXTRA)})")
        return True, ""

    def check_options(self, method: str, options: Mapping[str, Any]) -> None:
        """Raise for a compile option whose name or value the build would refuse (:func:`check_compile_options`,
        against the installed ``dynamo.compile`` where torch_tensorrt imports); profile takes none."""
        if method != "compile":
            return
        signature, version = None, "(installed)"
        try:
            ttrt = _load().torch_tensorrt
            signature = inspect.signature(ttrt.dynamo.compile)
            version = str(getattr(ttrt, "__version__", version))
        except BackendUnavailable:
            pass  # names are checked when the backend is there; values of the known options now
        check_compile_options(options, signature, version=version)

    def _require(self) -> SimpleNamespace:
        mods = _load()
        if not torch.cuda.is_available():
            raise BackendUnavailable(self.availability()[1])
        return mods

    def compile(self, explorer: Model, plan: PrecisionPlan, device: str, **options: Any) -> Compiled:
        """Build the engines for ``plan.settings``; raises BackendUnavailable where TensorRT or CUDA is missing.

        ``plan`` is the caller's: Torch-TensorRT decides the precisions itself from the settings and calibration,
        and a build through the cast graph applies ``plan``'s casts.

        Options: ``build`` ("auto", the default: the cast graph where autocast would cast integer tensors, see
        :func:`build_mode`; "autocast"; "cast_graph"), ``use_python_runtime`` (bool), ``log_level`` (the
        Debugger's, default "info"),
        ``logging_dir`` (default: a new temporary folder), and any ``dynamo.compile`` option by name.
        """
        mods = self._require()
        ttrt = mods.torch_tensorrt
        settings = plan.settings
        device = _cuda_device(device)
        build, chose = build_mode(plan, options.pop("build", "auto"), explorer.captured.graph_module.graph)
        user_explorer, user_settings = explorer, settings
        rename: dict[str, str] = {}
        cast_notes: tuple[str, ...] = ()
        if build == "cast_graph":
            explorer, settings, rename, cast_notes = _cast_build(explorer, plan, device)
        use_python = bool(options.pop("use_python_runtime", False))
        log_level = str(options.pop("log_level", "info"))
        logging_dir = str(options.pop("logging_dir", None) or tempfile.mkdtemp(prefix="mixprec_trt_"))
        version = str(getattr(ttrt, "__version__", "(installed)"))
        signature = inspect.signature(ttrt.dynamo.compile)
        runtime = choose_runtime(
            use_python,
            cpp_available=bool(ttrt.ENABLED_FEATURES.torch_tensorrt_runtime),
            separate_python_module=hasattr(importlib.import_module("torch_tensorrt.dynamo.runtime"),
                                           "PythonTorchTensorRTModule"),
        )
        notes = list(runtime.notes) + list(settings.warnings()) + ([chose] if chose else [])
        if build == "cast_graph":
            notes.append("build='cast_graph': mixprec_explorer applied the plan's casts to floating-point tensors "
                         "only and compiled the result with autocast off (strong typing)")
            notes.extend(cast_notes)
        if getattr(mods, "plugin_blocked", False):
            from .tensorrt_rtx import PLUGIN_NOTE

            notes.append(PLUGIN_NOTE)
        installed = keyword_target(version, rtx=is_rtx(mods))
        settings.check_target(installed)  # weak typing after 2.12 or on TensorRT-RTX
        if settings.target is not None and installed is not None and settings.target != installed:
            notes.append(f"these settings were made for {settings.target.spec}; compiled with the installed "
                         f"{installed.spec} ({version})")
        batches = explorer.calibration_batches
        loader = None
        if settings.enable_autocast and batches:
            loader = build_calibration_dataloader(batches, device)
            notes.append(f"calibration: {len(batches)} batches passed as autocast_calibration_dataloader")
        elif settings.enable_autocast:
            notes.append("no calibration batches (explorer.calibrate was not called): autocast's range and "
                         "reduction-depth rules are inactive")
        options = {**graph_options(explorer.captured.graph_module.graph, signature, version, notes, options),
                   **options}
        inputs = to_device(tuple(explorer.example_inputs), device)
        kwargs, gated = build_compile_kwargs(settings, signature, version=version, inputs=inputs,
                                             device=torch.device(device), calibration=loader,
                                             pass_python_runtime=runtime.pass_python_runtime, options=options)
        notes.extend(gated)
        # Torch-TensorRT mutates the program it compiles (autocast rewrites, nn_module_stack pops): use a copy.
        ep = move_program(explorer.exported_program, device)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_EXPLICIT_TYPING_WARNING, category=DeprecationWarning)
                with ttrt.dynamo.Debugger(**debugger_kwargs(runtime.kind, logging_dir, log_level)):
                    module = ttrt.dynamo.compile(ep, **kwargs)
        except Exception as err:
            raise compile_failure(err, explorer, user_explorer, plan, rename, build,
                                  Path(logging_dir) / "torch_tensorrt_logging.log") from err
        compile_s = time.perf_counter() - start
        children = [name for name, _ in module.named_children()]
        engines = tuple(n for n in children if ACC_PREFIX in n)  # compile_module's own test
        fallback = tuple(n for n in children if "_run_on_gpu" in n)
        layer_info = {}
        for name in engines:
            sub = getattr(module, name)
            layer_info[name] = sub.get_layer_info()
            sub.disable_profiling()  # the Debugger left it on; profile() turns it on around its own runs
        if not engines:
            notes.append(f"no TensorRT engine was built: every op runs in PyTorch. Torch-TensorRT only builds "
                         f"blocks of at least min_block_size={kwargs.get('min_block_size', 5)} convertible ops; "
                         "for a small model pass min_block_size=1")
        notes.append(f"built {len(engines)} TensorRT engine(s) ({', '.join(engines) or 'none'}); "
                     f"{len(fallback)} submodule(s) run in PyTorch" + (f" ({', '.join(fallback)})" if fallback else ""))
        handle = TensorRTHandle(module=module, engines=engines, layer_info=layer_info, runtime=runtime.kind,
                                logging_dir=logging_dir, fallback=fallback,
                                post_to_pre=self._post_to_pre(explorer, ttrt, notes, kwargs),
                                versions=_versions(mods),
                                graph=explorer if build == "cast_graph" else None, rename=rename)
        return Compiled(backend=NAME, device=device, settings=user_settings, compile_s=compile_s,
                        handle=handle, notes=tuple(notes))

    @staticmethod
    def _post_to_pre(explorer: Model, ttrt: Any, notes: list[str],
                     kwargs: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Decompose a copy with Torch-TensorRT's table to learn which pre-decomposition node each op came from
        (the table the compile used: ``decompose_attention`` and ``enable_experimental_decompositions`` as passed)."""
        try:
            get = importlib.import_module("torch_tensorrt.dynamo.lowering").get_decompositions
            known = inspect.signature(get).parameters
            table = get(**{k: v for k, v in (kwargs or {}).items()
                           if k in ("enable_experimental_decompositions", "decompose_attention") and k in known})
            decomposed = copy_program(explorer.exported_program).run_decompositions(table)
            return map_post_to_pre(decomposed.graph_module, _node_modules(explorer))
        except Exception as err:  # best effort: attribution then goes by module path alone
            notes.append(f"could not map post-decomposition node names ({type(err).__name__}: {err}); "
                         "layers are attributed by module path")
            return {}

    def profile(self, explorer: Model, compiled: Compiled, inputs: tuple[Any, ...], runs: int,
                warmup: int) -> Profile:
        """Per-layer datatypes and latency of every engine, then end-to-end latency with profiling off."""
        mods = self._require()
        handle = compiled.handle
        if not isinstance(handle, TensorRTHandle):
            raise OptionTypeError(f"not a TensorRT compile (handle is {type(handle).__name__})")
        runs, warmup = max(1, int(runs)), max(0, int(warmup))
        device = compiled.device
        args = to_device(tuple(inputs) if inputs else tuple(explorer.example_inputs), device)
        module = handle.module
        engines = [(name, getattr(module, name)) for name in handle.engines]

        def forward() -> Any:
            return module(*args)

        sync = device_synchronizer(device)

        source = "the C++ runtime's trex trace" if handle.runtime == "cpp" else "a tensorrt.IProfiler (median)"
        notes: list[str] = [f"layer latency per run from {source} over {runs} runs after {warmup} warm-up runs; "
                            "end-to-end timed with profiling off"]
        with torch.no_grad():
            for _, sub in engines:
                sub.disable_profiling()
            time_runs(forward, warmup, sync)
            trace_dir: Path | None = None
            if handle.runtime == "cpp":
                trace_dir = Path(tempfile.mkdtemp(prefix="profile_", dir=handle.logging_dir))
                for _, sub in engines:
                    _enable_trace(sub, trace_dir)
                profiled = time_runs(forward, runs, sync)
                for _, sub in engines:
                    sub.disable_profiling()
                traces = read_trace_dir(trace_dir, handle.engines)
                timings = trace_timings(traces, runs, notes)
                write_mapping_file(trace_dir, handle)
                notes.append(f"recorded in {trace_dir}: ex.load_profile() maps that folder on any machine")
            else:
                profiler_cls = _profiler_class(mods.tensorrt)
                profilers = {}
                for name, sub in engines:
                    sub.disable_profiling()
                    profilers[name] = profiler_cls()
                    _attach_profiler(sub, profilers[name])
                profiled = time_runs(forward, runs, sync)
                for _, sub in engines:
                    sub.disable_profiling()
                timings = {name: p.records() for name, p in profilers.items()}
            time_runs(forward, max(1, warmup), sync)  # fresh execution contexts after disable_profiling
            end_to_end = summarize_ms(time_runs(forward, runs, sync))
        graph = handle.graph if handle.graph is not None else explorer
        profile = profile_from_records(
            handle.layer_info, timings, node_modules=_node_modules(graph), end_to_end=end_to_end,
            device=torch.cuda.get_device_name(torch.device(device)), versions=handle.versions,
            post_to_pre=handle.post_to_pre, notes=notes, view=FxView.of(graph.captured),
        )
        profile = rename_profile(profile, handle.rename) if handle.rename else profile
        # profiled_run_ms: the wall time of a run with the profiler on (end_to_end's runs have it off)
        return dataclasses.replace(profile, recorded_in=str(trace_dir) if trace_dir else None,
                                   profiled_run_ms=summarize_ms(profiled).median_ms)
