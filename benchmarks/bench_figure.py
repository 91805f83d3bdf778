"""Figure benchmark: graph figure build, in-place recolour, payload size, and the widget's click latency.

Run: ``python benchmarks/run.py figure [--quick] [--runs N] [--markdown FILE]``. Prints one table; every time
is the median of several runs on this machine (CPU only; the browser's rendering is not included).

- build, cold: ``ex.figure`` (``viz.graph.build_figure``) with no cached layout (layered layout + hover text + figure), ms
- build, warm: the same with the layout cached (what a re-draw after a settings change costs), ms
- recolour: ``ex.recolor(fig, plan)`` of a go.Figure and of a FigureWidget for a changed plan (plan itself excluded), ms
- payload: ``len(fig.to_json())``, the bytes a notebook or the HTML report ships, MB
- click: a widget click on a node (ResNet-50's 175 and a 2,000-node graph, every node drawn), handled as in the
  browser: toggle the module's exclusion + re-plan + recolour + what changed sent + summary/details panels, ms;
  with the bytes of the figure update the click sends to the browser (the changed points' colour and hover items,
  the title, a mark's shape)

The click as the user sees it (mousedown to the node's new colour, in JupyterLab in Chromium) is measured by
tests/test_browser.py, which writes test-artifacts/browser_timings.json; ``--browser-timings`` prints that file.

Targets (issue 3): a 10,000-node graph draws in < 2 s and recolours in < 100 ms; a click takes < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import plotly
import plotly.graph_objects as go
import torch
from _common import machine

from mixprec_explorer import Explorer, Settings
from mixprec_explorer.examples import layer_stack, resnet50
from mixprec_explorer.viz.graph import clear_caches

TARGETS = {"build_10k_s": 2.0, "recolor_10k_ms": 100.0, "click_2k_ms": 50.0}


def median_s(fn: Callable[[], object], runs: int, setup: Callable[[], object] | None = None) -> float:
    """Median wall time of ``fn`` in seconds; ``setup`` runs untimed before each call."""
    times = []
    for _ in range(runs):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def autocast(ex: Explorer) -> None:
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16, use_fp32_acc=True)


def bench_size(nodes: int, runs: int) -> dict[str, float]:
    start = time.perf_counter()
    ex = Explorer(*layer_stack(nodes))
    capture_s = time.perf_counter() - start
    autocast(ex)
    ex.plan()
    cold = median_s(lambda: ex.figure(group_by_module=None), max(1, runs // 2), setup=clear_caches)
    warm = median_s(lambda: ex.figure(group_by_module=None), runs)
    fig = ex.figure(group_by_module=None)  # every node drawn
    fw = go.FigureWidget(fig)
    modules = [m for m in ex.modules if m]
    plans = []
    for i in range(runs):  # distinct plans, computed before timing: only the recolour is measured
        ex.exclude(modules[(i * 7) % len(modules)])
        plans.append(ex.plan())
    it = iter(plans * 2)
    recolour = median_s(lambda: ex.recolor(fig, next(it)), runs)
    it = iter(plans * 2)
    recolour_fw = median_s(lambda: ex.recolor(fw, next(it)), runs)
    return {
        "points": len(fig.data[1].x),
        "capture_s": capture_s,
        "build_cold_ms": cold * 1e3,
        "build_warm_ms": warm * 1e3,
        "recolor_ms": recolour * 1e3,
        "recolor_fw_ms": recolour_fw * 1e3,
        "payload_mb": len(fig.to_json()) / 1e6,
        "trace": fig.data[1].type,
    }


def bench_click(model: tuple, runs: int) -> dict[str, float]:
    """Clicks as plotly delivers them to the widget (its click callbacks), each on another module's node."""
    from plotly.callbacks import Points

    from mixprec_explorer.widget.app import WidgetApp

    ex = Explorer(*model)
    autocast(ex)
    app = WidgetApp(ex, group_by_module=None)  # every node drawn
    trace = app.node_trace
    sent: list[int] = []
    send = app.figure_widget._send_update_msg

    def counted(restyle_data: dict, relayout_data: dict, *args: object, **kwargs: object) -> None:
        sent.append(len(json.dumps([restyle_data, relayout_data], default=str)))
        send(restyle_data, relayout_data, *args, **kwargs)

    app.figure_widget._send_update_msg = counted  # measures what goes to the browser; sends it all the same
    seen: set[str] = set()
    targets = [n for n, i in ex.nodes.items() if i.kind == "call_function" and i.module
               and not (i.module in seen or seen.add(i.module))][: runs * 2]

    def click(name: str) -> None:
        i = app.point_index(name)
        trace._dispatch_on_click(Points(point_inds=[i], xs=[trace.x[i]], ys=[trace.y[i]], trace_name="nodes",
                                        trace_index=1), None)

    it = iter(targets)
    sent.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        click_s = median_s(lambda: click(next(it)), runs)
    assert not app.errors, app.errors
    assert len(ex.settings.autocast_excluded_nodes) == runs
    return {"points": len(trace.x), "click_ms": click_s * 1e3, "sent_kb": statistics.median(sent) / 1e3}


def print_browser_timings(data: dict[str, dict]) -> None:
    """The browser test's clicks: against a bare plotly FigureWidget in the same page (ratio, with the split of each
    median), then the graphs timed alone."""
    parts = ("page", "kernel", "wire", "render", "frame", "after")
    print("| graph | explorer ms | bare ms | ratio | target | explorer split (" + " / ".join(parts) + ") ms "
          "| bare split ms | CPUs | when |\n|---|---:|---:|---:|---:|---|---|---:|---|")
    for name, row in data.items():
        if "ratio" in row:
            split = [" / ".join(f"{row[k].get(p, 0):.0f}" for p in parts) for k in ("explorer_split_ms", "bare_split_ms")]
            print(f"| {name} | {row['explorer_ms']:.0f} | {row['bare_ms']:.0f} | {row['ratio']:.2f}x "
                  f"| <= {row['target_ratio']:g}x | {split[0]} | {split[1]} | {row.get('cpus')} | {row.get('when')} |")
    print("\n| graph (alone) | median ms | clicks ms | bound ms | CPUs | when |\n|---|---:|---|---:|---:|---|")
    for name, row in data.items():
        if "median_ms" in row:
            print(f"| {name} | {row['median_ms']:.0f} | {', '.join(f'{t:.0f}' for t in row['clicks_ms'])} "
                  f"| {row.get('bound_ms') or '-'} | {row.get('cpus')} | {row.get('when')} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py figure", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 nodes only (skips the 10k capture)")
    parser.add_argument("--runs", type=int, default=7, help="runs per median (default 7)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--browser-timings", nargs="?", const=Path("test-artifacts/browser_timings.json"),
                        type=Path, help="print the browser test's click timings (default test-artifacts/...) and exit")
    args = parser.parse_args(argv)
    if args.browser_timings:
        print_browser_timings(json.loads(args.browser_timings.read_text(encoding="utf-8")))
        return 0
    sizes = (100, 1000) if args.quick else (100, 1000, 10000)

    rows = [(n, bench_size(n, args.runs)) for n in sizes]
    clicks = [("ResNet-50", bench_click(resnet50(), args.runs)), ("layer stack", bench_click(layer_stack(2000),
                                                                                              args.runs))]
    click = clicks[1][1]

    lines = [
        f"machine: {machine()}, plotly {plotly.__version__}",
        f"medians of {args.runs} runs (cold builds: {max(1, args.runs // 2)})",
        "",
        "| nodes | points | trace | capture (s) | build cold (ms) | build warm (ms) | recolour Figure (ms) "
        "| recolour FigureWidget (ms) | payload (MB) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n, r in rows:
        lines.append(f"| {n:,} | {r['points']:,} | {r['trace']} | {r['capture_s']:.1f} | {r['build_cold_ms']:.0f} "
                     f"| {r['build_warm_ms']:.0f} | {r['recolor_ms']:.1f} | {r['recolor_fw_ms']:.1f} "
                     f"| {r['payload_mb']:.2f} |")
    lines += ["", "| click, Python side (toggle + re-plan + recolour + send what changed + panels) | points "
                  "| ms | figure update sent (kB) |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {c['points']:,} | {c['click_ms']:.1f} | {c['sent_kb']:.1f} |" for name, c in clicks]
    checks = [("click < 50 ms", click["click_ms"] < TARGETS["click_2k_ms"])]
    big = dict(rows).get(10000)
    if big is not None:
        checks = [("10k build < 2 s", big["build_cold_ms"] / 1e3 < TARGETS["build_10k_s"]),
                  ("10k recolour < 100 ms", max(big["recolor_ms"], big["recolor_fw_ms"]) < TARGETS["recolor_10k_ms"]),
                  *checks]
    lines.append("targets: " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in checks))
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return 0 if all(ok for _, ok in checks) else 1
