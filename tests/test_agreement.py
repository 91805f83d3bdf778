"""Agreement with Torch-TensorRT itself: for every release modelled (2.10-2.14) the explorer's plan classifies each
node exactly as that release's own ``nodeclassifier.py`` / ``rule_based_autocast.py`` do, and names the node where
that pass raises.

The pass sources are carried in ``tests/data/torch_tensorrt_passes`` (BSD-3-Clause, see SOURCES.md), unmodified:
the published 2.10.0-2.14.0 wheels hold byte-identical files (git blob ids in :data:`RELEASE_BLOBS`, checked
against each downloaded wheel by the network test below), so each release's source is run once per distinct
blob set. They run as written; torch_tensorrt itself needs CUDA to import, so its few modules the passes import
for other things than the decisions (a dtype enum and a settings class for isinstance checks and annotations)
are empty stand-ins, and ``ConverterRegistry.qualified_name_or_str`` is its four lines re-typed (a string stays
itself, else ``torch.fx.node._get_qualified_name``; the network test checks the wheels' text).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import hashlib
import operator
import sys
import traceback
import types
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.examples import reference_autocast_model, reference_explicit_model
from mixprec_explorer.policy import CLASSIFIED_RULES
from mixprec_explorer.settings import module_pattern
from mixprec_explorer.targets import SUPPORTED

from _data import PASSES
from _models import cases
from _wheels import Release, release_loader

#: The pass files each release's wheel holds (git blob ids, read from the 2.10.0, 2.11.0, 2.12.0, 2.12.1, 2.13.0 and
#: 2.14.0 wheels of torch-tensorrt and torch-tensorrt-rtx, and tags v2.10.0-v2.13.0 and main of pytorch/TensorRT).
_PASSES = {"nodeclassifier.py": "cf79de79eb89f3968963862852f1c09a0c0d924c",
           "rule_based_autocast.py": "698e0af4b470a162d137e3daf5d384cfccde952b",
           "remove_detach.py": "bd6df161802b643bc378d4b6869406189481cc2e",
           "remove_assert_nodes.py": "890391e280d65e1b1a39649cff7fa1d677f9acb8"}
#: pass_utils.py: 2.12 added an import for its complex-number helpers; the two functions the passes call
#: (trace_intermediate_node_outputs, clean_up_graph_after_modifications) are the same text in every release.
_PASS_UTILS = {"2.10": "478c221872ad0513927a9961cf7dbb5a7f4f8cb0", "2.11": "478c221872ad0513927a9961cf7dbb5a7f4f8cb0",
               "2.12": "2a51bbac6fdec4dc5b271c76a69a73cba0006353", "2.13": "2a51bbac6fdec4dc5b271c76a69a73cba0006353",
               "2.14": "2a51bbac6fdec4dc5b271c76a69a73cba0006353"}
RELEASE_BLOBS = {release: _PASSES for release in SUPPORTED}
CARRIED_PASS_UTILS = "478c221872ad0513927a9961cf7dbb5a7f4f8cb0"  #: the 2.10/2.11 file: it imports no torch_tensorrt
_MODULES = ("pass_utils", "nodeclassifier", "remove_detach", "remove_assert_nodes", "rule_based_autocast")
_PACKAGE = "torch_tensorrt.dynamo.lowering.passes"


def blob_id(data: bytes) -> str:
    """git's id of a file's content (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _carried(name: str) -> bytes:
    return (PASSES / f"{name}.txt").read_bytes()


def _qualified_name_or_str(target: Any) -> str:
    """``ConverterRegistry.qualified_name_or_str`` (``conversion/_ConverterRegistry.py``, 2.10-2.14)."""
    if isinstance(target, str):
        return target
    return torch.fx.node._get_qualified_name(target)


@contextlib.contextmanager
def upstream_passes() -> Iterator[dict[str, types.ModuleType]]:
    """The carried pass modules, executed under their own package name; sys.modules is restored afterwards."""
    saved = {k: v for k, v in sys.modules.items() if k == "torch_tensorrt" or k.startswith("torch_tensorrt.")}
    for key in saved:
        del sys.modules[key]
    made: list[str] = []

    def module(name: str, **attrs: Any) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        made.append(name)
        return m

    try:
        module("torch_tensorrt")
        module("torch_tensorrt._enums", dtype=type("dtype", (), {}))
        module("torch_tensorrt.dynamo")
        module("torch_tensorrt.dynamo._settings", CompilationSettings=type("CompilationSettings", (), {}))
        module("torch_tensorrt.dynamo.conversion")
        module("torch_tensorrt.dynamo.conversion._ConverterRegistry", ConverterRegistry=type(
            "ConverterRegistry", (), {"qualified_name_or_str": staticmethod(_qualified_name_or_str)}))
        module("torch_tensorrt.dynamo.lowering")
        module(_PACKAGE).__path__ = []
        loaded = {}
        for name in _MODULES:
            m = module(f"{_PACKAGE}.{name}", __package__=_PACKAGE)
            path = PASSES / f"{name}.py.txt"
            exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), m.__dict__)
            loaded[name] = m
        yield loaded
    finally:
        for name in made:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def passes() -> Iterator[dict[str, types.ModuleType]]:
    with upstream_passes() as loaded:
        yield loaded


class UpstreamFailure(Exception):
    """Torch-TensorRT's pass raised: the exception and the node it was classifying or rewriting."""

    def __init__(self, error: BaseException, node: str | None) -> None:
        super().__init__(f"{type(error).__name__} at {node}: {error}")
        self.error, self.node = error, node


def run_upstream(passes: dict[str, types.ModuleType], ep: torch.export.ExportedProgram, settings: Settings,
                 batches: list[tuple[torch.Tensor, ...]]) -> tuple[set[str], set[str]]:
    """(low, high) node names as ``pre_export_lowering`` decides them: the calibration trace of ``ep.module()``, then
    remove_detach, remove_assert_nodes and rule_based_autocast on a copy of the program's graph."""
    ep = copy.deepcopy(ep)
    config = types.SimpleNamespace(
        enable_autocast=settings.enable_autocast, autocast_low_precision_type=settings.autocast_low_precision_type,
        autocast_excluded_nodes=set(settings.autocast_excluded_nodes),
        autocast_excluded_ops=set(settings.autocast_excluded_ops),
        autocast_max_output_threshold=settings.autocast_max_output_threshold,
        autocast_max_depth_of_reduction=settings.autocast_max_depth_of_reduction,
        autocast_calibration_dataloader=batches or None)
    config.autocast_intermediate_node_outputs = passes["pass_utils"].trace_intermediate_node_outputs(
        ep.module(), config.autocast_calibration_dataloader,
        [torch.ops.higher_order.wrap_with_autocast, operator.getitem])
    rewrite = passes["rule_based_autocast"]
    decided: dict[str, set[str]] = {}

    class Recording(rewrite.NodeClassifier):  # type: ignore[name-defined,misc]
        def run(self, ref_outputs_dict: Any = None) -> Any:
            low, high = super().run(ref_outputs_dict)
            decided["low"], decided["high"] = set(low), set(high)
            return low, high

    original, rewrite.NodeClassifier = rewrite.NodeClassifier, Recording
    try:
        gm = ep.graph_module
        for step in (passes["remove_detach"].remove_detach, passes["remove_assert_nodes"].remove_assert_nodes,
                     rewrite.rule_based_autocast):
            gm = step(gm, config)
    except Exception as err:
        raise UpstreamFailure(err, _failing_node(err)) from err
    finally:
        rewrite.NodeClassifier = original
    return decided["low"], decided["high"]


def _failing_node(err: BaseException) -> str | None:
    """The node the classifier loop or the rewrite loop held when ``err`` was raised (outermost such frame)."""
    for frame, _ in traceback.walk_tb(err.__traceback__):
        if str(PASSES) in frame.f_code.co_filename and frame.f_code.co_name in ("run", "rule_based_autocast"):
            node = frame.f_locals.get("node")
            if isinstance(node, torch.fx.Node):
                return node.name
    return None


# -- the models ----------------------------------------------------------------------------------------------------
class Chunky(torch.nn.Module):
    """Ops with several outputs (chunk, max over a dim): their nodes' metadata is a list or tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 16)

    def forward(self, x):
        a, b = self.fc(x).chunk(2, dim=-1)
        m, _ = a.max(dim=-1)
        return a * b, m


class StandardizedConv(torch.nn.Module):
    """A convolution whose weight is an op's output (weight standardisation), after a recorded activation."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(4, 3, 3, 3))

    def forward(self, x):
        w = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
        return torch.nn.functional.conv2d(torch.relu(x), w)


def _bert_tiny():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32)
    bert = transformers.BertModel(config).eval()

    class Bert(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids):
            return self.bert(input_ids=ids, return_dict=False)[0]

    return Bert().eval(), (torch.randint(0, 100, (2, 8)),)


def _hold_out() -> list[tuple[str, Any]]:
    def resnet18():
        tv = pytest.importorskip("torchvision")
        return tv.models.resnet18(weights=None).eval(), (torch.randn(1, 3, 32, 32),)

    def mobilenet_v3_small():
        tv = pytest.importorskip("torchvision")
        return tv.models.mobilenet_v3_small(weights=None).eval(), (torch.randn(1, 3, 64, 64),)

    def vit_tiny():
        timm = pytest.importorskip("timm")
        return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8).eval(), (
            torch.randn(1, 3, 32, 32),)

    return [("resnet18", resnet18), ("mobilenet_v3_small", mobilenet_v3_small), ("bert_tiny", _bert_tiny),
            ("vit_tiny", vit_tiny), ("chunky", lambda: (Chunky().eval(), (torch.randn(2, 8),))),
            ("standardized_conv", lambda: (StandardizedConv().eval(), (torch.randn(1, 3, 8, 8),)))]


def _models() -> list[Any]:
    test_models = [pytest.param((lambda m=m, i=i: (m, i)), id=name) for name, m, i in cases()]
    test_models += [pytest.param(reference_autocast_model, id="reference_autocast"),
                    pytest.param(reference_explicit_model, id="reference_explicit")]
    hold_out = [pytest.param(make, id=name, marks=pytest.mark.slow) for name, make in _hold_out()]
    return test_models + hold_out


def _batches(inputs: tuple[torch.Tensor, ...], count: int) -> list[tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(1)
    return [tuple(x + 0.5 * torch.randn(x.shape, generator=gen) if x.is_floating_point()
                  else torch.randint(0, 100, x.shape, generator=gen) for x in inputs) for _ in range(count)]


def _grid(ex: Explorer, calibrated: bool) -> list[Settings]:
    """FP16; BF16 with a module and an op excluded; with calibration, tight range and depth limits too."""
    fp16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    first_module = next((m for m in ex.modules if m), "")
    common_op = next(iter(ex.ops()))
    grid = [fp16, fp16.replace(autocast_low_precision_type=torch.bfloat16,
                               autocast_excluded_nodes={module_pattern(first_module)},
                               autocast_excluded_ops={common_op})]
    if calibrated:
        maxima = sorted(s.max_abs for s in ex.calibration.values() if s.numel and s.dtype.is_floating_point)
        grid.append(fp16.replace(autocast_max_output_threshold=maxima[len(maxima) // 2] if maxima else 512.0,
                                 autocast_max_depth_of_reduction=8))
    return grid


def _decisions(plan: Any) -> tuple[set[str], set[str]]:
    low = {r.name for r in plan if r.rule == "low_precision"}
    return low, {r.name for r in plan if r.rule in CLASSIFIED_RULES and r.rule != "low_precision"}


@pytest.mark.parametrize("make", _models())
@pytest.mark.parametrize("batches", [1, 2], ids=["one_batch", "two_batches"])
def test_the_plan_classifies_as_each_release_does(make: Any, batches: int, passes) -> None:
    torch.manual_seed(0)
    model, inputs = make()
    ex = Explorer(model, inputs)
    calibration = _batches(tuple(inputs), batches)
    checked = 0
    for calibrated in (False, True):
        if calibrated:
            ex.calibrate(calibration)
        for settings in _grid(ex, calibrated):
            try:
                upstream: tuple[set[str], set[str]] | UpstreamFailure = run_upstream(
                    passes, ex.exported_program, settings, calibration if calibrated else [])
            except UpstreamFailure as failure:
                upstream = failure
            for release in sorted({r for r in SUPPORTED if RELEASE_BLOBS[r] == _PASSES}):  # one blob set so far
                plan = ex.plan(settings.replace(target=release))
                if isinstance(upstream, UpstreamFailure):
                    assert plan.failures, f"{release}: Torch-TensorRT raises {upstream}; the plan predicts nothing"
                    node, why = plan.failures[0]
                    assert (node, type(upstream.error).__name__ in why) == (upstream.node, True), (release, upstream)
                    assert any(node in w for w in plan.warnings())
                else:
                    assert not plan.failures, (release, plan.failures)
                    low, high = _decisions(plan)
                    assert (low, high) == upstream, (release, low ^ upstream[0], high ^ upstream[1])
                checked += 1
    assert checked >= 5 * len(SUPPORTED)


def test_carried_sources_are_the_releases_own() -> None:
    for name, blob in _PASSES.items():
        assert blob_id(_carried(f"{name}")) == blob, name
    assert blob_id(_carried("pass_utils.py")) == CARRIED_PASS_UTILS == _PASS_UTILS["2.11"]
    assert set(RELEASE_BLOBS) == set(SUPPORTED) == set(_PASS_UTILS)


def _functions(source: str, names: tuple[str, ...]) -> dict[str, str]:
    return {n.name: ast.dump(n) for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name in names}


WHEELS = [("torch-tensorrt", v) for v in ("2.10.0", "2.11.0", "2.12.0", "2.12.1", "2.13.0", "2.14.0")] + [
    ("torch-tensorrt-rtx", v) for v in ("2.11.0", "2.12.0", "2.12.1", "2.13.0", "2.14.0")]


@pytest.fixture(scope="session")
def release(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory):
    return release_loader(pytestconfig, tmp_path_factory)


@pytest.mark.network
@pytest.mark.parametrize("package, version", WHEELS, ids=[f"{p}-{v}" for p, v in WHEELS])
def test_every_release_ships_these_passes(package: str, version: str, release) -> None:
    wheel: Release = release(version, package)
    minor = ".".join(version.split(".")[:2])
    for name, blob in RELEASE_BLOBS[minor].items():
        assert blob_id(wheel.source(f"dynamo/lowering/passes/{name}").encode()) == blob, (version, name)
    utils = wheel.source("dynamo/lowering/passes/pass_utils.py")
    assert blob_id(utils.encode()) == _PASS_UTILS[minor]
    used = ("trace_intermediate_node_outputs", "clean_up_graph_after_modifications")
    assert _functions(utils, used) == _functions(_carried("pass_utils.py").decode(), used)
    registry = wheel.source("dynamo/conversion/_ConverterRegistry.py")
    assert ("if isinstance(target, str):\n            return target\n        else:\n"
            "            return cast(str, _get_qualified_name(target))") in registry
