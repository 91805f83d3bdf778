"""One error family: everything the package raises on purpose derives from MixprecError, with a standard base kept."""

from __future__ import annotations

import ast
import builtins
import pickle
from pathlib import Path

import pytest

import mixprec_explorer
from mixprec_explorer import Explorer, errors
from mixprec_explorer.errors import MixprecError, OptionError, OptionTypeError

PACKAGE = Path(mixprec_explorer.__file__).parent
#: Raises of Python's own types that are protocol, not errors of ours: a module ``__getattr__`` must raise
#: AttributeError; rich's broken-pipe hook re-raises the stream's own error for main() to end quietly.
PROTOCOL = {("__init__.py", "AttributeError"), ("cli.py", "BrokenPipeError")}


def _builtin_raises() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = target.id if isinstance(target, ast.Name) else None
            kind = getattr(builtins, name, None) if name else None
            if isinstance(kind, type) and issubclass(kind, BaseException) and (rel, name) not in PROTOCOL:
                found.append(f"{rel}:{node.lineno}: raise {name}")
    return found


def test_no_builtin_exception_is_raised_on_purpose() -> None:
    assert _builtin_raises() == []


#: The error types of errors.__all__; the one warning category there (SettingsWarning) is warned, never raised.
ERROR_NAMES = [name for name in errors.__all__ if not issubclass(getattr(errors, name), Warning)]


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_every_error_type_is_a_mixprec_error_with_a_standard_base(name: str) -> None:
    kind = getattr(errors, name)
    assert issubclass(kind, MixprecError)
    if kind is not MixprecError and kind is not errors.CaptureError:
        assert any(issubclass(kind, base) for base in (ValueError, TypeError, KeyError, RuntimeError)), name


def test_errors_are_exported_and_survive_pickling() -> None:
    for name in errors.__all__:
        assert getattr(mixprec_explorer, name) is getattr(errors, name)
    assert [n for n in errors.__all__ if n != "SettingsWarning"] == ERROR_NAMES
    assert issubclass(errors.SettingsWarning, UserWarning) and not issubclass(errors.SettingsWarning, MixprecError)
    err = pickle.loads(pickle.dumps(errors.InputError("input 0 is (4, 10)", index=0, batch=2)))
    assert (str(err), err.index, err.batch) == ("input 0 is (4, 10)", 0, 2)
    assert str(errors.UnknownName("no node 'x'")) == "no node 'x'"  # not quoted as a KeyError would


def test_one_type_for_one_mistake(autocast_ex) -> None:
    with pytest.raises(errors.OptionError, match="unknown metric 'max'"):
        autocast_ex.sensitivity(metric="max", progress=False)
    with pytest.raises(errors.OptionError, match="unknown metric 'max'"):
        autocast_ex.search(budget=1e-2, metric="max", backend=None, progress=False)
    with pytest.raises(errors.UnknownName, match="no node 'nope'"):
        autocast_ex.plan()["nope"]
    with pytest.raises(errors.MissingResult, match="no profile yet"):
        autocast_ex.engine_figure()
    assert autocast_ex.plan().get("nope") is None
    with pytest.raises(KeyError):  # the standard base still catches it
        autocast_ex.plan()["nope"]


def test_moved_names_are_found_where_they_always_were() -> None:
    """SettingsWarning (now errors.py) and Exclusion (now records.py) are the same classes under their old names."""
    from mixprec_explorer import explorer, records

    assert explorer.SettingsWarning is errors.SettingsWarning is mixprec_explorer.SettingsWarning
    assert explorer.Exclusion is records.Exclusion is mixprec_explorer.Exclusion


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda ex: ex.search(budget="1e-3", backend=None, progress=False), OptionTypeError,
     r"budget must be a number \(an error in rel_l2 units\); got '1e-3' \(str\)"),
    (lambda ex: ex.search(budget=float("nan"), backend=None, progress=False), OptionError, "budget must be at least 0"),
    (lambda ex: ex.search(budget=1e-2, backend=None, max_probes=1.5, progress=False), OptionTypeError,
     "max_probes must be an int"),
    (lambda ex: ex.frontier(max_points=1, progress=False), OptionError, "max_points must be at least 2"),
    (lambda ex: ex.sensitivity(probes=0, progress=False), OptionError, "probes must be at least 1"),
    (lambda ex: ex.profile(ex.compile(backend="torch", isolate=False, progress=False), runs=0, progress=False),
     OptionError, r"runs must be at least 1 \(timed runs\)"),
    (lambda ex: ex.profile(ex.compile(backend="torch", isolate=False, progress=False), warmup=True,
                           progress=False), OptionTypeError, "warmup must be an int"),
])
def test_numeric_arguments_are_refused_before_any_work_with_what_they_count(call, error, message) -> None:
    """A string budget, a fractional count, a NaN or zero runs is an error naming the argument and what it counts,
    never a raw TypeError or ZeroDivisionError from deep inside (nor a silent single run)."""
    from mixprec_explorer.examples import layer_stack

    ex = Explorer(*layer_stack(8))
    with pytest.raises(error, match=message):
        call(ex)
