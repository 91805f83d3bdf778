"""mixprec_explorer: see, predict, measure and export Torch-TensorRT mixed-precision settings.

Importing this package loads torch and networkx only; plotly, ipywidgets and torch_tensorrt load
when a figure, widget or TensorRT compile is first asked for.
"""

from __future__ import annotations

from .errors import BackendUnavailable, CaptureError, MixprecError, ParseError, SettingsError, WorkerCrashed
from .explorer import Exclusion, Explorer, SettingsWarning
from .policy import PrecisionPlan
from .records import LayerRecord, NodeInfo, NodePrecision
from .settings import Settings

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "CaptureError",
    "Exclusion",
    "Explorer",
    "LayerRecord",
    "MixprecError",
    "NodeInfo",
    "NodePrecision",
    "ParseError",
    "PrecisionPlan",
    "Settings",
    "SettingsError",
    "SettingsWarning",
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
