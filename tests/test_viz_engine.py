"""The engine view: layers in execution order, linked both ways with the FX graph (on a recorded live engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixprec_explorer import Explorer, examples
from mixprec_explorer.viz.engine import build_engine_figure, engine_layers, layers_for_nodes, nodes_for_layer
from mixprec_explorer.viz.graph import NODES

from _data import LIVE, RTX


@pytest.fixture(scope="module")
def ex() -> Explorer:
    ex = Explorer(*examples.resnet50(batch=8))
    ex.load_profile(RTX / "resnet50_b8_fp16_excl_layer4_fc" / "profile")
    return ex


def test_layers_in_execution_order_with_their_dtypes(ex: Explorer) -> None:
    profile = ex.last_profile
    rows = engine_layers(profile)
    assert rows[0].name == "__myl_CastConc_myl0_0" and rows[-1].name == "__myl_FcAdd_myl0_74"
    fig = ex.engine_figure()
    assert {t.name for t in fig.data} == {"FP16", "FP32"}
    assert sum(len(t.x) for t in fig.data) == len(rows)
    assert sorted(k for t in fig.data for k in t.customdata) == list(range(len(rows)))


def test_a_node_selects_its_layers_and_a_layer_its_nodes(ex: Explorer) -> None:
    profile = ex.last_profile
    stem = layers_for_nodes(profile, ["conv2d"])
    names = [engine_layers(profile)[k].name for k in stem]
    assert names == ["__myl_CastConc_myl0_0", "__myl_CorrMulAddRelu_myl0_1"]  # the input cast is charged there
    assert nodes_for_layer(profile, "__myl_CorrMulAddRelu_myl0_1") == ("conv2d", "batch_norm", "relu_")
    fig = build_engine_figure(profile, selected_nodes=["conv2d"])
    outlined = [k for t in fig.data for k, w in zip(t.customdata, t.marker.line.width) if w]
    assert sorted(outlined) == stem
    with pytest.raises(KeyError, match="no engine layer named"):
        nodes_for_layer(profile, "nope")


def test_report_carries_the_linked_engine_view(ex: Explorer, tmp_path: Path) -> None:
    html = ex.save_html(tmp_path / "r.html").read_text()
    assert 'id="mixprec-engine"' in html and "plotly_click" in html and "layerPoints" in html


def test_engine_figure_without_a_profile_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="load_profile"):
        Explorer(*examples.reference_autocast_model()).engine_figure()


def test_a_mismatch_names_the_engine_layer_that_shows_it(ex: Explorer) -> None:
    """The recorded engine excluded layer4 and fc; a plan that predicts them FP16 is contradicted, layer by layer."""
    import torch

    from mixprec_explorer import Settings

    fig = ex.figure(settings=Settings(enable_autocast=True, autocast_low_precision_type=torch.float16),
                    color_by="mismatch", group_by_module=None)
    hover = dict(zip(fig.data[1].customdata, fig.data[1].hovertext))
    assert "differs from predicted FP16" in hover["linear"] and "__myl_FcAdd_myl0_74 (exact)" in hover["linear"]
    assert "differs" not in hover["conv2d"] and "__myl_CorrMulAddRelu_myl0_1 (exact)" in hover["conv2d"]


def test_a_split_graph_lists_its_engines_in_execution_order() -> None:
    """BERT-base's 13 engines (recorded live on an H200, tests/data): _run_on_acc_2 runs before _run_on_acc_10."""
    from mixprec_explorer.backends.tensorrt import profile_from_dir

    profile = profile_from_dir(LIVE / "bert_base_b32_cast_fp16", None)
    engines = list(dict.fromkeys(layer.extra["engine"] for layer in engine_layers(profile)))
    assert engines == [f"_run_on_acc_{k}" for k in range(0, 25, 2)]
    figure = build_engine_figure(profile)  # one bar trace per dtype
    assert sum(len(trace.x) for trace in figure.data if trace.type == "bar") == len(engine_layers(profile))
    # each label names its engine, in order, and a line marks each of the 12 places where the next engine starts
    labels = list(figure.layout.yaxis.categoryarray)
    tags = list(dict.fromkeys(label.split()[1] for label in labels))
    assert tags == [f"acc_{k}" for k in range(0, 25, 2)]
    starts = [k for k in range(1, len(labels)) if labels[k].split()[1] != labels[k - 1].split()[1]]
    assert sorted(shape.y0 + 0.5 for shape in figure.layout.shapes) == starts


def test_a_single_engine_keeps_plain_labels(ex: Explorer) -> None:
    """One engine: no engine tag in the labels and no separator lines (nothing to tell apart)."""
    profile = ex.load_profile(RTX / "resnet50_b8_fp16_excl_layer4_fc" / "profile")  # the fixture's, again
    figure = build_engine_figure(profile)
    assert not figure.layout.shapes
    assert all(label.split()[1].startswith(("__myl", "[")) for label in figure.layout.yaxis.categoryarray)


def test_a_layer_on_a_second_stream_says_its_time_overlaps(ex: Explorer) -> None:
    """ResNet-50 FP32 runs its downsample branches on stream 1: their bars say why layer times add up to more than
    end to end (docs/timing.md: 1.11-1.18x, 1.00-1.05x without them)."""
    from mixprec_explorer.backends.tensorrt import profile_from_dir

    fp32 = profile_from_dir(RTX / "resnet50_b8_fp32" / "profile", ex)  # the fixture keeps its own last profile
    rows = engine_layers(fp32)
    hover = {k: h for t in ex.engine_figure(fp32).data for k, h in zip(t.customdata, t.hovertext)}
    aside = [k for k, r in enumerate(rows) if r.extra.get("StreamId") == 1]
    assert aside and all("second stream" in hover[k] for k in aside)
    assert all("second stream" not in hover[k] for k in range(len(rows)) if k not in aside)
    fig = ex.figure(color_by="latency", group_by_module=None, profile=fp32)  # the graph's own hover names it too
    graph_hover = dict(zip(fig.data[NODES].customdata, fig.data[NODES].hovertext))
    downsample = next(n for n, i in ex.nodes.items() if i.module == "layer1.0.downsample.0")
    assert "second stream" in graph_hover[downsample] and "second stream" not in graph_hover["conv2d"]
