"""Load an optional dependency on first use, or say which extra installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import BackendUnavailable

__all__ = ["MissingDependency", "install_hint", "require"]


class MissingDependency(BackendUnavailable, ImportError):
    """An optional module is missing or failed to import; catchable as BackendUnavailable or ImportError."""


def install_hint(extra: str) -> str:
    """The pip command that installs an extra of this package."""
    return f'pip install "mixprec-explorer[{extra}]"'


def require(module_name: str, extra: str) -> ModuleType:
    """Import ``module_name``; raise :class:`MissingDependency` naming the extra to install when it fails.

    A module that is installed but cannot load (a missing shared library, a version clash) is reported
    with its own error, since reinstalling may not be the fix.

    >>> require("json", "test").__name__
    'json'
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise _missing(
            module_name,
            f"{module_name} is not installed (missing module {err.name or module_name!r}); "
            f"install it with {install_hint(extra)}",
        ) from err
    except (ImportError, OSError) as err:
        raise _missing(
            module_name,
            f"{module_name} is installed but failed to import ({type(err).__name__}: {err}); "
            f"check its native libraries, or reinstall with {install_hint(extra)}",
        ) from err


def _missing(module_name: str, message: str) -> MissingDependency:
    error = MissingDependency(message)
    error.name = module_name
    return error
