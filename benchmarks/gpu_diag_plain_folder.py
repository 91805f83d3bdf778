"""How much of a split graph does ``ex.load_profile`` place from a folder Torch-TensorRT wrote alone?

Run on a CUDA GPU with TensorRT-RTX and transformers: ``python benchmarks/gpu_diag_plain_folder.py OUT``. Profiles
BERT-base (random weights, batch 32, sequence 128, FP32: 13 engines, softmax in PyTorch) with ``ex.profile``, then
reloads its folder with the mapping file ``ex.profile`` leaves (``mixprec_mapping.json``) and without it, as a
folder written by Torch-TensorRT's runtime alone would be, and prints each one's attributed share. Copies the plain
folder to ``OUT/bert_fp32_plain`` and the captured graph to ``OUT/bert_fp32_graph.json`` (``FxView.as_dict``), so
the mapping can be worked on without a GPU.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from gpu_live_engine import bert_base

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.backends.tensorrt import MAPPING_FILE
from mixprec_explorer.parsers.dataflow import FxView


def main() -> None:
    out = Path(sys.argv[1])
    model, inputs = bert_base(32, 128)
    ex = Explorer(model.cuda(), tuple(x.cuda() for x in inputs))
    profile = ex.profile(ex.compile(Settings(), backend="tensorrt", device="cuda", isolate=False), runs=10)
    plain = out / "bert_fp32_plain"
    shutil.copytree(profile.recorded_in, plain)
    (plain / MAPPING_FILE).unlink()
    (out / "bert_fp32_graph.json").write_text(json.dumps(FxView.of(ex.captured).as_dict()))
    with_file = ex.load_profile(profile.recorded_in)
    without = ex.load_profile(plain)
    print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}; BERT-base FP32, batch 32, seq 128")
    for label, p in (("ex.profile", profile), ("load_profile with the mapping file", with_file),
                     ("load_profile, plain folder", without)):
        print(f"| {label} | {100 * p.attributed_share:.1f} % | {len(p.node_latency_ms())} nodes |")


if __name__ == "__main__":
    main()
