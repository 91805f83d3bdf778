"""The app's status line and error area, and :func:`guarded`, which every callback of the app runs under.

A callback that raises does not break the app: the error is recorded in ``errors``, shown folded with its
traceback in the error area, and the controls are put back in step with the explorer's settings.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import ipywidgets as widgets

from ._format import esc

if TYPE_CHECKING:
    from .app import WidgetApp

__all__ = ["StatusMixin", "guarded"]

F = TypeVar("F", bound=Callable[..., Any])
_MAX_ERRORS_SHOWN = 8


def guarded(where: str) -> Callable[[F], F]:
    """Run a callback; on any exception show it in the app's error area and put the controls back in step."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: WidgetApp, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as err:  # shown to the user, never lost
                self.report_error(where, err)
                try:
                    self._sync_controls()
                except Exception as inner:  # pragma: no cover - the sync itself failing
                    self.report_error("restoring the controls", inner)
                return None

        return wrapper  # type: ignore[return-value]

    return decorate


class StatusMixin:
    """Part of :class:`~mixprec_explorer.widget.app.WidgetApp`: ``status`` (one line of news) and the error area."""

    if TYPE_CHECKING:  # from the rest of WidgetApp
        errors: list[str]
        _error_html: list[str]

    def _build_status(self) -> None:
        W = widgets
        self.status = W.HTML()
        self.error_area = W.HTML()
        self.clear_errors_button = W.Button(description="Clear errors", layout=W.Layout(width="110px",
                                                                                    display="none"))
        self.clear_errors_button.on_click(lambda _: self.clear_errors())

    def report_error(self, where: str, err: BaseException) -> None:
        """Record an error and show it in the error area (with its traceback folded)."""
        message = f"{where}: {type(err).__name__}: {err}"
        self.errors.append(message)
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
        shown = self._error_html[-(_MAX_ERRORS_SHOWN - 1):]
        shown.append(f"<details><summary style='color:#b00020'>{esc(message)}</summary>"
                     f"<pre style='font-size:11px'>{esc(tb)}</pre></details>")
        self._error_html = shown
        self.error_area.value = "".join(shown)
        self.clear_errors_button.layout.display = None
        self.status.value = f"<span style='color:#b00020'>{esc(message)}</span>"

    def clear_errors(self) -> None:
        """Empty the error area (the ``errors`` list keeps its history)."""
        self._error_html = []
        self.error_area.value = ""
        self.clear_errors_button.layout.display = "none"

    def _say(self, text: str) -> None:
        self.status.value = text
