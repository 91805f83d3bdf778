"""The README and docs/ as a reader uses them: the quick start runs as written, the two commands exist, every page
and result is reachable from the index, every link lands, no machine's paths leak, the benchmark commands exist."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def _links(page: Path) -> set[Path]:
    """The files a markdown page links to (relative links only, anchors dropped), resolved."""
    targets = set()
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        targets.add((page.parent / target.split("#", 1)[0]).resolve())
    return targets


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_quick_start_runs_and_prints_what_the_readme_shows(tmp_path):
    section = _section(README.read_text(encoding="utf-8"), "Quick start")
    code, printed = re.findall(r"```(?:python)?\n(.*?)```", section, flags=re.S)[:2]
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == printed.split()
    assert (tmp_path / "plan.json").exists()


def test_the_two_commands_are_the_makefile_targets():
    text = README.read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert f"`make {target}`" in text and re.search(rf"^{target}:", makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_file_under_docs_is_linked_from_the_index_or_the_readme():
    linked = _links(DOCS / "index.md") | _links(README)
    missing = [str(p.relative_to(ROOT)) for p in sorted(DOCS.rglob("*")) if p.is_file() and p.resolve() not in linked
               and p != DOCS / "index.md"]
    assert not missing, f"link these from docs/index.md: {missing}"
    assert (DOCS / "index.md").resolve() in _links(README)


def test_every_link_in_the_readme_and_docs_lands_on_a_file():
    broken = [f"{page.relative_to(ROOT)} -> {target}" for page in _pages() for target in sorted(_links(page))
              if not target.exists()]
    assert not broken, broken


def test_no_machine_paths_in_the_readme_or_docs():
    leaks = []
    for path in [README, *sorted(p for p in DOCS.rglob("*") if p.is_file())]:
        for match in re.finditer(r"(?<![\w.])/(?:work|root|home|tmp)/\S*", path.read_text(encoding="utf-8")):
            leaks.append(f"{path.relative_to(ROOT)}: {match.group(0)[:80]}")
    assert not leaks, leaks


def test_the_benchmark_subcommands_the_readme_names_are_run_py_s():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    assert spec and spec.loader
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    named = set(re.findall(r"`([a-z-]+)`", _section(README.read_text(encoding="utf-8"), "Benchmarks")))
    assert set(run.SUBCOMMANDS) <= named, set(run.SUBCOMMANDS) - named
    for name, (module, _) in run.SUBCOMMANDS.items():
        assert (ROOT / "benchmarks" / f"{module}.py").is_file(), name
    listed = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py")], capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 2 and all(name in listed.stdout for name in run.SUBCOMMANDS)
