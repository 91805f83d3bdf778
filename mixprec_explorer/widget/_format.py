"""Small text helpers the app's panels share: HTML escaping and number formatting."""

from __future__ import annotations

import html
from typing import Any

from ..numbers import format_number

__all__ = ["describe_change", "esc", "num", "opt"]


def esc(value: Any) -> str:
    """``value`` as text, escaped for HTML."""
    return html.escape(str(value))


def num(value: float) -> str:
    """Three significant digits, infinities and NaN as words (the package's one formatter)."""
    return format_number(value)


def opt(value: Any, spec: str = ".3g") -> str:
    """An optional number: "-" for None, else :func:`num` (or ``format(value, spec)`` for another spec)."""
    return format_number(value) if value is None or spec == ".3g" else format(value, spec)


def describe_change(before: Any, after: Any) -> str:
    """What turned Settings ``before`` into ``after``, as HTML for the status line ("" if nothing changed).

    >>> from mixprec_explorer import Settings
    >>> describe_change(Settings(), Settings(autocast_excluded_nodes={"^linear1$"}))
    '<code>^linear1$</code> excluded'
    """
    parts = [f"<code>{esc(p)}</code> excluded"
             for p in sorted(after.autocast_excluded_nodes - before.autocast_excluded_nodes)]
    parts += [f"<code>{esc(p)}</code> included again"
              for p in sorted(before.autocast_excluded_nodes - after.autocast_excluded_nodes)]
    parts += [f"op <code>{esc(o.replace('torch.ops.', ''))}</code> excluded"
              for o in sorted(after.autocast_excluded_ops - before.autocast_excluded_ops)]
    parts += [f"op <code>{esc(o.replace('torch.ops.', ''))}</code> included again"
              for o in sorted(before.autocast_excluded_ops - after.autocast_excluded_ops)]
    for name in ("use_explicit_typing", "enable_autocast", "autocast_low_precision_type", "use_fp32_acc",
                 "autocast_max_output_threshold", "autocast_max_depth_of_reduction"):
        old, new = getattr(before, name, None), getattr(after, name, None)
        if old != new:
            parts.append(f"{name} {esc(_short(old))} \u2192 {esc(_short(new))}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    return str(value).replace("torch.", "")
