"""The layer-to-node mapping: TensorRT's engine files -> :class:`~mixprec_explorer.records.LayerRecord` tuples ->
the FX nodes of the captured graph. Pure functions, no TensorRT; its design is docs/mapping.md.

* reading: :mod:`~mixprec_explorer.parsers.layer_info`, :mod:`~mixprec_explorer.parsers.profile`,
  :mod:`~mixprec_explorer.parsers.log` (texts), :mod:`~mixprec_explorer.parsers.trace` (a profiling folder's files),
  :mod:`~mixprec_explorer.parsers.names` (layer and tensor names);
* mapping: :mod:`~mixprec_explorer.parsers.dataflow` (one engine's layers along its tensors),
  :mod:`~mixprec_explorer.parsers.mapping` (all engines, by name where the dataflow cannot; the fit check);
* assembly: :mod:`~mixprec_explorer.parsers.assemble` (timings joined, layers placed, notes; a recorded folder).

Every parser raises :class:`~mixprec_explorer.errors.ParseError` naming the place ("layer 3: ...", "record 2: ...",
"line 5: ...") and nothing else on malformed input.
"""

from __future__ import annotations

from mixprec_explorer.parsers.layer_info import parse_layer_info
from mixprec_explorer.parsers.log import parse_layer_log
from mixprec_explorer.parsers.mapping import attribute_layers
from mixprec_explorer.parsers.names import DecodedName, NodeRef, decode_layer_name
from mixprec_explorer.parsers.profile import parse_profile
from mixprec_explorer.parsers.trace import engine_name, read_layer_info_dir, read_trace_dir, trace_records

__all__ = [
    "DecodedName",
    "NodeRef",
    "attribute_layers",
    "decode_layer_name",
    "engine_name",
    "parse_layer_info",
    "parse_layer_log",
    "parse_profile",
    "read_layer_info_dir",
    "read_trace_dir",
    "trace_records",
]
