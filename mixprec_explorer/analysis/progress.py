"""A counted progress bar for analyses (sensitivity runs, search steps, sweep plans)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Steps", "progress_steps"]


class Steps(Protocol):
    """Advance by ``n``; ``note`` shows the state so far; ``close`` ends the bar."""

    def __call__(self, n: int, close: bool = False, note: str | None = None) -> None: ...


def progress_steps(total: int | None, enabled: bool, desc: str = "sensitivity") -> Steps:
    """A tqdm bar (notebook or terminal) advanced by the returned function; a no-op when disabled.

    Call it as ``step(n)``, ``step(0, note="best: ...")`` to show the state so far, ``step(0, close=True)``.
    """
    if not enabled:
        def nothing(n: int, close: bool = False, note: str | None = None) -> None:
            return None

        return nothing
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="run", leave=False)

    def step(n: int, close: bool = False, note: str | None = None) -> None:
        bar.update(n)
        if note is not None:
            bar.set_postfix_str(note)
        if close:
            bar.close()

    return step
