"""The package's own exception types: each names the problem and the fix.

Everything mixprec_explorer raises on purpose derives from :class:`MixprecError`, so ``except MixprecError``
catches it all. Each type also keeps the standard base a caller would reach for (``SettingsError`` is a
``ValueError``, ``UnknownName`` a ``KeyError``), so ``except ValueError`` keeps working.

=====================  =====================  ==========================================================
type                   standard base          raised when
=====================  =====================  ==========================================================
CaptureError           --                     torch.export cannot capture the model
InputError             ValueError             inputs do not fit the captured program (names which input)
SettingsError          ValueError             Torch-TensorRT settings (or a settings file) are invalid
OptionError            ValueError             an argument's value is not one the function accepts
OptionTypeError        TypeError              an argument is of a kind the function cannot use
UnknownName            KeyError               a node, layer, module or stored object is not there
MissingResult          ValueError             a call needs a result that has not been computed yet
ParseError             ValueError             TensorRT text or JSON cannot be parsed
ProfileMismatch        ValueError             a recorded profile's engines were built from another graph
BackendUnavailable     RuntimeError           a backend's library (or device) is missing here
WorkerCrashed          RuntimeError           the worker process died or timed out
CompileFailure         RuntimeError           a backend could not build the plan
ZooError               --                     a zoo model is unknown or its optional library is missing
=====================  =====================  ==========================================================

One warning category lives here too: :class:`SettingsWarning` (a ``UserWarning``, not an error), for settings
that are valid but will not do what they seem to on the model.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "CaptureError",
    "CompileFailure",
    "InputError",
    "MissingResult",
    "MixprecError",
    "OptionError",
    "OptionTypeError",
    "ParseError",
    "ProfileMismatch",
    "SettingsError",
    "SettingsWarning",
    "UnknownName",
    "WorkerCrashed",
    "ZooError",
]


class MixprecError(Exception):
    """Base class of every error mixprec_explorer raises on purpose."""


class CaptureError(MixprecError):
    """torch.export could not capture the model; the message carries its reason and a hint."""


class InputError(MixprecError, ValueError):
    """Inputs that do not fit the captured program: the message names the input, its shape and the one expected.

    ``index`` is the position of the offending input among the flattened positional inputs (None when the
    number of inputs is wrong), ``batch`` the batch it belongs to (0 for a single batch).
    """

    def __init__(self, message: str, index: int | None = None, batch: int = 0) -> None:
        super().__init__(message)
        self.index, self.batch = index, batch

    def __reduce__(self):  # keep the fields across the worker process boundary
        return (type(self), (str(self), self.index, self.batch))


class SettingsError(MixprecError, ValueError):
    """Settings are invalid (wrong type, bad regex, unknown op, malformed JSON file)."""


class OptionError(MixprecError, ValueError):
    """An argument has a value the function does not accept (an unknown metric, mode, executor ...);
    the message lists the accepted ones."""


class OptionTypeError(MixprecError, TypeError):
    """An argument is of a kind the function cannot use (or cannot send to the worker process)."""


def check_number(name: str, value: object, *, minimum: float | None = 0, maximum: float | None = None,
                 above: bool = False, whole: bool = False, what: str = "") -> None:
    """Refuse a numeric argument before any work: OptionTypeError for a non-number (a string, a bool; with
    ``whole``, a float), OptionError outside ``[minimum, maximum]`` (``minimum`` excluded with ``above``) or NaN.
    ``what`` says what the number counts (``"compiles"``), for the message."""
    import numbers

    kind = "an int" if whole else "a number"
    unit = f" ({what})" if what else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if whole else numbers.Real):
        raise OptionTypeError(f"{name} must be {kind}{unit}; got {value!r} ({type(value).__name__})")
    if minimum is not None and maximum is not None and not above:
        bounds = f"from {minimum:g} to {maximum:g}"
    else:
        bounds = " and ".join(([f"{'more than' if above else 'at least'} {minimum:g}"] if minimum is not None else [])
                              + ([f"at most {maximum:g}"] if maximum is not None else []))
    number = float(value)  # a numbers.Real, checked above
    if number != number or (minimum is not None and (number <= minimum if above else number < minimum)) or (
            maximum is not None and number > maximum):
        raise OptionError(f"{name} must be {bounds}{unit}; got {value!r}")


class UnknownName(MixprecError, KeyError):
    """A node, engine layer, module or stored object that is not there; the message says where to look."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class MissingResult(MixprecError, ValueError):
    """A call needs a result that has not been computed yet (a profile, a frontier); the message names the call
    that makes it."""


class ParseError(MixprecError, ValueError):
    """A TensorRT layer-info, profile or log text could not be parsed; the message names the place."""


class ProfileMismatch(MixprecError, ValueError):
    """A recorded folder's engines were built from another model or input shapes than the explorer's graph; the
    message names what differs (inputs, module names, layer sizes) and how to load or record the right one."""


class BackendUnavailable(MixprecError, RuntimeError):
    """A backend's library is missing or unusable here; the message names what to install."""


class WorkerCrashed(MixprecError, RuntimeError):
    """A compile or measurement worker process died; the message carries its last output."""


class CompileFailure(MixprecError, RuntimeError):
    """A backend could not build the plan; names the FX node it failed at (where its message says) and the remedies.

    ``node`` is the captured graph's node name or None, ``op`` its qualified target or "", ``remedies`` a tuple
    of fixes in words (each with the call that applies it).
    """

    def __init__(self, message: str, node: str | None = None, op: str = "", remedies: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.node, self.op, self.remedies = node, op, tuple(remedies)

    def __reduce__(self):  # keep the fields across the worker process boundary
        return (type(self), (str(self), self.node, self.op, self.remedies))


class ZooError(MixprecError, ValueError):
    """A zoo model that is not there (the message lists close names) or cannot be built here (it names the
    ``pip install`` that adds its library)."""


class SettingsWarning(UserWarning):
    """Settings that are valid but will not do what they seem to on this model (warned, never raised)."""
