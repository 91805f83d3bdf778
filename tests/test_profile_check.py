"""load_profile checks that a recorded folder's engines were built from the explorer's graph.

A folder of another model or batch size raises ProfileMismatch naming what differs (it is never reported with an
attributed share); every recorded folder of the right model maps with match_score 1 and no warning; one that fits
only in part warns and carries its score. The folders are real TensorRT-RTX recordings (tests/data/SOURCES.md).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from mixprec_explorer import Explorer, ProfileMismatch, examples
from mixprec_explorer.backends.tensorrt import profile_from_dir, profile_from_records
from mixprec_explorer.parsers.assemble import MAPPING_FILE, read_mapping_file
from mixprec_explorer.parsers.dataflow import FxView
from mixprec_explorer.parsers.mapping import ProfileMatchWarning, check_engines
from mixprec_explorer.parsers.trace import read_layer_info_dir, read_trace_dir, trace_records
from mixprec_explorer.records import EndToEnd

from _data import LIVE, RTX

ENCODER = LIVE / "encoder_b32_fp32"  #: examples.transformer_encoder(batch=32, seq=128), FP32
RESNET = [RTX / case / "profile" for case in ("resnet50_b8_fp32", "resnet50_b8_fp16", "resnet50_b8_fp16_excl_layer4_fc")]


@pytest.fixture(scope="module")
def resnet() -> Explorer:
    return Explorer(*examples.resnet50(batch=8))


@pytest.fixture(scope="module")
def encoder() -> Explorer:
    return Explorer(*examples.transformer_encoder(batch=32, seq=128))


def _load_quietly(ex: Explorer, folder: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProfileMatchWarning)
        return ex.load_profile(folder)


@pytest.mark.parametrize("folder", RESNET, ids=lambda p: p.parent.name)
def test_the_right_models_folders_map_as_before_with_a_full_match(resnet: Explorer, folder: Path) -> None:
    profile = _load_quietly(resnet, folder)
    assert profile.match_score == 1.0 and profile.attributed_share is not None and profile.attributed_share >= 0.95


def test_the_encoders_folder_maps_onto_the_encoder(encoder: Explorer) -> None:
    profile = _load_quietly(encoder, ENCODER)
    assert profile.match_score == 1.0 and profile.attributed_share is not None and profile.attributed_share >= 0.95


@pytest.mark.parametrize("case", ["ref_autocast_excl_linear2", "ref_fp32_acc"])
def test_the_reference_folders_map_onto_the_reference_model(autocast_ex: Explorer, case: str) -> None:
    assert _load_quietly(autocast_ex, RTX / case / "profile").match_score == 1.0


def test_the_encoders_folder_at_another_batch_size_is_refused(resnet: Explorer) -> None:
    ex = Explorer(*examples.transformer_encoder(batch=8, seq=128))
    ex.last_profile = before = _load_quietly(resnet, RESNET[0])  # whatever was there stays
    with pytest.raises(ProfileMismatch, match=r"input 'ids' is \[32, 128\]; this graph's input 'ids' is \[8, 128\]"):
        ex.load_profile(ENCODER)
    assert ex.last_profile is before


def test_the_encoders_folder_onto_mobilenet_is_refused_naming_what_differs() -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    ex = Explorer(torchvision.models.mobilenet_v3_small(weights=None).eval(), (torch.randn(1, 3, 224, 224),))
    with pytest.raises(ProfileMismatch) as caught:
        ex.load_profile(ENCODER)
    message = str(caught.value)
    assert "input 'ids' is [32, 128]; this graph's input 'x' is [1, 3, 224, 224]" in message
    assert "modules this graph lacks: 'layers.0.linear2'" in message and "the same batch size" in message
    assert ex.last_profile is None


def test_a_resnet50_folder_onto_resnet18_with_the_same_inputs_and_outputs_is_refused() -> None:
    """Same input (8x3x224x224) and output (8x1000) as the recorded ResNet-50: module names and the convolution
    layers the dataflow cannot place give it away."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    ex = Explorer(torchvision.models.resnet18(weights=None).eval(), (torch.randn(8, 3, 224, 224),))
    with pytest.raises(ProfileMismatch, match=r"modules this graph lacks: .*'layer3\.2\.relu'.*convolution and matmul "
                                              r"layers fit no such node"):
        ex.load_profile(RTX / "resnet50_b8_fp16" / "profile")


def _with_graph(tmp_path: Path, folder: Path, graph: dict) -> Path:
    """``folder``'s engines with a mapping file that carries ``graph`` (as ex.profile writes for a cast graph)."""
    out = tmp_path / folder.name
    shutil.copytree(folder, out)
    (out / MAPPING_FILE).write_text(json.dumps({"format": 1, "post_to_pre": {}, "rename": {}, "graph": graph}))
    return out


def test_the_encoders_engines_onto_berts_graph_are_refused(tmp_path: Path) -> None:
    """BERT-base's captured graph (batch 32, sequence 128: the encoder's input exactly), recorded live."""
    bert = json.loads((LIVE / "bert_base_b32_fp32_graph.json").read_text())
    with pytest.raises(ProfileMismatch, match=r"modules this graph lacks: 'layers\.0\.linear2'.*output0 is \[32, 2\]"
                                              r"|output0 is \[32, 2\].*modules this graph lacks: 'layers\.0\.linear2'"):
        profile_from_dir(_with_graph(tmp_path, ENCODER, bert), None)
    assert profile_from_dir(_with_graph(tmp_path / "b", LIVE / "bert_base_b32_fp32_plain", bert), None).match_score == 1


def test_a_cast_graph_folder_onto_another_explorer_is_refused(resnet: Explorer) -> None:
    """BERT's cast-graph folder carries its own graph: mapping onto it works, but its nodes are not ResNet's."""
    with pytest.raises(ProfileMismatch, match="nodes of the folder's graph are not this graph's.*'ids'"):
        resnet.load_profile(LIVE / "bert_base_b32_cast_fp16")


def test_a_folder_that_fits_in_part_warns_and_carries_its_score(tmp_path: Path, resnet: Explorer) -> None:
    """The recorded ResNet-50 FP16 engine with one module path in its names changed: 11 of 12 named modules are
    the graph's, everything else agrees."""
    folder = tmp_path / "partial"
    shutil.copytree(RTX / "resnet50_b8_fp16" / "profile", folder)
    info = folder / "_run_on_acc_0_engine_layer_information.json"
    info.write_text(info.read_text().replace("[avgpool/", "[pool/"))
    with pytest.warns(ProfileMatchWarning, match=r"match score 0\.92.*'pool'"):
        profile = resnet.load_profile(folder)
    assert profile.match_score == pytest.approx(11 / 12)
    assert any("fit this graph only in part" in note for note in profile.notes)
    assert profile.attributed_share is not None and profile.attributed_share >= 0.95


def test_a_cast_graph_folder_fits_the_graph_it_was_built_from() -> None:
    """BERT-base's cast FP16 folder carries the cast program's graph; renamed, its nodes are the captured BERT
    graph's (recorded beside it), the cast program's own assert nodes aside."""
    folder = LIVE / "bert_base_b32_cast_fp16"
    post_to_pre, rename, view = read_mapping_file(folder)
    assert view is not None
    infos = read_layer_info_dir(folder)
    timings = {sub: trace_records(text, None, sub)[0] for sub, text in read_trace_dir(folder, infos).items()}
    modules = {n: i.module for n, i in view.nodes.items() if i.kind == "call_function"}
    mapped = profile_from_records(infos, timings, node_modules=modules, end_to_end=EndToEnd(0.0, 0.0, 0.0, 0),
                                  device="", versions={}, post_to_pre=post_to_pre, view=view)  # as load_profile maps
    bert = FxView.from_dict(json.loads((LIVE / "bert_base_b32_fp32_graph.json").read_text()))
    check = check_engines(mapped.layers + mapped.unattributed, view, post_to_pre, target=bert, rename=rename)
    assert check.graph == (308, 308) and check.score == 1.0 and not check.contradicts
