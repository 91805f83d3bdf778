"""Numerics a user must know: low-precision outputs that underflow to zeros or overflow to inf are said, with the
first node whose range leaves the low type's, by calibrate, accuracy and search; never silently."""

from __future__ import annotations

import pytest
import torch

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.accuracy import numerics_notes
from mixprec_explorer.calibration import Calibration, range_issues, range_limits
from mixprec_explorer.records import CalibrationStat
from mixprec_explorer.search import Candidate, run_search

from test_sensitivity import Fragile


def range_notes(report) -> list[str]:
    """The report's notes about the low type's range, without the note that says the CPU simulated it."""
    return [n for n in report.notes if not n.startswith("low precision simulated at FP32 speed")]

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
BF16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.bfloat16)
FP16_TINY, FP16_NORMAL, FP16_MAX = 2.0 ** -24, 2.0 ** -14, 65504.0


def test_fp16_and_bf16_limits_are_the_ieee_ones():
    assert range_limits(torch.float16) == (FP16_TINY, FP16_NORMAL, FP16_MAX)
    tiny, normal, top = range_limits(torch.bfloat16)
    assert normal == 2.0 ** -126 and tiny == 2.0 ** -133 and top == pytest.approx(3.3895e38, rel=1e-4)


def test_a_calibration_record_says_whether_its_range_leaves_the_low_type():
    def stat(max_abs, dtype=torch.float32):
        return CalibrationStat(max_abs, (4,), 4, dtype)

    assert stat(3e-5).range_issue(torch.float16) == "underflow"
    assert stat(3e-5).range_issue(torch.bfloat16) is None, "BF16 has FP32's exponent range"
    assert stat(7e4).range_issue(torch.float16) == "overflow" and stat(7e4).range_issue(torch.bfloat16) is None
    assert stat(65504.0).range_issue(torch.float16) is None and stat(FP16_NORMAL).range_issue(torch.float16) is None
    assert stat(0.0).range_issue(torch.float16) is None, "an all-zero output is exact in any type"
    assert stat(7e4, torch.int64).range_issue(torch.float16) is None, "integer tensors are never cast"
    assert stat(float("inf")).range_issue(torch.float16) is None, "inf already in FP32: not the low type's doing"


def mobilenet():
    """torchvision MobileNetV3-Small, random init, 64x64: the FP32 output peaks near 1e-9 (below FP16's range)."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(weights=None).eval()
    x = torch.randn(1, 3, 64, 64)
    return Explorer(model, (x,)), x


@pytest.mark.slow
def test_mobilenet_underflow_is_recorded_by_calibrate_and_said_by_accuracy():
    ex, x = mobilenet()
    with torch.no_grad():
        reference = ex.exported_program.module()(x)
        assert 0 < reference.abs().max() < FP16_TINY / 2, "the premise: every output value rounds to 0 in FP16"
    # accuracy before any calibration: the ranges are measured on the accuracy inputs
    ex.settings = FP16
    compiled = ex.compile(backend="torch", isolate=False, progress=False)
    report = ex.accuracy(compiled)
    assert report.rel_l2_error == 1.0 and report.cosine_similarity == 0.0
    note = report.notes[0]
    assert note.startswith("the FP16 output is all zeros (the FP32 reference's |x| max is ")

    stats = ex.calibrate([(x,)])
    assert isinstance(stats, Calibration) and list(stats) == [n for n in stats]  # graph order, as recorded
    issues = stats.issues(torch.float16)
    order = [n for n in ex.nodes if n in stats]
    assert [i.node for i in issues] == [n for n in order if stats[n].range_issue(torch.float16)]
    assert issues and all(i.issue == "underflow" and 0 < i.max_abs < FP16_NORMAL for i in issues)
    first = issues[0]
    assert all(not (0 < stats[n].max_abs < FP16_NORMAL) for n in order[:order.index(first.node)])
    last = order[-1]  # the classifier's output: every value below half FP16's smallest subnormal
    assert stats[last].range_issue(torch.float16) == "underflow" and issues[-1].rounds_to_zero
    assert stats.issues(torch.bfloat16) == []
    summary = stats.summary()
    assert f"FP16: of {len(stats)} nodes, {len(issues)} underflow" in summary and f"the first {first.node}" in summary
    assert f"BF16: all {len(stats)} nodes' ranges fit its normal range" in summary
    module = ex.nodes[first.node].module
    assert f"FP16 underflow after node {first.node} (module {module}), the first in graph order whose measured" \
        in note

    calibrated = ex.accuracy(compiled).notes[0]
    assert f"FP16 underflow after node {first.node}" in calibrated and "whose calibrated |x| max" in calibrated
    assert "BF16 (FP32's exponent range)" in calibrated
    bf16 = ex.accuracy(ex.compile(BF16, backend="torch", isolate=False, progress=False))
    assert bf16.rel_l2_error < 0.1 and not range_notes(bf16), "BF16 keeps the range: nothing to say"


@pytest.mark.slow
def test_a_model_that_keeps_its_range_gets_no_note():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    ex = Explorer(torchvision.models.resnet18(weights=None).eval(), (torch.randn(1, 3, 64, 64),))
    stats = ex.calibrate([ex.example_inputs])
    assert stats.issues(torch.float16) == [] and "FP16: all" in stats.summary(torch.float16)
    report = ex.accuracy(ex.compile(FP16, backend="torch", isolate=False, progress=False))
    assert 0 < report.rel_l2_error < 1e-2 and not range_notes(report)


def test_an_overflow_to_inf_is_said_with_the_node_that_leaves_the_range():
    torch.manual_seed(0)
    ex = Explorer(Fragile().eval(), (torch.rand(3, 4),))  # exp of ~12: 1.6e5 > 65504
    report = ex.accuracy(ex.compile(FP16, backend="torch", isolate=False, progress=False))
    assert report.nonfinite > 0
    assert report.notes[0].startswith(f"the FP16 output has {report.nonfinite} inf or NaN values where the FP32 "
                                      "reference's are finite: FP16 overflow after node exp (module blowup)")
    kept = ex.accuracy(ex.compile(FP16.replace(autocast_excluded_nodes={"^blowup$", "^out$"}), backend="torch",
                                  isolate=False, progress=False))
    assert kept.nonfinite == 0 and not range_notes(kept)


def test_a_mostly_flushed_output_is_said_even_where_no_node_range_underflows():
    """Most output columns are scaled to 1e-9, a few are not: no node's |x| max is below FP16's normal range, yet
    most values flush to 0; the note says so, and that no node's range explains it."""
    ref = (torch.tensor([[1.0, 1e-9, 2e-9, 3e-9], [0.5, 1e-9, 1e-9, 0.0]]),)
    out = (torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]], dtype=torch.float16),)
    stats = {"mul": CalibrationStat(1.0, (2, 4), 8, torch.float32)}
    notes = numerics_notes(ref, out, torch.float16, lambda: (stats, "measured"))
    assert notes == ["the FP16 output is mostly flushed to 0 (71% of the values that are nonzero in the FP32 "
                     "reference): no node's measured range lies wholly below FP16's smallest normal 6.1e-05: it "
                     "happens inside the low-precision computation"]
    asked = []
    assert numerics_notes(ref, ref, torch.float16, lambda: asked.append(1) or (stats, "")) == [] and not asked, \
        "nothing wrong: no ranges are computed"


class Shrinking(torch.nn.Module):
    """Three linears that each scale by 1e-3, then ops in the model's own forward (root module): the output is
    ~1e-9, every value rounds to 0 in FP16."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = (torch.nn.Linear(8, 8, bias=False) for _ in range(3))
        with torch.no_grad():
            for fc in (self.fc1, self.fc2, self.fc3):
                fc.weight.copy_(torch.eye(8) * 1e-3 + torch.randn(8, 8) * 1e-4)

    def forward(self, x):
        return torch.flatten(self.fc3(self.fc2(self.fc1(x))) * 2.0, 1)


def test_search_says_the_all_low_output_underflows_and_names_the_roots_ops_in_words():
    torch.manual_seed(0)
    ex = Explorer(Shrinking().eval(), (torch.randn(4, 8),))
    ex.settings = FP16
    assert {ex.nodes[n].module for n in ("mul", "flatten")} == {""}, "the premise: ops in the root's own forward"
    result = run_search(ex, None, budget=1e-3, backend=None, progress=False)
    measured_first = range_issues(ex.calibrate([ex.example_inputs]), torch.float16)[0].node
    assert measured_first == "linear_1", "fc2's output (~1e-6) is the first below FP16's smallest normal"
    assert result.notes and result.notes[0].startswith(
        "the all-low plan's output is all zeros (the FP32 reference's |x| max is ")
    assert "FP16 underflow after node linear_1 (module fc2), the first in graph order whose measured" in result.notes[0]
    lines = result.explain().splitlines()
    assert lines[0] == result.notes[0]
    assert not any(line.startswith("module ^$") for line in lines), "the root's regex is said in words"
    root = [c for c in result.exclusions if c.value == "^$"]
    assert not root or any(line.startswith("the model's own forward (its 2 ops outside any submodule; module "
                                           "regex ^$)") for line in lines)
    assert all(c.value for c in result.exclusions), "no empty regex"
    assert Candidate("module", "^$", ("mul", "flatten"), 0.0, 1.0, 0.0).describe() == \
        "the model's own forward (its 2 ops outside any submodule; module regex ^$)"
    assert Candidate("module", "^fc3$", ("linear_2",), 0.0, 1.0, 0.0).describe() == "module ^fc3$"


def _colour(fig, name: str) -> str:
    """The colour node ``name`` is drawn in, from its value and the discrete colourscale."""
    from mixprec_explorer.viz import graph as vg

    marker = fig.data[vg.NODES].marker
    index = list(fig.data[vg.NODES].customdata).index(name)
    frac = (float(marker.color[index]) - marker.cmin) / (marker.cmax - marker.cmin)
    return [c for p, c in marker.colorscale if p <= frac + 1e-12][-1]


def test_range_colour_shows_where_calibrated_ranges_leave_the_low_type_before_any_compile():
    pytest.importorskip("plotly")
    from mixprec_explorer.errors import MixprecError
    from mixprec_explorer.viz import graph as vg
    from mixprec_explorer.viz.colors import RANGE_COLORS

    torch.manual_seed(0)
    ex = Explorer(Shrinking().eval(), (torch.randn(4, 8),))
    ex.settings = FP16
    with pytest.raises(MixprecError, match=r"needs calibrated ranges: run ex\.calibrate\(batches\) first"):
        ex.figure(color_by="range")
    stats = ex.calibrate([ex.example_inputs])
    assert 1e-4 < stats["linear"].max_abs < 1e-2 and 1e-8 < stats["linear_1"].max_abs < FP16_NORMAL
    assert stats["linear_2"].max_abs < FP16_TINY / 2  # the premise: fc1 ~1e-3, fc2 ~1e-6, fc3 ~1e-9
    fig = ex.figure(color_by="range", group_by_module=None)
    assert _colour(fig, "linear") == RANGE_COLORS["in range"]
    assert _colour(fig, "linear_1") == RANGE_COLORS["underflow"]
    assert _colour(fig, "linear_2") == RANGE_COLORS["underflow, all 0"]
    legend = {t.name for t in fig.data[vg.FIRST_LEGEND_TRACE:] if t.visible}
    assert {"within FP16", "FP16 underflow (< 6.1e-05)", "FP16 underflow, all 0 (< 3e-08)"} <= legend
    hover = fig.data[vg.NODES].hovertext[list(fig.data[vg.NODES].customdata).index("linear_1")]
    assert "calibrated |x| max 4.3e-06: below FP16's smallest normal 6.1e-05: subnormal in FP16" in hover

    ex.exclude("fc3")  # the plan keeps it FP32: said, in its own colour
    kept = ex.figure(color_by="range", group_by_module=None)
    assert _colour(kept, "linear_2") == RANGE_COLORS["outside, kept FP32"]
    assert _colour(kept, "linear_1") == RANGE_COLORS["underflow"]
    bf16 = ex.figure(BF16, color_by="range", group_by_module=None)
    assert {_colour(bf16, n) for n in ("linear", "linear_1", "linear_2")} == {RANGE_COLORS["in range"]}


def test_the_widget_offers_the_range_colour_once_calibrated():
    pytest.importorskip("ipywidgets")
    from mixprec_explorer.widget.app import WidgetApp

    torch.manual_seed(0)
    ex = Explorer(Shrinking().eval(), (torch.randn(4, 8),))
    ex.settings = FP16
    app = WidgetApp(ex)
    assert ("range (needs ex.calibrate)", "range") in app.color_by_choice.options
    ex.calibrate([ex.example_inputs])
    app.color_by = "range"
    assert app.errors == [] and app.color_by == "range"
