"""Why Hugging Face models with a padding mask measured 0.04-0.47 relative L2 in FP32 on the live engine.

The live zoo (docs/results/zoo_live.md) measured BERT, DistilBERT, BART and Llama in FP32 far from eager. The cause
(found 2026-12-07, H100): Torch-TensorRT 2.11+ defaults to ``attn_bias_is_causal=True``, whose lowering pass
(``force_causal_efficient_attention``) replaces the mask of every efficient attention by a causal one; the TensorRT
backend now passes ``attn_bias_is_causal=False`` for a graph whose attention takes a non-causal mask. Each model is
compiled in FP32 four ways, each error split by sample and, for the padded sample (the zoo pads the last one over its
last quarter), by valid and padded position:

* ``padded``: the zoo's inputs with the backend's options (``attn_bias_is_causal=False`` where the release has it);
* ``padded, attn_bias_is_causal=True``: Torch-TensorRT's default, as the live zoo first ran it;
* ``all-ones mask``: the same program fed a mask without padding;
* ``padded, decomposed``: ``decompose_attention=True`` (the attention as matmuls and a softmax).

``--backend torch --device cpu --size small`` runs the same on a CPU as a dry run (every error is then ~0).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from _common import key_nodes

from mixprec_explorer import Explorer, Settings, zoo
from mixprec_explorer.analysis.metrics import rel_l2
from mixprec_explorer.backends import run_compiled
from mixprec_explorer.costs import op_basename

MODELS = "bert_base,distilbert_base,bart_base,llama_small,roberta_base"


def _leaves(out: Any) -> list[torch.Tensor]:
    return [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor) and t.is_floating_point()]


def split_errors(out: Any, ref: Any, batch: int, seq: int) -> dict[str, float]:
    """rel L2 over everything, per sample, and over the last sample's valid and padded positions."""
    got, want = _leaves(out), _leaves(ref)
    row = {"all": rel_l2(got, want)}
    per = [(g, w) for g, w in zip(got, want) if g.ndim >= 1 and g.shape[0] == batch]
    for i in range(batch):
        row[f"sample {i}"] = rel_l2([g[i] for g, _ in per], [w[i] for _, w in per])
    cut = seq - seq // 4
    positions = [(g[-1], w[-1]) for g, w in per if g.ndim >= 2 and g.shape[1] == seq]
    if positions and batch > 1:
        row["last: valid"] = rel_l2([g[:cut] for g, _ in positions], [w[:cut] for _, w in positions])
        row["last: padded"] = rel_l2([g[cut:] for g, _ in positions], [w[cut:] for _, w in positions])
    return row


def attention_layers(ex: Explorer, profile: Any) -> dict[str, Any]:
    """Key nodes timed, the attention nodes timed, and the engine layers that carry an attention node."""
    latency = profile.node_latency_ms()
    key, missing = key_nodes(ex.nodes, latency)
    sdpa = [n for n in key if op_basename(ex.nodes[n].op) == "scaled_dot_product_attention"]
    names = sorted({layer.name[:120] for layer in profile.layers if set(layer.nodes) & set(sdpa)})
    return {"key_nodes": f"{len(key) - len(missing)}/{len(key)}",
            "attention_timed": f"{sum(1 for n in sdpa if latency.get(n, 0) > 0)}/{len(sdpa)}",
            "attention_layers": names[:6], "unmeasured": missing[:8], "attributed": profile.attributed_share}


def variants(inputs: tuple) -> list[tuple[str, tuple, dict[str, Any]]]:
    """(label, inputs, compile options): the zoo's padded mask with the backend's options and with Torch-TensorRT's
    default, a mask of ones, and decomposed attention."""
    masks = [i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor) and not x.is_floating_point()
             and x.ndim == 2 and set(x.unique().tolist()) <= {0, 1}]
    ones = tuple(torch.ones_like(x) if i in masks else x for i, x in enumerate(inputs))
    found = [("padded", inputs, {}), ("padded, attn_bias_is_causal=True", inputs, {"attn_bias_is_causal": True})]
    if masks:
        found.append(("all-ones mask", ones, {}))
    found.append(("padded, decomposed", inputs, {"decompose_attention": True}))
    return found


def diagnose(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    model, inputs = zoo.build(name, size=args.size, batch=args.batch, seed=0)
    model = model.to(args.device)
    inputs = tuple(x.to(args.device) if isinstance(x, torch.Tensor) else x for x in inputs)
    ex = Explorer(model, inputs)
    batch, seq = inputs[0].shape[:2]
    rows = []
    chosen = [v for v in variants(inputs) if not args.variants or v[0] in args.variants.split(";")]
    for label, feed, options in chosen:
        print(f"-- {name}: {label}", flush=True)
        row: dict[str, Any] = {"model": name, "variant": label}
        try:
            if args.backend == "torch":
                options = {}  # Torch-TensorRT's own options
            start = time.perf_counter()
            compiled = ex.compile(Settings(), backend=args.backend, device=args.device, timeout_s=args.timeout_s,
                                  progress=False, **options)
            row["build_s"] = round(time.perf_counter() - start, 1)
            with torch.no_grad():
                reference = model(*feed)
            row["errors"] = split_errors(run_compiled(ex, compiled, feed, timeout_s=args.timeout_s), reference,
                                         batch, seq)
            row.update(attention_layers(ex, ex.profile(compiled, feed, runs=5, warmup=2, progress=False)))
            row["notes"] = list(compiled.notes)[:3]
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"[:500]
            row["trace"] = traceback.format_exc()[-1200:]
        rows.append(row)
    return rows


def write(out: Path, rows: list[dict[str, Any]], versions: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "diag_mask.json").write_text(json.dumps({"versions": versions, "rows": rows}, indent=1, default=str))
    cols = ["all", "sample 0", "sample 1", "last: valid", "last: padded"]
    lines = ["# FP32 error of padded-mask models, split by sample and position", "",
             " ".join(f"{k} {v};" for k, v in versions.items()), "",
             "| model | variant | " + " | ".join(cols) + " | key nodes timed | attention timed | attention layers |",
             "|---|---|" + "---|" * (len(cols) + 3)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['variant']} | failed: {r['error'][:200]} |" + " |" * (len(cols) + 2))
            continue
        e = r["errors"]
        lines.append(f"| {r['model']} | {r['variant']} | " + " | ".join(
            f"{e[c]:.2e}" if c in e else "" for c in cols)
            + f" | {r['key_nodes']} | {r['attention_timed']} | {'; '.join(r['attention_layers'])[:200]} |")
    (out / "diag_mask.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/diag-mask"))
    parser.add_argument("--only", default=MODELS, help=f"comma-separated zoo names (default: {MODELS})")
    parser.add_argument("--variants", default="", help="variant labels separated by ; (default: all)")
    parser.add_argument("--backend", default="tensorrt")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="real")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--timeout-s", type=float, default=240.0, help="a compile or run longer than this fails")
    parser.add_argument("--deadline-s", type=float, default=500.0, help="start no model after this many seconds")
    args = parser.parse_args(argv)
    versions = {"torch": torch.__version__, "backend": args.backend, "device": args.device}
    if args.backend == "tensorrt":
        from mixprec_explorer.backends.tensorrt import _load

        mods = _load()
        versions.update(torch_tensorrt=mods.torch_tensorrt.__version__,
                        tensorrt=f"{mods.tensorrt._package_name} {mods.tensorrt.__version__}",
                        gpu=torch.cuda.get_device_name(0))
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for name in args.only.split(","):
        if time.perf_counter() - t0 > args.deadline_s:
            rows.append({"model": name, "variant": "-", "error": "not run: the call's time ran out"})
        else:
            try:
                rows.extend(diagnose(name, args))
            except Exception as err:
                rows.append({"model": name, "variant": "build", "error": f"{type(err).__name__}: {err}"[:500]})
        write(args.out, rows, versions)
    print((args.out / "diag_mask.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
