"""The standalone HTML report and the latency chart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import plotly.graph_objects as go
import pytest
import torch

import mixprec_explorer
from mixprec_explorer import Explorer, LayerRecord, Settings
from mixprec_explorer.backends.base import Profile
from mixprec_explorer.dtypes import PALETTE
from mixprec_explorer.examples import reference_autocast_model
from mixprec_explorer.records import EndToEnd
from mixprec_explorer.viz.charts import build_latency_chart
from mixprec_explorer.viz.report import render_html


@pytest.fixture
def ex() -> Explorer:
    explorer = Explorer(*reference_autocast_model())
    explorer.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    explorer.exclude("linear2")
    return explorer


@pytest.fixture
def profile() -> Profile:
    layers = (
        LayerRecord(name="linear1_gemm", layer_type="Gemm", output_dtypes=(torch.float16,), latency_ms=0.30,
                    nodes=("linear",), modules=("linear1",)),
        LayerRecord(name="linear2_gemm", layer_type="Gemm", output_dtypes=(torch.float32,), latency_ms=0.50,
                    nodes=("linear_1",), modules=("linear2",), tactic="sm90_gemm"),
        LayerRecord(name="linear3_gemm", layer_type="Gemm", output_dtypes=(torch.float16,), latency_ms=0.10,
                    nodes=("linear_2",)),
    )
    return Profile(backend="torch", device="cpu", versions={}, layers=layers,
                   unattributed=(LayerRecord(name="reformat", latency_ms=0.05),),
                   end_to_end=EndToEnd(1.0, 0.9, 1.1, 5), mode="eager")


def test_save_html_writes_a_standalone_offline_page(ex: Explorer, tmp_path: Path) -> None:
    path = ex.save_html(tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]+src=", text), "the page must not load scripts from anywhere"
    assert not re.search(r"<link[^>]+href=\"https?:", text)
    assert len(text) > 1_000_000  # plotly.js itself is inlined
    assert 'id="mixprec-graph"' in text
    for name in ("linear", "linear_1", "linear_2"):
        assert f"<td>{name}</td>" in text
    assert "^linear2$" in text and "excluded_node" in text
    assert "share of FLOPs" in text and "80.8%" in text
    assert "torch_tensorrt.dynamo.compile(" in text
    assert f"mixprec_explorer {mixprec_explorer.__version__} \u00b7" in text  # the installed version, as the package says
    settings_json = re.search(r"<pre>(\{.*?\})\s*</pre>", text, re.S)
    assert settings_json and json.loads(settings_json.group(1).replace("&quot;", '"'))["settings"]["enable_autocast"]
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # atomic: no temporary left behind


def test_explorer_save_html_and_escaping(ex: Explorer, tmp_path: Path) -> None:
    path = ex.save_html(tmp_path / "r.html", title="<b>mine</b>")
    text = path.read_text(encoding="utf-8")
    assert "&lt;b&gt;mine&lt;/b&gt;" in text and "<b>mine</b>" not in text


def test_report_with_a_profile_has_measured_columns_and_the_latency_chart(ex: Explorer, profile: Profile,
                                                                          tmp_path: Path) -> None:
    text = ex.save_html(tmp_path / "r.html", profile=profile, group_by_module=1).read_text(encoding="utf-8")
    assert 'id="mixprec-latency"' in text
    assert "<th>measured</th>" in text and "0.5" in text
    assert text.count("<script") >= 2


def test_latency_chart_sorts_by_cost_and_colours_by_dtype(profile: Profile) -> None:
    fig = build_latency_chart(profile)
    go.Figure(fig.to_dict())
    order = list(fig.layout.yaxis.categoryarray)
    assert order[0].startswith("#1 linear2_gemm") and order[1].startswith("#2 linear1_gemm")
    assert order[-1].endswith("(unattributed)")
    colours = {t.name: t.marker.color for t in fig.data}
    assert colours["FP32"] == PALETTE["FP32"] and colours["FP16"] == PALETTE["FP16"]
    bars = {y: x for t in fig.data for x, y in zip(t.x, t.y)}
    assert bars[order[0]] == 0.5
    hover = next(t for t in fig.data if t.name == "FP32").hovertext[0]
    assert "sm90_gemm" in hover and "linear_1" in hover and "(52.6%)" in hover
    assert len(build_latency_chart(profile, top=2).layout.yaxis.categoryarray) == 2
    assert len(build_latency_chart(list(profile.layers)).layout.yaxis.categoryarray) == 3


def _render(ex: Explorer) -> str:
    """The report from records alone, as ex.save_html gathers them."""
    plan = ex.plan()
    return render_html(ex.captured, plan, settings=ex.settings, figure=ex.figure(plan=plan),
                       summary=ex.summary(plan), warnings=ex.check_settings())


def test_plan_table_shows_the_source_line_of_each_node(ex: Explorer) -> None:
    text = _render(ex)
    assert "<th>source</th>" in text
    row = re.search(r"<tr><td>linear_1</td>.*?</tr>", text).group(0)
    assert "<code>mixprec_explorer/examples.py:35</code> return self.linear3(self.linear2(self.linear1(x)))" in row
    assert 'title="' + str(Path(ex.nodes["linear_1"].source[0])) + ':35"' in row  # the full path on hover


def test_the_page_scrolls_over_the_graph(ex: Explorer) -> None:
    text = _render(ex)
    assert '"scrollZoom": false' in text and '"scrollZoom": true' not in text
    assert "Scroll to zoom" not in text
