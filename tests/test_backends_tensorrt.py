"""The TensorRT backend's pure parts, on CPU, against real Torch-TensorRT sources and the runtime's real file formats.

No TensorRT runs here. Compile signatures are read from Torch-TensorRT's own sources in the releases' published
wheels (downloaded once into pytest's cache folder, ``tests/_wheels.py``; those tests are marked ``network``); the
trace files are written the way
``core/runtime/TRTEngineProfiler.cpp`` ``dump_trace`` writes them (its stream formatting reproduced below), and
the layer information follows TensorRT 10's DETAILED inspector JSON with Torch-TensorRT layer names. Those two
are constructed inputs, not captured outputs: they test our reading and arithmetic, not TensorRT.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mixprec_explorer import BackendUnavailable, Explorer, OptionError, OptionTypeError, Settings, SettingsError
from mixprec_explorer.backends import tensorrt as trt_backend
from mixprec_explorer.backends import timing
from mixprec_explorer.backends.base import Profile
from mixprec_explorer.backends.tensorrt import (
    LayerTimeCollector,
    TensorRTBackend,
    build_calibration_dataloader,
    build_compile_kwargs,
    check_compile_options,
    choose_runtime,
    debugger_kwargs,
    engine_name,
    gate_compile_kwargs,
    profile_from_records,
    profile_from_texts,
    read_trace_dir,
    signature_from_source,
    summarize_ms,
    time_runs,
)
from mixprec_explorer.parsers.mapping import map_post_to_pre
from mixprec_explorer.records import EndToEnd

from _models import MLP
from _wheels import Release, release_loader

COMPILER = "dynamo/_compiler.py"


@pytest.fixture(scope="session")
def release(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Release]:
    """version -> the published wheel's sources (downloaded once, cached between runs)."""
    return release_loader(pytestconfig, tmp_path_factory)


AUTOCAST = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16,
                    autocast_excluded_nodes={"^fc2$"}, autocast_excluded_ops={"torch.ops.aten.relu.default"},
                    autocast_max_output_threshold=256.0, autocast_max_depth_of_reduction=64, use_fp32_acc=True)


# -- signatures ------------------------------------------------------------------------------------------------------
def _example(ep, inputs=None, *, arg_inputs=None, device="cuda", use_fp32_acc: bool = False, **kwargs):
    return ep


def test_signature_from_source_equals_inspect() -> None:
    source = inspect.getsource(_example)
    ours = signature_from_source(source, "_example")
    real = inspect.signature(_example)
    assert [(p.name, p.kind) for p in ours.parameters.values()] == [(p.name, p.kind) for p in real.parameters.values()]
    assert repr(ours.parameters["device"].default) == "'cuda'"
    assert ours.parameters["ep"].default is inspect.Parameter.empty


def test_signature_from_source_reads_methods_and_rejects_missing() -> None:
    source = "class Debugger:\n    def __init__(self, log_level='debug', *, logging_dir=None):\n        pass\n"
    assert list(signature_from_source(source, "Debugger.__init__").parameters) == ["self", "log_level", "logging_dir"]
    with pytest.raises(ValueError, match="no function"):
        signature_from_source(source, "compile")
    with pytest.raises(ValueError, match="no class"):
        signature_from_source(source, "Nope.__init__")


# -- option values, checked before any work ----------------------------------------------------------------------
_COMPILE_SNIPPET = """
def compile(exported_program, inputs=None, *, arg_inputs=None, min_block_size: int = 5,
            torch_executed_ops: Optional[Collection[Target]] = None, optimization_level: Optional[int] = None,
            pass_through_build_failures: bool = False, **kwargs): ...
"""


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"build": "cast"}, OptionError, r"build must be one of 'auto', 'autocast', 'cast_graph'; got 'cast'"),
    ({"log_level": "verbose"}, OptionError, r"log_level must be one of 'debug', 'info'"),
    ({"use_python_runtime": "yes"}, OptionTypeError, r"use_python_runtime must be True or False"),
    ({"logging_dir": 3}, OptionTypeError, r"logging_dir must be a path"),
    ({"min_block_size": 0}, OptionError, r"min_block_size must be at least 1; got 0"),
    ({"optimization_level": 7}, OptionError, r"optimization_level must be from 0 to 5"),
    ({"torch_executed_ops": "torch.ops.aten.embedding.default"}, OptionTypeError,
     r"torch_executed_ops must be a collection.*for one item write \{'torch.ops.aten.embedding.default'\}"),
    ({"use_fp32_acc": True}, SettingsError, r"precision setting: set it through Settings"),
    ({"arg_inputs": []}, SettingsError, r"set by the TensorRT backend itself"),
])
def test_compile_option_values_are_refused_without_tensorrt(options, error, message) -> None:
    with pytest.raises(error, match=message):
        TensorRTBackend().check_options("compile", options)  # what compile_plan runs before any work


def test_compile_options_are_checked_against_the_releases_signature() -> None:
    signature = signature_from_source(_COMPILE_SNIPPET)
    assert signature.parameters["min_block_size"].annotation == "int"
    with pytest.raises(OptionTypeError, match=r"2\.13\.0's dynamo.compile has no option 'min_blok_size'; did you "
                                              r"mean 'min_block_size'"):
        check_compile_options({"min_blok_size": 1}, signature, version="2.13.0")
    with pytest.raises(OptionTypeError, match="pass_through_build_failures must be True or False"):
        check_compile_options({"pass_through_build_failures": 1}, signature)
    with pytest.raises(OptionTypeError, match="min_block_size must be an int"):
        check_compile_options({"min_block_size": 2.5}, signature)
    check_compile_options({"min_block_size": 1, "optimization_level": None, "build": "cast_graph",
                           "torch_executed_ops": {"torch.ops.aten.embedding.default"}}, signature)


@pytest.mark.network
@pytest.mark.parametrize("tag", ["2.10.0", "2.13.0"])
def test_common_option_values_pass_the_real_signature(tag: str, release) -> None:
    rel = release(tag)
    good = {"min_block_size": 1, "optimization_level": 3, "num_avg_timing_iters": 1, "workspace_size": 1 << 30,
            "max_aux_streams": None, "tiling_optimization_level": "fast", "torch_executed_modules": ["x"],
            "torch_executed_ops": {"torch.ops.aten.embedding.default"}, "truncate_double": True,
            "log_level": "info", "build": "cast_graph"}
    check_compile_options(good, rel.compile_signature(), version=tag)
    debugger = rel.source("dynamo/debug/_Debugger.py")
    assert all(f"'{level}'" in debugger for level in trt_backend.LOG_LEVELS)


@pytest.mark.network
@pytest.mark.parametrize("tag", ["2.10.0", "2.11.0"])
def test_gating_keeps_everything_before_2_13(tag: str, release) -> None:
    signature = release(tag).compile_signature()
    kwargs, notes = gate_compile_kwargs(AUTOCAST.to_compile_kwargs(), signature, version=tag)
    assert kwargs == AUTOCAST.to_compile_kwargs()
    assert notes == ()
    weak = Settings(use_explicit_typing=False)
    kept, _ = gate_compile_kwargs(weak.to_compile_kwargs(target=tag), signature, version=tag)
    assert kept["use_explicit_typing"] is False


@pytest.mark.network
def test_gating_drops_explicit_typing_on_2_13(release) -> None:
    signature = release("2.13.0").compile_signature()
    assert "use_explicit_typing" not in signature.parameters and "enabled_precisions" not in signature.parameters
    older = AUTOCAST.to_compile_kwargs(target="2.12")  # what a 2.12 call passes: use_explicit_typing=True included
    kwargs, notes = gate_compile_kwargs(older, signature, version="2.13.0")
    assert "use_explicit_typing" not in kwargs
    assert {k: v for k, v in older.items() if k != "use_explicit_typing"} == kwargs
    assert len(notes) == 1 and "use_explicit_typing" in notes[0]
    kwargs, _ = gate_compile_kwargs({"enabled_precisions": {torch.float32}}, signature, version="2.13.0")
    assert kwargs == {}


@pytest.mark.network
@pytest.mark.parametrize("request_kwargs", [{"use_explicit_typing": False}, {"enabled_precisions": {torch.float16}}])
def test_weak_typing_on_2_13_is_an_error(request_kwargs: dict, release) -> None:
    signature = release("2.13.0").compile_signature()
    with pytest.raises(SettingsError, match="removed weak typing"):
        gate_compile_kwargs(request_kwargs, signature, version="2.13.0")


@pytest.mark.network
def test_autocast_before_2_10_is_an_error_but_defaults_are_dropped(release) -> None:
    signature = release("2.9.0").compile_signature()
    assert "enable_autocast" not in signature.parameters
    with pytest.raises(SettingsError, match=r"autocast arrived in Torch-TensorRT 2\.10.*mixprec-explorer\[tensorrt\]"):
        gate_compile_kwargs(AUTOCAST.to_compile_kwargs(), signature, version="2.9.0")
    kwargs, notes = gate_compile_kwargs(Settings().to_compile_kwargs(target="2.10"), signature, version="2.9.0")
    assert set(kwargs) == {"use_explicit_typing", "use_fp32_acc"}
    assert len(notes) == 6  # the six autocast keywords, each at its neutral value


@pytest.mark.network
@pytest.mark.parametrize("tag", ["2.10.0", "2.11.0", "2.12.1", "2.13.0"])
@pytest.mark.parametrize("python_runtime", [False, True])
def test_built_call_names_only_real_parameters(tag: str, python_runtime: bool, release) -> None:
    signature = release(tag).compile_signature()
    named = {n for n, p in signature.parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    loader = build_calibration_dataloader([(torch.ones(2, 8),)])
    kwargs, _ = build_compile_kwargs(AUTOCAST, signature, version=tag, inputs=(torch.ones(2, 8),),
                                     device=torch.device("cuda:0"), calibration=loader,
                                     pass_python_runtime=python_runtime, options={"min_block_size": 1})
    assert set(kwargs) <= named, set(kwargs) - named
    assert kwargs["arg_inputs"][0].shape == (2, 8)
    assert kwargs["autocast_calibration_dataloader"] is loader
    assert kwargs["device"] == torch.device("cuda:0")
    assert kwargs["min_block_size"] == 1
    assert ("use_python_runtime" in kwargs) is python_runtime


@pytest.mark.network
def test_options_that_would_be_lost_or_belong_to_settings_are_refused(release) -> None:
    signature = release("2.11.0").compile_signature()
    with pytest.raises(SettingsError, match="no parameter 'min_blok_size'"):
        build_compile_kwargs(Settings(), signature, options={"min_blok_size": 1})
    with pytest.raises(SettingsError, match="through Settings"):
        build_compile_kwargs(Settings(), signature, options={"use_fp32_acc": True})
    with pytest.raises(SettingsError, match="set by the TensorRT backend"):
        build_compile_kwargs(Settings(), signature, options={"arg_inputs": []})


@pytest.mark.network
@pytest.mark.parametrize("tag", ["2.10.0", "2.11.0", "2.13.0"])
@pytest.mark.parametrize("runtime", ["cpp", "python"])
def test_debugger_arguments_exist_and_pick_the_format_compile_module_accepts(tag: str, runtime: str, release) -> None:
    source = release(tag).source("dynamo/debug/_Debugger.py")
    accepted = signature_from_source(source, "Debugger.__init__").parameters
    kwargs = debugger_kwargs(runtime, "/tmp/x")
    assert set(kwargs) <= set(accepted)
    assert kwargs["save_engine_profile"] is True
    compiler = release(tag).source(COMPILER)
    # compile_module: Python runtime + anything but "cudagraph" raises; C++ runtime + "cudagraph" raises
    assert "Profiling with TREX can only be enabled when using the C++ runtime" in compiler
    assert kwargs["profile_format"] == ("trex" if runtime == "cpp" else "cudagraph")
    # the interpreter builds DETAILED engines under the Debugger: with save_engine_profile (2.10-2.12), any (2.13)
    interpreter = release(tag).source("dynamo/conversion/_TRTInterpreter.py")
    condition = re.search(r"trt\.ProfilingVerbosity\.DETAILED\s+if (.+?)\s+else trt\.ProfilingVerbosity", interpreter)
    assert condition is not None
    assert condition.group(1) in ("self._debugger_config and self._debugger_config.save_engine_profile",
                                  "self._debugger_config")


def test_choose_runtime_follows_torch_tensorrt_rules() -> None:
    # 2.10-2.12: a separate PythonTorchTensorRTModule, chosen by use_python_runtime or a missing C++ runtime
    assert choose_runtime(False, cpp_available=True, separate_python_module=True) == trt_backend.RuntimeChoice("cpp", False)
    assert choose_runtime(True, cpp_available=True, separate_python_module=True).kind == "python"
    assert choose_runtime(True, cpp_available=True, separate_python_module=True).pass_python_runtime
    missing = choose_runtime(False, cpp_available=False, separate_python_module=True)
    assert (missing.kind, missing.pass_python_runtime) == ("python", True) and "not available" in missing.notes[0]
    # 2.13+: merged runtimes; use_python_runtime is deprecated and never passed
    merged = choose_runtime(True, cpp_available=True, separate_python_module=False)
    assert (merged.kind, merged.pass_python_runtime) == ("cpp", False) and "no effect" in merged.notes[0]
    assert choose_runtime(False, cpp_available=False, separate_python_module=False).kind == "python"
    with pytest.raises(ValueError):
        debugger_kwargs("jit", "/tmp")


@pytest.mark.network
def test_runtime_file_names_match_the_shipped_runtime(release) -> None:
    """The engine name the Python module gives, and the trace suffix the C++ runtime library appends to it."""
    wheel = release("2.11.0")
    library = wheel.binary("lib/libtorchtrt_runtime.so")
    assert trt_backend.TRACE_SUFFIX.encode() in library  # core/runtime/TRTEngine.cpp's string literal, compiled in
    module = wheel.source("dynamo/runtime/_TorchTensorRTModule.py")
    assert 'self.name + "_engine" if self.name != "" else "tensorrt_engine"' in module
    assert engine_name("_run_on_acc_0") == "_run_on_acc_0_engine"
    assert engine_name("block.0") == "block_0_engine"  # the runtime slugs dots in file names


# -- calibration -----------------------------------------------------------------------------------------------------
def test_calibration_loader_yields_the_batches_exactly_and_pickles() -> None:
    torch.manual_seed(0)
    batches = [(torch.randn(3, 8), torch.arange(3)), (torch.randn(1, 8), torch.arange(1)),
               (torch.randn(4, 8), torch.arange(4))]
    loader = build_calibration_dataloader(batches)
    for reloaded in (loader, pickle.loads(pickle.dumps(loader)), copy.deepcopy(loader)):
        got = [tuple(batch) for batch in reloaded]  # what Torch-TensorRT's tracer.run(tuple(batch)) receives
        assert len(got) == len(batches)
        for mine, theirs in zip(got, batches):
            assert len(mine) == 2
            assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(mine, theirs))
    assert type(loader.dataset).__name__ == "TensorDataset"


def test_calibration_loader_runs_through_the_exported_model_like_torch_tensorrt() -> None:
    model = MLP().eval()
    x = torch.randn(2, 8)
    ep = torch.export.export(model, (x,))
    batches = [(torch.randn(2, 8),), (torch.randn(2, 8),)]
    outs = []
    with torch.no_grad():
        interpreter = torch.fx.Interpreter(ep.module())
        for batch in build_calibration_dataloader(batches):
            outs.append(interpreter.run(*tuple(batch)))
        expected = [model(*b) for b in batches]
    assert all(torch.allclose(a, b) for a, b in zip(outs, expected))


@pytest.mark.parametrize(("batches", "message"), [
    ([torch.ones(2, 8)], "tuple of positional"),
    ([(torch.ones(2, 8),), (torch.ones(2, 8), torch.ones(2, 8))], "has 2 inputs"),
    ([(torch.ones(2, 8),), (torch.ones(2, 9),)], "only the first dimension"),
    ([(torch.ones(2, 8),), (torch.ones(2, 8, dtype=torch.float16),)], "only the first dimension"),
    ([(torch.ones(2, 8), torch.ones(3, 8))], "disagree on the batch size"),
    ([(3.0,)], "tensors only"),
    ([(torch.tensor(1.0),)], "0-d"),
    ([], "no calibration batches"),
])
def test_calibration_loader_rejects_what_a_tensor_dataset_cannot_hold(batches: list, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        build_calibration_dataloader(batches)


# -- traces written the way the C++ runtime writes them -----------------------------------------------------------------
def _cpp(x: float) -> str:
    """A number as ``std::ostream <<`` prints it by default (6 significant digits, %g)."""
    return format(x, "g")


def dump_trace(layers: list[tuple[str, float, int]], fmt: str, engine: str) -> str:
    """``TRTEngineProfiler.cpp`` ``dump_trace`` (2.10-2.13), line for line: (name, total ms, count) per layer."""
    out = "[\n"
    total = sum(t for _, t, _ in layers)
    running = 0.0
    for name, t, count in layers:
        out += "  {\n"
        out += f'    "name": "{name}",\n'
        if fmt == "perfetto":
            out += '    "ph": "X",\n'
            out += f'    "ts": {_cpp(running * 1000)},\n'
            out += f'    "dur": {_cpp(t * 1000)},\n'
            out += '    "tid": 1,\n'
            out += f'    "pid": "{engine} Engine Execution",\n'
            out += '    "args": {}\n'
        else:
            out += f'    "timeMs": {_cpp(t)},\n'
            out += f'    "averageMs": {_cpp(t / count)},\n'
            out += f'    "percentage": {_cpp(t * 100.0 / total)}\n'
        out += "  },\n"
        running += t
    return out[:-2] + "\n]\n"  # out.seekp(-2, out.cur); out << "\n]" << std::endl;


FUSED = ("[MATRIX_MULTIPLY]-[aten_ops.addmm.default]-[fc1/addmm_mm] + "
         "[ELEMENTWISE]-[aten_ops.addmm.default]-[fc1/addmm_add] + [ACTIVATION]-[aten_ops.relu.default]-[act/relu]")
REFORMAT = f"Reformatting CopyNode for Input Tensor 0 to {FUSED}"
KGEN = "__myl_MulSumAdd_myl0_0"
CONST = "(Unnamed Layer* 3) [Constant]"


def _tensor(name: str, dims: list[int], fmt: str) -> dict:
    return {"Name": name, "Location": "Device", "Dimensions": dims, "Format/Datatype": fmt}


def _layer(name: str, kind: str, inputs: list[dict], outputs: list[dict], tactic: str = "") -> dict:
    return {"Name": name, "LayerType": kind, "Inputs": inputs, "Outputs": outputs, "ParameterType": kind,
            "TacticName": tactic, "TacticValue": "0x0", "StreamId": 0, "Metadata": ""}


def layer_info_engine0() -> str:
    """DETAILED inspector JSON of an FP16 first engine (fc1 + act), TensorRT 10 field names."""
    return json.dumps({"Layers": [
        _layer(REFORMAT, "Reformat", [_tensor("x", [2, 8], "Row major linear FP32")],
               [_tensor("Reformatted Input Tensor 0", [2, 8], "Row major linear FP16 format")]),
        _layer(FUSED, "CaskGemmMatrixMultiply", [_tensor("Reformatted Input Tensor 0", [2, 8], "Row major linear FP16 format")],
               [_tensor("output0", [2, 16], "Row major linear FP16 format")], "sm80_xmma_gemm_f16f16_f16f32"),
        _layer(CONST, "Constant", [], [_tensor("const_out", [16], "Row major linear FP16 format")]),
    ], "Bindings": ["x", "output0"]})


def layer_info_engine1() -> str:
    """A Myelin engine (fc2): the kgen layer's own name says nothing, its tensor names do.

    Bindings are named as Torch-TensorRT names them: inputs after the submodule's placeholders, outputs ``outputN``.
    """
    return json.dumps({"Layers": [
        _layer(KGEN, "kgen", [_tensor("relu", [2, 16], "Row major linear FP16 format"),
                              _tensor("fc2/addmm_1_constant_0 _ fc2/addmm_1_add_broadcast_to_same_shape_lhs_broadcast_constantFloat",
                                      [1, 4], "Row major linear FP32")],
               [_tensor("output0", [2, 4], "Row major linear FP32")], "__myl_MulSumAdd_0xabc"),
    ], "Bindings": ["relu", "output0"]})


RUNS = 8


def write_trace_dir(folder: Path, fmt: str) -> None:
    """Two engines' traces after RUNS profiled forward calls, plus the runtime's other files as decoys."""
    engine0 = [(REFORMAT, 0.04 * RUNS, RUNS), (FUSED, 0.25 * RUNS, RUNS), ("timed layer the inspector lacks", 0.01 * RUNS, RUNS)]
    engine1 = [(KGEN, 0.5 * RUNS, RUNS)]
    for sub, layers in (("_run_on_acc_0", engine0), ("_run_on_acc_2", engine1)):
        engine = engine_name(sub)
        (folder / f"{engine}{trt_backend.TRACE_SUFFIX}").write_text(dump_trace(layers, fmt, engine))
        for decoy in ("_input_profile.trace", "_output_profile.trace", "_enqueue_profile.trace"):
            (folder / f"{engine}{decoy}").write_text('{"traceEvents": [{"name": "x", "ph": "X", "dur": 99999}]}')
        (folder / f"{engine}_layer_information.json").write_text("{}")


@pytest.fixture
def mlp_explorer() -> Explorer:
    torch.manual_seed(0)
    return Explorer(MLP().eval(), (torch.randn(2, 8),))


def _node_modules(ex: Explorer) -> dict[str, str]:
    return {n: i.module for n, i in ex.nodes.items() if i.kind == "call_function"}


def test_dump_trace_emulation_is_the_json_the_cpp_writes(tmp_path: Path) -> None:
    text = dump_trace([("a", 1.5, 3), ("b", 0.5, 3)], "trex", "e")
    assert text.startswith("[\n  {\n    \"name\": \"a\",\n") and text.endswith("  }\n]\n")
    assert json.loads(text) == [{"name": "a", "timeMs": 1.5, "averageMs": 0.5, "percentage": 75},
                                {"name": "b", "timeMs": 0.5, "averageMs": 0.166667, "percentage": 25}]
    perfetto = json.loads(dump_trace([("a", 1.5, 3), ("b", 0.5, 3)], "perfetto", "e"))
    assert perfetto[1] == {"name": "b", "ph": "X", "ts": 1500, "dur": 500, "tid": 1, "pid": "e Engine Execution", "args": {}}


def test_read_trace_dir_reads_only_execution_profiles(tmp_path: Path) -> None:
    write_trace_dir(tmp_path, "trex")
    traces = read_trace_dir(tmp_path, ["_run_on_acc_0", "_run_on_acc_2", "_run_on_acc_4"])
    assert set(traces) == {"_run_on_acc_0", "_run_on_acc_2"}
    assert json.loads(traces["_run_on_acc_2"])[0]["name"] == KGEN


@pytest.mark.parametrize("fmt", ["trex", "perfetto"])
def test_profile_from_texts_gives_per_run_layers_mapped_to_nodes(tmp_path: Path, fmt: str, mlp_explorer: Explorer) -> None:
    write_trace_dir(tmp_path, fmt)
    engines = ["_run_on_acc_0", "_run_on_acc_2"]
    decomposed = mlp_explorer.exported_program.run_decompositions()
    post_to_pre = map_post_to_pre(decomposed.graph_module, _node_modules(mlp_explorer))
    e2e = EndToEnd(median_ms=1.0, p10_ms=0.9, p90_ms=1.2, runs=RUNS)
    profile = profile_from_texts(
        {"_run_on_acc_0": layer_info_engine0(), "_run_on_acc_2": layer_info_engine1()},
        read_trace_dir(tmp_path, engines), runs=RUNS, node_modules=_node_modules(mlp_explorer), end_to_end=e2e,
        device="NVIDIA H100 80GB HBM3", versions={"torch": "2.11"}, post_to_pre=post_to_pre)
    assert isinstance(profile, Profile) and profile.backend == "tensorrt" and profile.mode == "tensorrt"
    everything = {r.name: r for r in (*profile.layers, *profile.unattributed)}
    assert set(everything) == {REFORMAT, FUSED, CONST, KGEN, "timed layer the inspector lacks"}
    fused, kgen = everything[FUSED], everything[KGEN]
    # cumulative totals over RUNS runs -> per run
    assert fused.latency_ms == pytest.approx(0.25, rel=1e-5)
    assert kgen.latency_ms == pytest.approx(0.5, rel=1e-5)
    assert everything[REFORMAT].latency_ms == pytest.approx(0.04, rel=1e-5)
    assert everything[CONST].latency_ms is None  # listed by the inspector, never timed
    assert everything["timed layer the inspector lacks"].extra["timed_only"] is True
    # datatypes from the DETAILED layer information, joined by name
    assert fused.input_dtypes == (torch.float16,) and fused.output_dtypes == (torch.float16,)
    assert kgen.output_dtypes == (torch.float32,)
    assert fused.tactic == "sm80_xmma_gemm_f16f16_f16f32"
    assert fused.extra["engine"] == "_run_on_acc_0" and kgen.extra["engine"] == "_run_on_acc_2"
    # shares over the whole model, and the layer sum the Profile reports
    assert sum(r.share for r in everything.values() if r.share is not None) == pytest.approx(1.0)
    assert profile.layer_sum_ms == pytest.approx(0.04 + 0.25 + 0.01 + 0.5, rel=1e-5)
    # mapping: the fused layer covers fc1's and act's nodes, Myelin's kgen reaches fc2 through tensor names
    assert {"linear", "relu"} <= set(fused.nodes)
    assert kgen.nodes == ("linear_1",)
    assert "timed layer the inspector lacks" in {r.name for r in profile.unattributed}
    assert CONST in {r.name for r in profile.unattributed}
    latency = profile.node_latency_ms()
    assert latency["linear_1"] == pytest.approx(0.5, rel=1e-5)
    assert profile.node_dtypes()["linear_1"] == torch.float32


def test_profile_notes_say_what_is_missing(mlp_explorer: Explorer) -> None:
    e2e = summarize_ms([1.0])
    names_only = json.dumps({"Layers": [FUSED], "Bindings": ["x", "y"]})
    profile = profile_from_texts({"_run_on_acc_0": names_only, "_run_on_acc_2": "{not json"},
                                 {"_run_on_acc_0": "[\n  {\n    \"name\": \"x\"\n  }\n]\n"}, runs=2,
                                 node_modules=_node_modules(mlp_explorer), end_to_end=e2e, device="d", versions={})
    text = " | ".join(profile.notes)
    assert "_run_on_acc_0: layer information has names only" in text
    assert "_run_on_acc_2: its layer information could not be read" in text
    assert "_run_on_acc_0: its execution-profile trace could not be read" in text
    assert "_run_on_acc_2: no layer timings" in text


def test_iprofiler_collector_gives_medians(mlp_explorer: Explorer) -> None:
    collector = LayerTimeCollector()
    for ms in (0.30, 0.10, 0.20):
        collector.report_layer_time(FUSED, ms)
        collector.report_layer_time(REFORMAT, ms / 10)
    records = collector.records()
    assert [r.name for r in records] == [FUSED, REFORMAT]
    assert records[0].latency_ms == pytest.approx(0.20) and records[0].count == 3
    profile = profile_from_records({"_run_on_acc_0": layer_info_engine0()}, {"_run_on_acc_0": records},
                                   node_modules=_node_modules(mlp_explorer), end_to_end=summarize_ms([1.0]),
                                   device="d", versions={})
    fused = next(r for r in profile.layers if r.name == FUSED)
    assert fused.latency_ms == pytest.approx(0.20) and fused.output_dtypes == (torch.float16,)


# -- timing and FX bookkeeping ---------------------------------------------------------------------------------------
def test_time_runs_counts_each_synchronized_call(monkeypatch) -> None:
    calls: list[str] = []
    clock = iter([10.0, 10.002, 20.0, 20.004, 30.0, 30.001])  # a fake clock: seconds, as perf_counter gives them
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    times = time_runs(lambda: calls.append("run"), 3, lambda: calls.append("sync"))
    assert calls == ["sync", "run", "sync"] * 3
    assert times == pytest.approx([2.0, 4.0, 1.0])  # milliseconds
    summary = summarize_ms([4.0, 1.0, 3.0, 2.0])
    assert (summary.median_ms, summary.runs) == (2.5, 4)
    assert summary.p10_ms == pytest.approx(1.3) and summary.p90_ms == pytest.approx(3.7)
    with pytest.raises(ValueError):
        summarize_ms([])


def test_map_post_to_pre_follows_from_node(mlp_explorer: Explorer) -> None:
    decomposed = mlp_explorer.exported_program.run_decompositions()
    mapping = map_post_to_pre(decomposed.graph_module, _node_modules(mlp_explorer))
    targets = {n.name: str(n.target) for n in decomposed.graph.nodes if n.op == "call_function"}
    addmms = sorted(n for n, t in targets.items() if "addmm" in t)
    assert len(addmms) == 2
    assert [mapping[n] for n in addmms] == ["linear", "linear_1"]
    assert mapping["relu"] == "relu"
    assert set(mapping.values()) <= set(_node_modules(mlp_explorer))


# -- without TensorRT --------------------------------------------------------------------------------------------------
needs_no_trt = pytest.mark.skipif(
    importlib.util.find_spec("torch_tensorrt") is not None and torch.cuda.is_available(),
    reason="torch_tensorrt and CUDA are present: the backend is available on this machine",
)


@needs_no_trt
def test_availability_is_false_here_with_the_install_hint() -> None:
    ok, reason = TensorRTBackend().availability()
    assert ok is False
    assert 'pip install "mixprec-explorer[tensorrt]"' in reason
    assert "CUDA GPU" in reason
    assert TensorRTBackend.name == "tensorrt"


@needs_no_trt
def test_compile_and_profile_raise_backend_unavailable(mlp_explorer: Explorer) -> None:
    backend = TensorRTBackend()
    with pytest.raises(BackendUnavailable, match=r'pip install "mixprec-explorer\[tensorrt\]"'):
        backend.compile(mlp_explorer, Settings(), "cuda:0")
    with pytest.raises(BackendUnavailable, match="CUDA GPU"):
        backend.profile(mlp_explorer, None, (), runs=3, warmup=1)  # type: ignore[arg-type]

