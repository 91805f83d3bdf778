"""The frontier widget, driven through the real plotly FigureWidget click path on a real frontier."""

from __future__ import annotations

import dataclasses

import pytest
import torch

pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget (test extra)")

import ipywidgets as widgets  # noqa: E402
from plotly.callbacks import InputDeviceState, Points  # noqa: E402

from mixprec_explorer import Explorer, Settings  # noqa: E402
from mixprec_explorer.dtypes import PALETTE  # noqa: E402
from mixprec_explorer.frontier import Frontier  # noqa: E402
from mixprec_explorer.widget.app import WidgetApp  # noqa: E402
from mixprec_explorer.widget.frontier import LOADED, PLANS, FrontierWidget, build_frontier_widget  # noqa: E402

from test_sensitivity import Fragile  # noqa: E402

FP16 = torch.float16
ALL_LOW = Settings(enable_autocast=True, autocast_low_precision_type=FP16)


@pytest.fixture(scope="module")
def captured() -> tuple[Explorer, Frontier]:
    torch.manual_seed(0)
    ex = Explorer(Fragile().eval(), (torch.rand(3, 4),), settings=ALL_LOW)
    return ex, ex.frontier(progress=False)


@pytest.fixture
def ex(captured: tuple[Explorer, Frontier]) -> Explorer:
    """A fresh explorer (own history) on the captured model, with the frontier where ex.frontier leaves it."""
    base, frontier = captured
    fresh = Explorer(base.exported_program, base.example_inputs, settings=ALL_LOW)
    fresh.last_frontier = frontier
    return fresh


def click(widget: FrontierWidget, index: int) -> None:
    """A click on plan ``index`` as plotly delivers it: the trace's click callbacks with Points and state."""
    trace = widget.figure_widget.data[PLANS]
    points = Points(point_inds=[index], xs=[trace.x[index]], ys=[trace.y[index]], trace_name=trace.name,
                    trace_index=PLANS)
    state = InputDeviceState(ctrl=False, alt=False, shift=False, meta=False, button=0, buttons=1)
    trace._dispatch_on_click(points, state)


def click_from_browser(widget: FrontierWidget, index: int) -> None:
    """The same click as the front end sends it: a plotly_click message into the FigureWidget."""
    fw = widget.figure_widget
    fw._handler_js2py_pointsCallback({"new": {
        "event_type": "plotly_click",
        "points": {"trace_indexes": [PLANS], "point_indexes": [index], "xs": [fw.data[PLANS].x[index]],
                   "ys": [fw.data[PLANS].y[index]]},
        "device_state": {"ctrl": False, "alt": False, "shift": False, "meta": False, "button": 0, "buttons": 1},
        "selector": None,
    }})


def test_returns_the_root_box_and_finds_the_loaded_plan(ex: Explorer) -> None:
    root = build_frontier_widget(ex)  # the frontier from ex.last_frontier
    assert isinstance(root, widgets.VBox) and isinstance(root.app, FrontierWidget)
    w = root.app
    assert w.figure_widget in root.children
    assert w.loaded == 0 and w.frontier.points[0].label == "all low"  # ALL_LOW is the sweep's first plan
    assert "all low" in w.details.value and w.plan_choice.value == 0
    with pytest.raises(ValueError, match=r"ex\.frontier\(inputs\)"):
        FrontierWidget(Explorer(ex.exported_program, ex.example_inputs))


@pytest.mark.parametrize("deliver", [click, click_from_browser])
def test_click_loads_the_plan_and_undo_goes_back(ex: Explorer, deliver) -> None:
    w = FrontierWidget(ex)
    point = w.frontier.points[1]
    assert point.fp32_modules == ("blowup",)

    deliver(w, 1)

    assert w.errors == []
    assert ex.settings == point.settings and ex.settings.autocast_excluded_nodes == {"^blowup$"}
    assert ex.plan()["exp"].dtype == torch.float32 and ex.plan()["linear"].dtype == FP16
    assert w.loaded == 1 and w.plan_choice.value == 1
    ring = w.figure_widget.data[LOADED]
    assert list(ring.x) == [point.latency_ms] and list(ring.y) == [point.error]
    assert point.label in w.status.value and f"{point.error:.3g}" in w.status.value
    assert f"{point.error:.3g}" in w.details.value and "blowup" in w.details.value

    deliver(w, len(w.frontier.points) - 1)  # all FP32
    assert ex.settings.autocast_excluded_nodes == {".*"} and w.loaded == len(w.frontier.points) - 1
    w.undo_button.click()  # the explorer's own history
    assert ex.settings == point.settings and w.loaded == 1 and "undone" in w.status.value
    w.undo_button.click()
    assert ex.settings == ALL_LOW and w.loaded == 0 and w.undo_button.disabled


def test_the_plan_list_loads_plans_off_the_log_axis(ex: Explorer) -> None:
    w = FrontierWidget(ex)
    last = len(w.frontier.points) - 1
    assert w.frontier.points[last].error == 0.0  # all FP32: no error, not drawable on a log axis
    w.plan_choice.value = last
    assert ex.settings == w.frontier.points[last].settings and w.loaded == last and w.errors == []
    ex.settings = ALL_LOW.replace(use_fp32_acc=True)  # changed elsewhere: none of the plans
    w.undo()
    w.undo()
    assert w.loaded == 0 and w.plan_choice.value == 0


def test_errors_are_shown_in_the_widget_and_it_keeps_working(ex: Explorer) -> None:
    frontier = ex.last_frontier
    broken = dataclasses.replace(frontier.points[1], settings="not settings")  # type: ignore[arg-type]
    w = FrontierWidget(ex, Frontier((frontier.points[0], broken, *frontier.points[2:]), frontier.metric,
                                    frontier.latency_source))
    click(w, 1)
    assert w.errors and "loading a plan" in w.errors[-1] and "SettingsError" in w.errors[-1]
    assert "SettingsError" in w.error_area.value and ex.settings == ALL_LOW and w.loaded == 0
    click(w, 2)
    assert ex.settings == frontier.points[2].settings and w.loaded == 2


def test_a_load_refreshes_the_graph_app(ex: Explorer) -> None:
    app = WidgetApp(ex)
    w = app.frontier_widget().app
    i = app.point_index("exp")
    assert app.point_colors()[i] == PALETTE["FP16"]
    click(w, 1)
    assert w.errors == [] and app.errors == []
    assert app.point_colors()[i] == PALETTE["FP32"] and app.point_colors()[app.point_index("linear")] == PALETTE["FP16"]
    assert "+1 FP32 modules" in app.status.value and "^blowup$" in app.summary.value
    w.undo_button.click()
    assert app.point_colors()[i] == PALETTE["FP16"] and "all low" in app.status.value
