"""The README's quick start runs as written and prints what the README says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs_and_prints_what_the_readme_shows(tmp_path):
    text = README.read_text()
    code, printed = re.findall(r"```(?:python)?\n(.*?)```", text, flags=re.S)[:2]
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == printed.split()
    assert (tmp_path / "plan.json").exists()


def test_the_two_commands_are_the_makefile_targets():
    text = README.read_text()
    makefile = (README.parent / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"`make {target}`" in text and re.search(rf"^{target}:", makefile, flags=re.M)
    assert "make test" in (README.parent / ".ci" / "run").read_text()
