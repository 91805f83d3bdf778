"""Settings: Torch-TensorRT's precision knobs, validated, exported as compile kwargs, Python or JSON.

Names and defaults are exactly those of ``torch_tensorrt.dynamo.compile`` of the target release (2.10-2.14, see
:mod:`mixprec_explorer.targets`): the compile kwargs and the Python snippet carry only the settings that release has.
A loaded settings file is only ever parsed as JSON: never executed, never unpickled.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .dtypes import LOW_PRECISION_TYPES, from_name, to_name
from .errors import SettingsError
from .ops import qualified_op_name  # here too: where explorer and users have always found it
from .targets import Target, releases_with, resolve_target

SCHEMA = "mixprec_explorer.settings"
SCHEMA_VERSION = 1
_ENVELOPE = ("schema", "version", "settings")

#: What a settings file looks like; error messages about a file's shape end with it.
FILE_FORMAT = (
    'A settings file is a JSON object, either flat: {"enable_autocast": true, '
    '"autocast_low_precision_type": "float16", "autocast_excluded_nodes": ["^linear2$"]}, or as export writes '
    'it: {"schema": "mixprec_explorer.settings", "version": 1, "settings": {"enable_autocast": true, ...}}.'
)

#: The JSON types each setting takes in a file.
_JSON_KINDS: dict[str, tuple[type, ...]] = {
    "use_explicit_typing": (bool,),
    "enable_autocast": (bool,),
    "autocast_low_precision_type": (str, type(None)),
    "autocast_excluded_nodes": (list,),
    "autocast_excluded_ops": (list,),
    "autocast_max_output_threshold": (int, float),
    "autocast_max_depth_of_reduction": (int, type(None)),
    "use_fp32_acc": (bool,),
    "target": (str, type(None)),
}

#: The precision settings, by their ``dynamo.compile`` keyword (every release modelled has all but
#: ``use_explicit_typing``, which 2.13 removed).
PRECISION_KEYWORDS = frozenset(k for k in _JSON_KINDS if k != "target")


def _did_you_mean(key: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _quoted(keys: Iterable[str]) -> str:
    return ", ".join(repr(k) for k in keys)


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (object, array, string, number, true/false, null)."""
    if isinstance(value, bool):
        return "true/false"
    names = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


@functools.lru_cache(maxsize=1)
def _all_aten_ops() -> tuple[str, ...]:
    """Every registered ATen overload, qualified (``torch.ops.aten.add.Tensor``)."""
    names = []
    for schema_name in torch._C._dispatch_get_all_op_names():
        ns, _, rest = schema_name.partition("::")
        if ns != "aten":
            continue
        op, _, overload = rest.partition(".")
        names.append(f"torch.ops.aten.{op}.{overload or 'default'}")
    return tuple(sorted(set(names)))


def resolve_op(name: str) -> Any | None:
    """The OpOverload a qualified name denotes, or None if there is none."""
    parts = name.split(".")
    if len(parts) != 5 or parts[:2] != ["torch", "ops"]:
        return None
    try:
        packet = getattr(getattr(torch.ops, parts[2]), parts[3])
        return getattr(packet, parts[4])
    except (AttributeError, RuntimeError):
        return None


def suggest_ops(name: str, extra: Iterable[str] = ()) -> list[str]:
    """Close matches for a misspelt op name, the model's own ops first."""
    short = name.replace("torch.ops.", "").replace("aten::", "aten.")
    candidates = list(dict.fromkeys([*extra, *_all_aten_ops()]))
    shorts = [c.replace("torch.ops.", "") for c in candidates]
    hits = difflib.get_close_matches(short, shorts, n=3, cutoff=0.6)
    # a bare op name ("linear") suggests its overloads
    hits += [s for s in shorts if s.split(".")[1:2] == [short.split(".")[-1]]][:3]
    return ["torch.ops." + h for h in dict.fromkeys(hits)][:5]


def module_pattern(module: str) -> str:
    """The anchored regex a user would write for exactly one module path (``^layer1\\.0\\.conv1$``)."""
    return f"^{re.escape(module)}$"


def subtree_pattern(prefix: str) -> str:
    """The regex for a module and everything under it (``^layer1(\\.|$)``), as ``re.match`` applies it."""
    return f"^{re.escape(prefix)}(\\.|$)"


def _normalise_low_type(value: Any) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    if isinstance(value, str):
        try:
            return from_name(value)
        except ValueError as err:
            raise SettingsError(f"autocast_low_precision_type: {err}") from None
    # torch_tensorrt.dtype (f16/bf16) has .to(torch.dtype)
    to = getattr(value, "to", None)
    if callable(to):
        try:
            converted = to(torch.dtype)
            if isinstance(converted, torch.dtype):
                return converted
        except Exception:
            pass
    raise SettingsError(
        f"autocast_low_precision_type must be a torch.dtype (torch.float16 or torch.bfloat16) or None, "
        f"got {type(value).__name__} {value!r}"
    )


@dataclass(frozen=True)
class Settings:
    """Torch-TensorRT's precision settings, with its names and defaults; immutable and hashable.

    Construct it like ``Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)``;
    derive a changed copy with :meth:`replace`. Raises :class:`SettingsError` on invalid values.
    ``target`` (a release such as ``"2.12"`` or ``"2.13-rtx"``, see :mod:`mixprec_explorer.targets`) binds the
    settings to one Torch-TensorRT; None (the default) leaves them to the explorer's or the installed one.

    >>> s = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16,
    ...              autocast_excluded_nodes={"^linear2$"})
    >>> s.to_compile_kwargs()["autocast_excluded_nodes"]
    {'^linear2$'}
    """

    use_explicit_typing: bool = True
    enable_autocast: bool = False
    autocast_low_precision_type: torch.dtype | None = None
    autocast_excluded_nodes: frozenset[str] = field(default_factory=frozenset)
    autocast_excluded_ops: frozenset[str] = field(default_factory=frozenset)
    autocast_max_output_threshold: float = 512.0
    autocast_max_depth_of_reduction: int | None = None
    use_fp32_acc: bool = False
    target: Target | None = None

    def __post_init__(self) -> None:
        for name in ("use_explicit_typing", "enable_autocast", "use_fp32_acc"):
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(f"{name} must be True or False, got {getattr(self, name)!r}")
        object.__setattr__(self, "autocast_low_precision_type", _normalise_low_type(self.autocast_low_precision_type))
        low = self.autocast_low_precision_type
        if low is not None and low not in LOW_PRECISION_TYPES:
            raise SettingsError(
                f"autocast_low_precision_type must be torch.float16 or torch.bfloat16 (or None), got {low}"
            )
        nodes = self._as_str_set("autocast_excluded_nodes", self.autocast_excluded_nodes, ops=False)
        for pattern in nodes:
            try:
                re.compile(pattern)
            except re.error as err:
                raise SettingsError(
                    f"autocast_excluded_nodes: {pattern!r} is not a valid regular expression ({err}); "
                    f"escape special characters, e.g. re.escape('layer1.0') + '$'"
                ) from None
        object.__setattr__(self, "autocast_excluded_nodes", nodes)
        ops = self._as_str_set("autocast_excluded_ops", self.autocast_excluded_ops, ops=True)
        for op in ops:
            if resolve_op(op) is None:
                hint = suggest_ops(op)
                raise SettingsError(
                    f"autocast_excluded_ops: {op!r} is not an ATen op Torch-TensorRT can match; write it as "
                    f"'torch.ops.aten.<op>.<overload>'" + (f" - did you mean {', '.join(hint)}?" if hint else "")
                )
        object.__setattr__(self, "autocast_excluded_ops", ops)
        threshold = self.autocast_max_output_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
            raise SettingsError(f"autocast_max_output_threshold must be a number, got {threshold!r}")
        if threshold < 0:
            raise SettingsError(f"autocast_max_output_threshold must be >= 0, got {threshold}")
        object.__setattr__(self, "autocast_max_output_threshold", float(threshold))
        depth = self.autocast_max_depth_of_reduction
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
            raise SettingsError(f"autocast_max_depth_of_reduction must be a non-negative int or None, got {depth!r}")
        if self.enable_autocast and not self.use_explicit_typing:
            raise SettingsError(
                "enable_autocast=True needs use_explicit_typing=True (Torch-TensorRT forces it); set both"
            )
        if self.use_fp32_acc and not self.use_explicit_typing:
            raise SettingsError(
                "use_fp32_acc=True needs use_explicit_typing=True; without it Torch-TensorRT ignores FP32 accumulation"
            )
        if self.target is not None:
            object.__setattr__(self, "target", resolve_target(self.target))
            self.check_target(self.target)

    # -- the target --------------------------------------------------------------------------------------------
    def target_or(self, target: Target | str | None = None) -> Target:
        """The target these settings are for: ``target`` if given, else their own, else the installed one."""
        return resolve_target(target if target is not None else self.target)

    def check_target(self, target: Target | str | None = None) -> None:
        """Raise :class:`SettingsError` where the target release cannot honour these settings, naming the release
        that can (weak typing after 2.12 or on TensorRT-RTX)."""
        t = self.target_or(target)
        if not self.use_explicit_typing and not t.has("use_explicit_typing"):
            raise SettingsError(
                f"use_explicit_typing=False (weak typing): Torch-TensorRT {t.release} has no use_explicit_typing "
                f"(removed in 2.13 by pytorch/TensorRT#4195: strong typing is its only mode, and the keyword passed "
                f"anyway is ignored without a word); it exists in {releases_with('use_explicit_typing')}. Choose "
                "target='2.12' for weak typing, or use autocast (enable_autocast=True, "
                "autocast_low_precision_type=torch.float16)"
            )
        if not self.use_explicit_typing and t.is_rtx:
            raise SettingsError(
                f"use_explicit_typing=False (weak typing) on TensorRT-RTX: {t} builds strongly typed networks only "
                "(Torch-TensorRT forces use_explicit_typing=True there); use autocast instead, or datacenter "
                "TensorRT up to 2.12 (target='2.12') for weak typing"
            )

    @staticmethod
    def _as_str_set(name: str, value: Any, *, ops: bool) -> frozenset[str]:
        if isinstance(value, (str, bytes)):
            raise SettingsError(f"{name} must be a set of strings, not a single string: write {{{value!r}}}")
        try:
            items = list(value)
        except TypeError:
            raise SettingsError(f"{name} must be a set of strings, got {type(value).__name__}") from None
        out = []
        for item in items:
            if ops and not isinstance(item, str):
                item = qualified_op_name(item)
            if not isinstance(item, str):
                raise SettingsError(f"{name} must contain strings, got {type(item).__name__} {item!r}")
            out.append(item)
        return frozenset(out)

    # -- derived views -------------------------------------------------------------------------
    @property
    def autocast_active(self) -> bool:
        """True when Torch-TensorRT's rule-based autocast pass will actually rewrite the graph."""
        return self.enable_autocast and self.autocast_low_precision_type is not None

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def warnings(self) -> list[str]:
        """Settings that are valid but will not do what they seem to (Torch-TensorRT stays silent about them)."""
        out = []
        if self.enable_autocast and self.autocast_low_precision_type is None:
            out.append("enable_autocast=True without autocast_low_precision_type: the autocast pass does nothing")
        if not self.enable_autocast and (self.autocast_excluded_nodes or self.autocast_excluded_ops):
            out.append("autocast exclusions are set but enable_autocast=False: they have no effect")
        if self.use_fp32_acc and self.autocast_active and self.autocast_low_precision_type == torch.bfloat16:
            out.append("use_fp32_acc only applies to float16 matmuls; with bfloat16 autocast it has no effect")
        return out

    def to_compile_kwargs(self, target: Target | str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``torch_tensorrt.dynamo.compile`` of the target release (:meth:`target_or`): the
        settings it has, in Torch-TensorRT's types (``use_explicit_typing`` only up to 2.12). Raises
        :class:`SettingsError` where the release cannot honour them (:meth:`check_target`)."""
        t = self.target_or(target)
        self.check_target(t)
        kwargs = {
            "use_explicit_typing": self.use_explicit_typing,
            "enable_autocast": self.enable_autocast,
            "autocast_low_precision_type": self.autocast_low_precision_type,
            "autocast_excluded_nodes": set(sorted(self.autocast_excluded_nodes)),
            "autocast_excluded_ops": set(sorted(self.autocast_excluded_ops)),
            "autocast_max_output_threshold": self.autocast_max_output_threshold,
            "autocast_max_depth_of_reduction": self.autocast_max_depth_of_reduction,
            "use_fp32_acc": self.use_fp32_acc,
        }
        return {key: value for key, value in kwargs.items() if t.has(key)}

    def to_python(self, *, model: str = "model", inputs: str = "inputs", calibration: bool = False,
                  target: Target | str | None = None, options: Mapping[str, Any] | None = None) -> str:
        """A runnable snippet that compiles ``model`` with these settings for the target release (names of your
        variables in, code out); only that release's keywords appear. ``options``: further ``dynamo.compile``
        keywords the graph needs (``Explorer.compile_call`` passes them)."""
        t = self.target_or(target)
        kwargs = self.to_compile_kwargs(t)
        lines = [
            f"# for {t.describe(origin=False)}",
            "import torch",
            "import torch_tensorrt",
            "",
            f"ep = torch.export.export({model}, tuple({inputs}))",
            "trt_gm = torch_tensorrt.dynamo.compile(",
            "    ep,",
            f"    inputs={inputs},",
        ]
        defaults = Settings()
        for key, value in kwargs.items():
            if key in ("use_explicit_typing", "enable_autocast") or getattr(self, key) != getattr(defaults, key):
                lines.append(f"    {key}={_py_literal(value)},")
        for key, value in (options or {}).items():
            lines.append(f"    {key}={_py_literal(value)},")
        if calibration and t.has("autocast_calibration_dataloader"):
            lines.append("    autocast_calibration_dataloader=calibration_dataloader,  # batches of positional inputs")
        lines.append(")")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the schema name and version (and the target, where the settings have one)."""
        body: dict[str, Any] = {
            "use_explicit_typing": self.use_explicit_typing,
            "enable_autocast": self.enable_autocast,
            "autocast_low_precision_type": to_name(self.autocast_low_precision_type),
            "autocast_excluded_nodes": sorted(self.autocast_excluded_nodes),
            "autocast_excluded_ops": sorted(self.autocast_excluded_ops),
            "autocast_max_output_threshold": self.autocast_max_output_threshold,
            "autocast_max_depth_of_reduction": self.autocast_max_depth_of_reduction,
            "use_fp32_acc": self.use_fp32_acc,
        }
        if self.target is not None:
            if not self.target.has("use_explicit_typing"):
                del body["use_explicit_typing"]  # always True there: the release has no such setting
            body["target"] = self.target.spec
        return {"schema": SCHEMA, "version": SCHEMA_VERSION, "settings": body}

    def to_json(self) -> str:
        """The versioned JSON document (see :meth:`from_json`)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "settings") -> Settings:
        """Settings from a parsed JSON document, nested or flat; rejects unknown keys and wrong types by name.

        Two forms are read (see :data:`FILE_FORMAT`): the nested one :meth:`to_dict` writes,
        ``{"schema": ..., "version": 1, "settings": {...}}``, and a flat one with the settings at top level,
        ``{"enable_autocast": true, "autocast_low_precision_type": "float16"}``. ``schema`` and ``version``
        may be left out of either; where present they must be this package's. Settings left out keep
        Torch-TensorRT's defaults.

        >>> Settings.from_dict({"enable_autocast": True, "autocast_low_precision_type": "float16"}).autocast_active
        True
        """
        if not isinstance(doc, dict):
            raise SettingsError(f"{source}: expected a JSON object, got {_json_type(doc)}. {FILE_FORMAT}")
        names = tuple(f.name for f in dataclasses.fields(cls))
        if "settings" in doc:
            misplaced = [key for key in doc if key in names]
            if misplaced:
                raise SettingsError(
                    f"{source}: {_quoted(misplaced)} at top level beside a 'settings' object: write every setting "
                    f"in one place, all at top level (flat) or all inside 'settings'. {FILE_FORMAT}"
                )
            for key in doc:
                if key not in _ENVELOPE:
                    raise SettingsError(
                        f"{source}: unknown top-level key {key!r}{_did_you_mean(key, [*_ENVELOPE, *names])}; "
                        f"beside 'settings' only 'schema' and 'version' may appear. {FILE_FORMAT}"
                    )
            body, where = doc["settings"], "settings."
            if not isinstance(body, dict):
                raise SettingsError(f"{source}: 'settings' must be a JSON object, got {_json_type(body)}. {FILE_FORMAT}")
        else:
            body, where = {k: v for k, v in doc.items() if k not in _ENVELOPE}, ""
        if "schema" in doc and doc["schema"] != SCHEMA:
            raise SettingsError(f"{source}: 'schema' must be {SCHEMA!r} (or left out), got {doc['schema']!r}")
        if "version" in doc and doc["version"] != SCHEMA_VERSION:
            raise SettingsError(
                f"{source}: unsupported version {doc['version']!r}; this mixprec_explorer reads version "
                f"{SCHEMA_VERSION} (or a file without one)"
            )
        for key in body:
            if key not in names:
                hint = " (it belongs at top level)" if key in _ENVELOPE else _did_you_mean(
                    key, names if where else [*names, *_ENVELOPE])
                raise SettingsError(
                    f"{source}: unknown settings key {where + key!r}{hint}; "
                    f"valid settings: {', '.join(names)}"
                )
        kwargs: dict[str, Any] = {}
        for key, value in body.items():
            kinds = _JSON_KINDS[key]
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                expected = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
                fix = f"; write {json.dumps([value])}" if list in kinds and isinstance(value, str) else ""
                raise SettingsError(f"{source}: {where}{key} must be {expected}, got {json.dumps(value)}{fix}")
            if isinstance(value, list):
                if not all(isinstance(v, str) for v in value):
                    raise SettingsError(f"{source}: {where}{key} must be a list of strings, got {json.dumps(value)}")
                value = frozenset(value)
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except SettingsError as err:
            raise SettingsError(f"{source}: {err}") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "settings JSON") -> Settings:
        """Parse a settings JSON document (nested or flat, see :meth:`from_dict`); errors name the place."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise SettingsError(f"{source}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
        return cls.from_dict(doc, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Settings:
        """Read a settings JSON file, nested or flat (only ever parsed as JSON: never executed or unpickled)."""
        p = Path(path)
        try:
            text: str | None = p.read_text(encoding="utf-8")
        except OSError as err:
            raise SettingsError(f"cannot read settings file {p}: {err.strerror}") from None
        except UnicodeDecodeError:
            text = None
        try:
            if text is None:
                raise SettingsError(f"{p}: not valid JSON (not UTF-8 text). {FILE_FORMAT}")
            return cls.from_json(text, source=str(p))
        except SettingsError as err:
            if p.suffix.lower() in (".py", ".pkl", ".pickle", ".pt", ".pth") and "not valid JSON" in str(err):
                raise SettingsError(
                    f"{err}; settings files are JSON and are never executed or unpickled: write one with "
                    f"`mixprec-explorer export MODEL --out plan.json` or Explorer.export_settings('plan.json')"
                ) from None
            raise

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically: a crash mid-write leaves any old file as it was."""
        return write_atomic(path, self.to_json())


def write_atomic(path: str | os.PathLike[str], content: str | bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``content`` to a temporary file beside ``path`` and rename it into place; returns the path.

    ``content`` is text (UTF-8), bytes, or a function that writes into the open binary file
    (``lambda f: torch.export.save(program, f)``). A failure leaves any old file as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if callable(content):
                content(handle)
            else:
                handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _mode_for(target))  # mkstemp makes 0600 files; keep the user's usual permissions
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _mode_for(target: Path) -> int:
    """The replaced file's permissions, or what a plain ``open(..., "w")`` would give (0666 less the umask)."""
    try:
        return target.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _py_literal(value: Any) -> str:
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(repr(v) for v in sorted(value)) + "}" if value else "set()"
    return repr(value)
