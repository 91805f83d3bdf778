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
