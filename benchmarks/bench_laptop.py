"""Exploration on a laptop CPU: the targets of docs/laptop.md, measured, one table per part.

``python benchmarks/run.py laptop`` (or ``python benchmarks/bench_laptop.py``) measures, at batch 2 and 224x224
(sequence 128), on MobileNetV3-large, EfficientNet-B0, ConvNeXt-T and BERT-base:

* ``ex.sensitivity`` (method "auto") and ``ex.search(x, budget=1e-3, backend="torch")``, wall seconds;
* FP16 simulated against the real FP16 arithmetic: the all-low error each gives and one forward pass's time;
* ``ex.profile`` of the all-FP16 plan on the PyTorch backend (MobileNetV3-small, EfficientNet-B0);
* ``mixprec-explorer --help`` and ``plan`` on a built-in example, in fresh processes.

``--agreement`` adds the linear sensitivity against exact re-runs on the zoo's small sizes. Models are the zoo's
(random weights); BatchNorm statistics are re-estimated on random inputs first, since random-init running statistics
shrink activations into FP16 underflow and FP32 denormals (which run 10x slower on a CPU). The targets are wall
time on 2 cores: the machine's load is printed beside the figures, since other work on it shows in every one.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from _common import fmt, machine, markdown_table

#: The models of the targets and what each target is (seconds).
MODELS = ("mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "bert_base")
PROFILED = ("mobilenet_v3_small", "efficientnet_b0")
#: Linear against exact sensitivity: exact re-runs of the small ConvNeXt/EfficientNet take minutes, so not these.
AGREEMENT = ("resnet18", "mobilenet_v3_small", "bert_base", "distilbert_base")
#: Simulated against real FP16 at the zoo's small sizes.
SIMULATED = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf", "bert_base",
             "distilbert_base", "gpt2", "t5_small_encoder", "vit_base_hf")
TARGETS = {"sensitivity": 20.0, "search": 60.0, "profile": 30.0, "help": 1.0, "plan": 5.0}


def build(name: str, small: bool = False) -> tuple[torch.nn.Module, tuple[Any, ...]]:
    """A zoo model at batch 2 with BatchNorm statistics estimated on its random inputs (module docs)."""
    from mixprec_explorer import zoo

    model, inputs = zoo.build(name, size="small" if small else "real", batch=2, seed=0)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if norms:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the passes
        model.train()
        torch.manual_seed(0)  # dropout and stochastic depth run in train mode: the same statistics every time
        with torch.no_grad():
            for _ in range(3):
                model(*inputs)
        model.eval()
    return model, inputs


def explorer(name: str, small: bool = False) -> Any:
    from mixprec_explorer import Explorer, Settings

    return Explorer(*build(name, small), settings=Settings(enable_autocast=True,
                                                           autocast_low_precision_type=torch.float16))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def cpu_timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(CPU seconds of this process, all threads, the call's result): less swayed by other work than wall time."""
    started = time.process_time()
    result = fn()
    return time.process_time() - started, result


def cpu_s() -> float:
    """CPU seconds of this process and of its ended children (the worker, once shut down), all threads."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} / {five:.1f} (1 / 5 min) on {os.cpu_count()} cores"


def verdict(seconds: float | None, target: float) -> str:
    return "-" if seconds is None else ("yes" if seconds <= target else "no")


def simulation_row(ex: Any, plans: int = 4, seed: int = 0) -> dict[str, Any]:
    """FP16 simulated against the real FP16 arithmetic: the errors of all-low and of ``plans`` random mixed plans
    (half the modules low), their relative L2 difference, and one all-low forward pass's time of each."""
    import random

    from mixprec_explorer.analysis import PlanRunner, rel_l2

    batches = [ex.example_inputs]
    sim, real = PlanRunner(ex, batches), PlanRunner(ex, batches, simulate=False)
    reference = sim.reference()
    sim.run_plan(lambda _: torch.float16)  # the first run fills the meta-dtype cache
    t_sim, envs = cpu_timed(lambda: sim.run_plan(lambda _: torch.float16))
    t_real, real_envs = cpu_timed(lambda: real.run_plan(lambda _: torch.float16))
    t_fp32, _ = cpu_timed(lambda: sim.run_plan(lambda _: torch.float32))
    errors = [(rel_l2(sim.outputs(envs), reference), rel_l2(real.outputs(real_envs), reference))]
    modules = sorted({ex.nodes[n].module for n in sim.classified})
    pick = random.Random(seed)
    for _ in range(plans):
        low = set(pick.sample(modules, max(1, len(modules) // 2)))
        nodes = {n for n in sim.classified if ex.nodes[n].module in low}

        def dtype_of(name: str, nodes: set[str] = nodes) -> torch.dtype:
            return torch.float16 if name in nodes else torch.float32

        errors.append((rel_l2(sim.outputs(sim.run_plan(dtype_of)), reference),
                       rel_l2(real.outputs(real.run_plan(dtype_of)), reference)))
    finite = [(a, b) for a, b in errors if math.isfinite(a) and math.isfinite(b)]
    den = math.sqrt(sum(b * b for _, b in finite))
    gap = math.sqrt(sum((a - b) ** 2 for a, b in finite)) / den if den > 0 else None
    return {"all-low error, simulated": fmt(errors[0][0]), "real FP16": fmt(errors[0][1]),
            f"relL2 sim-real, {len(errors)} plans": fmt(gap, ".1%"),
            "forward cpu s, FP32": fmt(t_fp32, ".2f"), "simulated FP16": fmt(t_sim, ".2f"),
            "real FP16 (cpu s)": fmt(t_real, ".2f")}


def model_rows(name: str, search: bool, simulation: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from mixprec_explorer.backends import clear_cache, shutdown_worker

    ex = explorer(name)
    row: dict[str, Any] = {"model": name, "nodes": sum(1 for i in ex.nodes.values() if i.kind == "call_function")}
    cpu = cpu_s()
    seconds, sens = timed(lambda: ex.sensitivity(progress=False))
    row.update({"sensitivity s": fmt(seconds, ".1f"), "cpu s": fmt(cpu_s() - cpu, ".1f"), "method": sens.method,
                "<= 20 s": verdict(seconds, TARGETS["sensitivity"])})
    if search:
        fresh = explorer(name)
        cpu = cpu_s()
        seconds, result = timed(lambda: fresh.search(budget=1e-3, backend="torch", progress=False))
        shutdown_worker()  # its CPU time counts once it has ended
        row.update({"search s": fmt(seconds, ".1f"), "search cpu s": fmt(cpu_s() - cpu, ".1f"),
                    "<= 60 s": verdict(seconds, TARGETS["search"]), "within budget": result.within_budget,
                    "exclusions": len(result.exclusions), "compiles": result.compiles})
        clear_cache()
    sim = {"model": name, **simulation_row(ex)} if simulation else None
    print(f"  {name}: {row}  [{load()}]", file=sys.stderr, flush=True)
    return row, sim


def profile_row(name: str) -> dict[str, Any]:
    from mixprec_explorer.backends import clear_cache, shutdown_worker

    ex = explorer(name)
    compiled = ex.compile(backend="torch", progress=False)
    cpu = cpu_s()
    seconds, profile = timed(lambda: ex.profile(compiled, progress=False))
    adaptive = [n for n in profile.notes if n.startswith("slow plan")]
    shutdown_worker()
    clear_cache()
    return {"model": name, "ex.profile s (FP16 plan)": fmt(seconds, ".1f"), "cpu s": fmt(cpu_s() - cpu, ".1f"),
            "<= 30 s": verdict(seconds, 30.0),
            "median ms": fmt(profile.end_to_end.median_ms, ".4g"), "timed runs": profile.end_to_end.runs,
            "adaptive": "yes" if adaptive else "no"}


def cli_rows() -> list[dict[str, Any]]:
    """``--help`` and ``plan``, each in a fresh process; for ``plan``, the model's build and capture timed alone
    in another fresh process, so what the command adds beyond them shows (importing torch is most of it)."""
    rows = []
    for argv, target in ((["--help"], "help"), (["plan", "example"], "plan"), (["plan", "example:resnet50"], "plan")):
        command = [sys.executable, "-m", "mixprec_explorer.cli", *argv]
        seconds, done = timed(lambda command=command: subprocess.run(command, capture_output=True, text=True))
        build = capture = None
        if argv[0] == "plan":
            probe = ("import time; import torch; from mixprec_explorer.cli import load_model; "
                     "from mixprec_explorer.capture import capture; t = time.perf_counter(); "
                     f"m, x = load_model({argv[1]!r}); b = time.perf_counter(); capture(m, x); "
                     "print(b - t, time.perf_counter() - b)")
            out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
            if out.returncode == 0:
                build, capture = map(float, out.stdout.strip().splitlines()[-1].split())
        beyond = seconds - (build or 0.0) - (capture or 0.0)
        rows.append({"command": "mixprec-explorer " + " ".join(argv), "wall s": fmt(seconds, ".2f"),
                     "model build s": fmt(build, ".2f"), "capture s": fmt(capture, ".2f"),
                     "beyond build and capture s": fmt(beyond, ".2f"),
                     "target": f"<= {TARGETS[target]:g} s" + (" beyond capture" if target == "plan" else ""),
                     "met": verdict(beyond, TARGETS[target]), "exit": done.returncode})
    return rows


def simulation_rows(names: Sequence[str]) -> list[dict[str, Any]]:
    """Simulated against real FP16 on the zoo's small sizes (cheap, so more models)."""
    rows = []
    for name in names:
        rows.append({"model (small)": name, **simulation_row(explorer(name, small=True))})
        print(f"  simulation {name}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def agreement_rows(names: Sequence[str]) -> list[dict[str, Any]]:
    """Linear sensitivity against exact re-runs on the zoo's small sizes (FP16; BF16 where FP16 underflows)."""
    from mixprec_explorer.analysis import PlanRunner
    from mixprec_explorer.sensitivity import compute_sensitivity

    def rel(a: dict[str, float], b: dict[str, float]) -> float:
        keys = [k for k in b if k in a]
        den = math.sqrt(sum(b[k] ** 2 for k in keys))
        return math.sqrt(sum((a[k] - b[k]) ** 2 for k in keys)) / den if den > 0 else math.nan

    rows = []
    for name in names:
        ex = explorer(name, small=True)
        run = PlanRunner(ex, [ex.example_inputs])
        t_exact, exact = timed(lambda ex=ex, run=run: compute_sensitivity(ex, progress=False, runner=run,
                                                                          method="exact"))
        t_linear, linear = timed(lambda ex=ex, run=run: compute_sensitivity(ex, progress=False, runner=run,
                                                                            method="linear"))
        rows.append({"model (small)": name, "all-low": fmt(exact.all_low_error), "method": linear.method,
                     "node low err relL2": fmt(rel(linear.node_low_error, exact.node_low_error), ".2f"),
                     "module low err relL2": fmt(rel(linear.module_low_error, exact.module_low_error), ".2f"),
                     "module gain relL2": fmt(rel(linear.module_fp32_gain, exact.module_fp32_gain), ".2f"),
                     "exact s": fmt(t_exact, ".1f"), "linear s": fmt(t_linear, ".1f")})
        print(f"  agreement {name}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py laptop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="zoo names (default: the four targets)")
    parser.add_argument("--no-search", action="store_true", help="skip ex.search (the longest part)")
    parser.add_argument("--no-simulation", action="store_true", help="skip simulated against real FP16")
    parser.add_argument("--no-profile", action="store_true", help="skip ex.profile of the FP16 plans")
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line timings")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads here and in the worker (default: torch's, the cores); 1 measures "
                             "what other work on the machine leaves of one core")
    parser.add_argument("--agreement", nargs="*", default=None, metavar="NAME",
                        help="also linear against exact sensitivity on these zoo models' small sizes "
                             f"(no names: {', '.join(AGREEMENT)})")
    args = parser.parse_args(argv)
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the worker process reads it when torch starts
        torch.set_num_threads(args.threads)
    print(f"# laptop CPU: {machine()}; torch threads {torch.get_num_threads()}; {load()} at the start")
    if not args.no_cli:
        print("\n## Command line (fresh processes)\n")
        cli = cli_rows()
        print("\n".join(markdown_table(cli, list(cli[0]))))
    rows, sims = [], []
    for name in args.models:
        row, sim = model_rows(name, not args.no_search, not args.no_simulation)
        rows.append(row)
        if sim is not None:
            sims.append(sim)
        gc.collect()
    print(f"\n## Sensitivity and search (batch 2, 224x224 / sequence 128; {load()} at the end)\n")
    header = ["model", "nodes", "sensitivity s", "cpu s", "method", "<= 20 s"]
    if not args.no_search:
        header += ["search s", "search cpu s", "<= 60 s", "within budget", "exclusions", "compiles"]
    print("\n".join(markdown_table(rows, header)))
    if sims:
        print("\n## FP16 simulated at FP32 speed against the real FP16 arithmetic (the all-FP16 plan)\n")
        print("\n".join(markdown_table(sims, list(sims[0]))))
    if not args.no_profile:
        profiles = [profile_row(name) for name in PROFILED]
        print(f"\n## ex.profile on the CPU, PyTorch backend, all-FP16 plan ({load()})\n")
        print("\n".join(markdown_table(profiles, list(profiles[0]))))
    if not args.no_simulation:
        small = simulation_rows(SIMULATED)
        print("\n## FP16 simulated against real FP16 on the zoo (small sizes: all-low and 4 mixed plans each)\n")
        print("\n".join(markdown_table(small, list(small[0]))))
    if args.agreement is not None:
        names = args.agreement or list(AGREEMENT)
        agreement = agreement_rows(names)
        print("\n## Linear sensitivity against exact re-runs (zoo small sizes, FP16)\n")
        print("\n".join(markdown_table(agreement, list(agreement[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
