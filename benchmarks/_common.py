"""What the benchmarks share: their models by name, a markdown table of result rows, the machine they ran on."""

from __future__ import annotations

import ast
import math
import platform
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from mixprec_explorer import examples

Model = tuple[torch.nn.Module, tuple[torch.Tensor, ...]]

#: The built-in examples by benchmark name: (real size at a batch, small size for the CPU). Any other name is
#: looked up in the zoo (``mixprec_explorer.zoo``), at its "real" or "small" size.
EXAMPLES: dict[str, tuple[Callable[[int], Model], Callable[[], Model]]] = {
    # ResNet-50: torchvision's when it imports (the replica otherwise); small: one bottleneck per stage, 32x32
    "resnet50": (lambda batch: examples.resnet50(batch=batch),
                 lambda: (examples.ResNet50(num_classes=10, layers=(1, 1, 1, 1)).eval(), (torch.randn(2, 3, 32, 32),))),
    # a BERT-base-sized encoder of nn.TransformerEncoderLayer blocks, sequence 128; small: 2 layers, 32 wide
    "encoder": (lambda batch: examples.transformer_encoder(batch=batch, seq=128),
                lambda: (examples.TransformerEncoder(layers=2, d_model=32, heads=2, ffn=64, vocab=100,
                                                     max_len=16).eval(), (torch.randint(0, 100, (2, 8)),))),
    # synthetic Linear-LayerNorm-GELU blocks, about 1,000 nodes; small: 40
    "stack": (lambda batch: examples.layer_stack(1000), lambda: examples.layer_stack(40)),
    "reference-autocast": (lambda batch: examples.reference_autocast_model(),
                           lambda: examples.reference_autocast_model()),
    "reference-explicit": (lambda batch: examples.reference_explicit_model(),
                           lambda: examples.reference_explicit_model()),
}


#: ops whose nodes a profile must time for a model to count as mapped (the "key nodes" of the live zoo)
KEY_OPS = frozenset({"conv2d", "convolution", "linear", "matmul", "bmm", "addmm", "mm", "batch_norm", "layer_norm",
                     "scaled_dot_product_attention", "softmax", "_softmax"})


def key_nodes(nodes: Mapping[str, Any], latency: Mapping[str, float]) -> tuple[list[str], list[str]]:
    """(every key node of the graph ``nodes``, those without a timed layer in ``latency``), in graph order."""
    from mixprec_explorer.costs import op_basename

    key = [n for n, i in nodes.items() if i.kind == "call_function" and op_basename(i.op) in KEY_OPS]
    return key, [n for n in key if latency.get(n, 0) <= 0]


def build_model(name: str, *, small: bool = False, batch: int = 32, seed: int = 0) -> Model:
    """(model in eval mode, one batch of inputs) for a built-in example or a zoo name; random weights, seeded."""
    torch.manual_seed(seed)
    if name in EXAMPLES:
        real, tiny = EXAMPLES[name]
        return tiny() if small else real(batch)
    from mixprec_explorer import zoo

    return zoo.build(name, size="small" if small else "real", batch=batch, seed=seed)


def model_names() -> list[str]:
    """Every name :func:`build_model` takes: the built-in examples, then the zoo's models that import here."""
    try:
        from mixprec_explorer import zoo

        return [*EXAMPLES, *zoo.names(available=True)]
    except ImportError:  # the zoo is not there yet
        return list(EXAMPLES)


def fmt(value: Any, spec: str = ".3g") -> str:
    """One cell: None as '-', infinities as 'inf', floats with ``spec``."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, spec) if isinstance(value, float) else str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], header: Sequence[str]) -> list[str]:
    """The rows as markdown lines, floats to 3 significant digits."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(h)) for h in header) + " |")
    return lines


def tensorrt_versions() -> dict[str, str]:
    """torch_tensorrt's and TensorRT's versions, imported as the TensorRT backend imports them (TensorRT-RTX's
    unusable plugin module marked absent first)."""
    from mixprec_explorer.backends import available_backends
    from mixprec_explorer.backends.tensorrt_rtx import block_broken_plugin

    ok, reason = available_backends()["tensorrt"]
    if not ok:
        raise SystemExit(f"this benchmark needs the TensorRT backend: {reason} (and a CUDA GPU)")
    block_broken_plugin()
    import tensorrt
    import torch_tensorrt

    return {"torch_tensorrt": str(torch_tensorrt.__version__),
            "tensorrt": f"{getattr(tensorrt, '_package_name', 'tensorrt')} {tensorrt.__version__}"}


def machine() -> str:
    """Processor (or GPU), torch threads, Python and torch versions, in one line."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or platform.machine()
    return (f"{device}, {torch.get_num_threads()} threads, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def suggested_exclusions(err: Exception) -> frozenset[str]:
    """The node regexes a ``CompileFailure`` remedy suggests (``autocast_excluded_nodes={...}``), or empty."""
    for remedy in getattr(err, "remedies", ()):
        found = re.search(r"autocast_excluded_nodes=(\{.*?\})", remedy)
        if found:
            return frozenset(ast.literal_eval(found.group(1)))  # a literal set of strings, never executed
    return frozenset()
