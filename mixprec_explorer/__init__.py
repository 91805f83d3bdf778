"""mixprec_explorer: see, predict, measure and export Torch-TensorRT mixed-precision settings.

Importing this package loads nothing heavy: torch and networkx load with the first public name that needs them
(``Explorer``, ``Settings``...); plotly, ipywidgets and torch_tensorrt when a figure, widget or TensorRT compile is
first asked for. So ``mixprec-explorer --help`` starts without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    ProfileMismatch,
    SettingsError,
    SettingsWarning,
    UnknownName,
    WorkerCrashed,
    ZooError,
)

if TYPE_CHECKING:
    from .explorer import Explorer
    from .policy import PrecisionPlan
    from .records import Exclusion, LayerRecord, NodeInfo, NodePrecision
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
    "ProfileMismatch",
    "Settings",
    "SettingsError",
    "SettingsWarning",
    "UnknownName",
    "WorkerCrashed",
    "ZooError",
    "parse_layer_info",
    "parse_profile",
    "__version__",
]


#: public name -> the module that defines it, imported on first use (they load torch)
_LAZY = {"Exclusion": "records", "Explorer": "explorer", "PrecisionPlan": "policy", "LayerRecord": "records",
         "NodeInfo": "records", "NodePrecision": "records", "Settings": "settings",
         "parse_layer_info": "parsers", "parse_profile": "parsers", "parse_layer_log": "parsers"}


def __getattr__(name: str):  # lazy public names: the package face imports nothing heavy
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mixprec_explorer' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
