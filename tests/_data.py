"""The recorded data the tests read, all under tests/data/ (sources and licenses in tests/data/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SAMPLES = DATA / "trt_samples"  #: TREx's ResNet-18 engines (TensorRT 8.x, A100): layer JSON and profiles
RTX = DATA / "trt_rtx_h200"  #: TensorRT-RTX engines of the examples, recorded on an H200
LIVE = DATA / "trt_rtx_live"  #: engines recorded live by benchmarks/run.py live (encoder, BERT-base)
ZOO = DATA / "trt_rtx_zoo"  #: zoo models' profile folders (benchmarks/run.py zoo-live --keep-unmapped, H100)
REFERENCE = DATA / "reference" / "torch_tensorrt_mixed_precision_logs.txt"  #: the guide's three layer logs
PASSES = DATA / "torch_tensorrt_passes"  #: Torch-TensorRT's autocast pass sources (2.10-2.14 wheels, unmodified)
