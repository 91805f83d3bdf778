"""The widget's "Which nodes matter" panel: sensitivity, search and frontier, by clicking the real buttons."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget (test extra)")

import ipywidgets as widgets  # noqa: E402

import mixprec_explorer.backends as backends  # noqa: E402
from mixprec_explorer import Explorer, Settings  # noqa: E402
from mixprec_explorer.dtypes import PALETTE  # noqa: E402
from mixprec_explorer.widget.app import WidgetApp, search_backends  # noqa: E402
from mixprec_explorer.widget.frontier import FrontierWidget  # noqa: E402

from test_sensitivity import Fragile  # noqa: E402

FP16 = torch.float16
ALL_LOW = Settings(enable_autocast=True, autocast_low_precision_type=FP16)
IN_PROCESS = {"isolate": False}  # compile in this process: no worker start in most tests


@pytest.fixture(scope="module")
def captured() -> Explorer:
    torch.manual_seed(0)
    return Explorer(Fragile().eval(), (torch.rand(3, 4),), settings=ALL_LOW)


@pytest.fixture
def ex(captured: Explorer) -> Explorer:
    """A fresh explorer (own history and results) on the captured model."""
    return Explorer(captured.exported_program, captured.example_inputs, settings=ALL_LOW)


@pytest.fixture
def app(ex: Explorer) -> WidgetApp:
    return WidgetApp(ex, search_options=IN_PROCESS, frontier_options=IN_PROCESS)


def _idle(app: WidgetApp) -> bool:
    """The panel is ready for the next click: buttons on, busy bar hidden."""
    return not (app.sensitivity_button.disabled or app.search_button.disabled or app.frontier_button.disabled) \
        and app.matter_progress.layout.visibility == "hidden"


def _descendants(box: widgets.Widget) -> list[widgets.Widget]:
    out = [box]
    for child in getattr(box, "children", ()):
        out += _descendants(child)
    return out


def test_the_panel_is_collapsed_in_the_root_and_defaults(app: WidgetApp) -> None:
    assert app.matter_panel in _descendants(app.root) and app.matter_panel.selected_index is None
    assert {app.sensitivity_button, app.search_button, app.frontier_button, app.budget, app.confirm,
            app.matter_text} <= set(_descendants(app.matter_panel))
    assert app.budget.value == 1e-2 and app.confirm.value is True
    assert app.search_backend.value == "torch"  # PyTorch is usable everywhere torch is
    assert app.frontier_box.layout.display == "none" and app.matter_progress.layout.visibility == "hidden"
    assert WidgetApp(app.explorer).search_options == {}  # the default search compiles isolated in the worker


def test_estimate_is_the_only_choice_without_a_usable_backend(monkeypatch: pytest.MonkeyPatch, ex: Explorer) -> None:
    monkeypatch.setattr(backends, "available_backends", lambda refresh=False: {"torch": (False, "broken"),
                                                                 "tensorrt": (False, "absent")})
    assert [v for _, v in search_backends(ex)] == ["estimate"]
    app = WidgetApp(ex)
    assert app.search_backend.value == "estimate"
    app.search_button.click()  # backend None: the FLOPs/bytes estimate, nothing compiled or confirmed
    assert app.errors == [] and ex.settings.autocast_excluded_nodes == {"^blowup$"}
    assert ex.last_search.latency_source == "estimate:roofline" and ex.last_search.confirmed == {}
    assert "not confirmed" in app.matter_text.value


def test_sensitivity_button_colours_by_it_and_lists_the_top_modules(app: WidgetApp) -> None:
    i, j = app.point_index("exp"), app.point_index("linear")
    before = app.point_colors()
    assert before[i] == before[j] == PALETTE["FP16"]
    assert ("sensitivity (needs sensitivity)", "sensitivity") in app.color_by_choice.options

    app.sensitivity_button.click()

    assert app.errors == [] and _idle(app)
    assert app.explorer.last_sensitivity is not None
    assert app.color_by == "sensitivity" and app.color_by_choice.value == "sensitivity"
    assert ("sensitivity", "sensitivity") in app.color_by_choice.options
    after = app.point_colors()
    assert after != before and after[i] != after[j]  # exp overflows alone in FP16: the hottest colour
    lines = app.matter_text.value.splitlines()
    ranked = [line for line in lines if line[:2] in {f"{k}." for k in range(1, 6)}]
    # only blowup removes error when kept in FP32 (fc and out remove none: the overflow stays): they are not listed
    assert ranked[0].startswith("1. blowup: removes inf") and len(ranked) == 1
    assert "blowup" in app.status.value


def test_search_loads_the_exclusion_recolours_explains_and_undo_goes_back(app: WidgetApp) -> None:
    ex = app.explorer
    i, j = app.point_index("exp"), app.point_index("linear")
    app.sensitivity_button.click()  # a search then shows precisions again: sensitivity ignores the settings

    app.search_button.click()

    assert app.errors == [] and _idle(app)
    assert ex.settings.autocast_excluded_nodes == {"^blowup$"} and ex.settings.autocast_excluded_ops == frozenset()
    assert app.color_by == "precision" and app.color_by_choice.value == "precision"
    colors = app.point_colors()
    assert colors[i] == PALETTE["FP32"] and colors[j] == PALETTE["FP16"]
    assert "^blowup$" in app.summary.value and "&#9888;" not in app.summary.value  # compile warnings aren't notes
    result = ex.last_search
    assert result.within_budget and result.confirmed["backend"] == "torch"
    text = app.matter_text.value
    for part in ("within budget", "module ^blowup$: removes inf", "confirmed on torch", "speedup over FP32",
                 "how:", "calibrate: torch measures all-low at",
                 "share of all-low's time saving kept", f"{result.confirmed['chosen']['error']:.3g}",
                 f"backend compiles: {result.compiles} ({result.compiles_beyond_calibration} beyond all-FP32"):
        assert part in text, part
    assert result.compiles >= 3, "all-FP32, all-low and the chosen plan were built"
    assert app.chart_widget is not None  # the confirming profile of the chosen plan
    assert ex.last_profile.node_dtypes()["exp"] == torch.float32, "the chosen plan was profiled last"

    app.undo_button.click()  # the explorer's history: one step back to before the search
    assert ex.settings == ALL_LOW and app.point_colors()[i] == PALETTE["FP16"]
    app.redo_button.click()
    assert ex.settings.autocast_excluded_nodes == {"^blowup$"} and app.point_colors()[i] == PALETTE["FP32"]


def test_the_confirm_box_and_budget_reach_the_search(app: WidgetApp) -> None:
    app.confirm.value = False
    app.budget.value = 1e30  # a huge budget: all low precision is still inf (exp overflows), blowup stays FP32
    app.search_button.click()
    result = app.explorer.last_search
    assert app.errors == [] and result.budget == 1e30 and result.confirmed == {}  # confirm=False: no compile
    assert app.explorer.settings.autocast_excluded_nodes == {"^blowup$"}
    assert "not confirmed" in app.matter_text.value


def test_a_bad_budget_is_shown_and_the_widget_keeps_working(app: WidgetApp) -> None:
    ex = app.explorer
    app.budget.value = -1.0
    app.search_button.click()
    assert len(app.errors) == 1 and app.errors[0].startswith("search: OptionError")
    assert "budget must be at least 0" in app.error_area.value and "OptionError" in app.status.value
    assert "search failed" in app.matter_text.value and _idle(app)
    assert ex.settings == ALL_LOW and not ex.can_undo  # nothing changed, nothing recorded

    app.budget.value = 1e-2
    app.search_button.click()
    assert len(app.errors) == 1 and ex.settings.autocast_excluded_nodes == {"^blowup$"}
    app.click_point(app.point_index("linear"))  # the graph too
    assert len(app.errors) == 1 and "^fc$" in ex.settings.autocast_excluded_nodes


def test_errors_of_sensitivity_and_frontier_are_shown(app: WidgetApp, monkeypatch: pytest.MonkeyPatch) -> None:
    ex = app.explorer

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(ex, "sensitivity", boom)
    monkeypatch.setattr(ex, "frontier", boom)
    app.sensitivity_button.click()
    app.frontier_button.click()
    assert [e.split(":")[0] for e in app.errors] == ["sensitivity", "frontier"]
    assert app.error_area.value.count("<summary") == 2 and "out of memory, say" in app.error_area.value
    assert _idle(app) and "frontier failed" in app.matter_text.value
    assert app.color_by == "precision" and app.color_by_choice.value == "precision"
    assert app.frontier_box.layout.display == "none"
    monkeypatch.undo()
    app.sensitivity_button.click()
    assert len(app.errors) == 2 and app.color_by == "sensitivity"


def test_frontier_button_shows_the_frontier_whose_clicks_load_plans(app: WidgetApp) -> None:
    ex = app.explorer
    app.frontier_button.click()
    assert app.errors == [] and _idle(app)
    assert isinstance(app.frontier_app, FrontierWidget) and app.frontier_box.layout.display is None
    assert app.frontier_box.children == (app.frontier_app.root,)
    frontier = ex.last_frontier
    assert frontier.latency_source == "profile:torch"  # the panel's latency choice
    text = app.matter_text.value
    assert f"{len(frontier.points)} plans" in text and all(f"  {p.label}: " in text for p in frontier.points)
    assert text.count("(front)") == len(frontier.front())

    app.frontier_app.load(1)  # "+1 FP32 modules": blowup
    assert ex.settings.autocast_excluded_nodes == {"^blowup$"}
    assert app.point_colors()[app.point_index("exp")] == PALETTE["FP32"] and "+1 FP32" in app.status.value
    app.undo_button.click()  # the graph app's undo moves the frontier's ring too
    assert ex.settings == ALL_LOW and app.frontier_app.loaded == 0
    app.search_button.click()  # the search's plan is the frontier's point 1
    assert app.errors == [] and app.frontier_app.loaded == 1 and app.frontier_app.plan_choice.value == 1


def test_the_default_search_compiles_in_the_worker(ex: Explorer) -> None:
    app = WidgetApp(ex)  # no options: isolate=True, the crash-safe default
    app.search_button.click()
    assert app.errors == [] and ex.settings.autocast_excluded_nodes == {"^blowup$"}
    assert ex.last_search.confirmed["backend"] == "torch" and "confirmed on torch" in app.matter_text.value
