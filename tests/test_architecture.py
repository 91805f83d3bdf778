"""The shape of the package: one public analysis core, arrows one way, no module reaching into another's privates."""

from __future__ import annotations

import ast
from pathlib import Path

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
    below = {"capture", "settings", "errors", "records", "dtypes", "costs", "policy", "inputs", "ops"}
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
