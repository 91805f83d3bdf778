"""Targets: which Torch-TensorRT release, and which TensorRT flavour, the explorer speaks for.

Settings, rules, compile calls and parsers differ between releases; this module holds what each supported
release has, read from its published wheels (``torch-tensorrt`` and ``torch-tensorrt-rtx`` on PyPI) and its tag
in pytorch/TensorRT (docs/versions.md lists what was read where). A target is chosen (``target="2.13"``,
``"2.12-rtx"``) or detected from the installed distributions' metadata; torch_tensorrt is never imported here.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SettingsError

if TYPE_CHECKING:
    import torch

__all__ = [
    "FLAVOURS",
    "NEWEST",
    "RELEASES",
    "SETTING_RELEASES",
    "SUPPORTED",
    "NodeShift",
    "Release",
    "SettingChange",
    "Target",
    "TargetComparison",
    "TargetWarning",
    "attention_options",
    "convolutions",
    "rtx_fallback",
    "detect_target",
    "resolve_target",
    "setting_changes",
]

FLAVOURS = ("tensorrt", "tensorrt_rtx")
_FLAVOUR_NAMES = {"tensorrt": "TensorRT", "tensorrt_rtx": "TensorRT-RTX"}
_DISTRIBUTIONS = {"tensorrt": "torch-tensorrt", "tensorrt_rtx": "torch-tensorrt-rtx"}
#: distributions whose version is the TensorRT library's, per flavour, most specific first
_LIBRARIES = {"tensorrt": ("tensorrt-cu13-libs", "tensorrt-cu12-libs", "tensorrt-cu13", "tensorrt-cu12", "tensorrt"),
              "tensorrt_rtx": ("tensorrt-rtx-cu13-libs", "tensorrt-rtx-cu12-libs", "tensorrt-rtx-cu13",
                               "tensorrt-rtx")}


class TargetWarning(UserWarning):
    """The installed Torch-TensorRT is one this package does not model; the newest modelled release is used."""


@dataclass(frozen=True)
class Release:
    """What one Torch-TensorRT minor release pins and has (from its wheels' METADATA, _version.py and sources)."""

    version: str  #: "2.11"
    checked: tuple[str, ...]  #: the patch releases whose wheels were read ("2.12.0", "2.12.1")
    torch: str  #: the torch it requires
    tensorrt: str  #: the datacenter TensorRT it is built with (``_version.py``)
    tensorrt_requires: str  #: what its torch-tensorrt wheel requires of tensorrt-cu13 (METADATA)
    tensorrt_rtx: str  #: the TensorRT-RTX it is built with (``_version.py``)
    tensorrt_rtx_requires: str  #: what its torch-tensorrt-rtx wheel requires of tensorrt_rtx ("": none published)
    cuda: str  #: the CUDA its wheels are built for
    weak_typing: bool  #: dynamo.compile still takes use_explicit_typing / enabled_precisions
    rtx_depthwise_bf16_fallback: bool  #: on TensorRT-RTX, BF16 depthwise convolutions run in PyTorch (2.12 only)
    fp32_acc_attention: bool  #: use_fp32_acc also keeps decomposed FP16 attention in FP32 (decompose_attention=True)

    @property
    def tensorrt_major(self) -> int:
        """10 or 11: the datacenter TensorRT generation (11 is strongly typed only, with a new inspector JSON)."""
        return int(self.tensorrt.split(".")[0])


#: Every release modelled, oldest first. Sources: each wheel's METADATA (Requires-Dist) and torch_tensorrt/_version.py,
#: dynamo/_settings.py, _compiler.py, conversion/_TRTInterpreter.py and lowering/_decompositions.py.
RELEASES: dict[str, Release] = {
    "2.10": Release("2.10", ("2.10.0",), ">=2.10.0,<2.11.0", "10.14.1", "!=10.14.1.48,<10.15.0,>=10.14.1",
                    "1.2.0", "", "13.0", True, False, False),
    "2.11": Release("2.11", ("2.11.0",), ">=2.11.0,<2.12.0", "10.15.1", "<10.16.0,>=10.15.1",
                    "1.3.0", ">=1.3.0.35", "13.0", True, False, False),
    "2.12": Release("2.12", ("2.12.0", "2.12.1"), ">=2.12.0,<2.13.0", "10.16.1", "<10.17.0,>=10.16.1",
                    "1.4.0", "<1.5.0,>=1.4.0.76", "13.0", True, True, False),  # 2.12.0's rtx wheel: >=1.4.0.76
    "2.13": Release("2.13", ("2.13.0",), ">=2.13.0,<2.14.0", "11.0.0", "<11.1.0,>=11.0.0",
                    "1.5.0", "<1.6.0.0,>=1.5.0.114", "13.2", False, False, False),  # #4306 removed it
    "2.14": Release("2.14", ("2.14.0",), ">=2.14.0,<2.15.0", "11.1.0", "<11.2.0,>=11.1.0",
                    "1.6.1", "<1.7.0.0,>=1.6.1.120", "13.2", False, False, True),
}
SUPPORTED = tuple(RELEASES)
NEWEST = SUPPORTED[-1]

#: The compile keywords of the precision settings and the releases whose ``dynamo.compile`` has them
#: (first, last; None: still there). Checked with each wheel's signature of ``dynamo.compile``.
SETTING_RELEASES: dict[str, tuple[str, str | None]] = {
    "use_explicit_typing": ("2.6", "2.12"),  # removed by pytorch/TensorRT#4195 ("Remove deprecated apis")
    "enabled_precisions": ("2.2", "2.12"),  # same pull request; the oldest tag read that has it is v2.2.0
    "enable_autocast": ("2.10", None),
    "autocast_low_precision_type": ("2.10", None),
    "autocast_excluded_nodes": ("2.10", None),
    "autocast_excluded_ops": ("2.10", None),
    "autocast_max_output_threshold": ("2.10", None),
    "autocast_max_depth_of_reduction": ("2.10", None),
    "autocast_calibration_dataloader": ("2.10", None),
    "use_fp32_acc": ("2.6", None),
}


#: The first release whose ``dynamo.compile`` takes ``attn_bias_is_causal``, default True through 2.14.0 (read in each
#: tag's ``_defaults.py``): its lowering pass ``force_causal_efficient_attention`` then drops the mask of every
#: efficient attention (square ones from 2.14) and makes it causal.
ATTN_BIAS_IS_CAUSAL_FROM = "2.11"


def attention_options(masked: Iterable[str], release: str) -> tuple[dict[str, Any], str]:
    """The compile options a graph whose SDPA nodes ``masked`` take a non-causal mask needs on ``release`` to keep
    that mask (``attn_bias_is_causal=False``), and a note saying why; nothing where there are none or the
    release has no such setting."""
    names = list(masked)
    if not names or _key(release) < _key(ATTN_BIAS_IS_CAUSAL_FROM):
        return {}, ""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    note = (f"attn_bias_is_causal=False: {len(names)} attention node(s) take a mask and are not causal ({shown}); "
            f"Torch-TensorRT {ATTN_BIAS_IS_CAUSAL_FROM}+ defaults to True, which replaces the mask with a causal one "
            "(lowering pass force_causal_efficient_attention) and changes the result (BERT-base: 0.18 relative L2 "
            "in FP32 on TensorRT-RTX). Pass attn_bias_is_causal=True yourself only if every mask is causal")
    return {"attn_bias_is_causal": False}, note


def _key(release: str) -> tuple[int, int]:
    major, minor = release.split(".")[:2]
    return int(major), int(minor)


def releases_with(setting: str) -> str:
    """The releases whose ``dynamo.compile`` has ``setting``, in words ("2.6-2.12", "2.10 onwards")."""
    first, last = SETTING_RELEASES[setting]
    return f"{first}-{last}" if last else f"{first} onwards"


def has_setting(release: str, setting: str) -> bool:
    """True where ``dynamo.compile`` of ``release`` takes the keyword ``setting``."""
    first, last = SETTING_RELEASES[setting]
    return _key(first) <= _key(release) and (last is None or _key(release) <= _key(last))


@dataclass(frozen=True)
class Target:
    """One Torch-TensorRT release and TensorRT flavour; ``origin`` and ``installed`` say how it was found.

    Two targets are equal when release and flavour are; construct one with :func:`resolve_target`.
    """

    release: str  #: "2.13": a key of :data:`RELEASES`
    flavour: str = "tensorrt"  #: "tensorrt" (datacenter) or "tensorrt_rtx"
    installed: str = field(default="", compare=False)  #: "torch-tensorrt-rtx 2.11.0, tensorrt-rtx-cu13-libs 1.4.0.76"
    origin: str = field(default="chosen", compare=False)  #: "chosen", "installed" or "default"

    def __post_init__(self) -> None:
        if self.release not in RELEASES:
            raise SettingsError(f"target release {self.release!r} is not one mixprec_explorer models; "
                                f"choose one of {', '.join(SUPPORTED)} (e.g. target='2.13')")
        if self.flavour not in FLAVOURS:
            raise SettingsError(f"target flavour {self.flavour!r}: use 'tensorrt' or 'tensorrt_rtx' "
                                "(or a string like '2.12-rtx')")

    @property
    def facts(self) -> Release:
        return RELEASES[self.release]

    @property
    def is_rtx(self) -> bool:
        return self.flavour == "tensorrt_rtx"

    @property
    def spec(self) -> str:
        """The short form :func:`resolve_target` reads back: "2.13" or "2.12-rtx"."""
        return self.release + ("-rtx" if self.is_rtx else "")

    @property
    def library(self) -> str:
        """The TensorRT this target builds with: what is installed, else the release's requirement."""
        installed = [p for p in self.installed.split(", ") if "tensorrt" in p and not p.startswith("torch-")]
        if installed:
            return installed[0]
        f = self.facts
        pin, requires = (f.tensorrt_rtx, f.tensorrt_rtx_requires) if self.is_rtx else (f.tensorrt, f.tensorrt_requires)
        if self.is_rtx and not requires:
            return f"TensorRT-RTX {pin} (no torch-tensorrt-rtx {self.release} wheel was published)"
        return f"{_FLAVOUR_NAMES[self.flavour]} {pin} ({requires})"

    @property
    def tensorrt_major(self) -> int | None:
        """The datacenter TensorRT generation (10, 11); None for TensorRT-RTX, which numbers itself 1.x."""
        return None if self.is_rtx else self.facts.tensorrt_major

    def has(self, setting: str) -> bool:
        """True where this release's ``dynamo.compile`` takes the keyword ``setting``."""
        return has_setting(self.release, setting)

    def describe(self, origin: bool = True) -> str:
        """One line: release, flavour, TensorRT and (``origin``) where the target came from."""
        text = f"{_DISTRIBUTIONS[self.flavour]} {self.release} with {self.library}"
        if not origin:
            return text
        how = {"chosen": "chosen", "installed": "detected from the installed packages",
               "default": "no torch-tensorrt installed: the newest release modelled"}.get(self.origin, self.origin)
        return f"{text} ({how})"

    def __str__(self) -> str:
        return f"Torch-TensorRT {self.release} ({_FLAVOUR_NAMES[self.flavour]})"

    def __repr__(self) -> str:
        return f"Target({self.spec!r})"


_SPEC = re.compile(r"(\d+)\.(\d+)")


def resolve_target(value: Target | str | None = None) -> Target:
    """The target ``value`` names: a :class:`Target`, a string ("2.13", "2.12.1", "2.11-rtx",
    "torch-tensorrt-rtx==2.12.1"), or None for the installed one (:func:`detect_target`).

    >>> resolve_target("2.12-rtx")
    Target('2.12-rtx')
    """
    if value is None:
        return detect_target()
    if isinstance(value, Target):
        return value
    if not isinstance(value, str):
        raise SettingsError(f"target must be a string like '2.13' or '2.12-rtx', or a Target; got "
                            f"{type(value).__name__} {value!r}")
    found = _SPEC.search(value)
    if found is None:
        raise SettingsError(f"target {value!r} names no release; write it as '2.13' (TensorRT) or '2.13-rtx' "
                            f"(TensorRT-RTX); releases modelled: {', '.join(SUPPORTED)}")
    release = f"{found.group(1)}.{found.group(2)}"
    flavour = "tensorrt_rtx" if "rtx" in value.lower() else "tensorrt"
    return Target(release, flavour)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def detect_target() -> Target:
    """The installed Torch-TensorRT's target, read from package metadata (nothing imported); cached.

    Without torch-tensorrt or torch-tensorrt-rtx installed: the newest release modelled (origin "default"). An
    installed release this package does not model warns (:class:`TargetWarning`) and gives the newest one.
    ``detect_target.cache_clear()`` makes the next call look again.
    """
    for flavour, distribution in _DISTRIBUTIONS.items():
        version = _version(distribution)
        if version is None:
            continue
        library = next(((name, v) for name in _LIBRARIES[flavour] if (v := _version(name))), None)
        installed = f"{distribution} {version}" + (f", {library[0]} {library[1]}" if library else "")
        found = _SPEC.search(version)
        release = f"{found.group(1)}.{found.group(2)}" if found else ""
        if release in RELEASES:
            return Target(release, flavour, installed, "installed")
        warnings.warn(f"{installed} is installed, which mixprec_explorer does not model (it models Torch-TensorRT "
                      f"{', '.join(SUPPORTED)}); using {NEWEST}'s settings and rules. Choose one with "
                      "target='2.x'", TargetWarning, stacklevel=2)
        return Target(NEWEST, flavour, installed, f"{installed} is not modelled; {NEWEST} used instead")
    return Target(NEWEST, "tensorrt", "", "default")


# -- what a change of target does to the settings --------------------------------------------------------------------
@dataclass(frozen=True)
class SettingChange:
    """One setting whose name, meaning or availability differs between two targets."""

    setting: str  #: the compile keyword (``use_explicit_typing``) or the subject ("BF16 on TensorRT-RTX")
    kind: str  #: "vanishes", "appears", "changes meaning" or "library"
    text: str  #: what changes, with the release and the source that says so


def setting_changes(before: Target, after: Target, *, use_explicit_typing: bool = True,
                    low_type: torch.dtype | None = None) -> tuple[SettingChange, ...]:
    """What moving from ``before`` to ``after`` changes in the precision settings (the values tailor the text)."""
    a, b = before.facts, after.facts
    out: list[SettingChange] = []
    for name in SETTING_RELEASES:
        had, has = before.has(name), after.has(name)
        if had and not has:
            why = ""
            if name == "use_explicit_typing":
                why = (" Strong typing is the only mode: passed anyway, the keyword falls into **kwargs and is "
                       "ignored without a word" + (", so use_explicit_typing=False (weak typing) becomes strong "
                                                   "typing" if not use_explicit_typing else "") + ".")
            elif name == "enabled_precisions":
                why = (" Passed anyway it falls into **kwargs and is ignored; before, with explicit typing it had to "
                       "be {torch.float32} or dynamo.compile raised AssertionError (issue #4070).")
            out.append(SettingChange(name, "vanishes", f"{name}: in {releases_with(name)}, gone in {after.release} "
                                     f"(pytorch/TensorRT#4195).{why}"))
        elif has and not had:
            out.append(SettingChange(name, "appears", f"{name}: new in {after.release} ({releases_with(name)})."))
    if a.weak_typing and not b.weak_typing and before.has("enable_autocast"):
        out.append(SettingChange("enable_autocast", "changes meaning",
                                 f"enable_autocast: in {before.release} it also forces use_explicit_typing=True; in "
                                 f"{after.release} there is nothing to force (the network is always strongly typed)."))
    if a.fp32_acc_attention != b.fp32_acc_attention:
        now = "also covers" if b.fp32_acc_attention else "no longer covers"
        out.append(SettingChange("use_fp32_acc", "changes meaning",
                                 f"use_fp32_acc: in {after.release} it {now} FP16 scaled-dot-product attention "
                                 "decomposed with decompose_attention=True (the whole attention then runs in FP32 "
                                 "and only its output is cast back; lowering/_decompositions.py); matmul-family "
                                 "layers are covered in both."))
    if _conv_rule(before) != _conv_rule(after):
        import torch

        mine = " (these settings ask for BF16)" if low_type == torch.bfloat16 else ""
        out.append(SettingChange(
            "convolutions on TensorRT-RTX", "changes meaning",
            f"convolutions Torch-TensorRT runs in PyTorch rather than TensorRT-RTX{mine}: {_conv_rule(before) or 'none'} "
            f"under {before.spec}; {_conv_rule(after) or 'none'} under {after.spec} (convolution_capability_validator;"
            " 2.12: pytorch/TensorRT#4178, #4188; 2.13: #4306 removed those). BF16 autocast with a depthwise "
            "convolution built and ran in one engine on 2.11 with TensorRT-RTX 1.4.0.76 (H100)."))
    if before.library != after.library:
        detail = ""
        if before.tensorrt_major == 10 and after.tensorrt_major == 11:
            detail = (" TensorRT 11 has no weak typing and no per-layer precision (setPrecision/--layerPrecisions), "
                      "and its inspector JSON changed: 'Bindings' became 'I/O Tensors' and a tensor's "
                      "'Format/Datatype' became 'Format' and 'Datatype' (mixprec_explorer reads both).")
        out.append(SettingChange("TensorRT", "library", f"{before.library} -> {after.library}.{detail}"))
    return tuple(out)


def _conv_rule(target: Target) -> str:
    if not target.is_rtx:
        return ""
    return {"2.12": "depthwise convolutions with a BF16 input and grouped 3-D transposed ones",
            "2.13": "transposed ones with stride > 1 and dilation > 1",
            "2.14": "transposed ones with stride > 1 and dilation > 1"}.get(target.release, "")


# -- the graph facts a target's rules need ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Convolution:
    """What Torch-TensorRT's TensorRT-RTX convolution validator reads of one convolution node."""

    groups: int
    transposed: bool
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    rank: int  #: the input's rank (5: a 3-D convolution)
    out_channels: int  #: the weight's first dimension (groups == it: depthwise)


def convolutions(graph_module: Any) -> dict[str, Convolution]:
    """Every convolution node of a (pre- or post-decomposition) graph, as the validator sees it; arguments are
    found by their schema names (``stride``, ``dilation``, ``groups``, ``transposed``)."""
    from .ops import CONV_OPS, op_basename, qualified_op_name

    out = {}
    for node in graph_module.graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op != "call_function" or schema is None or len(node.args) < 2 \
                or op_basename(qualified_op_name(node.target)) not in CONV_OPS:
            continue
        names = [a.name for a in schema.arguments]

        def arg(name: str, default: Any, node: Any = node, names: list[str] = names) -> Any:
            at = names.index(name) if name in names else len(node.args)
            return node.args[at] if at < len(node.args) else node.kwargs.get(name, default)

        x, w = (getattr(a, "meta", {}).get("val") for a in node.args[:2])
        if x is None or w is None:
            continue
        # aten.convolution says so in an argument; the conv_transpose ops are the ones with an output_padding
        transposed = bool(arg("transposed", False)) if "transposed" in names else "output_padding" in names
        stride, dilation = arg("stride", 1), arg("dilation", 1)
        out[node.name] = Convolution(
            int(arg("groups", 1)), transposed,
            tuple(stride) if isinstance(stride, (list, tuple)) else (int(stride),),
            tuple(dilation) if isinstance(dilation, (list, tuple)) else (int(dilation),), x.dim(), int(w.shape[0]))
    return out


def rtx_fallback(release: str, conv: Convolution, input_dtype: Any) -> str:
    """Why Torch-TensorRT ``release`` runs this convolution in PyTorch on TensorRT-RTX ("" where it does not).

    ``convolution_capability_validator`` (``conversion/aten_ops_converters.py``): 2.12 sends BF16 depthwise
    convolutions (pytorch/TensorRT#4178) and grouped 3-D transposed ones (#4188); 2.13 and 2.14 only transposed ones
    with stride > 1 and dilation > 1 (#4306, which removed the TensorRT-RTX 1.4-era fallbacks); 2.10-2.11 none.
    """
    import torch

    grouped = conv.groups > 1
    if release == "2.12":
        if grouped and conv.transposed and conv.rank == 5:
            return "runs in PyTorch on TensorRT-RTX: Torch-TensorRT 2.12 sends grouped 3-D transposed convolutions " \
                   "there (pytorch/TensorRT#4188)"
        if grouped and input_dtype == torch.bfloat16 and conv.groups == conv.out_channels:
            return "runs in PyTorch on TensorRT-RTX: Torch-TensorRT 2.12 sends a depthwise convolution with a BF16 " \
                   "input there (pytorch/TensorRT#4178)"
    elif release in ("2.13", "2.14") and conv.transposed and any(s > 1 for s in conv.stride) \
            and any(d > 1 for d in conv.dilation):
        return (f"runs in PyTorch on TensorRT-RTX: Torch-TensorRT {release} sends a transposed convolution with "
                "stride > 1 and dilation > 1 there (no TensorRT-RTX kernel; pytorch/TensorRT#4306)")
    return ""


# -- the upgrade diff -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeShift:
    """One node whose precision, accumulation, rule or placement differs between two targets."""

    name: str
    module: str
    op: str
    before: str  #: "FP16", "FP32 (acc FP32)", "BF16 in PyTorch", "refused" ...
    after: str
    why: str  #: the rule or fact that moved it


@dataclass(frozen=True)
class TargetComparison:
    """What changes for one model and its settings when Torch-TensorRT moves from ``before`` to ``after``.

    ``ex.compare_targets("2.11", "2.13")``; ``.text()`` is a plain-text summary.
    """

    before: Target
    after: Target
    nodes: tuple[NodeShift, ...]  #: every node that changes, in graph order
    settings: tuple[SettingChange, ...]  #: settings that vanish, appear or change meaning
    compile_before: str  #: the compile call for ``before`` (Settings.to_python), or why there is none
    compile_after: str
    refused_before: str = ""  #: why ``before`` refuses these settings ("" where it takes them)
    refused_after: str = ""
    counts_before: Mapping[str, int] = field(default_factory=dict)  #: nodes per dtype under ``before``
    counts_after: Mapping[str, int] = field(default_factory=dict)

    def text(self) -> str:
        """The comparison as plain text: nodes that change, settings that change, the compile call before/after."""
        lines = [f"{self.before.describe()}  ->  {self.after.describe()}"]
        for side, refused in (("before", self.refused_before), ("after", self.refused_after)):
            if refused:
                lines.append(f"  {side}: these settings are refused: {refused}")
        if self.counts_before or self.counts_after:
            lines.append(f"  nodes per dtype: {_counts(self.counts_before)}  ->  {_counts(self.counts_after)}")
        lines.append(f"{len(self.nodes)} node(s) change" + (":" if self.nodes else
                                                            " (the classifier's rules are the same)"))
        lines += [f"  {n.name} ({n.module or 'root'}): {n.before} -> {n.after}: {n.why}" for n in self.nodes]
        lines.append(f"{len(self.settings)} setting change(s)" + (":" if self.settings else ""))
        lines += [f"  [{c.kind}] {c.text}" for c in self.settings]
        lines += ["compile call before:", _indent(self.compile_before), "compile call after:",
                  _indent(self.compile_after)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").splitlines())


def node_state(dtype: str, accumulate: str, placement: str) -> str:
    """How :class:`NodeShift` shows one side: ``"FP16 (acc FP32) in PyTorch"``."""
    return dtype + (f" (acc {accumulate})" if accumulate else "") + (f" {placement}" if placement else "")


def shifts(before: Iterable[Any], after: Mapping[str, Any], fallback_before: Mapping[str, str],
           fallback_after: Mapping[str, str], display: Any) -> tuple[NodeShift, ...]:
    """Nodes of two plans' records that differ in dtype, accumulation, rule or placement (``display``: dtype -> name)."""
    out = []
    for ra in before:
        rb = after.get(ra.name)
        if rb is None:
            continue
        place_a, place_b = fallback_before.get(ra.name, ""), fallback_after.get(ra.name, "")
        if (ra.dtype, ra.accumulate_dtype, ra.rule, bool(place_a)) == (rb.dtype, rb.accumulate_dtype, rb.rule,
                                                                      bool(place_b)):
            continue
        state_a = node_state(display(ra.dtype) if ra.rule != "weak_typing" else "TensorRT picks",
                             display(ra.accumulate_dtype) if ra.accumulate_dtype else "", "in PyTorch" * bool(place_a))
        state_b = node_state(display(rb.dtype) if rb.rule != "weak_typing" else "TensorRT picks",
                             display(rb.accumulate_dtype) if rb.accumulate_dtype else "", "in PyTorch" * bool(place_b))
        why = place_b or place_a or (rb.reason if rb.rule != ra.rule or rb.dtype != ra.dtype else "")
        if not why and ra.accumulate_dtype != rb.accumulate_dtype:
            why = ("use_fp32_acc's casts need a strongly typed network" if ra.accumulate_dtype else
                   "use_fp32_acc applies on this target")
        out.append(NodeShift(ra.name, ra.module, ra.op, state_a, state_b, why))
    return tuple(out)
