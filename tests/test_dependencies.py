"""Importing the package must not load the optional layers (Polygraphy's ``tests/mod/test_dependencies.py`` idea).

Each check runs in a fresh interpreter, so modules other tests imported cannot hide or fake a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mixprec_explorer import BackendUnavailable
from mixprec_explorer._optional import MissingDependency, install_hint, require

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorrt", "torch_tensorrt", "ipywidgets", "plotly")


def loaded_after(statement: str, watched: tuple[str, ...] = HEAVY) -> list[str]:
    """Top-level names among ``watched`` found in ``sys.modules`` after running ``statement`` in a new process."""
    code = textwrap.dedent(f"""
        import json, sys
        {statement}
        watched = {watched!r}
        print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set(watched))))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", [
    "import mixprec_explorer",
    "import mixprec_explorer.settings, mixprec_explorer.policy, mixprec_explorer.capture",
    "import mixprec_explorer.backends.tensorrt",
    "import mixprec_explorer._optional",
])
def test_import_loads_no_optional_layer(statement: str) -> None:
    assert loaded_after(statement) == []


def test_the_check_sees_a_module_that_is_loaded() -> None:
    """The harness itself: a watched module that the statement imports is reported."""
    assert loaded_after("import email.message", ("email", "plotly")) == ["email"]


def test_require_returns_the_module() -> None:
    assert require("json", "test") is json


def test_require_names_the_extra_for_a_missing_module() -> None:
    with pytest.raises(MissingDependency) as info:
        require("mixprec_explorer_no_such_module", "tensorrt")
    err = info.value
    assert isinstance(err, ImportError) and isinstance(err, BackendUnavailable)
    assert 'pip install "mixprec-explorer[tensorrt]"' in str(err)
    assert err.name == "mixprec_explorer_no_such_module"
    assert install_hint("notebook") == 'pip install "mixprec-explorer[notebook]"'


def test_require_reports_a_module_that_fails_to_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mixprec_broken_native.py").write_text(
        "raise OSError('libnvinfer.so.10: cannot open shared object file: No such file or directory')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependency, match=r"installed but failed to import \(OSError: libnvinfer\.so\.10") as info:
        require("mixprec_broken_native", "tensorrt")
    assert isinstance(info.value.__cause__, OSError)
    sys.modules.pop("mixprec_broken_native", None)
