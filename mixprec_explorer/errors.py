"""The package's own exception types: each names the problem and the fix."""

from __future__ import annotations


class MixprecError(Exception):
    """Base class of every error mixprec_explorer raises on purpose."""


class CaptureError(MixprecError):
    """torch.export could not capture the model; the message carries its reason and a hint."""


class SettingsError(MixprecError, ValueError):
    """Settings are invalid (wrong type, bad regex, unknown op, malformed JSON file)."""


class ParseError(MixprecError, ValueError):
    """A TensorRT layer-info, profile or log text could not be parsed; the message names the place."""


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
