"""One dtype vocabulary: torch dtypes, TensorRT datatype names, display names and the palette."""

from __future__ import annotations

import torch

from .errors import OptionError

#: Display names used in tables, legends and JSON.
_DISPLAY = {
    torch.float32: "FP32",
    torch.float16: "FP16",
    torch.bfloat16: "BF16",
    torch.float64: "FP64",
    torch.int8: "INT8",
    torch.uint8: "UINT8",
    torch.int32: "INT32",
    torch.int64: "INT64",
    torch.bool: "BOOL",
}
for _name in ("float8_e4m3fn", "float8_e5m2"):
    if hasattr(torch, _name):
        _DISPLAY[getattr(torch, _name)] = "FP8"

#: TensorRT's ``Format/Datatype`` words (engine inspector JSON, layer logs) and their torch dtypes.
_TRT_NAMES = {
    "float": torch.float32,
    "fp32": torch.float32,
    "half": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "int8": torch.int8,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
    "uint8": torch.uint8,
}
if hasattr(torch, "float8_e4m3fn"):
    _TRT_NAMES["fp8"] = torch.float8_e4m3fn

#: Colour-blind-safe palette (Okabe-Ito); BF16 is distinct from FP32, unknown is grey.
PALETTE = {
    "FP32": "#0072B2",  # blue
    "FP16": "#E69F00",  # orange
    "BF16": "#009E73",  # bluish green
    "INT8": "#CC79A7",  # reddish purple
    "FP8": "#D55E00",  # vermillion
    "other": "#999999",  # grey
}

#: The low-precision types Torch-TensorRT's autocast accepts.
LOW_PRECISION_TYPES = (torch.float16, torch.bfloat16)


def display_name(dtype: torch.dtype | None) -> str:
    """Short name for a dtype ("FP16"); ``"other"`` for None or anything unnamed."""
    if dtype is None:
        return "other"
    return _DISPLAY.get(dtype, str(dtype).replace("torch.", ""))


def color_of(dtype: torch.dtype | None) -> str:
    """Palette colour of a dtype; grey for anything not in the palette."""
    return PALETTE.get(display_name(dtype), PALETTE["other"])


def from_trt_name(text: str) -> torch.dtype | None:
    """torch dtype for a TensorRT datatype word ("Half", "Float", "Int8"), or None if unknown.

    Accepts inspector strings such as ``"Row major linear FP16 format"`` or ``"Half"`` as well.
    """
    words = text.replace("(", " ").replace(")", " ").replace(",", " ").lower().split()
    for word in words:
        if word in _TRT_NAMES:
            return _TRT_NAMES[word]
    return None


def to_name(dtype: torch.dtype | None) -> str | None:
    """JSON name of a dtype ("float16"), None for None."""
    return None if dtype is None else str(dtype).replace("torch.", "")


def from_name(name: str | None) -> torch.dtype | None:
    """Inverse of :func:`to_name`; raises ValueError naming the accepted values."""
    if name is None:
        return None
    value = getattr(torch, str(name).replace("torch.", ""), None)
    if not isinstance(value, torch.dtype):
        raise OptionError(f"unknown dtype {name!r}; expected a torch dtype name such as 'float16' or 'bfloat16'")
    return value


def is_floating(dtype: torch.dtype | None) -> bool:
    """True for floating-point dtypes."""
    return dtype is not None and dtype.is_floating_point
