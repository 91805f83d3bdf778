"""The live engine on a GPU: TensorRT-RTX (or TensorRT) compiles, profiles and lands every layer on FX nodes.

Runs where torch_tensorrt imports with a CUDA device (``LIVE_TESTS=1 bash benchmarks/gpu_run.sh ...`` on the lent
H200 runs them); elsewhere every test skips with the backend's own reason.
"""

from __future__ import annotations

import pytest
import torch

from mixprec_explorer import Explorer, Settings, examples
from mixprec_explorer.backends import available_backends
from mixprec_explorer.costs import op_basename

OK, WHY = available_backends().get("tensorrt", (False, "not registered"))
pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt,
              pytest.mark.skipif(not OK, reason=f"no live TensorRT here: {WHY}")]
FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
MEASURED = {"conv2d", "linear", "batch_norm", "relu_", "layer_norm", "gelu", "scaled_dot_product_attention"}


def _check(ex: Explorer, settings: Settings, **options) -> None:
    compiled = ex.compile(settings, backend="tensorrt", device="cuda", isolate=False, **options)
    profile = ex.profile(compiled, runs=10)
    assert profile.attributed_share is not None and profile.attributed_share >= 0.95
    latency, dtypes = profile.node_latency_ms(), profile.node_dtypes()
    plan = ex.plan(settings)
    for name, info in ex.nodes.items():
        if info.kind == "call_function" and op_basename(info.op) in MEASURED:
            assert latency.get(name, 0) > 0, name
            assert dtypes.get(name) == plan[name].dtype, (name, dtypes.get(name), plan[name].dtype)
    # the folder it recorded maps the same anywhere (a cast-graph build through the graph kept beside the traces)
    assert profile.recorded_in is not None
    reloaded = ex.load_profile(profile.recorded_in)
    assert reloaded.node_dtypes() == dtypes
    assert reloaded.attributed_share == pytest.approx(profile.attributed_share, abs=0.01)


def test_resnet50_fp16_with_exclusions_on_the_live_engine() -> None:
    model, inputs = examples.resnet50(batch=8)
    ex = Explorer(model.cuda(), tuple(x.cuda() for x in inputs))
    _check(ex, FP16.replace(autocast_excluded_nodes=frozenset({r"^layer4(\.|$)", "^fc$"})))


def test_reference_explicit_typing_on_the_live_engine() -> None:
    model, inputs = examples.reference_explicit_model()
    ex = Explorer(model.cuda(), tuple(x.cuda() for x in inputs))
    _check(ex, Settings(), min_block_size=1)


def test_encoder_cast_graph_builds_what_autocast_cannot() -> None:
    """Autocast, when forced, fails on the encoder (integer indices cast); the default build="auto" builds the cast
    graph by itself, and its overlay lands on the captured graph's own nodes. Layer norms are kept in FP32: in FP16 the engine computes
    their statistics in FP32 anyway (docs/live-engine.md)."""
    from mixprec_explorer.errors import CompileFailure

    model, inputs = examples.transformer_encoder(layers=2, batch=8, seq=64)
    ex = Explorer(model.cuda(), tuple(x.cuda() for x in inputs))
    settings = FP16.replace(autocast_excluded_ops=frozenset({"torch.ops.aten.layer_norm.default"}))
    with pytest.raises(CompileFailure) as failed:
        ex.compile(settings, backend="tensorrt", device="cuda", isolate=False, build="autocast")
    assert any("cast_graph" in r for r in failed.value.remedies)
    _check(ex, settings)


def test_the_widget_compiles_and_profiles_on_the_live_engine() -> None:
    """What a user does in the notebook on a GPU: click a node to keep it FP32, press Compile & profile (the default
    backend, in the worker process); every measured-op node then shows the live engine's dtype and latency, the
    clicked node FP32, and the engine view sits beside the graph."""
    pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget (test extra)")
    from _widgets import click

    from mixprec_explorer.widget.app import WidgetApp

    model, inputs = examples.resnet50(batch=8)
    ex = Explorer(model.cuda(), tuple(x.cuda() for x in inputs))
    ex.settings = FP16
    app = WidgetApp(ex, group_by_module=None)
    click(app, "linear")  # fc
    assert ex.settings.autocast_excluded_nodes == {"^fc$"}
    app.compile_button.click()
    assert app.errors == [], app.errors
    assert "profiled on" in app.status.value and "tensorrt" in app.status.value, app.status.value
    profile = ex.last_profile
    assert profile is not None and profile.backend == "tensorrt"
    latency, dtypes = profile.node_latency_ms(), profile.node_dtypes()
    ran = [n for n, i in ex.nodes.items() if i.kind == "call_function" and op_basename(i.op) in MEASURED]
    assert ran and all(latency.get(n, 0) > 0 for n in ran), [n for n in ran if not latency.get(n)]
    assert dtypes["linear"] == torch.float32 and dtypes["conv2d"] == torch.float16
    app.color_by_choice.value = "measured_dtype"
    assert app.errors == [] and "measured" in app.node_trace.hovertext[app.point_index("conv2d")]
    assert app.engine_widget is not None and app.engine_widget in app.chart_box.children


def test_a_builder_crash_comes_back_as_an_error_and_the_explorer_goes_on() -> None:
    """TensorRT-RTX 1.4's builder segfaults on the encoder with attention kept FP32 between FP16 matmuls (found by
    the encoder's diagnosis, docs/live-engine.md). Built in the worker process (the default), the crash is a
    WorkerCrashed naming the signal, and the next compile of the same explorer works."""
    from mixprec_explorer.errors import WorkerCrashed

    model, inputs = examples.transformer_encoder(batch=32, seq=128)
    ex = Explorer(model.cuda(), tuple(x.cuda() for x in inputs))
    crashing = FP16.replace(autocast_excluded_ops=frozenset({"torch.ops.aten.scaled_dot_product_attention.default"}))
    try:
        ex.compile(crashing, backend="tensorrt", device="cuda", build="cast_graph", progress=False)
    except WorkerCrashed as err:
        assert "SIGSEGV" in str(err) and "The explorer is unchanged" in str(err)
    else:
        pytest.skip("this TensorRT builds the plan that crashed TensorRT-RTX 1.4.0.76: nothing crashes to test")
    compiled = ex.compile(FP16, backend="tensorrt", device="cuda", build="cast_graph", progress=False)
    assert ex.profile(compiled, runs=5).attributed_share >= 0.95
