"""Command line: ``mixprec-explorer plan | export | report | demo``.

MODEL is ``package.module:callable`` returning ``(model, example_inputs)``, or a built-in example
(:data:`BUILTIN_MODELS`): ``example`` and ``example:autocast`` (the reference autocast model),
``example:explicit``, ``example:resnet50``, ``example:transformer``, ``example:stack``.
Exit codes: 0 done (also when a reader such as ``head`` closes the pipe early), 2 bad model, settings or
arguments, 1 anything unexpected.

Tables fit a terminal without splitting a word: identifiers (node, op, module) are never wrapped, reasons
wrap at spaces, and a terminal too narrow for the table gets one short block per node. Piped or redirected
output is never wrapped: one table row per line.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MixprecError, ParseError, ZooError

if TYPE_CHECKING:
    from rich.console import Console

    from .explorer import Explorer
    from .policy import PrecisionPlan

__all__ = ["BUILTIN_MODELS", "UsageError", "load_model", "main"]


class UsageError(MixprecError):
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
    if spec.startswith("zoo:"):
        return _zoo_model(spec)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"MODEL must be 'package.module:callable', 'zoo:NAME[:real]' or one of "
                         f"{', '.join(BUILTIN_MODELS)}; got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))  # let `mypkg.models:build` work from the project folder
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        close = difflib.get_close_matches(spec, list(BUILTIN_MODELS), n=1, cutoff=0.75)
        if module_name == "example" and getattr(err, "name", None) == "example":
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"unknown built-in example {spec!r}{hint}; the built-in examples are "
                             f"{', '.join(BUILTIN_MODELS)}") from None
        hint = f" (did you mean the built-in example {close[0]!r}?)" if close else ""
        raise UsageError(f"cannot import {module_name!r} for MODEL {spec!r}: {err}{hint}") from None
    finally:
        sys.path.pop(0)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UsageError(f"{module_name!r} has no attribute {attr!r} (MODEL {spec!r})")
        target = getattr(target, part)
    if not callable(target):
        raise UsageError(f"MODEL {spec!r} is not callable; it must return (model, example_inputs)")
    try:
        result = target()
    except Exception as err:  # the user's own factory: say where it stopped, not our traceback
        import traceback

        where = traceback.extract_tb(err.__traceback__)[-1]
        raise UsageError(f"MODEL {spec!r} raised {type(err).__name__}: {err} (at {where.filename}:{where.lineno}, "
                         f"in {where.name}); fix the function, or try a built-in or zoo model first") from None
    if not (isinstance(result, tuple) and len(result) == 2):
        got = type(result).__name__
        hint = ""
        if _is_module(result):
            from . import zoo

            named = attr.rsplit(".", 1)[-1].lower()
            hint = (f": a model without example inputs; point MODEL at a function of yours that returns both, e.g. "
                    f"'return {attr}(), (torch.randn(1, 3, 224, 224),)'"
                    + (f", or use the zoo's: zoo:{named}" if named in zoo.names() else ""))
        raise UsageError(f"MODEL {spec!r} must return (model, example_inputs), got {got}{hint}")
    return result


def _is_module(value: Any) -> bool:
    import torch

    return isinstance(value, torch.nn.Module)


def _zoo_model(spec: str) -> tuple[Any, Any]:
    """``zoo:NAME`` (small size) or ``zoo:NAME:real`` from :mod:`mixprec_explorer.zoo`; UsageError otherwise."""
    from . import zoo  # imported here: the zoo's libraries load only when a zoo model is asked for

    _, name, size = (spec.split(":", 2) + ["small"])[:3]
    try:
        return zoo.build(name, size=size)
    except ZooError as err:
        raise UsageError(f"MODEL {spec!r}: {err}") from None


def _explorer(spec: str, settings_path: str | None, target: str | None = None) -> Explorer:
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
            ex = Explorer(*load_model(spec), settings=settings, target=target)
            problems = ex.check_settings()
    except CaptureError as err:
        raise UsageError(f"MODEL {spec!r}: {err}") from None
    except SettingsError as err:  # a --target that names no release, or settings it cannot honour
        raise UsageError(f"--target {target}: {err}" if target is not None else str(err)) from None
    for message in dict.fromkeys([*problems, *(str(w.message) for w in caught)]):
        print(f"warning: {message}", file=sys.stderr)
    return ex


_COLUMNS = ("node", "op", "module", "dtype", "accumulate", "rule", "reason")
#: Piped output is laid out at this width: wide enough that no row of a plan ever wraps.
_UNWRAPPED = 100_000
#: The narrowest reason column a table is drawn with; narrower terminals get one block per node.
_MIN_REASON = 24


def _plan_rows(plan: PrecisionPlan) -> list[tuple[str, ...]]:
    """One tuple of plain strings per node, in :data:`_COLUMNS` order."""
    from . import dtypes

    rows: list[tuple[str, ...]] = []
    for r in plan:
        dtype = "removed" if r.rule == "removed" else dtypes.display_name(r.dtype) if r.dtype is not None \
            else "TensorRT decides"
        accumulate = dtypes.display_name(r.accumulate_dtype) if r.accumulate_dtype is not None else ""
        rows.append((r.name, r.op.replace("torch.ops.", ""), r.module or "(root)", dtype, accumulate, r.rule,
                     r.reason))
    return rows


def _styled_dtype(dtype: str) -> Any:
    from rich.text import Text

    from . import dtypes

    return Text(dtype, style=dtypes.PALETTE.get(dtype, dtypes.PALETTE["other"]))


def _plan_table(title: str, rows: list[tuple[str, ...]], reason_width: int | None) -> Any:
    """The plan as a rich Table; identifiers never wrap, the reason wraps at spaces to ``reason_width``."""
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for column in _COLUMNS:
        if column == "reason" and reason_width is not None:
            table.add_column(column, width=reason_width, overflow="ellipsis")
        else:
            table.add_column(column, no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(*row[:3], _styled_dtype(row[3]), *row[4:])
    return table


def _plan_blocks(title: str, rows: list[tuple[str, ...]], console: Console) -> Any:
    """The plan for a narrow terminal: per node a line ``node  op  dtype``, then its module, rule and reason
    indented, each wrapped at spaces (a word is never split)."""
    from rich.console import Group
    from rich.text import Text

    indent = 4
    parts: list[Any] = [Text(title, style="italic")]
    for node, op, module, dtype, accumulate, rule, reason in rows:
        parts.append(Text.assemble((node, "bold"), "  ", op, "  ", _styled_dtype(dtype),
                                   f"  accumulate {accumulate}" if accumulate else "", overflow="ellipsis"))
        for text in (f"module {module}  rule {rule}", reason):
            for line in Text(text).wrap(console, max(console.width - indent, 8), overflow="ellipsis"):
                line.rstrip()
                parts.append(Text(" " * indent) + line)
    return Group(*parts)


def _plan_renderable(title: str, rows: list[tuple[str, ...]], console: Console) -> Any:
    """A table at its natural width if it fits; else with the reason wrapped; else one block per node."""
    from rich.cells import cell_len
    from rich.measure import Measurement

    table = _plan_table(title, rows, None)
    natural = Measurement.get(console, console.options.update_width(_UNWRAPPED), table).maximum
    if natural <= console.width:
        return table
    widths = [max(cell_len(c) for c in [column, *(row[i] for row in rows)]) for i, column in enumerate(_COLUMNS)]
    chrome = natural - sum(widths)
    reason_width = console.width - chrome - sum(widths[:-1])
    longest_word = max((cell_len(word) for row in rows for word in row[-1].split()), default=0)
    if reason_width >= max(_MIN_REASON, min(longest_word, 40)):
        return _plan_table(title, rows, reason_width)
    return _plan_blocks(title, rows, console)


def _print_plan(ex: Explorer, plan: PrecisionPlan, console: Console) -> None:
    console.print(_plan_renderable(f"Precision plan: {len(plan)} nodes, the rules of {ex.target}", _plan_rows(plan),
                                   console))
    shares = ", ".join(f"{k}: {int(v['nodes'])} nodes, {v['flops_share']:.1%} of FLOPs"
                       for k, v in sorted(ex.summary(plan).items(), key=lambda kv: -kv[1]["flops_share"]))
    console.print(f"summary: {shares}")


def _is_tty() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _console(args: argparse.Namespace) -> Console:
    """A console at ``--width``, else the terminal's width, else (piped) wide enough that nothing wraps."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich's default exits with status 1; main() ends with 0
            raise BrokenPipeError

    width = args.width if args.width is not None else None if _is_tty() else _UNWRAPPED
    return _Console(width=width, no_color=args.no_color, soft_wrap=False)


def _cmd_plan(args: argparse.Namespace) -> int:
    ex = _explorer(args.model, args.settings, args.target)
    _print_plan(ex, ex.plan(), _console(args))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    ex = _explorer(args.model, args.settings, args.target)
    path = ex.export_settings(args.out, format=args.format)
    print(f"wrote {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    ex = _explorer(args.model, args.settings, args.target)
    profile = None
    if args.profile:  # a folder recorded on the GPU machine: the overlay and engine view, no GPU needed here
        try:
            profile = ex.load_profile(args.profile)
        except ParseError as err:
            raise UsageError(f"--profile: {err}") from None
    try:
        path = ex.save_html(args.out, color_by=args.color_by, group_by_module=args.group_by_module, profile=profile)
    except ValueError as err:  # e.g. a colouring that needs a profile
        raise UsageError(str(err)) from None
    print(f"wrote {path} (open it in any browser; it needs no server or network)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import torch

    from .settings import Settings

    ex = _explorer("example", None, args.target)
    console = _console(args)
    console.print("[bold]1. capture[/]: the reference autocast model (three Linear layers), "
                  f"{sum(1 for i in ex.nodes.values() if i.kind == 'call_function')} ops")
    ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16, use_fp32_acc=True)
    exclusion = ex.exclude("linear2")
    console.print(f"[bold]2. settings[/]: autocast to FP16, FP32 accumulation, exclude {exclusion.pattern!r}")
    _print_plan(ex, ex.plan(), console)
    path = ex.export_settings(args.out)
    console.print(f"[bold]3. export[/]: wrote {path}; compile with:")
    console.print(ex.compile_call(), markup=False, highlight=False, soft_wrap=True)  # copyable
    return 0


def _columns(text: str) -> int:
    """``--width``: a whole number of columns, at least 20."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of columns, got {text!r}") from None
    if value < 20:
        raise argparse.ArgumentTypeError(f"must be at least 20 columns, got {value}")
    return value


def _grouping(text: str) -> int | str | None:
    """``--group-by-module``: a depth, "auto" or "none"."""
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a depth (1, 2, ...), 'auto' or 'none'; got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixprec-explorer",
        description="See, predict and export Torch-TensorRT mixed-precision settings, node by node.",
        epilog="MODEL: 'package.module:callable' returning (model, example_inputs), 'zoo:NAME' or "
               "'zoo:NAME:real' (mixprec_explorer.zoo.names()), or one of " + ", ".join(BUILTIN_MODELS) + ".")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, model: bool = True) -> None:
        if model:
            p.add_argument("model", metavar="MODEL", help="package.module:callable or a built-in example name")
            p.add_argument("--settings", metavar="FILE",
                           help="settings JSON: the setting names at top level, or as export writes it")
        p.add_argument("--target", metavar="RELEASE", default=None,
                       help="the Torch-TensorRT release the plan, rules and compile call are for: '2.13' (TensorRT) "
                            "or '2.13-rtx' (TensorRT-RTX); default: the installed one, else the newest modelled")
        p.add_argument("--width", type=_columns, default=None,
                       help="fit output to this many columns (default: the terminal's; piped output never wraps)")
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
    p.add_argument("--color-by", default="precision",
                   choices=("precision", "reason", "module", "latency", "measured_dtype", "mismatch"),
                   help="latency, measured_dtype and mismatch need --profile")
    p.add_argument("--profile", metavar="FOLDER",
                   help="a TensorRT profiling folder (enable_profiling(..., profile_format='trex'), or the one "
                        "ex.profile recorded): its measured dtypes, latency and engine view, mapped onto the graph")
    p.add_argument("--group-by-module", type=_grouping, default="auto", metavar="DEPTH|auto|none",
                   help="collapse modules to this depth of their path (default auto: large graphs grouped)")
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
        code = int(args.run(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's flush at exit
        return code
    except BrokenPipeError:  # the reader (`| head`) has all it wanted
        _silence_stdout()
        return 0
    except MixprecError as err:  # UsageError, SettingsError, CaptureError, ...
        print(f"mixprec-explorer: error: {err}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout at devnull so that the interpreter's final flush does not fail again (Python's docs,
    "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a file descriptor (e.g. captured)
        pass


if __name__ == "__main__":
    sys.exit(main())
