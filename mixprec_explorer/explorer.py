"""Explorer: the one object a user holds - a captured model, its current settings and their plan.

Everything else (figures, widget, backends, search) reads an Explorer; it depends on none of them
at import time.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import torch

from .calibration import trace_reference_stats
from .capture import CapturedGraph, capture, is_autocast_skipped
from .errors import MissingResult, OptionTypeError, SettingsError, SettingsWarning, UnknownName
from .inputs import Batch, Inputs, as_batches, check_batch
from .policy import Policy, PrecisionPlan
from .records import CalibrationStat, Exclusion, NodeInfo
from .settings import Settings, module_pattern, qualified_op_name, subtree_pattern, write_atomic
from .targets import Target, TargetComparison, resolve_target

if TYPE_CHECKING:
    import ipywidgets
    import plotly.graph_objects as go

    from .accuracy import AccuracyReport
    from .backends.base import Compiled, Profile
    from .results import Comparison, Frontier, Sensitivity
    from .search import SearchResult
    from .viz.graph import Grouping


class _ExtensionsView(MutableMapping[str, Any]):
    """Deprecated ``explorer.extensions``: the typed result attributes seen as the old string-keyed dict."""

    _ATTRIBUTES = {"profile": "last_profile", "accuracy": "last_accuracy", "sensitivity": "last_sensitivity",
                   "search": "last_search", "frontier": "last_frontier"}

    def __init__(self, explorer: Explorer) -> None:
        self._explorer = explorer

    def __getitem__(self, key: str) -> Any:
        if key == "calibration_batches" and self._explorer.calibration_batches:
            return list(self._explorer.calibration_batches)
        value = getattr(self._explorer, self._ATTRIBUTES[key]) if key in self._ATTRIBUTES else \
            self._explorer._other_extensions.get(key)
        if value is None:
            raise UnknownName(f"explorer.extensions holds no {key!r}")
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self._ATTRIBUTES:
            setattr(self._explorer, self._ATTRIBUTES[key], value)
        else:
            self._explorer._other_extensions[key] = value

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError when absent
        if key in self._ATTRIBUTES:
            setattr(self._explorer, self._ATTRIBUTES[key], None)
        else:
            del self._explorer._other_extensions[key]

    def __iter__(self) -> Iterator[str]:
        keys = [*self._ATTRIBUTES, "calibration_batches", *self._explorer._other_extensions]
        return iter([k for k in keys if k in self])

    def __contains__(self, key: object) -> bool:
        try:
            self[str(key)]
        except KeyError:
            return False
        return True

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Explorer:
    """Capture a model and predict, edit and export its Torch-TensorRT precision settings.

    >>> import torch
    >>> from mixprec_explorer import Explorer, Settings
    >>> from mixprec_explorer.examples import reference_autocast_model
    >>> ex = Explorer(*reference_autocast_model())
    >>> ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    >>> _ = ex.exclude("linear2")
    >>> ex.plan()["linear_1"].dtype
    torch.float32
    """

    def __init__(self, model: torch.nn.Module | torch.export.ExportedProgram,
                 example_inputs: Sequence[Any] | Any | None = None, settings: Settings | None = None, *,
                 target: Target | str | None = None) -> None:
        first = settings if settings is not None else Settings()
        if not isinstance(first, Settings):
            raise SettingsError(f"settings must be a mixprec_explorer.Settings, got {type(settings).__name__}")
        #: the Torch-TensorRT release and TensorRT flavour spoken for: chosen, the settings' own, or the installed one
        self._release: Target = resolve_target(target if target is not None else first.target)
        self._check_target(first)
        self._captured: CapturedGraph = capture(model, example_inputs)
        self._policy = Policy(self._captured)
        self._history: list[Settings] = [first]  #: undo history; the current settings are _history[_cursor]
        self._cursor = 0
        self._plans: OrderedDict[Settings, PrecisionPlan] = OrderedDict()
        self._last_plan: PrecisionPlan | None = None
        self._ops: dict[str, int] | None = None
        self._pattern_hits: dict[str, bool] = {}
        self._masked_attention: tuple[str, ...] | None = None  #: the graph's SDPA nodes with a non-causal mask
        self._calibration_batches: tuple[Batch, ...] = ()
        #: the last results asked for (what figures and the widget overlay by default); None until then
        self.last_profile: Profile | None = None  #: from :meth:`profile` or :meth:`load_profile`
        self.last_accuracy: AccuracyReport | None = None  #: from :meth:`accuracy`
        self._last_sensitivity: Sensitivity | None = None
        self.last_search: SearchResult | None = None  #: from :meth:`search`
        self.last_frontier: Frontier | None = None  #: from :meth:`frontier`
        self._other_extensions: dict[str, Any] = {}  # keys older code put into ``extensions``

    @property
    def last_sensitivity(self) -> Sensitivity | None:
        """The last :meth:`sensitivity` result (or one assigned here); the predictor is handed it as it is set."""
        return self._last_sensitivity

    @last_sensitivity.setter
    def last_sensitivity(self, value: Sensitivity | None) -> None:
        self._last_sensitivity = value
        predictor = self.__dict__.get("_predictor")
        if value is not None and predictor is not None:
            predictor.take_sensitivity(value, "from ex.sensitivity")

    @property
    def extensions(self) -> MutableMapping[str, Any]:
        """Deprecated: the typed attributes (``last_profile``, ``last_accuracy``, ``last_sensitivity``,
        ``last_search``, ``last_frontier``, ``calibration_batches``) as the old string-keyed dict."""
        warnings.warn("Explorer.extensions is deprecated: read ex.last_profile, ex.last_accuracy, "
                      "ex.last_sensitivity, ex.last_search, ex.last_frontier or ex.calibration_batches",
                      DeprecationWarning, stacklevel=2)
        return _ExtensionsView(self)

    # -- the captured model ---------------------------------------------------------------------------
    @property
    def exported_program(self) -> torch.export.ExportedProgram:
        """The ExportedProgram whose graph the plan refers to."""
        return self._captured.exported_program

    @property
    def graph_module(self) -> torch.fx.GraphModule:
        """Its ``torch.fx.GraphModule`` (not decomposed: what Torch-TensorRT's autocast sees)."""
        return self._captured.graph_module

    @property
    def graph(self) -> nx.DiGraph:
        """networkx DiGraph keyed by FX node name; attributes are the :class:`NodeInfo` fields."""
        return self._captured.graph

    @property
    def nodes(self) -> dict[str, NodeInfo]:
        """Node records in graph order (user inputs, ops, output)."""
        return self._captured.nodes

    @property
    def captured(self) -> CapturedGraph:
        """Everything capture learned: program, node records, graph, producers/consumers, example inputs."""
        return self._captured

    @property
    def example_inputs(self) -> tuple[Any, ...]:
        """The positional inputs the model was captured with (the default batch of every method)."""
        return self._captured.example_inputs

    @property
    def modules(self) -> dict[str, tuple[str, ...]]:
        """Module path -> call_function nodes whose innermost module it is."""
        return self._captured.module_nodes

    def ops(self) -> dict[str, int]:
        """Qualified op name -> node count, for the ops autocast classifies in this model (most common first)."""
        if self._ops is not None:
            return dict(self._ops)
        counts: dict[str, int] = {}
        for info in self.nodes.values():
            if info.kind == "call_function" and not info.removed_by and not is_autocast_skipped(info):
                counts[info.op] = counts.get(info.op, 0) + 1
        self._ops = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        return dict(self._ops)

    # -- the target: which Torch-TensorRT release the settings, rules and compile call are for -----------------
    @property
    def target(self) -> Target:
        """The Torch-TensorRT release and TensorRT flavour spoken for (``ex.target = "2.12"`` changes it)."""
        return self._release

    @target.setter
    def target(self, value: Target | str | None) -> None:
        new = resolve_target(value)
        if self.settings.target is not None and self.settings.target != new:
            raise SettingsError(f"the current settings are bound to {self.settings.target.spec}; set "
                                f"ex.settings = ex.settings.replace(target=None) first to move to {new.spec}")
        self.settings.check_target(new)  # the current settings must mean something there
        self._release = new
        self._plans.clear()
        self._last_plan = None

    def _check_target(self, settings: Settings) -> None:
        """SettingsError where ``settings`` are bound to another target, or this target cannot honour them."""
        if settings.target is not None and settings.target != self._release:
            raise SettingsError(
                f"these settings are bound to target {settings.target.spec} but the explorer targets "
                f"{self._release.spec}: set ex.target = {settings.target.spec!r} first, or use "
                "settings.replace(target=None)")
        settings.check_target(self._release)

    def compare_targets(self, before: Target | str, after: Target | str,
                        settings: Settings | None = None) -> TargetComparison:
        """What changes for this model and ``settings`` (None: the current ones) from release ``before`` to
        ``after`` ("2.11", "2.13", "2.12-rtx"): nodes whose precision, accumulation or placement moves, settings
        that vanish or change meaning, and the compile call on each side. ``.text()`` summarises it."""
        from .dtypes import display_name
        from .targets import setting_changes, shifts

        s = (settings if settings is not None else self.settings).replace(target=None)
        a, b = resolve_target(before), resolve_target(after)
        sides = []
        for t in (a, b):
            refused, effective = "", s
            try:
                s.check_target(t)
            except SettingsError as err:
                refused = str(err)
                # what the same call does there: 2.13+ ignore use_explicit_typing=False (strong typing)
                if not s.use_explicit_typing and not t.has("use_explicit_typing") and not t.is_rtx:
                    effective = s.replace(use_explicit_typing=True)
            try:
                plan = self._policy.plan(effective, None, target=t)
                call = effective.to_python(target=t, calibration=bool(self.calibration) and s.enable_autocast,
                                           options=self.compile_options(t))
            except SettingsError:
                plan, call = None, f"# none: {refused}"
            if refused and plan is not None:
                call = f"# {t.spec} refuses these settings; the same keywords there amount to:\n{call}"
            sides.append((refused, plan, call))
        (ref_a, plan_a, call_a), (ref_b, plan_b, call_b) = sides
        nodes = () if plan_a is None or plan_b is None else shifts(
            plan_a, plan_b.as_dict(), plan_a.fallbacks, plan_b.fallbacks, display_name)
        return TargetComparison(
            a, b, nodes,
            setting_changes(a, b, use_explicit_typing=s.use_explicit_typing, low_type=s.autocast_low_precision_type),
            call_a, call_b, ref_a, ref_b,
            plan_a.counts() if plan_a is not None else {}, plan_b.counts() if plan_b is not None else {})

    # -- settings and history ---------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The current Settings; assigning validates, warns about no-op exclusions and records undo history."""
        return self._history[self._cursor]

    @settings.setter
    def settings(self, value: Settings) -> None:
        if not isinstance(value, Settings):
            raise SettingsError(f"settings must be a mixprec_explorer.Settings, got {type(value).__name__}")
        self._check_target(value)
        for message in self.check_settings(value):
            warnings.warn(message, SettingsWarning, stacklevel=2)
        if value != self.settings:
            del self._history[self._cursor + 1:]
            self._history.append(value)
            self._cursor += 1

    def check_settings(self, settings: Settings | None = None) -> list[str]:
        """Warnings about settings on this model: regexes that match no module, ops it does not contain."""
        s = settings or self.settings
        out = list(s.warnings())
        modules = list(self.modules)
        for pattern in sorted(s.autocast_excluded_nodes):
            hit = self._pattern_hits.get(pattern)
            if hit is None:  # remembered: a click re-checks every exclusion in force
                hit = self._pattern_hits[pattern] = any(re.match(pattern, m) for m in modules)
            if not hit:
                out.append(
                    f"autocast_excluded_nodes: {pattern!r} matches no module path of this model "
                    "(Torch-TensorRT silently ignores it); it is matched with re.match against paths such as "
                    + ", ".join(repr(m) for m in modules[:3])
                )
        present = self.ops()
        for op in sorted(s.autocast_excluded_ops):
            if op not in present:
                out.append(f"autocast_excluded_ops: {op!r} does not occur in this model's graph")
        out.extend(self.plan(s).warnings())  # integer tensors Torch-TensorRT's autocast would cast to float
        return out

    @property
    def can_undo(self) -> bool:
        return self._cursor > 0

    @property
    def can_redo(self) -> bool:
        return self._cursor < len(self._history) - 1

    def undo(self) -> Settings:
        """Go back to the previous settings (no-op at the start of history)."""
        if self.can_undo:
            self._cursor -= 1
        return self.settings

    def redo(self) -> Settings:
        """Re-apply settings undone by :meth:`undo` (no-op at the end of history)."""
        if self.can_redo:
            self._cursor += 1
        return self.settings

    # -- calibration and plan -------------------------------------------------------------------------
    def calibrate(self, batches: Inputs | Iterable[Any]) -> dict[str, CalibrationStat]:
        """Record reference outputs as Torch-TensorRT's calibration dataloader would; feeds range and depth rules.

        ``batches`` follow the inputs rules (:mod:`mixprec_explorer.inputs`): a list of batches
        (``[(x1,), (x2,)]``, ``[x1, x2]``, a DataLoader over a TensorDataset), or one tensor or tuple for a single
        batch. Raises InputError (naming the batch, input and shape) for a batch that does not fit the captured
        program; on any failure the previous calibration stays in force.
        """
        kept = as_batches(batches, self.example_inputs)
        for index, batch in enumerate(kept):
            check_batch(self._captured, batch, index if len(kept) > 1 else None)
        stats = trace_reference_stats(self.exported_program, kept)
        self._policy = Policy(self._captured, stats)
        self._calibration_batches = tuple(kept)  # the TensorRT backend passes them as its dataloader
        self._plans.clear()
        self._last_plan = None
        return stats

    @property
    def calibration(self) -> dict[str, CalibrationStat]:
        """Per node: the reference statistics the last :meth:`calibrate` recorded ({} before any)."""
        return self._policy.calibration

    @property
    def calibration_batches(self) -> tuple[Batch, ...]:
        """The batches of the last :meth:`calibrate`, as positional-input tuples (() before any)."""
        return self._calibration_batches

    def plan(self, settings: Settings | None = None) -> PrecisionPlan:
        """Predicted precision of every node under ``settings`` (None: the current settings)."""
        s = self.settings if settings is None else settings
        cached = self._plans.get(s)
        if cached is not None:
            self._plans.move_to_end(s)
            return cached
        result = self._policy.plan(s, self._last_plan, target=s.target or self._release)
        self._plans[s] = self._last_plan = result
        if len(self._plans) > 64:
            self._plans.popitem(last=False)
        return result

    # -- editing ------------------------------------------------------------------------------------------
    def _module_tree(self) -> dict[str, tuple[str, ...]]:
        """Every non-root module path whose subtree calls ops (containers included) -> the nodes under it."""
        tree = self.__dict__.get("_tree")
        if tree is None:
            under: dict[str, list[str]] = {}
            for module, members in self.modules.items():
                parts = module.split(".") if module else []
                for k in range(1, len(parts) + 1):
                    under.setdefault(".".join(parts[:k]), []).extend(members)
            tree = self.__dict__["_tree"] = {path: tuple(members) for path, members in under.items()}
        return tree

    def _is_container(self, module: str) -> bool:
        """True for a module path with submodules that call ops (``features``, ``layer1.0``)."""
        return bool(module) and len(self._module_tree().get(module, ())) > len(self.modules.get(module, ()))

    def resolve_module(self, target: str) -> str:
        """Module path for a node name or any module path (containers included); SettingsError naming real
        modules of this model otherwise."""
        if not isinstance(target, str):
            raise SettingsError(f"a node name or module path (a str) is needed, got {type(target).__name__}")
        info = self.nodes.get(target)
        if info is not None and info.kind == "call_function":
            return info.module
        if target in self.modules or target in self._module_tree():
            return target
        if info is not None:
            raise SettingsError(f"{target!r} is a graph {info.kind}, not an op: it has no autocast decision to "
                                "exclude; name a node that computes (e.g. one of its consumers) or a module path")
        import difflib

        tree = self._module_tree()
        close = difflib.get_close_matches(target, [*tree, *self.modules, *self.nodes], n=4, cutoff=0.5)
        top = [m for m in tree if "." not in m]
        raise SettingsError(
            f"{target!r} is neither a node name nor a module path of this model"
            + (f"; did you mean {', '.join(map(repr, dict.fromkeys(close)))}?" if close else ".")
            + f" Its top-level modules: {', '.join(map(repr, top[:12]))}{', ...' if len(top) > 12 else ''}"
            + " (a module path keeps that module and all inside it in FP32; for a regex of your own, set "
            "settings.autocast_excluded_nodes)"
        )

    def _target(self, target: str) -> tuple[str, str]:
        """(module path, regex) for ``target``: a node's own module exactly, a container path as its subtree."""
        module = self.resolve_module(target)
        info = self.nodes.get(target)
        if (info is None or info.kind != "call_function") and self._is_container(module):
            return module, subtree_pattern(module)
        return module, module_pattern(module)

    def _forms(self, module: str) -> set[str]:
        """Every regex :meth:`exclude` may have written for ``module`` (exact, and subtree for a non-root path)."""
        if not module:
            return {module_pattern(module)}
        return {module_pattern(module), subtree_pattern(module)}

    def _reach(self, pattern: str) -> tuple[str, ...]:
        return tuple(n for m, members in self.modules.items() if re.match(pattern, m) for n in members)

    def _describe(self, pattern: str, module: str, target: str) -> Exclusion:
        nodes = self._reach(pattern)
        note = ""
        if len(nodes) > 1 and pattern == module_pattern(module):
            where = "the root module's forward" if module == "" else f"module {module!r}"
            note = (f"Torch-TensorRT excludes by module path, so this also catches every other op called in "
                    f"{where}: {', '.join(n for n in nodes if n != target)}")
        return Exclusion(pattern, module, nodes, note)

    def exclude(self, target: str) -> Exclusion:
        """Keep a node's module, or any module path with everything inside it, in FP32.

        A node name or a module that calls ops only itself adds its anchored regex (``^layer1\\.0\\.conv1$``), a
        container path its subtree regex (``^layer1(\\.|$)``, as the search writes). Returns what the exclusion
        reaches; ``note`` says when it catches more than the one node, or when other regexes already did.
        """
        module, pattern = self._target(target)
        before = self.settings.autocast_excluded_nodes
        self.settings = self.settings.replace(autocast_excluded_nodes=before | {pattern})
        result = self._describe(pattern, module, target)
        already = sorted(p for p in before - {pattern}
                         if all(re.match(p, self.nodes[n].module) for n in result.nodes))
        if already and result.nodes:
            note = f"these nodes were already kept in FP32 by {', '.join(map(repr, already))}"
            result = Exclusion(pattern, module, result.nodes, f"{result.note}; {note}" if result.note else note)
        return result

    def include(self, target: str) -> Exclusion:
        """Undo :meth:`exclude` for a node's module or a module path (its exact and subtree regex); the note names
        any other regex that still catches nodes there."""
        module, pattern = self._target(target)
        current = self.settings.autocast_excluded_nodes
        removed = sorted(self._forms(module) & current)
        remaining = current - set(removed)
        self.settings = self.settings.replace(autocast_excluded_nodes=remaining)
        result = self._describe(pattern if pattern in removed or not removed else removed[0], module, target)
        inside = [module] if pattern == module_pattern(module) else \
            [m for m in self.modules if m == module or m.startswith(module + ".")]
        still = sorted(p for p in remaining if any(re.match(p, m) for m in inside))
        if still:
            result = Exclusion(result.pattern, module, result.nodes,
                               f"{module!r} is still excluded by {', '.join(map(repr, still))}")
        return result

    def toggle(self, target: str) -> Exclusion:
        """Exclude the node's module (or the module path) if none of its regexes is in force, else include it
        (what a click does)."""
        module, _ = self._target(target)
        if self._forms(module) & self.settings.autocast_excluded_nodes:
            return self.include(target)
        return self.exclude(target)

    def _ops_of_module_type(self, cls: type) -> tuple[str, ...]:
        """The ops the instances of module class ``cls`` call themselves in this graph (first seen first)."""
        name = f"{cls.__module__}.{cls.__qualname__}"
        present = self.ops()
        return tuple(dict.fromkeys(i.op for i in self.nodes.values()
                                   if i.module_type == name and i.op in present))

    def _op_candidates(self, query: str) -> list[str]:
        """This model's ops a short name (``add``, ``aten.add``) denotes, in-place variants included; with an
        overload (``add.Tensor``), those of that overload."""
        short = query.replace("aten::", "aten.").removeprefix("torch.ops.")
        parts = short.split(".")
        namespaces = {o.split(".")[2] for o in self.ops()}
        namespace = parts.pop(0) if len(parts) > 1 and parts[0] in namespaces else None
        packet, overload = parts[0], (parts[1] if len(parts) > 1 else None)
        out = []
        for op in self.ops():
            _, _, ns, op_packet, op_overload = op.split(".", 4)
            if namespace not in (None, ns) or op_packet.rstrip("_") != packet.rstrip("_"):
                continue
            if overload is None or (overload == op_overload and op_packet == packet):
                out.append(op)
        return out

    def _op_suggestions(self, query: str) -> list[str]:
        """This model's ops close to ``query``: same op name in any overload or in-place form, names that contain
        it or are near it, and the ops of module types whose class name contains it."""
        import difflib

        present = list(self.ops())
        base = query.replace("aten::", "aten.").removeprefix("torch.ops.").split(".")
        word = (base[1] if len(base) > 1 and base[0] == "aten" else base[0]).rstrip("_").lower()
        packets = {op: op.split(".")[3].rstrip("_").lower() for op in present}
        hits = [op for op in present if packets[op] == word]
        hits += [op for op in present if word and word in packets[op]]
        close = set(difflib.get_close_matches(word, list(packets.values()), n=4, cutoff=0.6))
        hits += [op for op in present if packets[op] in close]
        types = {i.module_type for i in self.nodes.values() if i.module_type}
        for typ in sorted(types):
            if word and word in typ.rsplit(".", 1)[-1].lower():
                hits += [i.op for i in self.nodes.values() if i.module_type == typ and i.op in packets]
        return list(dict.fromkeys(hits))[:8]

    def _op_name(self, op: Any) -> str:
        """The qualified name (as Torch-TensorRT writes it) of ``op`` among this model's ops: a qualified or short
        name, an op, or a module class (the ops its instances call here); SettingsError with this model's
        candidates when it names none or several."""
        present = self.ops()
        if isinstance(op, torch.nn.Module):
            op = type(op)
        if isinstance(op, type):
            if not issubclass(op, torch.nn.Module):
                raise SettingsError(f"{op.__qualname__} is neither an op nor a torch.nn.Module class")
            ops = self._ops_of_module_type(op)
            if len(ops) == 1:
                return ops[0]
            label = f"{op.__module__}.{op.__qualname__}"
            if not ops:
                types = sorted({i.module_type.rsplit(".", 1)[-1] for i in self.nodes.values() if i.module_type})
                raise SettingsError(f"no {label} in this model calls an op of its own; its module types: "
                                    + ", ".join(types))
            raise SettingsError(f"{label} calls several ops in this model: {', '.join(map(repr, ops))}; exclude "
                                "each you mean with ex.exclude_op(name), or its modules with ex.exclude(path)")
        name = qualified_op_name(op)
        if not isinstance(op, str) and not name.startswith("torch.ops."):
            name = name.rsplit(".", 1)[-1]  # a Python callable (torch.add, F.relu): its op name
        if name in present:
            return name
        for candidate in (f"torch.ops.{name}", f"torch.ops.aten.{name}"):
            if candidate in present:
                return candidate
        matches = self._op_candidates(name)
        if len(matches) == 1:  # a bare name ("add") whose only form here is in-place ("add_.Tensor")
            return matches[0]
        from .settings import resolve_op

        if resolve_op(name) is not None and not matches:
            return name  # a real op this model lacks: accepted, and check_settings says it does not occur
        if len(matches) > 1:
            raise SettingsError(f"{name!r} names several ops of this model: {', '.join(map(repr, matches))}; "
                                "exclude each you mean by its qualified name")
        suggestions = self._op_suggestions(name)
        listing = (f"e.g. one of {', '.join(map(repr, suggestions))}" if suggestions else
                   "its ops are " + ", ".join(repr(o) for o in list(present)[:12])
                   + (", ..." if len(present) > 12 else "") + " (ex.ops())")
        raise SettingsError(f"{name!r} is not an op of this model; write the qualified name, {listing}")

    def exclude_op(self, op: Any) -> str:
        """Keep every node of an op in FP32: ``"torch.ops.aten.softmax.int"``, ``"aten.softmax.int"``, ``"softmax"``
        (resolved among this model's ops, in-place forms included), an op, or a module class (``torch.nn.Conv2d``:
        the one op its instances call here)."""
        name = self._op_name(op)
        self.settings = self.settings.replace(autocast_excluded_ops=self.settings.autocast_excluded_ops | {name})
        return name

    def include_op(self, op: Any) -> str:
        """Remove an op from the exclusions (named as :meth:`exclude_op` takes it)."""
        excluded = self.settings.autocast_excluded_ops
        name = op if isinstance(op, str) and op in excluded else self._op_name(op)
        self.settings = self.settings.replace(autocast_excluded_ops=excluded - {name})
        return name

    # -- summary and export ----------------------------------------------------------------------------
    def summary(self, plan: PrecisionPlan | None = None) -> dict[str, dict[str, float]]:
        """Per display dtype: node count and share of estimated FLOPs (0..1)."""
        p = plan or self.plan()
        total = sum(self.nodes[r.name].flops for r in p if r.rule != "removed") or 1
        out: dict[str, dict[str, float]] = {}
        from .dtypes import display_name

        for r in p:
            if r.rule == "removed":
                continue
            row = out.setdefault(display_name(r.dtype), {"nodes": 0, "flops_share": 0.0})
            row["nodes"] += 1
            row["flops_share"] += self.nodes[r.name].flops / total
        return out

    def compile_options(self, target: Target | str | None = None) -> dict[str, Any]:
        """``dynamo.compile`` keywords beyond the settings that this graph needs on ``target`` (default: the
        explorer's) to compile to what it computes: ``attn_bias_is_causal=False`` where an attention takes a
        non-causal mask (Torch-TensorRT 2.11+ would make it causal)."""
        from .ops import masked_attention
        from .targets import attention_options

        t = self.target if target is None else resolve_target(target)
        if self._masked_attention is None:  # the graph never changes; the widget asks on every click
            self._masked_attention = masked_attention(self.graph_module.graph.nodes)
        return attention_options(self._masked_attention, t.release)[0]

    def compile_call(self, target: Target | str | None = None) -> str:
        """The Python ``dynamo.compile`` call of the current settings for ``target`` (default: the explorer's),
        with the options this graph needs (:meth:`compile_options`)."""
        t = self.target if target is None else resolve_target(target)
        return self.settings.to_python(calibration=bool(self.calibration) and self.settings.enable_autocast,
                                       target=t, options=self.compile_options(t))

    def export_settings(self, path: str | os.PathLike[str], format: str | None = None) -> Path:
        """Write the current settings atomically: JSON (default, or a ``.json`` path) or a ``.py`` compile snippet."""
        kind = format or ("python" if str(path).endswith(".py") else "json")
        if kind not in ("json", "python"):
            raise SettingsError(f"format must be 'json' or 'python', got {kind!r}")
        text = self.settings.to_json() if kind == "json" else self.compile_call()
        return write_atomic(path, text)

    def load_settings(self, path: str | os.PathLike[str]) -> Settings:
        """Read a settings JSON file and make it current (undoable); the current settings stay on error."""
        self.settings = Settings.load(path)
        return self.settings

    # -- layers above the core, imported on first use: the core loads no plotly, ipywidgets or torch_tensorrt --
    # viz draws records: the facade hands it the captured graph, the plan and the results it keeps
    def _plan_of(self, plan: PrecisionPlan | Settings) -> PrecisionPlan:
        """A PrecisionPlan as given, or this explorer's plan of a Settings; OptionTypeError for anything else."""
        if isinstance(plan, PrecisionPlan):
            return plan
        if isinstance(plan, Settings):
            return self.plan(plan)
        raise OptionTypeError(f"expected a PrecisionPlan or Settings to compare with, got {type(plan).__name__}")

    def _overlays(self, color_by: str, profile: Profile | None, accuracy: Any, sensitivity: Sensitivity | None,
                  compare_to: PrecisionPlan | Settings | None) -> dict[str, Any]:
        """What a graph figure draws over its plan: the results given, else the last ones kept."""
        from .viz.colors import FP32_COST

        return {"profile": profile if profile is not None else self.last_profile,
                "accuracy": accuracy if accuracy is not None else self.last_accuracy,
                "sensitivity": sensitivity if sensitivity is not None else self.last_sensitivity,
                "compare_to": self._plan_of(compare_to) if compare_to is not None else None,
                "fp32_cost_ms": self.predictor.fp32_cost_ms() if color_by == FP32_COST else None,
                "calibration": self.calibration}

    def figure(self, settings: Settings | None = None, color_by: str = "precision", *,
               group_by_module: Grouping = "auto", expanded: Iterable[str] = (), profile: Profile | None = None,
               accuracy: AccuracyReport | None = None, plan: PrecisionPlan | None = None, height: int | None = None,
               width: int | None = None, sensitivity: Sensitivity | None = None,
               compare_to: PrecisionPlan | Settings | None = None,
               compare_labels: tuple[str, str] = ("A", "B")) -> go.Figure:
        """A plotly Figure of the graph coloured by ``color_by`` (see :func:`mixprec_explorer.viz.graph.build_figure`).

        ``plan`` (default: the plan of ``settings``, else of the current settings) is drawn; ``profile``,
        ``accuracy`` and ``sensitivity`` default to ``last_profile``, ``last_accuracy`` and ``last_sensitivity``;
        ``compare_to`` takes a PrecisionPlan or Settings.
        """
        from .viz.graph import build_figure

        return build_figure(self.captured, plan if plan is not None else self.plan(settings), color_by,
                            group_by_module=group_by_module, expanded=expanded, height=height, width=width,
                            compare_labels=compare_labels,
                            **self._overlays(color_by, profile, accuracy, sensitivity, compare_to))

    def recolor(self, fig: go.Figure, plan: PrecisionPlan | None = None, color_by: str | None = None, *,
                profile: Profile | None = None, accuracy: AccuracyReport | None = None,
                sensitivity: Sensitivity | None = None, compare_to: PrecisionPlan | Settings | None = None,
                compare_labels: tuple[str, str] = ("A", "B")) -> None:
        """Update a :meth:`figure` (or its FigureWidget) in place for ``plan`` (default: the current one), coloured
        by ``color_by`` (default: as last); results default as for :meth:`figure`
        (see :func:`mixprec_explorer.viz.graph.recolor`)."""
        from .viz.graph import color_by_of, recolor

        color_by = color_by or color_by_of(fig)
        recolor(fig, self.captured, plan if plan is not None else self.plan(), color_by, compare_labels=compare_labels,
                **self._overlays(color_by, profile, accuracy, sensitivity, compare_to))

    def figure_of(self, result: Sensitivity | Frontier | Comparison, **options: Any) -> go.Figure:
        """The figure of an analysis result: a Sensitivity's bar chart (``by=``, ``top=``), a Frontier's scatter,
        a Comparison's two graphs (``mode="difference"``, ``labels=``...); see :func:`mixprec_explorer.viz.draw`."""
        from .viz import draw

        return draw(result, captured=self.captured, **options)

    def widget(self, *, color_by: str = "precision", group_by_module: Grouping = "auto", height: int | None = None,
               search_options: dict[str, Any] | None = None,
               frontier_options: dict[str, Any] | None = None) -> ipywidgets.VBox:
        """The interactive ipywidgets view (click a node to toggle its module's exclusion)."""
        from .widget.app import build_widget

        return build_widget(self, color_by=color_by, group_by_module=group_by_module, height=height,
                            search_options=search_options, frontier_options=frontier_options)

    def engine_figure(self, profile: Profile | None = None, select: str | int | None = None) -> go.Figure:
        """The engine's layers in execution order (kernel, dtype, latency, share), coloured by output dtype.

        ``profile`` defaults to the last one measured or loaded. ``select`` is an FX node name (its layers are
        outlined) or an engine layer's name or position (outlined; ``viz.engine.nodes_for_layer`` gives its FX
        nodes, ``viz.highlight(fig, ex.captured, nodes)`` rings them in ``fig = ex.figure()``). Raises MissingResult
        without a profile.
        """
        from .viz.engine import build_engine_figure

        profile = profile if profile is not None else self.last_profile
        if profile is None:
            raise MissingResult("no profile yet: run ex.profile(ex.compile(...)) or ex.load_profile(folder) first")
        if isinstance(select, str) and select in self.nodes:
            return build_engine_figure(profile, selected_nodes=[select])
        return build_engine_figure(profile, selected_layer=select)

    def save_html(self, path: str | os.PathLike[str], *, settings: Settings | None = None,
                  color_by: str = "precision", group_by_module: Grouping = "auto", profile: Profile | None = None,
                  accuracy: AccuracyReport | None = None, title: str | None = None) -> Path:
        """A standalone HTML report (graph, plan table, summary) that opens offline; written atomically.

        ``profile`` and ``accuracy`` default to ``last_profile`` and ``last_accuracy``.
        """
        from .viz.report import save_html

        s = settings if settings is not None else self.settings
        plan = self.plan(s)
        profile = profile if profile is not None else self.last_profile
        figure = self.figure(color_by=color_by, group_by_module=group_by_module, profile=profile, accuracy=accuracy,
                             plan=plan)
        return save_html(self.captured, path, plan, settings=s, figure=figure, summary=self.summary(plan),
                         warnings=self.check_settings(s), profile=profile, title=title)

    def compile(self, settings: Settings | None = None, backend: str = "auto", device: str | None = None, *,
                isolate: bool = True, progress: bool = True, use_cache: bool = True, timeout_s: float | None = None,
                **backend_options: Any) -> Compiled:
        """Compile the plan for ``settings`` on a backend ("tensorrt", "torch" or "auto"); cached by plan and inputs.

        Further keywords are the chosen backend's own options, checked against it before any work (a misspelled
        one raises OptionTypeError, a TypeError): torch ``mode="compiled"``; tensorrt ``build="cast_graph"``,
        ``min_block_size=1`` and other ``dynamo.compile`` options. See
        :func:`mixprec_explorer.backends.compile_plan`.
        """
        from .backends import compile_plan

        return compile_plan(self, settings if settings is not None else self.settings, backend, device,
                            isolate=isolate, progress=progress, use_cache=use_cache, timeout_s=timeout_s,
                            **backend_options)

    def profile(self, compiled: Compiled, inputs: Inputs = None, *, runs: int = 20, warmup: int = 5,
                progress: bool = True, timeout_s: float | None = None, **backend_options: Any) -> Profile:
        """Run a compiled plan and return per-layer dtypes and latency mapped onto FX nodes (kept as ``last_profile``
        and recorded for :meth:`predict`).

        ``inputs``: a tensor, a tuple or a list of batches (the first is profiled); further keywords are the
        backend's own (torch: ``profile_runs=10``), checked before any work. A slow plan (real FP16 on a CPU) is
        timed adaptively: fewer runs, until the median is stable (the profile's notes say how many).
        """
        from .backends import profile_compiled

        result = profile_compiled(self, compiled, inputs, runs, warmup, progress=progress, timeout_s=timeout_s,
                                  **backend_options)
        self.last_profile = result
        self.predictor.record(compiled, profile=result)  # ex.predict() needs no extra call
        return result

    def load_profile(self, path: str | os.PathLike[str]) -> Profile:
        """A profile recorded elsewhere, from the folder Torch-TensorRT's runtime wrote, ready for the overlay.

        ``path`` is the ``profiling_results_dir`` of ``enable_profiling(..., profile_format="trex")`` (per engine:
        ``<engine>_engine_layer_information.json`` + ``<engine>_engine_engine_execution_profile.trace``), or the
        folder ``ex.profile`` recorded (``profile.recorded_in``, with ``mixprec_mapping.json``: maps exactly as the
        live profile). No GPU or TensorRT needed. The engines must have been built from this explorer's graph: a
        folder of another model or batch size raises ProfileMismatch naming what differs; one that fits in part
        warns (ProfileMatchWarning) and says how well in ``match_score``. Raises ParseError for an unreadable
        folder. Kept as ``last_profile``.
        """
        from .backends.tensorrt import profile_from_dir

        result = profile_from_dir(Path(path), self)
        self.last_profile = result
        return result

    def accuracy(self, compiled: Compiled, inputs: Inputs = None, *, per_node: bool = False,
                 timeout_s: float | None = None, simulate: bool | None = None) -> AccuracyReport:
        """Error of a compiled plan against the FP32 reference (outputs cast to FP32 first); kept as ``last_accuracy``
        and recorded for :meth:`predict`.

        ``inputs``: a tensor, a tuple or a list of batches (the metrics cover all of them). On the CPU the PyTorch
        backend simulates FP16 at FP32 speed (``simulate=False``: its real, much slower FP16 arithmetic).
        """
        from .accuracy import measure_accuracy

        result = measure_accuracy(self, compiled, inputs, per_node=per_node, timeout_s=timeout_s, simulate=simulate)
        self.last_accuracy = result
        self.predictor.record(compiled, accuracy=result)
        return result

    show = widget

    # -- which nodes matter ------------------------------------------------------------------------------
    def sensitivity(self, inputs: Inputs = None, metric: str = "rel_l2", *, low_dtype: torch.dtype | None = None,
                    nodes: Iterable[str] | None = None, progress: bool = True, method: str = "auto",
                    probes: int = 16) -> Sensitivity:
        """Per node and module: error when only it runs low, and error removed when only it stays FP32.

        ``method``: "exact" re-runs, "linear" first-order estimates from ``probes`` backward passes (large models
        on a CPU: seconds instead of minutes), "auto" the cheaper. Kept as ``last_sensitivity``; see
        :func:`mixprec_explorer.sensitivity.compute_sensitivity`.
        """
        from .sensitivity import compute_sensitivity

        result = compute_sensitivity(self, inputs, metric, low_dtype=low_dtype, nodes=nodes, progress=progress,
                                     method=method, probes=probes)
        self.last_sensitivity = result
        return result

    def search(self, inputs: Inputs = None, budget: float = 1e-2, metric: str = "rel_l2", *,
               objective: str = "latency", backend: str | None = "auto", device: str | None = None,
               isolate: bool = True, compile_options: Mapping[str, Any] | None = None,
               state_path: str | os.PathLike[str] | None = None, confirm: bool = True, use_ops: bool = True,
               use_subtrees: bool = True, low_dtype: torch.dtype | None = None, max_probes: int = 4,
               progress: bool = True) -> SearchResult:
        """Fastest exclusions within ``budget``; loads them into ``settings`` and keeps the result as ``last_search``
        (and the chosen plan's profile, where the backend confirmed it, as ``last_profile``; see
        :func:`mixprec_explorer.search.run_search`)."""
        from .search import run_search

        result = run_search(self, inputs, budget, metric, objective=objective, backend=backend, device=device,
                            isolate=isolate, compile_options=compile_options, state_path=state_path,
                            confirm=confirm, use_ops=use_ops, use_subtrees=use_subtrees, low_dtype=low_dtype,
                            max_probes=max_probes, progress=progress)
        self.last_search = result
        if result.profile is not None:
            self.last_profile = result.profile
        return result

    def frontier(self, inputs: Inputs = None, metric: str = "rel_l2", *, max_points: int = 12,
                 backend: str | None = None, device: str | None = None, isolate: bool = True,
                 compile_options: Mapping[str, Any] | None = None, measure: bool = False,
                 executor: str | None = None, low_dtype: torch.dtype | None = None,
                 progress: bool = True) -> Frontier:
        """A sweep of plans from all-low to all-FP32 with latency and error; ``ex.figure_of(result)`` draws it. Kept as
        ``last_frontier`` (see :func:`mixprec_explorer.frontier.compute_frontier`)."""
        from .frontier import compute_frontier

        result = compute_frontier(self, inputs, metric, max_points=max_points, backend=backend, device=device,
                                  isolate=isolate, compile_options=compile_options, measure=measure,
                                  executor=executor, low_dtype=low_dtype, progress=progress)
        self.last_frontier = result
        return result

    def compare(self, plan_a: PrecisionPlan | Settings, plan_b: PrecisionPlan | Settings, *,
                profiles: tuple[Profile | None, Profile | None] = (None, None),
                node_errors: tuple[dict[str, float] | None, dict[str, float] | None] = (None, None)) -> Comparison:
        """Per-node changes between two plans or Settings (dtype, and latency/error where given)."""
        from .compare import compare_plans

        return compare_plans(self._plan_of(plan_a), self._plan_of(plan_b), profiles=profiles, node_errors=node_errors)

    def __repr__(self) -> str:
        calls = sum(1 for i in self.nodes.values() if i.kind == "call_function")
        return f"<Explorer {calls} ops, {len(self.modules)} modules, {self.plan()!r}>"

    # -- the cast graph: the plan's casts in the program, for a compile with autocast off ------------------------
    def cast_program(self, settings: Settings | None = None, device: str | None = None) -> torch.export.ExportedProgram:
        """The plan as an ExportedProgram with its casts applied to floating-point tensors only.

        Compile it with strong typing and autocast off (``backends.cast_graph.compile_kwargs_for_cast_program``):
        the way around Torch-TensorRT's autocast casting integer tensors (``plan.integer_casts``).
        """
        from .backends.cast_graph import cast_program

        return cast_program(self, settings, device=device)

    def export_cast_program(self, path: str | os.PathLike[str], settings: Settings | None = None,
                            device: str | None = None) -> tuple[Path, Path]:
        """Save :meth:`cast_program` with ``torch.export.save`` (atomic) and a ``.py`` compile snippet beside it."""
        from .backends.cast_graph import export_cast_program

        return export_cast_program(self, path, settings, device=device)

    # -- prediction: a plan's latency and error before any compile (mixprec_explorer.predict) ------------------------
    @property
    def predictor(self):
        """The latency and error model calibrated from this explorer's recorded measurements (made on first use)."""
        from .predict import Predictor

        found = self.__dict__.get("_predictor")
        if found is None:
            found = self.__dict__["_predictor"] = Predictor(self)
            if self._last_sensitivity is not None:  # run before the predictor was first asked for
                found.take_sensitivity(self._last_sensitivity, "from ex.sensitivity")
        return found

    def record_measurement(self, plan: Any = None, *, profile: Any = None, latency_ms: float | None = None,
                           accuracy: Any = None, sensitivity: Any = None):
        """Register what was measured for a plan (``ex.compile``'s result or its Settings) so :meth:`predict` uses it.

        :meth:`profile` and :meth:`accuracy` record by themselves; this is for measurements made otherwise (a
        latency timed apart, a profile loaded elsewhere). All-FP32 and all-low plans calibrate the prediction, any
        other plan refines it; a plan measured again replaces its earlier figure. See :meth:`Predictor.record`.
        """
        return self.predictor.record(plan, profile=profile, latency_ms=latency_ms, accuracy=accuracy,
                                     sensitivity=sensitivity)

    def measure_calibration(self, backend: str = "auto", inputs: Sequence[Any] | None = None, **options: Any):
        """Compile, profile and check the all-FP32 and all-low plans on ``backend`` and run sensitivity, so that
        :meth:`predict` prices every plan from measurements; returns the predictor. See
        :func:`mixprec_explorer.predict.measure_calibration` for ``options``."""
        from .predict import measure_calibration

        return measure_calibration(self, backend, inputs, **options)

    @staticmethod
    def available_backends(refresh: bool = False) -> dict[str, tuple[bool, str]]:
        """Every compile backend: (usable here, why not in words); checked once per process unless ``refresh``."""
        from .backends import available_backends

        return available_backends(refresh)

    def predict(self, settings: Settings | None = None, *, backend: str | None = None, estimate: bool = False):
        """Predicted latency and error of a plan (None: the current settings) without compiling: a ``Prediction``.

        Calibrated from the all-FP32 and all-low profiles, accuracies and sensitivity this explorer measured
        (``ex.profile``, ``ex.accuracy`` and ``ex.sensitivity`` are taken up by themselves); says so in
        ``statement`` when it has nothing to go on. See :mod:`mixprec_explorer.predict`.
        """
        return self.predictor.predict(settings, backend=backend, estimate=estimate)
