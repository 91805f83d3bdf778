"""Parse TensorRT engine layer information (``IEngineInspector`` JSON) into :class:`LayerRecord` tuples.

Torch-TensorRT returns this JSON from ``get_layer_info()`` and writes it as ``*_layer_information.json``. Its
detail depends on the build's ``ProfilingVerbosity``: DETAILED gives one object per layer with tensor dtypes,
LAYER_NAMES_ONLY (Torch-TensorRT's default outside the Debugger) gives names only.

Two schemas are read (:func:`layer_info_schema`): TensorRT 8.x-10.x and TensorRT-RTX up to 1.4 give a tensor's
type as ``"Format/Datatype": "Half"`` and the engine's inputs and outputs as ``"Bindings": ["x", ...]``; TensorRT
11 and TensorRT-RTX 1.5 and 1.6 split it into ``"Datatype": "Half"`` and ``"Format": "(NHWC) Channel major
format"`` (with ``Strides``, ``StrideOrder`` and a layer's ``Constants``) and list ``"I/O Tensors"`` as objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from mixprec_explorer.dtypes import from_trt_name
from mixprec_explorer.errors import ParseError
from mixprec_explorer.parsers.names import decode_layer_name, layer_refs, modules_of
from mixprec_explorer.records import LayerRecord

__all__ = ["kind_of", "layer_info_schema", "load_json", "parse_layer_info", "record_from_layer"]

#: Layer keys mapped onto LayerRecord fields; every other key is kept in ``extra`` unchanged.
_MAPPED = frozenset({"Name", "LayerType", "TacticName", "Accumulation"})


def load_json(text: str, what: str) -> Any:
    """``json.loads`` whose failures are ParseErrors naming line and column.

    Control characters inside strings are accepted (TensorRT 8.6/10 put ``\\x1e`` in names and metadata).
    """
    if not isinstance(text, str):
        raise ParseError(f"{what}: expected text (str), got {type(text).__name__}")
    try:
        return json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{what}: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ParseError(f"{what}: JSON nested too deeply") from None


def parse_layer_info(text: str) -> tuple[LayerRecord, ...]:
    """Records of every layer in an engine information JSON, DETAILED or LAYER_NAMES_ONLY, TensorRT 8.x to 11.

    Dtypes come from each tensor's ``Format/Datatype`` ("Row major linear FP16 format", "Half"); ``modules`` from
    the layer's name, or from its tensor names for Myelin layers. Raises ParseError naming the place
    ("layer 3: ...", counting from 0) when the text is not such JSON.

    >>> [r.name for r in parse_layer_info('{"Layers": ["[RELU]-[aten_ops.relu.default]-[/relu]"], "Bindings": []}')]
    ['[RELU]-[aten_ops.relu.default]-[/relu]']
    """
    data = load_json(text, "layer information")
    layers, io_names = _layers_and_io(data)
    records = []
    for index, layer in enumerate(layers):
        where = f"layer {index}"
        if isinstance(layer, str):
            records.append(_names_only_record(layer))
        elif isinstance(layer, Mapping):
            records.append(record_from_layer(layer, where, io_names))
        else:
            raise ParseError(
                f"{where}: expected an object (DETAILED) or a string (LAYER_NAMES_ONLY), got {kind_of(layer)}"
            )
    return tuple(records)


def layer_info_schema(text: str) -> str:
    """Which inspector schema a layer information JSON uses: ``"tensorrt-11"`` (TensorRT 11, TensorRT-RTX 1.5+:
    ``I/O Tensors``, per-tensor ``Datatype`` and ``Format``), ``"tensorrt-10"`` (TensorRT 8.x-10.x, TensorRT-RTX up
    to 1.4: ``Bindings``, ``Format/Datatype``) or ``"unknown"`` (names only and no I/O list, or no tensors at all).

    >>> layer_info_schema('{"Layers": [], "I/O Tensors": []}'), layer_info_schema('{"Layers": [], "Bindings": []}')
    ('tensorrt-11', 'tensorrt-10')
    """
    data = load_json(text, "layer information")
    if isinstance(data, Mapping) and "I/O Tensors" in data:
        return "tensorrt-11"
    if isinstance(data, Mapping) and "Bindings" in data:
        return "tensorrt-10"
    layers = data.get("Layers", [data]) if isinstance(data, Mapping) else data if isinstance(data, list) else []
    for layer in layers if isinstance(layers, list) else []:
        for tensor in (*(layer.get("Inputs") or ()), *(layer.get("Outputs") or ())) if isinstance(layer, Mapping) \
                else ():
            if isinstance(tensor, Mapping) and ("Datatype" in tensor or "DataType" in tensor):
                return "tensorrt-11"
            if isinstance(tensor, Mapping) and "Format/Datatype" in tensor:
                return "tensorrt-10"
    return "unknown"


def _layers_and_io(data: Any) -> tuple[Sequence[Any], frozenset[str]]:
    """The layer list and engine I/O tensor names, whatever the top-level shape."""
    if isinstance(data, Mapping):
        if "Layers" in data:
            layers = data["Layers"]
            if not isinstance(layers, list):
                raise ParseError(f"top level: 'Layers' should be a list, got {kind_of(layers)}")
            return layers, _io_names_trt8_10(data) | _io_names_trt11(data)
        if "Name" in data:
            return _single_layer(data), frozenset()
        raise ParseError("top level: no 'Layers' key; expected TensorRT engine information JSON ({\"Layers\": [...]})")
    if isinstance(data, list):
        return data, frozenset()
    raise ParseError(f"top level: expected a JSON object with 'Layers', got {kind_of(data)}")


def _single_layer(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``IEngineInspector.getLayerInformation(i, kJSON)`` returns one layer object, not ``{"Layers": [...]}``."""
    return [data]


def _io_names_trt8_10(data: Mapping[str, Any]) -> frozenset[str]:
    """TensorRT 8.x-10.x list the engine's inputs and outputs as ``"Bindings": ["input.1", ...]``."""
    return _names_list(data, "Bindings")


def _io_names_trt11(data: Mapping[str, Any]) -> frozenset[str]:
    """TensorRT 11 renamed ``Bindings`` to ``"I/O Tensors"``; entries may be names or objects with a ``Name``."""
    return _names_list(data, "I/O Tensors")


def _names_list(data: Mapping[str, Any], key: str) -> frozenset[str]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ParseError(f"top level: '{key}' should be a list, got {kind_of(value)}")
    names = set()
    for item in value:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, Mapping) and isinstance(item.get("Name"), str):
            names.add(item["Name"])
    return frozenset(names)


def _names_only_record(name: str) -> LayerRecord:
    """LAYER_NAMES_ONLY verbosity: ``{"Layers": ["name", ...]}``, so only the name's own module paths are known."""
    return LayerRecord(
        name=name,
        modules=modules_of(decode_layer_name(name).refs),
        extra={"verbosity": "LAYER_NAMES_ONLY"},
    )


def record_from_layer(layer: Mapping[str, Any], where: str, io_names: Iterable[str] = ()) -> LayerRecord:
    """One DETAILED layer object (or the same fields parsed from a one-line log) -> LayerRecord.

    ``where`` prefixes every error ("layer 3", "line 2"). Unmapped keys stay in ``extra``, ``Inputs`` and
    ``Outputs`` included, so tensor names and dimensions remain available.
    """
    name = layer.get("Name")
    if not isinstance(name, str):
        raise ParseError(f"{where}: 'Name' is missing or not a string")
    inputs = _tensors(layer, "Inputs", where)
    outputs = _tensors(layer, "Outputs", where)
    tensor_names = [t["Name"] for t in (*inputs, *outputs) if isinstance(t.get("Name"), str)]
    extra: dict[str, Any] = {key: value for key, value in layer.items() if key not in _MAPPED}
    extra["verbosity"] = "DETAILED"
    _stream_id_trt10(layer, where)
    parts = _metadata_trt86(layer, where)
    if parts:
        extra["metadata_parts"] = parts
    io_set = frozenset(io_names)
    engine_io = tuple(n for n in tensor_names if n in io_set)
    if engine_io:
        extra["engine_io"] = engine_io
    return LayerRecord(
        name=name,
        layer_type=_text(layer, "LayerType", where),
        input_dtypes=tuple(_tensor_dtype(t, f"{where}: Inputs[{i}]") for i, t in enumerate(inputs)),
        output_dtypes=tuple(_tensor_dtype(t, f"{where}: Outputs[{i}]") for i, t in enumerate(outputs)),
        accumulate_dtype=_dtype_field(layer, "Accumulation", f"{where}:"),
        tactic=_text(layer, "TacticName", where),
        modules=modules_of(layer_refs(name, tensor_names)),
        extra=extra,
    )


def _tensors(layer: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = layer.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise ParseError(f"{where}: '{key}' should be a list of tensors, got {kind_of(value)}")
    for index, tensor in enumerate(value):
        if not isinstance(tensor, Mapping):
            raise ParseError(f"{where}: {key}[{index}] should be an object, got {kind_of(tensor)}")
    return value


def _tensor_dtype(tensor: Mapping[str, Any], where: str) -> torch.dtype | None:
    """A tensor's dtype in either schema: TensorRT 11's ``Datatype`` ("Half"; ``DataType`` as its I/O list spells it),
    else TensorRT 8.x-10.x's ``Format/Datatype`` ("Row major linear FP16 format", "Half"), else a dtype word in
    ``Format``. None where none says."""
    for key in ("Datatype", "DataType", "Format/Datatype", "Format"):
        if tensor.get(key) is not None:
            found = _dtype_field(tensor, key, where)
            if found is not None or key != "Format":
                return found
    return None


def _dtype_field(fields: Mapping[str, Any], key: str, where: str) -> torch.dtype | None:
    """dtype of a TensorRT datatype string field, None when absent; ParseError naming ``where`` if not a string.

    Used for a tensor's ``Format/Datatype`` ("Channel major FP16 format where channel % 8 == 0" -> float16) and a
    layer's ``Accumulation`` ("Float", printed for FP32-accumulating matmuls under ``use_fp32_acc``, TensorRT 10.x).
    """
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParseError(f"{where} '{key}' should be a string, got {kind_of(value)}")
    return from_trt_name(value)


def _stream_id_trt10(layer: Mapping[str, Any], where: str) -> None:
    """TensorRT 10 added ``StreamId`` (an integer; auxiliary streams run ``signal``/``wait`` layers). Kept in extra."""
    value = layer.get("StreamId")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ParseError(f"{where}: 'StreamId' should be an integer, got {kind_of(value)}")


def _metadata_trt86(layer: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """TensorRT 8.6 added ``Metadata``: a string whose entries are joined by ``\\x1e`` (and ``\\x1f`` in 10.0).

    Torch-TensorRT never sets layer metadata, so it is usually empty; ONNX builds put ``[ONNX Layer: ...]`` there.
    """
    value = layer.get("Metadata")
    if value is None:
        return ()
    if not isinstance(value, str):
        raise ParseError(f"{where}: 'Metadata' should be a string, got {kind_of(value)}")
    return tuple(p.strip() for p in value.replace("\x1f", "\x1e").split("\x1e") if p.strip())


def _text(layer: Mapping[str, Any], key: str, where: str) -> str:
    value = layer.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ParseError(f"{where}: '{key}' should be a string, got {kind_of(value)}")
    return value


def kind_of(value: Any) -> str:
    """JSON-ish type word for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
