"""The PyTorch backend (and TensorRT where it imports) under five precision plans per model, measured end to end.

Run on a CUDA machine: ``python benchmarks/run.py suite [--models resnet50,encoder] [--out DIR]`` (models: the
built-in examples or any zoo name). ``--small`` runs the models' tiny sizes on CPU (the test suite does). Prints one
table; writes ``gpu_suite.md`` (the table), ``gpu_suite.json`` (every figure) and ``nodes_<model>_<config>.csv``
(per-node latency and roofline share) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from _common import build_model

from mixprec_explorer import Explorer, Settings, WorkerCrashed
from mixprec_explorer.backends import available_backends
from mixprec_explorer.costs import MATMUL_FAMILY, op_basename
from mixprec_explorer.settings import module_pattern


def _rate(device: str, work: float, fn, reps: int) -> float:
    """``work`` units per second of ``fn`` over ``reps`` synchronised calls, after two warm-up calls."""
    for _ in range(2):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    _sync(device)
    return work * reps / (time.perf_counter() - start)


def peak_rates(device: str) -> dict[str, float]:
    """Measured matmul FLOP/s per dtype (and TF32 on CUDA) and copy bandwidth (bytes/s read + written)."""
    n, reps = (512, 3) if device == "cpu" else (8192, 10)
    out: dict[str, float] = {}
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        out[f"matmul_{name}_flops"] = _rate(device, 2 * n**3, lambda a=a, b=b: a @ b, reps)
    if device != "cpu":  # FP32 convolutions (cuDNN) and, if allowed, matmuls run as TF32 by default
        before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        a = torch.randn(n, n, device=device)
        out["matmul_tf32_flops"] = _rate(device, 2 * n**3, lambda: a @ a, reps)
        torch.backends.cuda.matmul.allow_tf32 = before
    x = torch.empty(256 * 2**20 if device != "cpu" else 16 * 2**20, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    out["copy_bytes_per_s"] = _rate(device, 2 * x.numel(), lambda: y.copy_(x), reps)
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def configs(model: str, ex: Explorer) -> dict[str, Settings]:
    """The five plans: FP32, all-FP16, all-BF16, FP16 with a few exclusions, FP16 with FP32 accumulation.

    The exclusions: ResNet-50's stem convolution and ``fc``; the encoder's head, first attention and softmax; any
    other model's first and last modules that run ops."""
    fp16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    ops: frozenset[str] = frozenset()
    if model == "resnet50":
        exclusions = {"^conv1$", "^fc$"}
    elif model == "encoder":
        exclusions, ops = {"^head$", r"^layers\.0\.self_attn$"}, frozenset({"torch.ops.aten.softmax.int"})
    else:
        modules = [m for m in ex.modules if m]
        exclusions = {module_pattern(modules[0]), module_pattern(modules[-1])} if modules else set()
    return {
        "FP32": Settings(),
        "all FP16": fp16,
        "all BF16": fp16.replace(autocast_low_precision_type=torch.bfloat16),
        "FP16, exclusions": fp16.replace(autocast_excluded_nodes=frozenset(exclusions), autocast_excluded_ops=ops),
        "FP16 + FP32 acc": fp16.replace(use_fp32_acc=True),
    }


def roofline_shares(ex: Explorer, profile: Any, plan: Any, peaks: dict[str, float]) -> list[dict[str, Any]]:
    """Per node: achieved FLOP/s and bytes/s against the measured peaks; share = the larger of the two."""
    rows = []
    for node, ms in profile.node_latency_ms().items():
        info = ex.nodes.get(node)
        if info is None or ms <= 0:
            continue
        dtype = plan[node].dtype if node in plan else info.dtype
        key = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")
        scale = (dtype.itemsize / 4) if dtype is not None and dtype.is_floating_point else 1.0
        flops_s = info.flops / (ms / 1e3)
        bytes_s = info.bytes_moved * scale / (ms / 1e3)
        dense = op_basename(info.op) in MATMUL_FAMILY
        peak = peaks[f"matmul_{key}_flops"]
        if key == "fp32" and "matmul_tf32_flops" in peaks:
            conv = "conv" in op_basename(info.op)
            if (conv and torch.backends.cudnn.allow_tf32) or (not conv and torch.backends.cuda.matmul.allow_tf32):
                peak = peaks["matmul_tf32_flops"]
        share = max(flops_s / peak if dense else 0.0, bytes_s / peaks["copy_bytes_per_s"])
        rows.append({"node": node, "op": info.op, "module": info.module, "dtype": str(dtype), "latency_ms": ms,
                     "flops": info.flops, "bytes": int(info.bytes_moved * scale), "roofline_share": share})
    return rows


def measure(name: str, model: torch.nn.Module, inputs: tuple, device: str, modes: list[str], backends: list[str],
            runs: int, peaks: dict[str, float], out: Path, warmup: int = 25) -> list[dict[str, Any]]:
    ex = Explorer(model, inputs)
    rows = []
    for backend in backends:
        for mode in (modes if backend == "torch" else ["tensorrt"]):
            base_ms = None
            for label, settings in configs(name, ex).items():
                row: dict[str, Any] = {"model": name, "backend": backend, "mode": mode, "config": label}
                options = {"mode": mode} if backend == "torch" else {}
                try:
                    start = time.perf_counter()
                    compiled = ex.compile(settings, backend=backend, device=device, progress=False, **options)
                    row["compile_s"] = time.perf_counter() - start
                    profile = ex.profile(compiled, runs=runs, warmup=warmup, progress=False)
                    acc = ex.accuracy(compiled)
                except WorkerCrashed as err:
                    row["error"] = f"worker crashed: {str(err).splitlines()[0]}"
                    rows.append(row)
                    continue
                e2e = profile.end_to_end.median_ms
                base_ms = e2e if label == "FP32" else base_ms
                plan = ex.plan(settings)
                shares = roofline_shares(ex, profile, plan, peaks)
                weighted = (sum(r["roofline_share"] * r["latency_ms"] for r in shares)
                            / max(sum(r["latency_ms"] for r in shares), 1e-12)) if shares else None
                row.update({
                    "latency_ms": e2e, "p10_ms": profile.end_to_end.p10_ms, "p90_ms": profile.end_to_end.p90_ms,
                    "speedup": (base_ms / e2e) if base_ms else None,
                    "layer_sum_ms": profile.layer_sum_ms, "layer_sum/e2e": profile.layer_sum_ratio,
                    "attributed_ms": sum(profile.node_latency_ms().values()),
                    "rel_l2": acc.rel_l2_error, "cosine": acc.cosine_similarity, "sqnr_db": acc.sqnr_db,
                    "top1": acc.top1_agreement, "max_abs": acc.max_abs_error,
                    "roofline_share_time_weighted": weighted,
                    "mismatched_dtypes": sum(1 for n, d in profile.node_dtypes().items()
                                             if n in plan and plan[n].dtype is not None and d is not None
                                             and d != plan[n].dtype),
                })
                slug = f"{name}_{backend}_{mode}_{label}".replace(" ", "").replace(",", "_").replace("+", "_")
                with (out / f"nodes_{slug}.csv").open("w", newline="") as handle:
                    if shares:
                        writer = csv.DictWriter(handle, fieldnames=list(shares[0]))
                        writer.writeheader()
                        writer.writerows(shares)
                rows.append(row)
                print(_fmt_row(row), flush=True)
                with (out / "rows.md").open("a") as handle:  # survives a run killed at its time limit
                    handle.write(_fmt_row(row) + "\n")
    return rows


COLUMNS = ["model", "backend", "mode", "config", "compile_s", "latency_ms", "speedup", "layer_sum/e2e", "rel_l2",
           "cosine", "sqnr_db", "top1", "roofline_share_time_weighted", "mismatched_dtypes", "error"]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _fmt_row(row: dict[str, Any]) -> str:
    return "| " + " | ".join(_fmt(row.get(c)) for c in COLUMNS) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py suite", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,encoder")
    parser.add_argument("--modes", default="eager,compiled")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=25)
    parser.add_argument("--small", action="store_true", help="the models' tiny sizes, on CPU (the test suite's)")
    parser.add_argument("--out", default="gpu_suite_out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda:0" if torch.cuda.is_available() and not args.small else "cpu"
    backends = ["torch"] + (["tensorrt"] if available_backends()["tensorrt"][0] else [])
    peaks = peak_rates(device)
    dev_name = torch.cuda.get_device_name(0) if device.startswith("cuda") else (platform.processor() or "cpu")
    header = (f"Device: {dev_name}; torch {torch.__version__}, CUDA {torch.version.cuda}; Python "
              f"{platform.python_version()}; backends: {', '.join(backends)}; median of {args.runs} runs after "
              f"{args.warmup} warm-up runs.\nMeasured peaks: " + ", ".join(f"{k} {v:.3g}" for k, v in peaks.items()))
    print(header, flush=True)
    print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS), flush=True)
    rows = []
    for name in args.models.split(","):
        model, inputs = build_model(name, small=args.small, batch=32)
        model = model.to(device)
        inputs = tuple(x.to(device) for x in inputs)
        rows += measure(name, model, inputs, device, args.modes.split(","), backends, args.runs, peaks, out,
                        args.warmup)
    table = "\n".join(["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)] + [_fmt_row(r) for r in rows])
    (out / "gpu_suite.md").write_text(header + "\n\n" + table + "\n")
    (out / "gpu_suite.json").write_text(json.dumps({"header": header, "peaks": peaks, "rows": rows}, indent=1,
                                                   default=str))
    ok = [r for r in rows if "latency_ms" in r]
    if ok:
        print(f"median layer_sum/e2e over eager rows: "
              f"{statistics.median([r['layer_sum/e2e'] for r in ok if r['mode'] == 'eager' and r['layer_sum/e2e']] or [0]):.3g}")
    return 0
