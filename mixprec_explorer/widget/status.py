"""The app's status line and error area (:class:`StatusArea`), and :func:`guarded`, which every callback of the
app's parts runs under.

A callback that raises does not break the app: :func:`guarded` hands the error to the app
(:meth:`~.host.AppHost.report_error`), which records it in ``errors``, shows it folded with its traceback in the
error area, and puts the controls back in step with the explorer's settings.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import ipywidgets as widgets

from ._format import esc

__all__ = ["StatusArea", "guarded"]

F = TypeVar("F", bound=Callable[..., Any])
_MAX_ERRORS_SHOWN = 8


def guarded(where: str) -> Callable[[F], F]:
    """Run a part's callback; on any exception hand it to the part's app (``self.app.report_error``) and return
    None. Decorates methods of the app's parts (each holds its app as ``app``)."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as err:  # shown to the user, never lost
                self.app.report_error(where, err)
                return None

        return wrapper  # type: ignore[return-value]

    return decorate


class StatusArea:
    """One line of news (``status``) and the error area below it (``error_area``, ``clear_errors_button``).

    State: ``errors``, every error reported, oldest first (the area shows the last few, folded).
    """

    def __init__(self) -> None:
        W = widgets
        self.status = W.HTML()
        self.error_area = W.HTML()
        self.clear_errors_button = W.Button(description="Clear errors", layout=W.Layout(width="110px",
                                                                                    display="none"))
        self.errors: list[str] = []  #: every error reported, oldest first
        self._shown: list[str] = []  #: the HTML of the errors the area shows
        self.clear_errors_button.on_click(lambda _: self.clear())

    def say(self, html: str) -> None:
        """Put one line of news (HTML) in the status line."""
        self.status.value = html

    def report(self, where: str, err: BaseException) -> None:
        """Record an error and show it in the error area (with its traceback folded) and the status line."""
        message = f"{where}: {type(err).__name__}: {err}"
        self.errors.append(message)
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
        shown = self._shown[-(_MAX_ERRORS_SHOWN - 1):]
        shown.append(f"<details><summary style='color:#b00020'>{esc(message)}</summary>"
                     f"<pre style='font-size:11px'>{esc(tb)}</pre></details>")
        self._shown = shown
        self.error_area.value = "".join(shown)
        self.clear_errors_button.layout.display = None
        self.status.value = f"<span style='color:#b00020'>{esc(message)}</span>"

    def clear(self) -> None:
        """Empty the error area (``errors`` keeps its history)."""
        self._shown = []
        self.error_area.value = ""
        self.clear_errors_button.layout.display = "none"
