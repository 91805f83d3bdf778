"""The widget's engine view and compile failures, through the real ipywidgets and plotly FigureWidget objects."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget (test extra)")

from _widgets import state as _state  # noqa: E402
from plotly.callbacks import Points  # noqa: E402

from mixprec_explorer import Explorer, Settings, examples  # noqa: E402
from mixprec_explorer.viz import graph as vg  # noqa: E402
from mixprec_explorer.viz.engine import engine_layers, layers_for_nodes  # noqa: E402
from mixprec_explorer.widget.app import WidgetApp  # noqa: E402
from mixprec_explorer.widget.measure import ENGINE_ROWS  # noqa: E402

from _data import RTX  # noqa: E402


def test_engine_view_links_layers_and_nodes_both_ways() -> None:
    ex = Explorer(*examples.resnet50(batch=8))
    profile = ex.load_profile(RTX / "resnet50_b8_fp16" / "profile")
    app = WidgetApp(ex)
    app.show_profile(profile)
    engine = app.engine_widget
    assert engine is not None and engine in app.chart_box.children
    rows = engine_layers(profile)
    stem = next(k for k, r in enumerate(rows) if r.name == "__myl_CorrMulAddRelu_myl0_1")
    # A click on the stem kernel's bar, as plotly delivers it, rings conv2d, batch_norm and relu_ in the graph.
    trace = next(t for t in engine.data if stem in list(t.customdata))
    i = list(trace.customdata).index(stem)
    trace._dispatch_on_click(Points(point_inds=[i], xs=[trace.x[i]], ys=[trace.y[i]], trace_name=trace.name,
                                    trace_index=list(engine.data).index(trace)), _state())
    assert app.found == ["conv2d", "batch_norm", "relu_"]
    ringed = app.drawn.data[vg.HIGHLIGHT]
    assert len(ringed.x) == len({app.point_index(n) for n in app.found})
    assert "ran 3 node(s)" in app.status.value
    # A click on a graph node outlines the engine layers that ran it (the stem kernel and the input cast).
    app.click_point(app.point_index("conv2d"))
    outlined = sorted(k for t in engine.data for k, w in zip(t.customdata, t.marker.line.width) if w)
    assert [rows[k].name for k in outlined] == ["__myl_CastConc_myl0_0", "__myl_CorrMulAddRelu_myl0_1"]
    # The view shows ENGINE_ROWS of the 73 layers at a time; selecting the classifier brings its layer into view.
    top, bottom = engine.layout.yaxis.range
    assert (bottom, top) == (-0.5, ENGINE_ROWS - 0.5) and len(rows) > ENGINE_ROWS
    (fc,) = layers_for_nodes(profile, ["linear"])
    assert fc >= ENGINE_ROWS
    app.click_point(app.point_index("linear"))
    top, bottom = engine.layout.yaxis.range
    assert bottom < fc < top and top - bottom == ENGINE_ROWS
    app.click_point(app.point_index("conv2d"))  # and back to the stem
    assert engine.layout.yaxis.range[1] < stem < engine.layout.yaxis.range[0]


def test_a_compile_failure_rings_its_node_and_the_widget_keeps_working(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend's own failure report (built from Torch-TensorRT's real message) reaches the user intact."""
    from mixprec_explorer.backends.tensorrt import compile_failure
    from mixprec_explorer.explorer import SettingsWarning

    ex = Explorer(*examples.transformer_encoder(layers=1, seq=16))
    with pytest.warns(SettingsWarning, match="build the cast graph"):  # predicted before any compile
        ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    message = ("__len__() should return >= 0\n\nWhile executing %add : [num_users=1] = call_function["
               "target=torch.ops.aten.add.Tensor](args = (%embedding, %_frozen_param0), kwargs = {})")
    failure = compile_failure(ValueError(message), ex, ex, ex.plan(), {}, "autocast", Path("log.txt"))

    def fail(*args: object, **kwargs: object) -> None:  # TensorRT cannot run here: raise what it raised live
        raise failure

    app = WidgetApp(ex)
    monkeypatch.setattr(ex, "compile", fail)
    monkeypatch.setattr("mixprec_explorer.widget.measure.backend_status", lambda explorer: (True, "tensorrt"))
    app.compile_and_profile()
    assert "add" in app.found
    assert any("cast_graph" in e for e in app.errors) and any("FX node 'add'" in e for e in app.errors)
    assert not app.compile_button.disabled
    errors, status = len(app.errors), app.status.value
    app.click_point(app.point_index("linear"))  # still answers clicks (here: expands linear's module group)
    assert len(app.errors) == errors and app.status.value != status


def test_every_click_shows_its_predicted_cost_without_a_compile() -> None:
    """Calibrated for real on the PyTorch backend (CPU), then a click prices itself in ms and error."""
    from mixprec_explorer.examples import reference_autocast_model

    ex = Explorer(*reference_autocast_model())
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    app = WidgetApp(ex)
    assert "predicted" not in app.what_if.value  # nothing measured yet: it says what to measure instead
    app.calibrate_what_if()
    assert app.errors == [] and "predicted" in app.what_if.value
    recorded = ex.predictor.version
    app.click_point(app.point_index("linear_1"))
    assert "this change:" in app.what_if.value and " ms, " in app.what_if.value
    assert ex.predictor.version == recorded  # the click measured (and compiled) nothing


def test_cost_of_staying_fp32_is_a_colouring_once_the_what_if_is_calibrated() -> None:
    """The colour dropdown's "cost of staying FP32": said to need calibrating before, then each node coloured by
    ``ex.predictor.fp32_cost_ms()`` with a colour bar in ms and the figure in its hover (real PyTorch backend)."""
    from mixprec_explorer.examples import reference_autocast_model
    from mixprec_explorer.numbers import format_number

    ex = Explorer(*reference_autocast_model())
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    app = WidgetApp(ex)
    label = dict((v, k) for k, v in app.color_by_choice.options)["fp32_cost"]
    assert label == "cost of staying FP32 (ms) (needs Calibrate what-if)"
    app.color_by_choice.value = "fp32_cost"  # nothing to go on yet: said, and the dropdown goes back
    assert len(app.errors) == 1 and "Calibrate what-if" in app.errors[0] and "measure_calibration" in app.errors[0]
    assert app.color_by == "precision" and app.color_by_choice.value == "precision"

    app.calibrate_what_if()
    assert len(app.errors) == 1
    assert dict((v, k) for k, v in app.color_by_choice.options)["fp32_cost"] == "cost of staying FP32 (ms)"
    costs = ex.predictor.fp32_cost_ms()
    assert set(costs) == {"linear", "linear_1", "linear_2"}
    app.color_by_choice.value = "fp32_cost"
    assert len(app.errors) == 1 and app.color_by == "fp32_cost"
    marker = app.node_trace.marker
    assert marker.showscale and "ms" in marker.colorbar.title.text
    for name, ms in costs.items():
        i = app.point_index(name)
        assert marker.color[i] == pytest.approx(ms)
        assert f"cost of staying FP32: <b>{format_number(ms)} ms</b>" in app.node_trace.hovertext[i]
    assert marker.color[app.point_index("x")] < min(costs.values())  # a graph input has no cost: the grey band
    assert "cost of staying FP32" not in app.node_trace.hovertext[app.point_index("x")]
    app.click_point(app.point_index("linear_1"))  # a click still toggles, and the colouring stays
    assert ex.settings.autocast_excluded_nodes == {"^linear2$"} and app.color_by == "fp32_cost"
    assert len(app.errors) == 1 and marker.color[app.point_index("linear_1")] == pytest.approx(costs["linear_1"])


def test_cost_of_staying_fp32_in_a_figure_sums_a_collapsed_module() -> None:
    """After measure_calibration on the PyTorch backend, ex.figure(color_by="fp32_cost") colours and hovers each
    node by its predicted cost, and a collapsed module by the sum over its nodes."""
    from mixprec_explorer.examples import layer_stack
    from mixprec_explorer.predict import measure_calibration
    from mixprec_explorer.viz.graph import OverlayUnavailable

    ex = Explorer(*layer_stack(40))
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    with pytest.raises(OverlayUnavailable, match="needs the what-if's calibration"):
        ex.figure(color_by="fp32_cost")
    measure_calibration(ex, backend="torch", sensitivity=False, isolate=False)
    costs = ex.predictor.fp32_cost_ms()
    assert costs
    flat = ex.figure(color_by="fp32_cost", group_by_module=None)
    nodes = flat.data[vg.NODES]
    keys = list(nodes.customdata)
    name = next(iter(costs))
    assert nodes.marker.color[keys.index(name)] == pytest.approx(costs[name])
    assert "cost of staying FP32" in nodes.hovertext[keys.index(name)] and " ms</b>" in nodes.hovertext[keys.index(name)]
    assert "cost of staying FP32" in flat.layout.title.text
    grouped = ex.figure(color_by="fp32_cost", group_by_module=1)
    gnodes = grouped.data[vg.NODES]
    gkeys = list(gnodes.customdata)
    group = next(k for k in gkeys if k.startswith("module:"))
    module = group[len("module:"):]
    members = [n for n in costs if ex.nodes[n].module == module or ex.nodes[n].module.startswith(module + ".")]
    assert members
    assert gnodes.marker.color[gkeys.index(group)] == pytest.approx(sum(costs[n] for n in members))
    assert f"summed over {len(members)} nodes" in gnodes.hovertext[gkeys.index(group)]
