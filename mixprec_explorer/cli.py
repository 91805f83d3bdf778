"""Command line: ``mixprec-explorer plan | export | report | demo``.

MODEL is ``package.module:callable`` returning ``(model, example_inputs)``, or a built-in example:
``example`` (the reference autocast model), ``example:explicit``, ``example:resnet50``,
``example:transformer``, ``example:stack``. Exit codes: 0 done, 2 bad model, settings or arguments,
1 anything unexpected.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .explorer import Explorer
    from .policy import PrecisionPlan

__all__ = ["BUILTIN_MODELS", "UsageError", "load_model", "main"]


class UsageError(Exception):
    """A bad MODEL, settings file or argument: printed without a traceback, exit code 2."""


def _examples(name: str, **kwargs: Any) -> Callable[[], tuple[Any, Any]]:
    def load() -> tuple[Any, Any]:
        from . import examples

        return getattr(examples, name)(**kwargs)

    return load


#: Built-in MODEL names and the example each loads.
BUILTIN_MODELS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "example": _examples("reference_autocast_model"),
    "example:autocast": _examples("reference_autocast_model"),
    "example:explicit": _examples("reference_explicit_model"),
    "example:resnet50": _examples("resnet50"),
    "example:transformer": _examples("transformer_encoder", layers=2),
    "example:stack": _examples("layer_stack"),
}


def load_model(spec: str) -> tuple[Any, Any]:
    """(model, example_inputs) from ``package.module:callable`` or a built-in name; UsageError otherwise."""
    if spec in BUILTIN_MODELS:
        return BUILTIN_MODELS[spec]()
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"MODEL must be 'package.module:callable' or one of {', '.join(BUILTIN_MODELS)}; "
                         f"got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))  # let `mypkg.models:build` work from the project folder
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UsageError(f"cannot import {module_name!r} for MODEL {spec!r}: {err}") from None
    finally:
        sys.path.pop(0)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UsageError(f"{module_name!r} has no attribute {attr!r} (MODEL {spec!r})")
        target = getattr(target, part)
    if not callable(target):
        raise UsageError(f"MODEL {spec!r} is not callable; it must return (model, example_inputs)")
    result = target()
    if not (isinstance(result, tuple) and len(result) == 2):
        raise UsageError(f"MODEL {spec!r} must return (model, example_inputs), got {type(result).__name__}")
    return result


def _explorer(spec: str, settings_path: str | None) -> Explorer:
    from .errors import CaptureError, SettingsError
    from .explorer import Explorer
    from .settings import Settings

    settings = None
    if settings_path is not None:
        try:
            settings = Settings.load(settings_path)
        except SettingsError as err:
            raise UsageError(str(err)) from None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ex = Explorer(*load_model(spec), settings=settings)
            problems = ex.check_settings()
    except CaptureError as err:
        raise UsageError(f"MODEL {spec!r}: {err}") from None
    for message in dict.fromkeys([*problems, *(str(w.message) for w in caught)]):
        print(f"warning: {message}", file=sys.stderr)
    return ex


def _print_plan(ex: Explorer, plan: PrecisionPlan, console: Any) -> None:
    from rich.table import Table

    from . import dtypes

    table = Table(title=f"Precision plan: {len(plan)} nodes", show_lines=False, header_style="bold")
    for column in ("node", "op", "module", "dtype", "accumulate", "rule", "reason"):
        table.add_column(column, overflow="fold", max_width=60 if column == "reason" else None)
    for r in plan:
        dtype = "removed" if r.rule == "removed" else dtypes.display_name(r.dtype) if r.dtype is not None \
            else "TensorRT decides"
        colour = dtypes.PALETTE.get(dtype, dtypes.PALETTE["other"])
        table.add_row(r.name, r.op.replace("torch.ops.", ""), r.module or "(root)", f"[{colour}]{dtype}[/]",
                      dtypes.display_name(r.accumulate_dtype) if r.accumulate_dtype is not None else "",
                      r.rule, r.reason)
    console.print(table)
    shares = ", ".join(f"{k}: {int(v['nodes'])} nodes, {v['flops_share']:.1%} of FLOPs"
                       for k, v in sorted(ex.summary(plan).items(), key=lambda kv: -kv[1]["flops_share"]))
    console.print(f"summary: {shares}")


def _console(args: argparse.Namespace) -> Any:
    from rich.console import Console

    return Console(width=args.width, no_color=args.no_color, soft_wrap=False)


def _cmd_plan(args: argparse.Namespace) -> int:
    ex = _explorer(args.model, args.settings)
    _print_plan(ex, ex.plan(), _console(args))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    ex = _explorer(args.model, args.settings)
    path = ex.export_settings(args.out, format=args.format)
    print(f"wrote {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    ex = _explorer(args.model, args.settings)
    try:
        path = ex.save_html(args.out, color_by=args.color_by, group_by_module=args.group_by_module)
    except ValueError as err:  # e.g. a colouring that needs a profile
        raise UsageError(str(err)) from None
    print(f"wrote {path} (open it in any browser; it needs no server or network)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import torch

    from .settings import Settings

    ex = _explorer("example", None)
    console = _console(args)
    console.print("[bold]1. capture[/]: the reference autocast model (three Linear layers), "
                  f"{sum(1 for i in ex.nodes.values() if i.kind == 'call_function')} ops")
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16, use_fp32_acc=True)
    exclusion = ex.exclude("linear2")
    console.print(f"[bold]2. settings[/]: autocast to FP16, FP32 accumulation, exclude {exclusion.pattern!r}")
    _print_plan(ex, ex.plan(), console)
    path = ex.export_settings(args.out)
    console.print(f"[bold]3. export[/]: wrote {path}; compile with:")
    console.print(ex.settings.to_python(), markup=False, highlight=False)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixprec-explorer",
        description="See, predict and export Torch-TensorRT mixed-precision settings, node by node.",
        epilog="MODEL: 'package.module:callable' returning (model, example_inputs), or one of "
               + ", ".join(BUILTIN_MODELS) + ".")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, model: bool = True) -> None:
        if model:
            p.add_argument("model", metavar="MODEL", help="package.module:callable or a built-in example name")
            p.add_argument("--settings", metavar="FILE", help="settings JSON (as written by export)")
        p.add_argument("--width", type=int, default=None, help="table width in characters (default: terminal)")
        p.add_argument("--no-color", action="store_true", help="plain text output")

    p = sub.add_parser("plan", help="print the predicted precision of every node")
    common(p)
    p.set_defaults(run=_cmd_plan)
    p = sub.add_parser("export", help="write the settings as JSON or as a torch_tensorrt compile snippet")
    common(p)
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--format", choices=("json", "python"), default=None,
                   help="default: python for a .py path, else json")
    p.set_defaults(run=_cmd_export)
    p = sub.add_parser("report", help="write a standalone HTML report (graph, summary, plan table)")
    common(p)
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--color-by", default="precision", choices=("precision", "reason", "module"))
    p.add_argument("--group-by-module", type=int, default=None, metavar="DEPTH",
                   help="collapse modules to this depth of their path")
    p.set_defaults(run=_cmd_report)
    p = sub.add_parser("demo", help="capture the built-in example, print its plan, export its settings")
    common(p, model=False)
    p.add_argument("--out", default="mixprec_settings.json", metavar="FILE")
    p.set_defaults(run=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input, 1 unexpected error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse already printed the usage
        return int(exit_.code or 0)
    try:
        return int(args.run(args))
    except UsageError as err:
        print(f"mixprec-explorer: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        from .errors import MixprecError

        if isinstance(err, MixprecError):
            print(f"mixprec-explorer: error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
