"""The command line: plan, export, report, demo; clear errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mixprec_explorer import Settings
from mixprec_explorer.cli import load_model, main


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
    assert "explicit" in out and "removed" in out


def test_export_json_and_python(tmp_path: Path, autocast_settings: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exported.json"
    assert main(["export", "example", "--settings", str(autocast_settings), "--out", str(out)]) == 0
    assert Settings.load(out) == Settings.load(autocast_settings)
    py = tmp_path / "compile.py"
    assert main(["export", "example", "--settings", str(autocast_settings), "--out", str(py)]) == 0
    assert "torch_tensorrt.dynamo.compile(" in py.read_text()
    txt = tmp_path / "snippet.txt"
    assert main(["export", "example", "--out", str(txt), "--format", "python"]) == 0
    assert "use_explicit_typing=True" in txt.read_text()
    assert "wrote" in capsys.readouterr().out


def test_report_writes_standalone_html(tmp_path: Path, autocast_settings: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "example", "--settings", str(autocast_settings), "--out", str(out),
                 "--group-by-module", "1", "--color-by", "reason"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "<!DOCTYPE html>" in text and "^linear2$" in text and "Plotly" in text


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
    """))
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "my_models:wrong"]) == 2
    assert "must return (model, example_inputs)" in capsys.readouterr().err
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
