"""The shape of the package: one public analysis core, arrows one way, no module reaching into another's privates."""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from pathlib import Path

import pytest

import mixprec_explorer

PACKAGE = Path(mixprec_explorer.__file__).parent
README = PACKAGE.parent / "README.md"


def _imports(path: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """(module imported from, names, level) of every ``from ... import`` in a file (function-local ones too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            out.append((node.module or "", tuple(a.name for a in node.names), node.level))
    return out


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, names, level in _imports(path):
            if level == 0 and not module.startswith("mixprec_explorer"):
                continue  # torch's own privates (torch.utils._pytree) are torch's business
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if private:
                found.append(f"{path.relative_to(PACKAGE)}: from {'.' * level}{module} import {', '.join(private)}")
    assert found == []


def test_the_analysis_core_depends_only_on_the_layers_below_it() -> None:
    below = {"capture", "settings", "errors", "records", "dtypes", "costs", "policy", "inputs", "ops",
             "backends"}  # house.md: Analysis -> Backends, Core, Ground
    for path in sorted((PACKAGE / "analysis").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level: what importing the core loads
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert (node.module or "").split(".")[0] in below, f"{path.name} imports ..{node.module}"


def test_thin_users_use_the_core_and_not_each_other() -> None:
    for name in ("sensitivity", "search", "frontier", "accuracy"):
        imports = _imports(PACKAGE / f"{name}.py")
        assert any(module == "analysis" or module.startswith("analysis.") for module, _, level in imports
                   if level == 1), name
    assert not any(module == "search" for module, _, level in _imports(PACKAGE / "frontier.py") if level == 1)


def test_the_readme_says_where_plans_are_evaluated_errors_measured_and_inputs_normalised() -> None:
    layout = README.read_text(encoding="utf-8").split("## Layout", 1)[1]
    for path, role in (("inputs.py", "where inputs are normalised"), ("analysis/runner.py", "where a plan is evaluated"),
                       ("analysis/metrics.py", "where errors are measured")):
        line = next(line for line in layout.splitlines() if Path(path).name in line)
        assert role in line, line
        assert (PACKAGE / path).is_file()


def test_make_test_runs_mypy_from_the_test_extra() -> None:
    import tomllib

    root = PACKAGE.parent
    target = root.joinpath("Makefile").read_text(encoding="utf-8").split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "-m mypy" in target and target.index("mypy") < target.index("pytest")
    project = tomllib.loads(root.joinpath("pyproject.toml").read_text(encoding="utf-8"))
    assert any(req.startswith("mypy") for req in project["project"]["optional-dependencies"]["test"])
    assert "test" in root.joinpath("scripts", "setup_env.sh").read_text(encoding="utf-8").split('EXTRAS="${EXTRAS:-')[1]
    assert project["tool"]["mypy"]["files"] == ["mixprec_explorer"]


# -- the house (../shared/design/house.md): the import graph, as the before-stop hook reads it ---------------------
def _module_name(path: Path) -> str:
    name = ".".join(("mixprec_explorer", *path.relative_to(PACKAGE).with_suffix("").parts))
    return name.removesuffix(".__init__")


@functools.cache
def _import_graph(runtime_only: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, every import counted (function-level and TYPE_CHECKING ones too;
    with ``runtime_only``, those in ``if TYPE_CHECKING:`` blocks left out).

    ``from . import x`` is an arrow to the package face as well as to ``x``: it imports the package first.
    """
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typed = {id(n) for block in ast.walk(tree) if runtime_only and isinstance(block, ast.If)
                 and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                 for part in block.body for n in ast.walk(part)}
        for node in ast.walk(tree):
            if id(node) in typed:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    stem = base[: len(base) - node.level + 1] + ([node.module] if node.module else [])
                    source = ".".join(stem)
                else:
                    source = node.module or ""
                targets = [source, *(f"{source}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges[module].update(t for t in targets if t in files and t != module)
    return edges


#: The parts of the house, by module (prefix match on the dotted name after ``mixprec_explorer.``).
LAYERS = {
    "faces": ("cli", "widget"),
    "facade": ("explorer",),
    "viz": ("viz",),
    "analysis": ("analysis", "sensitivity", "search", "frontier", "predict", "accuracy", "sweep", "compare",
                 "results"),
    "backends": ("backends",),
    "parsers": ("parsers",),
    "core": ("capture", "settings", "policy", "calibration", "inputs"),
    "ground": ("records", "errors", "dtypes", "numbers", "costs", "ops", "_optional", "examples"),
}
FACE, FACADE = "mixprec_explorer", "mixprec_explorer.explorer"


def _layer(module: str) -> str | None:
    if module == FACE:
        return "faces"
    rest = module.removeprefix("mixprec_explorer.")
    for layer, prefixes in LAYERS.items():
        if any(rest == p or rest.startswith(p + ".") for p in prefixes):
            return layer
    return None


def _arrows(source: str, target: str) -> list[str]:
    """Every import from a module of layer ``source`` to one of layer ``target`` (the face counts as a face)."""
    graph = _import_graph()
    return sorted(f"{m} -> {t}" for m, targets in graph.items() if _layer(m) == source
                  for t in targets if _layer(t) == target or (target == "face" and t == FACE))


@pytest.mark.parametrize("layer", ["analysis", "backends", "viz", "core", "parsers", "ground"])
def test_nothing_below_the_facade_imports_explorer_py(layer: str) -> None:
    assert [a for a in _arrows(layer, "facade")] == []


def test_the_facade_has_every_member_the_analyses_read_of_it() -> None:
    """Analyses name what they read of the facade in protocols (analysis/subject.py, and the search's and the
    predictor's beside them); the Explorer has every member (mypy checks the types where it passes itself down)."""
    from typing import Generic, Protocol

    from mixprec_explorer import analysis
    from mixprec_explorer.analysis import subject
    from mixprec_explorer.examples import reference_autocast_model
    from mixprec_explorer.explorer import Explorer
    from mixprec_explorer.predict import Planned, Workbench
    from mixprec_explorer.search import Searched

    ex = Explorer(*reference_autocast_model())
    protocols = [getattr(subject, name) for name in subject.__all__] + [analysis.backend.Bench, Planned, Workbench,
                                                                        Searched]
    for protocol in protocols:
        members = {name for cls in protocol.__mro__ if cls not in (object, Protocol, Generic)
                   for name in (*vars(cls), *getattr(cls, "__annotations__", {})) if not name.startswith("_")}
        assert members, protocol
        assert [m for m in sorted(members) if not hasattr(ex, m)] == [], protocol.__name__


def test_analysis_and_viz_do_not_import_each_other_and_viz_reads_only_result_records() -> None:
    assert _arrows("analysis", "viz") == []
    assert [a for a in _arrows("viz", "analysis") if not a.endswith("-> mixprec_explorer.results")] == []


@pytest.mark.parametrize("layer", ["analysis", "backends", "viz", "core", "parsers", "ground"])
def test_the_lower_layers_never_import_the_package_face(layer: str) -> None:
    """``from .. import dtypes`` imports the face (and with it, lazily, everything): name the module instead."""
    assert _arrows(layer, "face") == []


def test_backends_do_not_import_analysis_and_the_ground_imports_nothing_above_it() -> None:
    assert _arrows("backends", "analysis") == []  # the inputs normaliser is Core, used by both
    for upper in ("faces", "facade", "viz", "analysis", "backends", "parsers", "core"):
        assert _arrows("ground", upper) == [], upper


@pytest.mark.parametrize("below", ["analysis", "backends", "parsers"])
def test_the_faces_reach_analyses_and_backends_only_through_the_facade(below: str) -> None:
    """The widget and the CLI call the Explorer (``ex.measure_calibration``, ``ex.available_backends``); they name
    the analyses' and backends' result types only for type checking."""
    running = sorted(f"{m} -> {t}" for m, targets in _import_graph(runtime_only=True).items()
                     if _layer(m) == "faces" for t in targets if _layer(t) == below)
    assert running == []


def test_viz_draws_without_the_explorer_module_loaded() -> None:
    """A figure from records alone: viz and the results it draws load neither explorer.py nor an analysis."""
    import subprocess
    import sys

    code = ("import sys, mixprec_explorer.viz, mixprec_explorer.viz.frontier, mixprec_explorer.results;"
            "bad = [m for m in ('mixprec_explorer.explorer', 'mixprec_explorer.sensitivity', "
            "'mixprec_explorer.analysis', 'mixprec_explorer.search') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


# -- each concept once: the duplicates issue 22 found stay single ------------------------------------------------
def _defining(predicate: Callable[[ast.AST], bool]) -> list[str]:
    """Modules whose code (docstrings left out) holds a node ``predicate`` accepts."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        nodes = list(ast.walk(ast.parse(path.read_text(encoding="utf-8"))))
        prose = {id(n.value) for n in nodes if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        if any(predicate(node) for node in nodes if id(node) not in prose):
            found.append(str(path.relative_to(PACKAGE)).replace("\\", "/"))
    return found


def _calls(name: str) -> Callable[[ast.AST], bool]:
    """A call of ``name`` (``os.replace``, ``_get_qualified_name``) or a reference to the attribute or name."""
    def match(node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute):
            return f"{getattr(node.value, 'id', '')}.{node.attr}" == name or node.attr == name
        return isinstance(node, ast.Name) and node.id == name
    return match


def _string(text: str) -> Callable[[ast.AST], bool]:
    return lambda node: isinstance(node, ast.Constant) and isinstance(node.value, str) and text in node.value


def test_one_atomic_write() -> None:
    assert _defining(_calls("os.replace")) == ["settings.py"]  # settings.write_atomic: text, bytes or a writer


def test_one_qualified_op_name_and_one_op_taxonomy() -> None:
    assert _defining(_calls("_get_qualified_name")) == ["ops.py"]
    for op in ("_assert_scalar", "_assert_tensor_metadata", "wrap_with_autocast", "native_layer_norm",
               "_scaled_dot_product_flash_attention", "conv_transpose2d", "lift_fresh_copy"):
        assert _defining(_string(op)) == ["ops.py"], op
    # the same ops as torch objects (torch.ops.aten._assert_scalar.default) are the taxonomy written again
    for attribute in ("_assert_scalar", "_assert_tensor_metadata", "wrap_with_autocast"):
        assert _defining(_calls(attribute)) == [], attribute


def _number(value: float) -> Callable[[ast.AST], bool]:
    return lambda node: (isinstance(node, ast.Constant) and type(node.value) in (int, float)
                         and node.value == value)


def _squared(name: str) -> Callable[[ast.AST], bool]:
    """``name ** 2`` (``floor ** 2``, ``self.floor ** 2``)."""
    def match(node: ast.AST) -> bool:
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant)
                and node.right.value == 2):
            return False
        return getattr(node.left, "id", getattr(node.left, "attr", None)) == name
    return match


def test_one_cost_model_the_roofline_and_the_error_model() -> None:
    """The roofline's rates (per second or per ms) and the error model's quadrature with the FP32 floor are written
    in costs.py only; the search, the frontier and the predictor call it."""
    for rate in (60e12, 30e12, 3e12, 60e9, 30e9, 3e9):
        assert _defining(_number(rate)) in ([], ["costs.py"]), rate
    assert _defining(_number(60e12)) == ["costs.py"]
    assert _defining(_squared("floor")) == ["costs.py"]
    for user in ("search.py", "predict.py"):
        assert any(module == "costs" and {"error_above_floor", "error_with_floor"} <= set(names)
                   for module, names, level in _imports(PACKAGE / user) if level == 1), user
    assert _defining(_calls("roofline_ms")) == ["analysis/backend.py", "predict.py"]  # the frontier via backend.py


def test_the_simulations_exact_ops_are_part_of_the_op_taxonomy() -> None:
    for op in ("max_pool2d", "split_with_sizes", "expand_as", "_unsafe_view", "unflatten"):
        assert _defining(_string(op)) == ["ops.py"], op
    assert ("ops", ("EXACT_ON_ROUNDED_OPS",), 2) in _imports(PACKAGE / "backends" / "simulate.py")


def test_no_import_circle_holds_more_than_three_modules() -> None:
    """Every import counted (function-level and TYPE_CHECKING ones; ``from . import x`` imports the face too)."""
    import networkx as nx

    graph = nx.DiGraph([(m, t) for m, targets in _import_graph().items() for t in targets])
    circles = sorted((sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1), key=len)
    assert not circles or len(circles[-1]) <= 3, circles[-1]


def test_one_module_pattern_and_one_subtree_pattern() -> None:
    for name in ("module_pattern", "subtree_pattern"):
        defined = _defining(lambda node, name=name: isinstance(node, ast.FunctionDef) and node.name == name)
        assert defined == ["settings.py"], name
