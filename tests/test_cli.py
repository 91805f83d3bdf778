"""The command line: plan, export, report, demo; clear errors with exit code 2."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mixprec_explorer import Settings
from mixprec_explorer.cli import BUILTIN_MODELS, load_model, main

from _data import RTX


@pytest.fixture
def autocast_settings(tmp_path: Path) -> Path:
    s = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16,
                 autocast_excluded_nodes={"^linear2$"})
    return s.save(tmp_path / "settings.json")


def test_plan_prints_a_table_of_every_node(capsys: pytest.CaptureFixture[str], autocast_settings: Path) -> None:
    assert main(["plan", "example", "--settings", str(autocast_settings), "--width", "200", "--no-color"]) == 0
    out = capsys.readouterr().out
    for part in ("linear_1", "linear2", "excluded_node", "low_precision", "FP16", "FP32", "summary:"):
        assert part in out, part


def test_plan_of_the_explicit_example_without_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "example:explicit", "--width", "200"]) == 0
    out = capsys.readouterr().out
    assert "explicit" in out
    # torch 2.7+ exports the casts' dtype checks (_assert_tensor_metadata), which Torch-TensorRT removes; 2.6 none
    model, inputs = load_model("example:explicit")
    asserts = any(n.target == torch.ops.aten._assert_tensor_metadata.default
                  for n in torch.export.export(model, inputs).graph.nodes)
    assert ("removed" in out) == asserts


def test_export_json_and_python(tmp_path: Path, autocast_settings: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exported.json"
    assert main(["export", "example", "--settings", str(autocast_settings), "--out", str(out)]) == 0
    assert Settings.load(out) == Settings.load(autocast_settings)
    py = tmp_path / "compile.py"
    assert main(["export", "example", "--settings", str(autocast_settings), "--out", str(py)]) == 0
    assert "torch_tensorrt.dynamo.compile(" in py.read_text()
    txt = tmp_path / "snippet.txt"
    assert main(["export", "example", "--out", str(txt), "--format", "python"]) == 0
    from mixprec_explorer.targets import detect_target

    target = detect_target()  # the snippet carries only the target release's keywords (none after 2.12)
    assert ("use_explicit_typing=True" in txt.read_text()) == target.has("use_explicit_typing")
    assert f"# for {target.describe(origin=False)}" in txt.read_text()
    assert "wrote" in capsys.readouterr().out


def test_target_chooses_the_release_of_the_rules_and_of_the_compile_call(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A user on another Torch-TensorRT than the installed one gets that release's plan and compile call."""
    from mixprec_explorer.targets import resolve_target

    for spec in ("2.11", "2.14"):
        snippet = tmp_path / f"compile_{spec}.py"
        assert main(["export", "example", "--out", str(snippet), "--format", "python", "--target", spec]) == 0
        target = resolve_target(spec)
        assert f"# for {target.describe(origin=False)}" in snippet.read_text()
        assert ("use_explicit_typing=True" in snippet.read_text()) == target.has("use_explicit_typing")
    assert main(["plan", "example", "--target", "2.12-rtx"]) == 0
    assert f"the rules of {resolve_target('2.12-rtx')}" in " ".join(capsys.readouterr().out.split())
    assert main(["plan", "example", "--target", "9.1"]) == 2
    assert "--target 9.1" in capsys.readouterr().err


def test_report_writes_standalone_html(tmp_path: Path, autocast_settings: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "example", "--settings", str(autocast_settings), "--out", str(out),
                 "--group-by-module", "1", "--color-by", "reason"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "<!DOCTYPE html>" in text and "^linear2$" in text and "Plotly" in text


def test_report_overlays_a_profile_recorded_elsewhere(tmp_path: Path, autocast_settings: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The engine was built and profiled on an H200; the report of it is written here, with no GPU."""
    out = tmp_path / "report.html"
    folder = RTX / "ref_autocast_excl_linear2" / "profile"
    assert main(["report", "example", "--settings", str(autocast_settings), "--out", str(out),
                 "--profile", str(folder), "--color-by", "mismatch"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "_myl0_" in text, "the engine's own layers are in the report"
    capsys.readouterr()
    assert main(["report", "example", "--out", str(out), "--profile", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "--profile:" in err and "not a folder" in err
    assert out.read_text(encoding="utf-8") == text, "a failed report leaves the earlier one as it was"


def test_demo_captures_prints_and_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.json"
    assert main(["demo", "--out", str(out), "--width", "200"]) == 0
    printed = capsys.readouterr().out
    assert "^linear2$" in printed and "torch_tensorrt.dynamo.compile(" in printed
    s = Settings.load(out)
    assert s.enable_autocast and s.autocast_excluded_nodes == {"^linear2$"} and s.use_fp32_acc


@pytest.mark.parametrize(("argv", "message"), [
    (["plan", "no_such_package_xyz:build"], "cannot import 'no_such_package_xyz'"),
    (["plan", "os.path:no_such_function"], "has no attribute"),
    (["plan", "justaname"], "MODEL must be 'package.module:callable'"),
    (["plan", "os:sep"], "is not callable"),
    (["plan", "example", "--settings", "/nonexistent/settings.json"], "cannot read settings file"),
])
def test_bad_model_or_settings_exit_2_with_a_clear_message(argv: list[str], message: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_malformed_settings_and_models_that_do_not_capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "mixprec_explorer.settings", "version": 1, "settings": {"enable_autocast": "yes"}}')
    assert main(["plan", "example", "--settings", str(bad)]) == 2
    assert "enable_autocast must be bool" in capsys.readouterr().err
    (tmp_path / "my_models.py").write_text(textwrap.dedent("""
        import torch

        def wrong():
            return torch.nn.Linear(2, 2)

        class Branchy(torch.nn.Module):
            def forward(self, x):
                if x.sum() > 0:  # data-dependent control flow: torch.export cannot capture it
                    return x * 2
                return x

        def branchy():
            return Branchy(), (torch.randn(3),)

        def tiny():
            return torch.nn.Sequential(torch.nn.Linear(4, 4)).eval(), (torch.randn(1, 4),)

        def resnet18():
            return torch.nn.Identity()

        def broken():
            raise RuntimeError("the weights file is missing")
    """))
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "my_models:wrong"]) == 2
    err = capsys.readouterr().err
    assert "must return (model, example_inputs), got Linear: a model without example inputs" in err
    assert main(["plan", "my_models:resnet18"]) == 2
    assert "or use the zoo's: zoo:resnet18" in capsys.readouterr().err
    assert main(["plan", "my_models:broken"]) == 2
    err = capsys.readouterr().err
    assert "raised RuntimeError: the weights file is missing (at " in err and "my_models.py" in err
    assert "Traceback" not in err
    assert main(["plan", "my_models:branchy"]) == 2
    assert "could not capture" in capsys.readouterr().err
    assert main(["plan", "my_models:tiny", "--width", "200"]) == 0
    assert "linear" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["export", "example"]) == 2  # --out is required
    assert main(["--help"]) == 0
    assert "plan" in capsys.readouterr().out


def test_builtin_names_load_reference_models() -> None:
    model, inputs = load_model("example")
    assert type(model).__name__ == "AutocastModel" and inputs[0].shape == (1, 10)
    assert type(load_model("example:explicit")[0]).__name__ == "ExplicitTypingModel"


def test_runs_as_a_module_in_a_subprocess(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mixprec_explorer.cli", "plan", "example", "--width", "200"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "linear_2" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "mixprec_explorer.cli", "plan", "nope:nothing"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert bad.returncode == 2 and "cannot import" in bad.stderr


# -- output that fits a terminal or a pipe -----------------------------------------------------------------------
README = Path(__file__).resolve().parents[1] / "README.md"
BOX = re.compile("[\u2500-\u257f]")  # rich's box-drawing characters
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _words(text: str) -> list[str]:
    return BOX.sub(" ", text).split()


@pytest.fixture(scope="module")
def transformer_settings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Autocast with a module exclusion: long reasons, with a module path in them."""
    path = tmp_path_factory.mktemp("settings") / "transformer.json"
    path.write_text(json.dumps({"enable_autocast": True, "autocast_low_precision_type": "float16",
                                "autocast_excluded_nodes": [r"^layers\.0\.self_attn"]}))
    return path


@pytest.fixture(scope="module")
def piped_transformer(transformer_settings: Path) -> str:
    """``plan example:transformer`` through a real pipe."""
    done = subprocess.run(f"{_cli()} plan example:transformer --settings {transformer_settings} | cat",
                          shell=True, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _cli() -> str:
    return f"{shlex.quote(sys.executable)} -m mixprec_explorer.cli"


def test_piped_plan_puts_each_node_on_one_line(piped_transformer: str) -> None:
    from mixprec_explorer import Explorer
    from mixprec_explorer.examples import transformer_encoder

    ex = Explorer(*transformer_encoder(layers=2))
    plan = list(ex.plan(Settings(enable_autocast=True, autocast_low_precision_type=torch.float16,
                                 autocast_excluded_nodes={r"^layers\.0\.self_attn"})))
    lines = piped_transformer.splitlines()
    for rec in plan:
        op = rec.op.replace("torch.ops.", "")
        assert any(f" {rec.name} " in line and op in line and rec.reason in line for line in lines), rec
    # title, 3 header rules, header, one line per node, bottom rule, summary
    assert len(lines) == len(plan) + 6
    assert "…" not in piped_transformer


@pytest.mark.parametrize("width", [200, 150, 120, 80, 50])
def test_a_given_width_is_met_without_splitting_a_word(width: int, transformer_settings: Path, piped_transformer: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from rich.cells import cell_len

    assert main(["plan", "example:transformer", "--settings", str(transformer_settings), "--width", str(width)]) == 0
    out = capsys.readouterr().out
    assert max(cell_len(line) for line in out.splitlines()) <= width
    whole = set(_words(piped_transformer))
    assert not [w for w in _words(out) if w not in whole], "a word was split or cut"
    assert "aten.scaled_dot_product_attention.default" in out


def _run_in_terminal(argv: list[str], columns: int, cwd: Path) -> str:
    """Run the CLI with stdout on a real pseudo-terminal ``columns`` wide; its output without colour codes."""
    pty = pytest.importorskip("pty", reason="needs a POSIX pseudo-terminal")
    import fcntl
    import struct
    import termios

    try:
        leader, follower = pty.openpty()
    except OSError as err:
        pytest.skip(f"no pseudo-terminal here: {err}")
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR",
                                                            "TTY_COMPATIBLE")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen([sys.executable, "-m", "mixprec_explorer.cli", *argv], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=subprocess.PIPE, cwd=cwd, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


@pytest.mark.parametrize(("columns", "layout"), [(80, "blocks"), (200, "table")])
def test_a_terminal_gets_the_plan_fitted_to_its_width(columns: int, layout: str, tmp_path: Path,
                                                      transformer_settings: Path, piped_transformer: str) -> None:
    from rich.cells import cell_len

    out = _run_in_terminal(["plan", "example:transformer", "--settings", str(transformer_settings)], columns,
                           tmp_path)
    assert max(cell_len(line) for line in out.splitlines()) <= columns
    assert ("┃ node" in out) == (layout == "table")
    whole = set(_words(piped_transformer))
    assert not [w for w in _words(out) if w not in whole], "a word was split or cut"
    assert "aten.scaled_dot_product_attention.default" in out


@pytest.mark.parametrize("pipeline", [
    "plan example:resnet50 | head -3",
    "plan example | true",
    "export example --out settings.json | true",
])
def test_a_closed_pipe_ends_quietly_with_status_0(pipeline: str, tmp_path: Path) -> None:
    done = subprocess.run(["bash", "-o", "pipefail", "-c", f"{_cli()} {pipeline}"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert "BrokenPipe" not in done.stderr
    if "head -3" in pipeline:
        assert len(done.stdout.splitlines()) == 3


# -- built-in examples ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "hint"), [("example:nosuch", ""), ("example:resnet", "did you mean 'example:resnet50'")])
def test_an_unknown_builtin_example_lists_the_valid_ones(spec: str, hint: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mixprec_explorer.cli", "plan", spec], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert f"unknown built-in example {spec!r}" in done.stderr and hint in done.stderr
    assert all(name in done.stderr for name in BUILTIN_MODELS)
    assert "cannot import" not in done.stderr and "Traceback" not in done.stderr


def test_every_builtin_example_loads() -> None:
    for name in BUILTIN_MODELS:
        model, inputs = load_model(name)
        assert isinstance(model, torch.nn.Module) and isinstance(inputs, tuple), name


def _readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def test_the_readme_lists_exactly_the_builtin_examples() -> None:
    section = _readme_section("Notebooks and the command line")
    paragraph = section[section.index("`MODEL` is"):].split("\n\n")[0]
    assert re.findall(r"`(example(?::\w+)?)`", paragraph) == list(BUILTIN_MODELS)


def test_the_readme_settings_file_example_runs(tmp_path: Path) -> None:
    section = _readme_section("Notebooks and the command line")
    script = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    nested = re.search(r"```json\n(.*?)```", section, flags=re.S)
    assert script and nested
    cli_dir = Path(sys.executable).parent
    if not (cli_dir / "mixprec-explorer").exists():
        pytest.skip("the mixprec-explorer script is not installed beside this Python")
    env = {**os.environ, "PATH": f"{cli_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-e", "-c", script.group(1)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in done.stdout.splitlines()
             if line.startswith("│ linear")]
    rows = {row[0]: row[2:5] for row in cells}  # node: module, dtype, accumulate
    assert rows == {"linear": ["linear1", "FP16", "FP32"], "linear_1": ["linear2", "FP32", ""],
                    "linear_2": ["linear3", "FP16", "FP32"]}
    flat = Settings.load(tmp_path / "plan.json")
    assert json.loads(nested.group(1)) == flat.to_dict(), "the nested example is what export writes for the flat one"
    assert Settings.from_json(nested.group(1)) == flat


@pytest.mark.parametrize("width", ["0", "-5", "wide"])
def test_a_bad_width_is_a_usage_error(width: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "example", "--width", width]) == 2
    assert "--width" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["plan", "--help"]])
def test_help_imports_no_torch_plotly_or_rich(argv: list[str]) -> None:
    """The parser is built from the standard library alone: ``--help`` answers before torch would load."""
    probe = ("import runpy, sys\n"
             f"sys.argv = ['mixprec-explorer', *{argv!r}]\n"
             "try:\n"
             "    runpy.run_module('mixprec_explorer.cli', run_name='__main__')\n"
             "except SystemExit:\n"
             "    pass\n"
             "heavy = sorted(m for m in ('torch', 'plotly', 'rich', 'networkx', 'numpy', 'ipywidgets') "
             "if m in sys.modules)\n"
             "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "usage: mixprec-explorer" in done.stdout
    assert "HEAVY=\n" in done.stderr, done.stderr
