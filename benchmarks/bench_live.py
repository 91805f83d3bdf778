"""The live TensorRT-RTX engine: compile, profile and map every layer onto FX nodes, then print one table.

Run on a CUDA machine with torch-tensorrt-rtx installed: ``python benchmarks/run.py live --out DIR`` (on the lent
machine: ``bash benchmarks/gpu_run.sh live --out $OUT/live``).
Per model and plan: build time, end-to-end latency (median of ``--runs`` after warm-up, profiling off), speedup
over the model's FP32 engine, share of engine time attributed to FX nodes, measured-op nodes covered, layer sum
against end-to-end, dtype fidelity (nodes whose live dtype equals the plan's prediction; every disagreement is
listed) and relative L2 error against the FP32 model in PyTorch. Writes ``live_engine.md``, ``live_engine.json``
and each engine's profiling folder (``profiles/<model>__<plan>/``) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from _common import build_model, suggested_exclusions, tensorrt_versions

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.costs import op_basename

MEASURED = {"conv2d", "linear", "matmul", "bmm", "batch_norm", "layer_norm", "relu", "relu_", "gelu", "softmax",
            "scaled_dot_product_attention", "addmm", "mm"}
FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)


def models(batch: int, only: set[str] | None) -> list[tuple[str, Any, dict[str, Settings]]]:
    """(row label, builder, plans) per model: the reference models, ResNet-50, the encoder, Hugging Face BERT-base."""
    ref_fp16 = FP16
    out = [
        ("reference explicit", lambda: build_model("reference-explicit"), {"explicit typing": Settings()}),
        ("reference autocast", lambda: build_model("reference-autocast"), {
            "autocast, ^linear2$ excluded": ref_fp16.replace(autocast_excluded_nodes=frozenset({"^linear2$"})),
            "autocast + use_fp32_acc": ref_fp16.replace(use_fp32_acc=True)}),
        ("resnet50", lambda: build_model("resnet50", batch=batch), {
            "FP32": Settings(), "autocast FP16": FP16,
            "FP16, layer4+fc excluded": FP16.replace(autocast_excluded_nodes=frozenset({r"^layer4(\.|$)", "^fc$"})),
            "FP16, batch_norm op excluded": FP16.replace(
                autocast_excluded_ops=frozenset({"torch.ops.aten.batch_norm.default"})),
            "FP16, threshold 1e2 (calibrated)": FP16.replace(autocast_max_output_threshold=100.0),
            "FP16 + use_fp32_acc": FP16.replace(use_fp32_acc=True),
            "torch eager FP32": Settings(), "torch eager FP16": FP16,
            "torch compiled FP32": Settings(), "torch compiled FP16": FP16}),
        ("encoder", lambda: build_model("encoder", batch=batch), {
            "FP32": Settings(), "autocast FP16": FP16, "cast graph FP16": FP16,
            "cast graph FP16, head+norms excluded": FP16.replace(
                autocast_excluded_nodes=frozenset({"^head$", r"^norm$"}),
                autocast_excluded_ops=frozenset({"torch.ops.aten.layer_norm.default"})),
            "cast graph FP16 + use_fp32_acc": FP16.replace(use_fp32_acc=True),
            # calibrated on the benchmark's inputs, 5 keeps about 50 of 427 nodes FP32 (embeddings, early layers)
            "cast graph FP16, threshold 5 (calibrated)": FP16.replace(autocast_max_output_threshold=5.0),
            "torch eager FP32": Settings(), "torch eager FP16": FP16,
            "torch compiled FP32": Settings(), "torch compiled FP16": FP16}),
        # "cast graph FP16" builds but gets no execution context on TensorRT-RTX 1.4 (docs/live-engine.md): the run
        # then builds the exclusion its CompileFailure suggests, as a user would paste it (see main)
        ("bert-base", lambda: build_model("bert_base", batch=batch), {"FP32": Settings(), "autocast FP16": FP16,
                                                      "cast graph FP16": FP16,
                                                      "torch eager FP32": Settings(), "torch eager FP16": FP16,
                                                      "torch compiled FP32": Settings(),
                                                      "torch compiled FP16": FP16}),
    ]
    return [m for m in out if only is None or m[0] in only]


def fidelity(ex: Explorer, profile: Any, settings: Settings) -> tuple[int, int, list[str]]:
    """(agreeing, compared, disagreements) over measured-op nodes with a live dtype and a predicted one."""
    plan = ex.plan(settings)
    measured = profile.node_dtypes()
    agree, compared, wrong = 0, 0, []
    for node, dtype in measured.items():
        if node not in ex.nodes or op_basename(ex.nodes[node].op) not in MEASURED or plan[node].dtype is None:
            continue
        compared += 1
        if plan[node].dtype == dtype:
            agree += 1
        else:
            layers = [layer.name for layer in profile.layers_of(node)]
            wrong.append(f"{node} ({ex.nodes[node].module}): predicted {plan[node].dtype}, engine {dtype} "
                         f"[{plan[node].rule}] in {layers[:2]}")
    return agree, compared, wrong


def engine_args(module: torch.nn.Module) -> dict[str, list[dict[str, Any]]]:
    """Each engine call's arguments in the partitioned graph: name, op and provenance (``from_node`` names, the
    innermost module), to see offline how a later engine's inputs relate to the captured graph."""
    out: dict[str, list[dict[str, Any]]] = {}
    graph = getattr(module, "graph", None)
    for node in graph.nodes if graph is not None else ():
        if node.op != "call_module" or not str(node.target).startswith("_run_on_acc"):
            continue
        rows = []
        for arg in node.args:
            if not isinstance(arg, torch.fx.Node):
                continue
            chain = [getattr(src, "name", str(src)) for src in arg.meta.get("from_node") or []]
            stack = arg.meta.get("nn_module_stack") or {}
            rows.append({"name": arg.name, "op": str(arg.target), "from_node": chain,
                         "module": str(list(stack.values())[-1][0]) if stack else ""})
        out[str(node.target)] = rows
    return out



def row_for(name: str, label: str, ex: Explorer, settings: Settings, inputs: tuple, runs: int, out: Path,
            reference: torch.Tensor) -> dict[str, Any]:
    row: dict[str, Any] = {"model": name, "plan": label}
    options: dict[str, Any] = {"min_block_size": 1} if name.startswith("reference") else {}
    if label.startswith("cast graph"):
        options["build"] = "cast_graph"  # the plan's casts applied by the explorer (floats only), autocast off
    backend = "tensorrt"
    if label.startswith("torch "):
        backend, options = "torch", {"mode": label.split()[1]}
    start = time.perf_counter()
    compiled = ex.compile(settings, backend=backend, device="cuda", isolate=False, **options)
    row["build_s"] = round(time.perf_counter() - start, 1)
    profile = ex.profile(compiled, inputs, runs=runs)
    row["e2e_ms"] = profile.end_to_end.median_ms
    row["layer_sum_ms"] = profile.layer_sum_ms
    row["profiled_run_ms"] = profile.profiled_run_ms
    row["attributed"] = profile.attributed_share
    latency = profile.node_latency_ms()
    ran = [n for n, i in ex.nodes.items() if i.kind == "call_function" and op_basename(i.op) in MEASURED]
    row["measured_nodes"] = f"{sum(1 for n in ran if latency.get(n, 0) > 0)}/{len(ran)}"
    row["per_node_sum_ms"] = sum(latency.values())
    row["overlapped_ms"] = profile.overlapped_ms  # layers on a second stream: their time overlaps the main one
    agree, compared, wrong = fidelity(ex, profile, settings)
    row["fidelity"] = f"{agree}/{compared}"
    row["disagreements"] = wrong
    row["confidence"] = {}
    for layer in (*profile.layers, *profile.unattributed):
        c = layer.extra.get("match", {}).get("confidence", "?")
        row["confidence"][c] = row["confidence"].get(c, 0) + 1
    row["unattributed_timed"] = [(r.name, r.latency_ms) for r in profile.unattributed if r.latency_ms]
    try:
        row["rel_l2"] = ex.accuracy(compiled, inputs).rel_l2_error
    except Exception as err:  # keep the row; say why the error is missing
        row["rel_l2"] = float("nan")
        row["accuracy_error"] = f"{type(err).__name__}: {err}"[:300]
    row["notes"] = list(compiled.notes) + list(profile.notes)
    if backend != "tensorrt":
        return row
    folder = out / "profiles" / f"{name}__{label}".replace(" ", "_").replace("/", "_").replace("^", "").replace(
        "$", "").replace(",", "").replace("+", "plus")
    folder.mkdir(parents=True, exist_ok=True)
    handle = compiled.handle
    if profile.recorded_in:  # what ex.profile recorded: traces, layer information, mixprec_mapping.json
        shutil.copytree(profile.recorded_in, folder, dirs_exist_ok=True)
        reloaded = ex.load_profile(folder)  # as a user would on a machine without a GPU
        row["reloaded_attributed"] = reloaded.attributed_share
        row["reloaded_same_dtypes"] = reloaded.node_dtypes() == profile.node_dtypes()
    # what the live mapping used beside the layer information, so that it can be replayed on a CPU
    (folder / "mapping_inputs.json").write_text(json.dumps({"post_to_pre": handle.post_to_pre,
                                                           "rename": handle.rename,
                                                           "engine_args": engine_args(handle.module)}, indent=1))
    log = Path(handle.logging_dir) / "torch_tensorrt_logging.log"
    if log.is_file():
        shutil.copy(log, folder / "torch_tensorrt_logging.log")
    return row


def _per_node(row: dict[str, Any]) -> str:
    """Per-node sum over end to end, and without the time a second stream overlapped, where there was some."""
    ratio = f"{row['per_node_sum_ms'] / row['e2e_ms']:.2f}"
    overlap = row.get("overlapped_ms") or 0.0
    return ratio + (f" ({(row['per_node_sum_ms'] - overlap) / row['e2e_ms']:.2f} less overlap)" if overlap else "")


def _reloaded(row: dict[str, Any]) -> str:
    if "reloaded_attributed" not in row:
        return ""
    same = "same dtypes" if row["reloaded_same_dtypes"] else "dtypes differ"
    return f"{100 * (row['reloaded_attributed'] or 0):.1f} %, {same}"


def write_results(out: Path, versions: dict[str, Any], rows: list[dict[str, Any]], batch: int, runs: int,
                  walls: dict[str, float]) -> None:
    """Write ``live_engine.json`` and ``live_engine.md`` (rewritten after every row, so a cut run keeps its rows)."""
    (out / "live_engine.json").write_text(json.dumps({"versions": versions, "batch": batch, "runs": runs,
                                                      "wall_s": walls, "rows": rows}, indent=1, default=str))
    lines = [f"Device: {versions['gpu']}; torch {versions['torch']}, torch_tensorrt {versions['torch_tensorrt']}, "
             f"{versions['tensorrt']}, CUDA {versions['cuda']}; batch {batch}; median of {runs} runs.", "",
             "| model | plan | build s | e2e ms | speedup | attributed | measured nodes | per-node sum / e2e "
             "| dtype fidelity | rel L2 | reloaded (load_profile) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['plan']} | failed: {' '.join(r['error'].split())[:160]} "
                         "| | | | | | | | |")
            continue
        speedup = f"{r['speedup']:.2f}" if "speedup" in r else ""
        lines.append(f"| {r['model']} | {r['plan']} | {r['build_s']} | {r['e2e_ms']:.3f} | {speedup} | "
                     f"{100 * (r['attributed'] or 0):.1f} % | {r['measured_nodes']} | {_per_node(r)} | "
                     f"{r['fidelity']} | {r['rel_l2']:.2e} | {_reloaded(r)} |")
    if walls:
        lines += ["", "Wall time per model (s): " + ", ".join(f"{m} {w:.0f}" for m, w in walls.items())]
    lines.append("")
    for r in rows:
        for w in r.get("disagreements", []):
            lines.append(f"- {r['model']} / {r['plan']}: {w}")
    (out / "live_engine.md").write_text("\n".join(lines) + "\n")


def merge(parts: list[Path], out: Path) -> None:
    """One table from the ``live_engine.json`` of runs made in parts (``--models``), in the models' order."""
    loaded = [json.loads((p / "live_engine.json").read_text()) for p in parts if (p / "live_engine.json").is_file()]
    if not loaded:
        raise SystemExit(f"no live_engine.json under {', '.join(map(str, parts))}")
    order = [m for m, _, _ in models(32, None)]
    rows = sorted((r for d in loaded for r in d["rows"]), key=lambda r: order.index(r["model"]))
    walls = {m: w for d in loaded for m, w in d.get("wall_s", {}).items()}
    out.mkdir(parents=True, exist_ok=True)
    write_results(out, loaded[0]["versions"], rows, loaded[0].get("batch", 32), loaded[0].get("runs", 30), walls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py live", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/live"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--models", default="", help="comma-separated subset of the model names")
    parser.add_argument("--plans", default="", help="comma-separated subset of the plan labels")
    parser.add_argument("--merge", type=Path, nargs="+", help="only merge these runs' results into --out")
    args = parser.parse_args(argv)
    if args.merge:
        merge(args.merge, args.out)
        print((args.out / "live_engine.md").read_text())
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    versions = {"torch": torch.__version__, **tensorrt_versions(), "gpu": torch.cuda.get_device_name(0),
                "cuda": torch.version.cuda}
    print(json.dumps(versions), flush=True)
    rows: list[dict[str, Any]] = []
    walls: dict[str, float] = {}
    only = set(args.models.split(",")) if args.models else None
    for name, build, plans in models(args.batch, only):
        started = time.perf_counter()
        model, inputs = build()
        model, inputs = model.cuda(), tuple(x.cuda() for x in inputs)
        ex = Explorer(model, inputs)
        with torch.no_grad():
            reference = model(*inputs)
            reference = (reference[0] if isinstance(reference, (tuple, list)) else reference).float()
        if name in ("resnet50", "encoder"):  # the threshold plans need ranges; every plan sees them, as a user's would
            ex.calibrate([inputs])
        fp32_ms = None
        queue = [(label, st) for label, st in plans.items() if not args.plans or label in args.plans.split(",")]
        while queue:
            label, settings = queue.pop(0)
            print(f"-- {name}: {label}", flush=True)
            try:
                row = row_for(name, label, ex, settings, inputs, args.runs, args.out, reference)
            except Exception as err:
                row = {"model": name, "plan": label, "error": f"{type(err).__name__}: {err}"[:600],
                       "trace": traceback.format_exc()[-2000:]}
                remedy = suggested_exclusions(err)
                if remedy and "remedy" not in label:  # build what the failure suggests, once, and with FP32 acc.
                    fixed = settings.replace(autocast_excluded_nodes=settings.autocast_excluded_nodes | remedy)
                    queue[:0] = [(f"{label}, remedy applied", fixed),
                                 (f"{label}, remedy applied + use_fp32_acc", fixed.replace(use_fp32_acc=True))]
            if label == "FP32" and "e2e_ms" in row:
                fp32_ms = row["e2e_ms"]
            if fp32_ms and "e2e_ms" in row:
                row["speedup"] = fp32_ms / row["e2e_ms"]
            rows.append(row)
            walls[name] = time.perf_counter() - started
            write_results(args.out, versions, rows, args.batch, args.runs, walls)
            print(json.dumps({k: v for k, v in row.items() if k not in ("notes", "trace")}, default=str), flush=True)
        del ex, model
        torch.cuda.empty_cache()
    write_results(args.out, versions, rows, args.batch, args.runs, walls)
    print((args.out / "live_engine.md").read_text())
    return 0
