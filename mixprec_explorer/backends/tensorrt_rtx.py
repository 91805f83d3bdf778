"""TensorRT-RTX, the TensorRT that installs from the package registry: matching versions and one packaging quirk.

``torch-tensorrt-rtx`` is Torch-TensorRT built against TensorRT-RTX (its package is still ``torch_tensorrt``);
each release matches one torch minor version. Its ``tensorrt_rtx`` wheel ships a ``tensorrt_rtx.plugin``
package that imports ``tensorrt_rtx_bindings.plugin``, which the bindings wheel lacks, so ``import
torch_tensorrt`` fails while probing ``tensorrt.plugin`` (checked on TensorRT-RTX 1.4 to 1.7).
"""

from __future__ import annotations

import importlib.util
import sys

from ..errors import OptionError

__all__ = ["PLUGIN_NOTE", "RELEASES", "block_broken_plugin", "plugin_is_broken", "requirement_for"]

#: torch minor version -> the torch-tensorrt-rtx release built for it (from the package registry, 2026-11).
RELEASES = {"2.11": "2.11.0", "2.12": "2.12.*", "2.13": "2.13.0", "2.14": "2.14.0"}
PLUGIN_NOTE = ("TensorRT-RTX's tensorrt_rtx.plugin imports tensorrt_rtx_bindings.plugin, which its bindings wheel "
               "does not ship; mixprec_explorer marked that one module absent in this process (sys.modules), so "
               "torch_tensorrt imports with its quick-deploy-plugin feature off. Nothing on disk was changed.")


def requirement_for(torch_version: str) -> str:
    """The pip requirement of the torch-tensorrt-rtx matching ``torch_version`` ("2.11.0+cu130" -> "==2.11.0").

    Raises ValueError naming the supported versions when none matches.

    >>> requirement_for("2.11.0+cu130")
    'torch-tensorrt-rtx==2.11.0'
    """
    minor = ".".join(torch_version.split("+")[0].split(".")[:2])
    if minor not in RELEASES:
        raise OptionError(f"no torch-tensorrt-rtx release is known for torch {torch_version}; "
                         f"releases exist for torch {', '.join(RELEASES)}")
    return f"torch-tensorrt-rtx=={RELEASES[minor]}"


def plugin_is_broken() -> bool:
    """True where ``tensorrt_rtx.plugin`` is installed but the bindings module it imports is not."""
    try:
        has_plugin = importlib.util.find_spec("tensorrt_rtx") is not None and \
            importlib.util.find_spec("tensorrt_rtx.plugin") is not None
        has_bindings = importlib.util.find_spec("tensorrt_rtx_bindings.plugin") is not None
    except (ImportError, ValueError):
        return False
    return has_plugin and not has_bindings


def block_broken_plugin() -> bool:
    """Mark the unusable ``tensorrt_rtx.plugin`` absent in this process, as ``sys.modules[name] = None`` does.

    Torch-TensorRT then finds no plugin module (``importlib.util.find_spec`` returns None) and imports with its
    quick-deploy plugins off, as it does where TensorRT has none. Called only when the TensorRT backend loads,
    never at package import; returns True when it acted. Undo with ``sys.modules.pop("tensorrt.plugin")``.
    """
    if not plugin_is_broken():
        return False
    for name in ("tensorrt_rtx.plugin", "tensorrt.plugin"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    return True
