"""Measuring the plan in the app (:class:`MeasurePanel`): compile & profile, calibrating the what-if, the latency
chart and the engine view below the graph.

The compile buttons are off, with the reason beside them, where no compile backend is usable
(:func:`backend_status`). The engine view is linked to the graph both ways: a click on an engine layer rings its FX
nodes (through the app), and the panel observes the app's ``selected`` trait to outline the layers that ran the
selected node. A build that fails rings the FX node it stopped at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from ..errors import BackendUnavailable, CompileFailure
from ._format import esc
from .host import AppExplorer, AppHost
from .status import guarded

__all__ = ["MeasurePanel", "backend_status"]


def backend_status(explorer: AppExplorer) -> tuple[bool, str]:
    """(a compile backend is usable here, what is usable or why none is) without raising."""
    try:
        status = explorer.available_backends()
    except ImportError as err:  # the backends layer missing or broken
        return False, f"no compile backend in this installation ({type(err).__name__}: {err})"
    except Exception as err:
        return False, f"checking the backends failed ({type(err).__name__}: {err})"
    usable = [name for name, (ok, _) in status.items() if ok]
    if usable:
        return True, "backends available: " + ", ".join(usable)
    return False, "no backend is usable: " + "; ".join(f"{n}: {r}" for n, (_, r) in status.items())


#: Engine layers the engine view shows at a time (each labelled, about 15 px tall); the rest scroll by dragging.
ENGINE_ROWS = 24


class MeasurePanel:
    """``compile_button``, ``calibrate_button``, ``progress``, ``backend_note`` and ``chart_box`` (the latency
    chart, ``chart_widget``, and the engine view, ``engine_widget``, once a profile exists), bound to ``app``.

    ``backend`` is :func:`backend_status` as the app found it (the buttons are off without a usable backend);
    ``calibrate`` runs the what-if's calibration on the app's explorer (the app gives
    :func:`mixprec_explorer.predict.measure_calibration` of its Explorer).
    """

    def __init__(self, app: AppHost, backend: tuple[bool, str], *, calibrate: Callable[[], object]) -> None:
        self.app = app
        self._calibrate = calibrate
        W = widgets
        self.compile_button = W.Button(description="Compile & profile", icon="play", layout=W.Layout(width="170px"))
        self.calibrate_button = W.Button(description="Calibrate what-if", icon="sliders",
                                         tooltip="compile and profile all-FP32 and all-low, run sensitivity: then every "
                                                 "click is priced in ms and error without a compile",
                                         layout=W.Layout(width="170px"))
        self.progress = W.IntProgress(value=0, min=0, max=3, description="", layout=W.Layout(visibility="hidden",
                                                                                           width="200px"))
        self.backend_note = W.HTML()
        self.chart_widget: go.FigureWidget | None = None  #: the latency chart, once a profile exists
        self.engine_widget: go.FigureWidget | None = None  #: the engine's layers in order, once a profile exists
        self.chart_box = W.VBox([], layout=W.Layout(display="none"))
        self.compile_button.on_click(lambda _: self.compile_and_profile())
        self.calibrate_button.on_click(lambda _: self.calibrate_what_if())
        ok, reason = backend
        self.compile_button.disabled = self.calibrate_button.disabled = not ok
        self.backend_note.value = f"<small>{esc(reason)}</small>"
        app.observe(self._on_selected, names="selected")

    @guarded("compile & profile")
    def compile_and_profile(self) -> None:
        """Compile the current plan, profile it, try accuracy, then offer the measured colourings. The backend picks
        the build (TensorRT: the cast graph where autocast would cast integer tensors) and the message says which."""
        app, explorer = self.app, self.app.explorer
        ok, reason = backend_status(self.app.explorer)
        if not ok:
            self.compile_button.disabled = True
            self.backend_note.value = f"<small>{esc(reason)}</small>"
            raise BackendUnavailable(reason)
        self.compile_button.disabled = True
        self.progress.layout.visibility = "visible"
        try:
            self.progress.value, self.progress.description = 0, "compiling"
            try:
                compiled = explorer.compile()
            except CompileFailure as err:
                if err.node is not None:
                    app.find(err.node)  # ring the node the build stopped at; the error area gives the remedies
                raise
            self.progress.value, self.progress.description = 1, "profiling"
            profile = explorer.profile(compiled)
            self.progress.value, self.progress.description = 2, "accuracy"
            try:
                explorer.accuracy(compiled, per_node=True)
            except ImportError as err:  # the accuracy layer is optional
                app.notes.append(f"accuracy not measured: {err}")
            self.progress.value, self.progress.description = 3, "done"
            try:  # each measured plan is a calibration point of the what-if
                explorer.record_measurement(compiled, profile=profile, accuracy=explorer.last_accuracy)
            except Exception as err:  # an aid: the measurement itself stands
                app.notes.append(f"not recorded for the what-if: {err}")
            self.show_profile(profile)
            app.refresh()
            e2e = getattr(getattr(profile, "end_to_end", None), "median_ms", None)
            # how the build went where the backend chose it (TensorRT's cast graph for integer casts)
            chosen = [note for note in compiled.notes if note.startswith("build='auto'")]
            app.say(f"profiled on {esc(getattr(profile, 'device', '?'))} with {esc(compiled.backend)}"
                    + (f": {e2e:.4g} ms end to end" if e2e is not None else "")
                    + "".join(f"<br><small>{esc(note)}</small>" for note in chosen))
        finally:
            self.compile_button.disabled = False
            self.progress.layout.visibility = "hidden"

    @guarded("calibrating the what-if")
    def calibrate_what_if(self) -> None:
        """Measure the all-FP32 and all-low plans and sensitivity on the default backend, for ``ex.predict``."""
        ok, reason = backend_status(self.app.explorer)
        if not ok:
            raise BackendUnavailable(reason)
        self.calibrate_button.disabled = True
        self.app.say("calibrating the what-if: compiling and profiling all-FP32 and all-low, then sensitivity ...")
        try:
            self._calibrate()
        finally:
            self.calibrate_button.disabled = False
        self.app.refresh()
        self.app.say("what-if calibrated: each click now shows its predicted milliseconds and error")

    def show_profile(self, profile: Any) -> None:
        """Show the latency chart and the engine's layers of ``profile`` below the compile row."""
        from ..viz.charts import build_latency_chart
        from ..viz.engine import build_engine_figure

        chart = go.FigureWidget(build_latency_chart(profile, top=25))
        self.chart_widget = chart
        children: list[Any] = [chart]
        try:
            engine = go.FigureWidget(build_engine_figure(profile, height=460, window=ENGINE_ROWS))
        except ValueError:  # no timed layer: nothing to show
            engine = None
        self.engine_widget = engine
        if engine is not None:
            for trace in engine.data:
                trace.on_click(self._on_engine_click)
            children.append(engine)
        self.chart_box.children = tuple(children)
        self.chart_box.layout.display = None

    # -- the engine view, linked to the graph -----------------------------------------------------------------------
    def _on_engine_click(self, trace: Any, points: Any, state: Any) -> None:
        if points is not None and points.point_inds:
            self.select_layer(int(trace.customdata[points.point_inds[0]]))

    @guarded("selecting an engine layer")
    def select_layer(self, position: int) -> tuple[str, ...]:
        """Ring the FX nodes the engine layer at ``position`` ran, outline it; returns those nodes."""
        from ..viz.engine import engine_layers, nodes_for_layer

        profile = self.app.explorer.last_profile
        nodes = nodes_for_layer(profile, position)
        self.app.ring(list(nodes))
        self.outline_layers([position])
        name = engine_layers(profile)[position].name
        self.app.say(f"engine layer <code>{esc(name)}</code> ran {len(nodes)} node(s): "
                     + esc(", ".join(nodes[:8])) + (" ..." if len(nodes) > 8 else ""))
        return nodes

    def outline_layers(self, positions: list[int]) -> None:
        """Outline the engine layers at ``positions`` in the engine view (the others plain)."""
        if self.engine_widget is None:
            return
        from ..viz.engine import window_range

        chosen = set(positions)
        with self.engine_widget.batch_update():
            shown = self.engine_widget.layout.yaxis.range  # a window on a long engine: bring the first one into it
            rows = sum(len(trace.customdata) for trace in self.engine_widget.data)
            if shown is not None and chosen and not any(shown[1] < k < shown[0] for k in chosen):
                self.engine_widget.layout.yaxis.range = window_range(min(chosen), rows, ENGINE_ROWS)
            for trace in self.engine_widget.data:
                keys = list(trace.customdata)
                trace.marker.line.color = ["#111111" if k in chosen else "rgba(0,0,0,0)" for k in keys]
                trace.marker.line.width = [3 if k in chosen else 0 for k in keys]

    def outline_layers_of(self, node: str | None) -> None:
        """Outline the engine layers that ran FX node ``node`` (none for None)."""
        profile = self.app.explorer.last_profile
        if self.engine_widget is None or profile is None:
            return
        from ..viz.engine import layers_for_nodes

        self.outline_layers(layers_for_nodes(profile, [node]) if node else [])

    @guarded("outlining the engine layers")
    def _on_selected(self, change: Any) -> None:
        self.outline_layers_of(change.new)
