"""Contract: every keyword and method the TensorRT backend uses exists in each supported torch-tensorrt release.

For each release in :data:`mixprec_explorer.backends.tensorrt.TESTED_RELEASES` the wheel is downloaded from the
package index at test time, once, into pytest's cache folder (``tests/_wheels.py``) and its Python sources are read
from the zip and parsed with ``ast``: tensorrt is never imported. The keywords come from the backend's own
``build_compile_kwargs`` / ``debugger_kwargs``, so a change there is checked here too.
Skips, with the reason, when the index cannot be reached.
"""

from __future__ import annotations

import ast
import inspect

import pytest
import torch

from mixprec_explorer import Settings, SettingsError
from mixprec_explorer.backends.tensorrt import (
    ACC_PREFIX,
    TESTED_RELEASES,
    build_calibration_dataloader,
    build_compile_kwargs,
    choose_runtime,
    debugger_kwargs,
)

from _wheels import Release, download, wheel_folder

pytestmark = pytest.mark.network

SETTINGS = {
    "default": Settings(),
    "autocast_fp16": Settings(enable_autocast=True, autocast_low_precision_type=torch.float16,
                              autocast_excluded_nodes={"^fc2$"}, autocast_excluded_ops={"torch.ops.aten.relu.default"},
                              autocast_max_output_threshold=100.0, autocast_max_depth_of_reduction=64),
    "autocast_bf16_fp32acc": Settings(enable_autocast=True, autocast_low_precision_type=torch.bfloat16,
                                      use_fp32_acc=True),
    "weak_typing": Settings(use_explicit_typing=False),
}


@pytest.fixture(scope="module", params=TESTED_RELEASES)
def release(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Release:
    return Release(request.param, download(request.param, wheel_folder(request.config, tmp_path_factory)))


def _named(signature: inspect.Signature) -> set[str]:
    return {n for n, p in signature.parameters.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def _runtime(release: Release, use_python_runtime: bool):
    return choose_runtime(use_python_runtime, cpp_available=True,
                          separate_python_module=release.has("dynamo/runtime/_PythonTorchTensorRTModule.py"))


def test_wheel_is_the_release_it_claims(release: Release) -> None:
    version = release.source("_version.py")
    assert f'__version__ = "{release.version}"' in version


@pytest.mark.parametrize("name", list(SETTINGS))
@pytest.mark.parametrize("use_python_runtime", [False, True])
def test_every_compile_keyword_exists(release: Release, name: str, use_python_runtime: bool) -> None:
    signature = release.compile_signature()
    settings = SETTINGS[name]
    runtime = _runtime(release, use_python_runtime)
    loader = build_calibration_dataloader([(torch.ones(2, 8),)]) if settings.enable_autocast else None
    try:
        kwargs, _ = build_compile_kwargs(settings, signature, version=release.version, inputs=(torch.ones(2, 8),),
                                         device=torch.device("cuda:0"), calibration=loader,
                                         pass_python_runtime=runtime.pass_python_runtime,
                                         options={"min_block_size": 1})
    except SettingsError:
        # refused only where the release really lacks the keyword (weak typing after 2.13)
        assert name == "weak_typing" and "use_explicit_typing" not in signature.parameters
        return
    missing = set(kwargs) - _named(signature)
    assert not missing, f"torch-tensorrt {release.version} dynamo.compile has no {sorted(missing)}"
    assert signature.parameters["exported_program"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    if name == "weak_typing":
        assert kwargs["use_explicit_typing"] is False


def test_debugger_takes_our_arguments(release: Release) -> None:
    accepted = _named(release.signature("dynamo/debug/_Debugger.py", "Debugger.__init__"))
    for kind in ("cpp", "python"):
        assert set(debugger_kwargs(kind, "/tmp/x")) <= accepted
    assert "from .debug._Debugger import Debugger" in release.source("dynamo/__init__.py")
    compiler = release.source("dynamo/_compiler.py")
    assert "Profiling with TREX can only be enabled when using the C++ runtime" in compiler
    assert '"engine_visualization_profile"' in compiler


def test_runtime_modules_have_the_methods_we_call(release: Release) -> None:
    path = "dynamo/runtime/_TorchTensorRTModule.py"
    enable = _named(release.signature(path, "TorchTensorRTModule.enable_profiling"))
    assert {"profiling_results_dir", "profile_format"} <= enable
    for method in ("disable_profiling", "get_layer_info"):
        release.signature(path, f"TorchTensorRTModule.{method}")
    assert 'self.name + "_engine"' in release.source(path)
    if release.has("dynamo/runtime/_PythonTorchTensorRTModule.py"):  # 2.10-2.12
        python = "dynamo/runtime/_PythonTorchTensorRTModule.py"
        assert "profiler" in _named(release.signature(python, "PythonTorchTensorRTModule.enable_profiling"))
        for method in ("disable_profiling", "get_layer_info"):
            release.signature(python, f"PythonTorchTensorRTModule.{method}")
    else:  # 2.13+: the Python engine behind TorchTensorRTModule keeps a profiler already on its context
        release.signature(path, "TorchTensorRTModule.get_engine")
        engine = release.source("dynamo/runtime/_TRTEngine.py")
        enable_src = ast.get_source_segment(engine, _method(engine, "TRTEngine", "enable_profiling"))
        assert enable_src is not None and "if not self.context.profiler:" in enable_src
        assert _method(engine, "TRTEngine", "context") is not None


def _method(source: str, cls: str, name: str) -> ast.FunctionDef | None:
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == name:
                    return item
    return None


def test_package_exports_what_we_reach_for(release: Release) -> None:
    assert "ENABLED_FEATURES" in release.source("__init__.py")
    lowering = release.signature("dynamo/lowering/_decompositions.py", "get_decompositions")
    assert all(p.default is not inspect.Parameter.empty for p in lowering.parameters.values())
    assert "get_decompositions" in release.source("dynamo/lowering/__init__.py")
    # compile_module builds an engine for each submodule whose name holds "_run_on_acc"; fallbacks are "_run_on_gpu_"
    assert f'if "{ACC_PREFIX}" not in' in release.source("dynamo/_compiler.py")
    assert '"_run_on_gpu_"' in release.source("dynamo/partitioning/_adjacency_partitioner.py")
