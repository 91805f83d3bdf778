"""mixprec_explorer: see, predict, measure and export Torch-TensorRT mixed-precision settings.

Importing this package loads torch and networkx only; plotly, ipywidgets and torch_tensorrt load
when a figure, widget or TensorRT compile is first asked for.
"""

from __future__ import annotations

from .errors import (
    BackendUnavailable,
    CaptureError,
    CompileFailure,
    InputError,
    MissingResult,
    MixprecError,
    OptionError,
    OptionTypeError,
    ParseError,
    SettingsError,
    UnknownName,
    WorkerCrashed,
)
from .explorer import Exclusion, Explorer, SettingsWarning
from .policy import PrecisionPlan
from .records import LayerRecord, NodeInfo, NodePrecision
from .settings import Settings

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "CaptureError",
    "CompileFailure",
    "Exclusion",
    "Explorer",
    "InputError",
    "LayerRecord",
    "MissingResult",
    "MixprecError",
    "NodeInfo",
    "NodePrecision",
    "OptionError",
    "OptionTypeError",
    "ParseError",
    "PrecisionPlan",
    "Settings",
    "SettingsError",
    "SettingsWarning",
    "UnknownName",
    "WorkerCrashed",
    "parse_layer_info",
    "parse_profile",
    "__version__",
]


def __getattr__(name: str):  # lazy public names from optional layers
    if name in ("parse_layer_info", "parse_profile", "parse_layer_log"):
        from . import parsers

        return getattr(parsers, name)
    raise AttributeError(f"module 'mixprec_explorer' has no attribute {name!r}")
