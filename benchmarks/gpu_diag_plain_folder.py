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
    live, plain_ms = profile.node_latency_ms(), without.node_latency_ms()
    same = [n for n in live if abs(plain_ms.get(n, -1.0) - live[n]) <= 1e-9 + 1e-6 * live[n]]
    dtypes = profile.node_dtypes()
    agree = [n for n, d in without.node_dtypes().items() if dtypes.get(n) == d]
    print(f"plain folder against ex.profile: {len(same)} of {len(live)} nodes with the same latency, "
          f"{len(agree)} of {len(without.node_dtypes())} with the same dtype")
    shutil.copy(Path(profile.recorded_in) / MAPPING_FILE, out / "bert_fp32_mapping.json")


if __name__ == "__main__":
    main()
