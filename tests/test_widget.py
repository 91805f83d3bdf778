"""The notebook widget, driven in Python through the real ipywidgets and plotly FigureWidget objects."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget (test extra)")

import ipywidgets as widgets  # noqa: E402
import numpy as np  # noqa: E402
from _widgets import click  # noqa: E402
from plotly.callbacks import Points  # noqa: E402

from mixprec_explorer import Explorer, Settings  # noqa: E402
from mixprec_explorer.dtypes import PALETTE  # noqa: E402
from mixprec_explorer.examples import layer_stack, reference_autocast_model, reference_explicit_model  # noqa: E402
from mixprec_explorer.viz import graph as vg  # noqa: E402
from mixprec_explorer.widget import app as app_module  # noqa: E402
from mixprec_explorer.widget import build_widget  # noqa: E402
from mixprec_explorer.widget.app import WidgetApp, find_nodes  # noqa: E402

FP16 = torch.float16


def click_from_browser(app: WidgetApp, name: str) -> None:
    """The same click as the front end sends it: a plotly_click message into the FigureWidget."""
    fw = app.figure_widget
    i = app.point_index(name)
    fw._handler_js2py_pointsCallback({"new": {
        "event_type": "plotly_click",
        "points": {"trace_indexes": [vg.NODES], "point_indexes": [i], "xs": [fw.data[vg.NODES].x[i]],
                   "ys": [fw.data[vg.NODES].y[i]]},
        "device_state": {"ctrl": False, "alt": False, "shift": False, "meta": False, "button": 0, "buttons": 1},
        "selector": None,
    }})


@pytest.fixture
def app() -> WidgetApp:
    ex = Explorer(*reference_autocast_model())
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    return WidgetApp(ex)


def test_build_widget_returns_the_root_box_without_displaying_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown: list[object] = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append(a))
    ex = Explorer(*reference_autocast_model())
    root = build_widget(ex)
    assert isinstance(root, widgets.VBox) and isinstance(root.app, WidgetApp)
    assert root.app.figure_widget in _descendants(root)
    assert isinstance(ex.widget(), widgets.VBox) and isinstance(ex.show(), widgets.VBox)
    assert shown == []


def _descendants(box: widgets.Widget) -> list[widgets.Widget]:
    out = [box]
    for child in getattr(box, "children", ()):
        out += _descendants(child)
    return out


@pytest.mark.parametrize("deliver", [click, click_from_browser])
def test_click_excludes_the_module_and_recolours_in_place(app: WidgetApp, deliver) -> None:
    fw = app.figure_widget
    traces_before = list(fw.data)
    i = app.point_index("linear_1")
    assert app.point_colors()[i] == PALETTE["FP16"]

    deliver(app, "linear_1")

    assert app.errors == []
    assert app.explorer.settings.autocast_excluded_nodes == {"^linear2$"}
    assert app.explorer.plan()["linear_1"].dtype == torch.float32
    assert app.point_colors()[i] == PALETTE["FP32"]
    assert app.point_colors()[app.point_index("linear")] == PALETTE["FP16"]
    assert list(fw.data) == traces_before  # recoloured in place: same traces
    sent = app.figure_sync.last
    assert not any(p.split(": ")[1] in ("x", "y") for p in sent.trace_props), sent  # positions are not resent
    assert len(app.drawn.data[vg.EXCLUDED].x) == 1
    assert _mark_shapes(app) == {(app.node_trace.x[i], app.node_trace.y[i])}  # the excluded square, at the node
    assert "^linear2$" in app.summary.value and "^linear2$" in app.status.value
    assert "linear_1" in app.details.value and "excluded_node" in app.details.value
    assert re.search(r"source: <code>mixprec_explorer/examples\.py:\d+  return .*linear2", app.details.value), \
        "the details name the line of the model that made the node"

    deliver(app, "linear_1")  # a second click includes it again
    assert app.explorer.settings.autocast_excluded_nodes == frozenset()
    assert app.point_colors()[i] == PALETTE["FP16"]


def _mark_shapes(app: WidgetApp) -> set[tuple[float, float]]:
    """Anchors of the visible shapes that draw the marks in the browser."""
    return {(sh["xanchor"], sh["yanchor"]) for sh in app.figure_widget._layout.get("shapes", [])
            if sh.get("visible", True) and "xanchor" in sh}


def _arrays_in(tree: object, path: str = "") -> list[str]:
    if isinstance(tree, np.ndarray):
        return [path]
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _arrays_in(v, f"{path}.{k}")]
    if isinstance(tree, (list, tuple)):
        return [p for i, v in enumerate(tree) for p in _arrays_in(v, f"{path}[{i}]")]
    return []


def test_the_widget_holds_plain_lists_never_numpy_arrays() -> None:
    """plotly's widget tests ``not value`` on what it holds when the browser echoes an update: on a NumPy array
    that raised "truth value of an array ... is ambiguous" in the kernel on every click (issue 10)."""
    ex = Explorer(*layer_stack(40))
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    app = WidgetApp(ex, group_by_module=None)
    fw = app.figure_widget
    assert _arrays_in(fw._data) == [] and _arrays_in(fw._layout) == []
    click(app, "linear_2")
    app.find("blocks.3")
    app.group_choice.value = 1
    assert app.errors == []
    assert _arrays_in(fw._data) == [] and _arrays_in(fw._layout) == []


def test_a_click_sends_only_the_changed_points() -> None:
    ex = Explorer(*layer_stack(40))
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    app = WidgetApp(ex, group_by_module=None)
    i = app.point_index("linear_2")
    click(app, "linear_2")
    sent = app.figure_sync.last
    nodes = {p.split(": ", 1)[1] for p in sent.trace_props if p.startswith(f"{vg.NODES}: ")}
    assert nodes == {f"marker.color[{i}]", f"hovertext[{i}]"}, sent  # one node changed: its colour and hover only
    assert set(sent.layout_props) <= {"title.text", "shapes"}, sent  # the title, and the first mark's shapes
    click(app, "linear_2")  # back again: the same two items, and the square's shape hidden in place
    again = app.figure_sync.last
    assert {p.split(": ", 1)[1] for p in again.trace_props if p.startswith(f"{vg.NODES}: ")} == nodes
    assert again.arrays == 0 and app.errors == []


def test_a_click_in_a_small_graph_sends_only_the_changed_points_too() -> None:
    """A short array (ResNet-50's grouped view draws 13 points, the reference model 6) goes item by item as well: a
    whole new ``marker.color`` takes plotly.js's full restyle in the browser instead of the in-place recolour."""
    ex = Explorer(*reference_autocast_model())
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    app = WidgetApp(ex)
    assert len(app.node_trace.x) < 16
    i = app.point_index("linear_1")
    click(app, "linear_1")
    sent = app.figure_sync.last
    assert {p.split(": ", 1)[1] for p in sent.trace_props if p.startswith(f"{vg.NODES}: ")} == \
        {f"marker.color[{i}]", f"hovertext[{i}]"}, sent
    assert sent.arrays == 0 and app.errors == []


def test_explicit_typing_is_locked_on_where_the_target_has_no_weak_typing() -> None:
    ex = Explorer(*reference_autocast_model(), target="2.13")  # pytorch/TensorRT#4195 removed use_explicit_typing
    app = WidgetApp(ex)
    assert app.explicit_typing.disabled and app.explicit_typing.value and "2.12" in app.explicit_typing.tooltip
    ex.target = "2.12"
    app.refresh()
    assert not app.explicit_typing.disabled


def test_clicks_on_other_traces_or_no_point_do_nothing(app: WidgetApp) -> None:
    before = app.explorer.settings
    app.node_trace._dispatch_on_click(Points(point_inds=[], xs=[], ys=[], trace_name="nodes", trace_index=1), None)
    app.click_point(app.point_index("x"))  # a graph input has nothing to toggle
    assert app.explorer.settings == before and app.errors == []
    assert "graph input" in app.status.value


def test_click_that_catches_other_nodes_shows_the_exclusion_note() -> None:
    ex = Explorer(*reference_explicit_model())
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    app = WidgetApp(ex)
    click(app, "to")  # the .to() casts live in the root module's forward: the regex is ^$
    assert ex.settings.autocast_excluded_nodes == {"^$"}
    assert app.last_exclusion is not None and "to_1" in app.last_exclusion.nodes
    assert "also catches" in app.details.value and "to_1" in app.details.value


def test_every_setting_has_a_control() -> None:
    ex = Explorer(*reference_autocast_model(), target="2.12")  # the last release with weak typing
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    app = WidgetApp(ex)
    assert not app.explicit_typing.disabled
    app.fp32_acc.value = True
    assert ex.settings.use_fp32_acc and ex.plan()["linear"].accumulate_dtype == torch.float32
    app.low_precision.value = "bfloat16"
    assert ex.settings.autocast_low_precision_type == torch.bfloat16
    assert app.point_colors()[app.point_index("linear")] == PALETTE["BF16"]
    app.output_threshold.value = 100.0
    assert ex.settings.autocast_max_output_threshold == 100.0
    app.depth_limit.value = "64"
    assert ex.settings.autocast_max_depth_of_reduction == 64
    app.depth_limit.value = ""
    assert ex.settings.autocast_max_depth_of_reduction is None
    op = "torch.ops.aten.linear.default"
    assert app.excluded_ops.options == (("aten.linear.default (3)", op),)
    app.excluded_ops.value = (op,)
    assert ex.settings.autocast_excluded_ops == {op}
    assert app.point_colors()[app.point_index("linear")] == PALETTE["FP32"]
    app.explicit_typing.value = False  # Torch-TensorRT needs explicit typing for autocast and FP32 accumulation
    assert (ex.settings.use_explicit_typing, ex.settings.enable_autocast, ex.settings.use_fp32_acc) == (
        False, False, False)
    assert app.autocast.value is False and "switched off" in app.status.value
    assert app.point_colors()[app.point_index("linear")] == PALETTE["other"]  # weak typing: TensorRT decides
    app.autocast.value = True
    assert ex.settings.use_explicit_typing and app.explicit_typing.value
    app.autocast.value = False
    assert ex.settings.enable_autocast is False
    assert any("no effect" in n for n in app.notes)  # the op exclusion now does nothing: said, not raised
    assert "no effect" in app.summary.value
    assert app.errors == []


def test_bad_input_shows_an_error_restores_the_control_and_keeps_working(app: WidgetApp) -> None:
    app.depth_limit.value = "deep"
    assert len(app.errors) == 1 and "whole number" in app.errors[0]
    assert "whole number" in app.error_area.value
    assert app.depth_limit.value == ""  # back in step with the explorer
    app.color_by_choice.value = "latency"  # no profile yet
    assert "needs a profile" in app.errors[-1] and app.color_by_choice.value == "precision"
    click(app, "linear_1")  # still works
    assert app.explorer.settings.autocast_excluded_nodes == {"^linear2$"}
    app.clear_errors_button.click()
    assert app.error_area.value == "" and len(app.errors) == 2


def test_errors_inside_click_handling_are_shown(app: WidgetApp, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(target: str) -> None:
        raise RuntimeError("explorer exploded")

    monkeypatch.setattr(app.explorer, "toggle", broken)
    click(app, "linear")
    assert app.errors and "explorer exploded" in app.errors[-1] and "explorer exploded" in app.error_area.value
    monkeypatch.undo()
    click(app, "linear")
    assert app.explorer.settings.autocast_excluded_nodes == {"^linear1$"}


def test_undo_and_redo_buttons(app: WidgetApp) -> None:
    click(app, "linear_1")
    assert not app.undo_button.disabled and app.redo_button.disabled
    app.undo_button.click()
    assert app.explorer.settings.autocast_excluded_nodes == frozenset()
    assert app.point_colors()[app.point_index("linear_1")] == PALETTE["FP16"]
    app.redo_button.click()
    assert app.explorer.settings.autocast_excluded_nodes == {"^linear2$"}
    assert app.point_colors()[app.point_index("linear_1")] == PALETTE["FP32"]


def test_search_rings_matching_nodes(app: WidgetApp) -> None:
    assert find_nodes(app.explorer, "linear2") == ["linear_1"]
    assert find_nodes(app.explorer, "linear_2") == ["linear_2"]
    assert set(find_nodes(app.explorer, "LINEAR")) == {"linear", "linear_1", "linear_2"}
    app.find_box.value = "linear3"
    ring = app.drawn.data[vg.HIGHLIGHT]
    i = app.point_index("linear_2")
    assert list(ring.x) == [app.node_trace.x[i]] and list(ring.y) == [app.node_trace.y[i]]
    assert _mark_shapes(app) == {(app.node_trace.x[i], app.node_trace.y[i])}  # the ring, drawn in the browser
    assert "linear_2" in app.details.value
    app.find("nothing-like-this")
    assert "no node or module matches" in app.status.value and len(app.drawn.data[vg.HIGHLIGHT].x) == 0
    assert _mark_shapes(app) == set()


def test_export_writes_settings_and_shows_the_compile_call(app: WidgetApp, tmp_path: Path) -> None:
    click(app, "linear_1")
    app.export_path.value = str(tmp_path / "s.json")
    app.export_button.click()
    assert app.errors == []
    assert Settings.load(tmp_path / "s.json") == app.explorer.settings
    assert json.loads((tmp_path / "s.json").read_text())["settings"]["autocast_excluded_nodes"] == ["^linear2$"]
    assert "torch_tensorrt.dynamo.compile(" in app.snippet.value and "'^linear2$'" in app.snippet.value
    app.export_format.value = "python"
    app.export_path.value = str(tmp_path / "compile.py")
    app.export_button.click()
    assert "autocast_excluded_nodes={'^linear2$'}" in (tmp_path / "compile.py").read_text()
    app.export_path.value = str(tmp_path / "no" / "\0bad")
    app.export_button.click()
    assert app.errors and "exporting" in app.errors[-1]


def test_grouping_collapses_modules_and_a_click_expands_one() -> None:
    ex = Explorer(*layer_stack(40))
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    app = WidgetApp(ex, group_by_module=2)
    keys = list(app.node_trace.customdata)
    assert "module:blocks.2" in keys and "linear_2" not in keys
    app.click_point(app.point_index("module:blocks.2"))
    keys = list(app.node_trace.customdata)
    assert "module:blocks.2" not in keys and "linear_2" in keys and app.errors == []
    click(app, "linear_2")  # the on_click callback survives the redraw
    assert ex.settings.autocast_excluded_nodes == {"^blocks\\.2\\.0$"}
    app.collapse_button.click()
    assert "module:blocks.2" in list(app.node_trace.customdata)
    app.group_choice.value = 0
    assert "linear_2" in list(app.node_trace.customdata) and app.errors == []


def test_compile_button_is_disabled_with_the_reason_when_no_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "backend_status", lambda explorer: (False, "no backend is usable: torch: broken"))
    app = WidgetApp(Explorer(*reference_autocast_model()))
    assert app.compile_button.disabled and "torch: broken" in app.backend_note.value


@pytest.mark.slow
def test_compile_and_profile_with_the_real_torch_backend(app: WidgetApp) -> None:
    ok, reason = app_module.backend_status(app.explorer)
    if not ok:
        pytest.skip(reason)
    app.compile_button.click()
    assert app.errors == [], app.errors
    assert "profiled on" in app.status.value
    assert app.progress.layout.visibility == "hidden" and not app.compile_button.disabled
    assert dict(app.color_by_choice.options)["latency"] == "latency"
    assert app.chart_widget is not None and app.chart_box.layout.display is None
    app.color_by_choice.value = "latency"
    assert app.errors == [] and app.node_trace.marker.showscale
    assert "measured" in app.node_trace.hovertext[app.point_index("linear")]
    app.color_by_choice.value = "mismatch"
    assert app.errors == []
    again = WidgetApp(app.explorer, color_by="latency")  # a widget made after profiling shows it at once
    assert again.errors == [] and again.chart_widget is not None


def test_crossing_the_webgl_threshold_replaces_the_traces_and_keeps_clicks(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = Explorer(*layer_stack(40))
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
    app = WidgetApp(ex, group_by_module=1)
    monkeypatch.setattr(vg, "GL_THRESHOLD", 30)  # grouped: fewer points (SVG); ungrouped: more (WebGL)
    assert app.node_trace.type == "scatter"
    app.group_choice.value = 0
    assert app.errors == [] and app.node_trace.type == "scattergl"
    click(app, "linear_3")
    assert ex.settings.autocast_excluded_nodes == {"^blocks\\.3\\.0$"}
    assert app.point_colors()[app.point_index("linear_3")] == PALETTE["FP32"]


def test_find_button_finds_and_does_not_search(autocast_ex):
    """The view row's Find button rings the node; the error-budget Search lives in its own panel."""
    from mixprec_explorer.widget.app import WidgetApp

    app = WidgetApp(autocast_ex)
    before = autocast_ex.settings
    app.find_box.value = "linear2"
    app.find_button.click()
    assert app.found == ["linear_1"] and app.selected == "linear_1"
    assert autocast_ex.settings == before, "finding a node changes no setting"
    assert app.find_button is not app.search_button


def test_undo_and_redo_say_what_they_did(app: WidgetApp) -> None:
    click(app, "linear")
    assert "^linear1$" in app.status.value and "excluded" in app.status.value
    click(app, "linear")  # included again
    app.undo_button.click()  # puts the exclusion back: the status must not still say "included again"
    assert app.explorer.settings.autocast_excluded_nodes == {"^linear1$"}
    assert app.status.value.startswith("Undo: ") and "^linear1$</code> excluded" in app.status.value
    app.undo_button.click()
    assert "^linear1$</code> included again" in app.status.value
    app.redo_button.click()
    assert app.status.value.startswith("Redo: ") and "^linear1$</code> excluded" in app.status.value
    app.fp32_acc.value = True
    assert "use_fp32_acc False \u2192 True" in app.status.value
    app.undo_button.click()
    assert "use_fp32_acc True \u2192 False" in app.status.value and app.errors == []


def test_export_names_the_file_by_format_and_notebook(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mixprec_explorer.widget.panels import default_export_name

    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "02_resnet50.ipynb"))
    assert default_export_name() == "02_resnet50_precision.json"
    assert default_export_name("python") == "02_resnet50_precision.py"
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert default_export_name() == "mixprec_settings.json"
    monkeypatch.setenv("JPY_SESSION_NAME", "02_resnet50.ipynb")
    app = WidgetApp(Explorer(*reference_autocast_model()))
    assert app.export_path.value == "02_resnet50_precision.json"
    app.export_format.value = "python"  # a Python snippet is never written to a .json file
    assert app.export_path.value == "02_resnet50_precision.py"
    app.export_path.value = str(tmp_path / "mine.json")
    app.export_button.click()
    assert (tmp_path / "mine.py").is_file() and not (tmp_path / "mine.json").exists()
    assert "torch_tensorrt.dynamo.compile(" in (tmp_path / "mine.py").read_text()
    assert app.export_path.value.endswith("mine.py") and app.errors == []


def test_export_does_not_replace_a_file_it_did_not_write_without_a_second_click(app: WidgetApp, tmp_path: Path
                                                                                ) -> None:
    target = tmp_path / "settings.json"
    target.write_text("someone else's file")
    app.export_path.value = str(target)
    app.export_button.click()
    assert target.read_text() == "someone else's file"  # not replaced at the first click
    assert app.export_button.description == "Overwrite" and "already exists" in app.status.value
    app.export_path.value = str(tmp_path / "other.json")  # another name: nothing to confirm any more
    assert app.export_button.description == "Export"
    app.export_path.value = str(target)
    app.export_button.click()
    assert target.read_text() == "someone else's file"
    app.export_button.click()  # the confirmation
    assert Settings.load(target) == app.explorer.settings and app.export_button.description == "Export"
    assert str(target) in app.status.value
    click(app, "linear_1")
    app.export_button.click()  # a file this widget wrote is brought up to date without asking again
    assert Settings.load(target).autocast_excluded_nodes == {"^linear2$"} and app.errors == []


def test_export_offers_the_file_as_a_browser_download(app: WidgetApp, tmp_path: Path) -> None:
    import base64
    import re

    click(app, "linear_1")
    app.export_path.value = str(tmp_path / "s.json")
    app.export_button.click()
    link = re.search(r"<a download='([^']+)' href='data:application/json;base64,([^']+)'", app.download.value)
    assert link is not None and link.group(1) == "s.json"
    assert base64.b64decode(link.group(2)).decode() == (tmp_path / "s.json").read_text()
    assert app.download in _descendants(app.root)


def test_the_compile_call_box_shows_every_line(app: WidgetApp) -> None:
    click(app, "linear_1")
    lines = app.snippet.value.splitlines()
    assert any("autocast_excluded_nodes" in line for line in lines)
    assert app.snippet.rows >= len(lines)


def test_an_excluded_op_is_marked_in_the_op_list(app: WidgetApp) -> None:
    op = "torch.ops.aten.linear.default"
    app.excluded_ops.value = (op,)
    label = dict((v, k) for k, v in app.excluded_ops.options)[op]
    assert "excluded" in label and "FP32" in label
    assert app.excluded_ops.value == (op,)
    app.undo_button.click()
    label = dict((v, k) for k, v in app.excluded_ops.options)[op]
    assert "excluded" not in label and app.excluded_ops.value == () and app.errors == []


def test_undo_and_redo_wrap_together() -> None:
    """At a narrow width the view row wraps; Undo and Redo are one unit, so Redo never sits alone on a line."""
    app = WidgetApp(Explorer(*reference_autocast_model()))
    boxes = [b for b in _descendants(app.root) if isinstance(b, widgets.HBox)
             and app.redo_button in b.children]
    assert len(boxes) == 1 and app.undo_button in boxes[0].children
    assert boxes[0].layout.flex_flow == "row nowrap"


def test_sensitivity_text_lists_only_modules_that_remove_error() -> None:
    from mixprec_explorer.sensitivity import Sensitivity
    from mixprec_explorer.widget.analysis_panel import sensitivity_text

    sens = Sensitivity(metric="rel_l2", low_dtype=FP16, all_low_error=0.01, node_low_error={}, node_fp32_gain={},
                       module_low_error={"a": 0.008, "b": 0.0, "c": 0.001},
                       module_fp32_gain={"a": 0.007, "b": 0.0, "c": 0.0005}, nodes_evaluated=3, naive_evaluations=9)
    text = sensitivity_text(sens)
    assert "1. a: removes 0.007" in text and "2. c:" in text and "b:" not in text
    assert "top 2 modules" in text
    none = Sensitivity(metric="rel_l2", low_dtype=FP16, all_low_error=0.0, node_low_error={}, node_fp32_gain={},
                       module_low_error={"a": 0.0}, module_fp32_gain={"a": 0.0}, nodes_evaluated=1,
                       naive_evaluations=1)
    assert "no module removes any error" in sensitivity_text(none)


def test_find_pans_only_to_a_node_out_of_view() -> None:
    ex = Explorer(*layer_stack(400))
    app = WidgetApp(ex, group_by_module=None)  # a tall drawing: it opens at its top
    layout = app.figure_widget.layout
    first = (tuple(layout.xaxis.range), tuple(layout.yaxis.range))
    app.find("linear")  # the first node, in view: nothing moves
    assert (tuple(layout.xaxis.range), tuple(layout.yaxis.range)) == first
    last = max((n for n in ex.nodes if n.startswith("linear_")), key=lambda n: int(n.split("_")[1]))
    app.find(last)  # far down: the graph pans to it
    y = app.node_trace.y[app.point_index(last)]
    lo, hi = sorted(layout.yaxis.range)
    assert lo <= y <= hi and tuple(layout.yaxis.range) != first[1] and app.errors == []


def test_the_app_is_composed_of_parts_with_declared_state(app: WidgetApp) -> None:
    """Issue 11: small parts, each holding its own widgets, sharing the app's declared traits; no mixins, no
    type-checking stubs, no part reaching into another's private attributes."""
    import ast
    import re

    import traitlets

    from mixprec_explorer.widget import analysis_panel, controls, figure, measure, panels, status

    assert isinstance(app, traitlets.HasTraits) and not any("Mixin" in k.__name__ for k in type(app).__mro__)
    assert {"color_by", "group_by_module", "selected", "found", "notes", "last_exclusion"} <= set(app.trait_names())
    parts = {app.messages: status.StatusArea, app.controls: controls.Controls, app.graph: figure.GraphFigure,
             app.plan_panel: panels.PlanPanel, app.export_panel: panels.ExportPanel,
             app.measure: measure.MeasurePanel, app.analysis: analysis_panel.AnalysisPanel}
    assert all(isinstance(part, kind) for part, kind in parts.items())
    # the app's widgets are its parts' own
    assert app.find_box is app.controls.find_box and app.figure_widget is app.graph.figure_widget
    assert app.summary is app.plan_panel.summary and app.export_button is app.export_panel.export_button
    assert app.compile_button is app.measure.compile_button and app.search_button is app.analysis.search_button
    assert app.status is app.messages.status and app.errors is app.messages.errors
    folder = Path(figure.__file__).parent
    for path in sorted(folder.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):  # no attributes or methods declared for the type checker only
                assert not any(isinstance(s, ast.If) and "TYPE_CHECKING" in ast.unparse(s.test) for s in node.body), \
                    f"{path.name}: {node.name}"
        assert not re.search(r"\bapp\._[a-z]", source), f"{path.name} reaches into the app's private attributes"
        assert not re.search(r"\bapp\.(messages|controls|graph|plan_panel|export_panel|measure|analysis)\b",
                             source.replace("``app.", "")) or path.name == "app.py", \
            f"{path.name} reaches another part through the app"


def test_the_view_state_traits_drive_the_graph_and_the_controls(app: WidgetApp) -> None:
    """Setting a trait of the app (as a notebook may) redraws the graph and puts the dropdowns in step."""
    from mixprec_explorer.viz.graph import OverlayUnavailable

    app.color_by = "reason"
    assert app.color_by_choice.value == "reason" and "coloured by reason" in app.drawn.layout.title.text
    with pytest.raises(OverlayUnavailable, match="needs a profile"):
        app.color_nodes_by("latency")  # nothing measured: the colouring stays as it was
    assert app.color_by == "reason" and app.color_by_choice.value == "reason"
    app.color_by_choice.value = "precision"
    assert app.color_by == "precision" and app.point_colors()[app.point_index("linear")] == PALETTE["FP16"]
    app.group_by_module = 1
    assert app.group_choice.value == 1
    app.group_by_module = None
    assert app.group_choice.value == 0 and app.errors == []
    app.find("linear3")
    assert app.selected == "linear_2" and app.found == ["linear_2"] and "linear_2" in app.details.value
    app.find("LINEAR")  # a part of three names
    assert app.selected is None and len(app.found) == 3 and "3 nodes found" in app.details.value
