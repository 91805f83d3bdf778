"""The settings an analysis evaluates: "this plan at the low dtype", all-FP32, and exclusions on top.

Sensitivity, search and the frontier all start from the same base: the explorer's settings with rule-based
autocast on, strong typing, the low-precision type chosen, and no exclusions. Plans are that base plus
exclusions a user would write.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..settings import Settings

__all__ = ["ALL_MODULES", "all_fp32_settings", "low_dtype_of", "low_precision_settings", "with_exclusions"]

#: The exclusion regex that matches every module path: every classified node stays FP32.
ALL_MODULES = ".*"


def low_dtype_of(settings: Settings, low_dtype: torch.dtype | None = None) -> torch.dtype:
    """``low_dtype`` if given, else the settings' low-precision type, else float16."""
    return low_dtype or settings.autocast_low_precision_type or torch.float16


def low_precision_settings(settings: Settings, low_dtype: torch.dtype | None = None) -> Settings:
    """Every classified node in the low dtype: ``settings`` with autocast on, strong typing, no exclusions."""
    return settings.replace(enable_autocast=True, use_explicit_typing=True,
                            autocast_low_precision_type=low_dtype_of(settings, low_dtype),
                            autocast_excluded_nodes=frozenset(), autocast_excluded_ops=frozenset())


def all_fp32_settings(base: Settings) -> Settings:
    """``base`` with every module excluded: every classified node stays FP32."""
    return base.replace(autocast_excluded_nodes=frozenset({ALL_MODULES}))


def with_exclusions(base: Settings, modules: Iterable[str] = (), ops: Iterable[str] = ()) -> Settings:
    """``base`` with exactly these module regexes and qualified op names kept in FP32."""
    return base.replace(autocast_excluded_nodes=frozenset(modules), autocast_excluded_ops=frozenset(ops))
