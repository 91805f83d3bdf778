"""Targets: one Torch-TensorRT release and TensorRT flavour, chosen or detected; its settings, compile call and the
upgrade diff between two of them. The network tests read each release's published wheels (tests/_wheels.py)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixprec_explorer import Explorer, Settings, SettingsError
from mixprec_explorer.examples import reference_autocast_model
from mixprec_explorer.settings import PRECISION_KEYWORDS
from mixprec_explorer.targets import (
    NEWEST,
    RELEASES,
    SETTING_RELEASES,
    SUPPORTED,
    TargetWarning,
    detect_target,
    has_setting,
    resolve_target,
)

from _models import MLP
from _wheels import Release, release_loader

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
BF16 = FP16.replace(autocast_low_precision_type=torch.bfloat16)


# -- naming and detecting a target -------------------------------------------------------------------------------
@pytest.mark.parametrize("text, spec", [("2.13", "2.13"), ("2.12.1", "2.12"), ("v2.11.0", "2.11"),
                                        ("2.12-rtx", "2.12-rtx"), ("torch-tensorrt-rtx==2.14.0", "2.14-rtx")])
def test_a_target_is_read_from_what_a_user_writes(text: str, spec: str) -> None:
    assert resolve_target(text).spec == spec
    assert resolve_target(resolve_target(text).spec) == resolve_target(text)


@pytest.mark.parametrize("text, message", [("2.9", r"2\.10, 2\.11, 2\.12, 2\.13, 2\.14"), ("latest", "names no release"),
                                           (213, "must be a string")])
def test_a_target_that_is_not_modelled_is_refused_with_the_ones_that_are(text, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        resolve_target(text)


def _dist_info(root: Path, name: str, version: str) -> None:
    folder = root / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder on sys.path where a test installs package metadata; the detection cache is cleared around it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    detect_target.cache_clear()
    yield tmp_path
    detect_target.cache_clear()


def test_the_installed_torch_tensorrt_rtx_is_detected_from_its_metadata(site: Path) -> None:
    _dist_info(site, "torch-tensorrt-rtx", "2.11.0")
    _dist_info(site, "tensorrt-rtx-cu13-libs", "1.4.0.76")
    target = detect_target()
    assert (target.spec, target.origin) == ("2.11-rtx", "installed")
    assert "tensorrt-rtx-cu13-libs 1.4.0.76" in target.describe() and "torch_tensorrt" not in sys.modules
    with pytest.raises(SettingsError, match=r"on TensorRT-RTX.*strongly typed networks only"):
        Explorer(MLP().eval(), (torch.randn(2, 8),), Settings(use_explicit_typing=False))  # detected: RTX


def test_an_installed_release_not_modelled_warns_and_uses_the_newest(site: Path) -> None:
    _dist_info(site, "torch-tensorrt", "2.9.0")
    with pytest.warns(TargetWarning, match=r"torch-tensorrt 2\.9\.0 .*does not model"):
        target = detect_target()
    assert target.spec == NEWEST and "2.9.0" in target.installed


def test_without_torch_tensorrt_the_default_is_the_newest_release() -> None:
    detect_target.cache_clear()
    if any(_version(d) for d in ("torch-tensorrt", "torch-tensorrt-rtx")):
        pytest.skip("torch-tensorrt is installed here")
    assert (detect_target().spec, detect_target().origin) == (NEWEST, "default")


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def test_importing_the_package_and_detecting_loads_no_torch_tensorrt() -> None:
    code = ("import sys, mixprec_explorer.targets as t; t.detect_target(); import mixprec_explorer.settings; "
            "print([m for m in sys.modules if m.startswith(('torch_tensorrt', 'tensorrt'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


# -- settings per target ------------------------------------------------------------------------------------------
def test_compile_kwargs_carry_only_the_target_releases_keywords() -> None:
    for release in SUPPORTED:
        kwargs = FP16.to_compile_kwargs(target=release)
        assert set(kwargs) == {k for k in PRECISION_KEYWORDS if has_setting(release, k)}
        assert ("use_explicit_typing" in kwargs) is RELEASES[release].weak_typing


@pytest.mark.parametrize("release", ["2.13", "2.14", "2.12-rtx"])
def test_weak_typing_where_the_release_has_none_names_the_one_that_has(release: str) -> None:
    with pytest.raises(SettingsError, match=r"target='2\.12'"):
        Settings(use_explicit_typing=False, target=release)
    weak = Settings(use_explicit_typing=False)  # unbound: fine until a target without weak typing takes it
    assert weak.to_compile_kwargs(target="2.12")["use_explicit_typing"] is False
    with pytest.raises(SettingsError, match="pytorch/TensorRT#4195" if "rtx" not in release else "strongly typed"):
        weak.to_python(target=release)


def test_bf16_is_taken_by_every_target() -> None:
    # Torch-TensorRT 2.10-2.11 refuse BF16 only in enabled_precisions (weak typing, which TensorRT-RTX never has):
    # BF16 autocast built and ran on 2.11 with TensorRT-RTX 1.4.0.76 (H100), a depthwise convolution included
    for release in (*SUPPORTED, *(f"{r}-rtx" for r in SUPPORTED)):
        assert BF16.to_compile_kwargs(target=release)["autocast_low_precision_type"] == torch.bfloat16


def _call_keywords(snippet: str) -> dict[str, str]:
    call = next(n for n in ast.walk(ast.parse(snippet)) if isinstance(n, ast.Call)
                and ast.unparse(n.func).endswith("dynamo.compile"))
    return {k.arg: ast.unparse(k.value) for k in call.keywords if k.arg}


def test_the_snippet_names_its_release_and_only_its_keywords() -> None:
    s = FP16.replace(autocast_excluded_nodes={"^fc1$"}, use_fp32_acc=True)
    old, new = s.to_python(target="2.12", calibration=True), s.to_python(target="2.13", calibration=True)
    assert old.startswith("# for torch-tensorrt 2.12 with TensorRT 10.16.1") and "TensorRT 11.0.0" in new
    assert _call_keywords(old)["use_explicit_typing"] == "True" and "use_explicit_typing" not in _call_keywords(new)
    assert _call_keywords(new) == {k: v for k, v in _call_keywords(old).items() if k != "use_explicit_typing"}
    assert _call_keywords(new)["autocast_calibration_dataloader"] == "calibration_dataloader"


def test_a_bound_target_round_trips_through_json_and_leaves_out_what_the_release_lacks(tmp_path: Path) -> None:
    s = FP16.replace(target="2.13")
    doc = s.to_dict()["settings"]
    assert doc["target"] == "2.13" and "use_explicit_typing" not in doc
    assert Settings.from_json(s.to_json()) == s and Settings.load(s.save(tmp_path / "s.json")) == s
    assert "target" not in FP16.to_dict()["settings"]  # unbound settings stay unbound
    with pytest.raises(SettingsError, match=r"settings: target release '2\.9'"):
        Settings.from_dict({"target": "2.9"})


def test_fp32_accumulation_is_planned_on_tensorrt_and_tensorrt_rtx_alike() -> None:
    # impl/matmul.py casts where net.get_flag(STRONGLY_TYPED) holds; TensorRT-RTX 1.4, 1.5 and 1.6 report the flag
    # set on a network created without it (seen on an H100), so Torch-TensorRT's casts apply there too
    ex = Explorer(*reference_autocast_model(), target="2.13")
    s = FP16.replace(use_fp32_acc=True)
    accumulated = {r.name for r in ex.plan(s) if r.accumulate_dtype == torch.float32}
    assert accumulated == {r.name for r in ex.plan(s) if "linear" in r.op}
    ex.target = "2.13-rtx"
    assert {r.name for r in ex.plan(s) if r.accumulate_dtype == torch.float32} == accumulated


# -- the explorer's target ---------------------------------------------------------------------------------------
def test_the_explorer_speaks_for_its_target_and_refuses_settings_bound_to_another(tmp_path: Path) -> None:
    ex = Explorer(MLP().eval(), (torch.randn(2, 8),), target="2.12")
    ex.settings = Settings(use_explicit_typing=False)  # weak typing: 2.12 still has it
    snippet = ex.export_settings(tmp_path / "compile.py").read_text()
    assert "use_explicit_typing=False" in snippet and "torch-tensorrt 2.12" in snippet
    with pytest.raises(SettingsError, match=r"pytorch/TensorRT#4195"):
        ex.target = "2.13"  # the current settings would mean nothing there
    assert ex.target.spec == "2.12"
    with pytest.raises(SettingsError, match=r"bound to target 2\.14 but the explorer targets 2\.12"):
        ex.settings = FP16.replace(target="2.14")
    ex.settings = FP16
    ex.target = "2.14"
    assert "use_explicit_typing" not in ex.export_settings(tmp_path / "compile.py").read_text()
    assert ex.plan().target.spec == "2.14"


def test_on_tensorrt_rtx_2_12_bf16_depthwise_convolutions_run_in_pytorch() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, groups=4, padding=1), torch.nn.Conv2d(4, 8, 1)).eval()
    ex = Explorer(model, (torch.randn(1, 4, 8, 8),), target="2.12-rtx")
    plan = ex.plan(BF16)
    depthwise = next(r.name for r in plan if r.module == "0")
    assert list(plan.fallbacks) == [depthwise] and "#4178" in plan[depthwise].reason
    assert ex.plan(FP16).fallbacks == {}  # FP16 depthwise convolutions stay in the engine
    assert ex.plan(BF16.replace(autocast_excluded_nodes={"^0$"})).fallbacks == {}  # kept FP32: no BF16 input
    datacenter = Explorer(model, (torch.randn(1, 4, 8, 8),), target="2.12")
    assert datacenter.plan(BF16).fallbacks == {}
    ex.target = "2.13-rtx"  # pytorch/TensorRT#4306 removed this TensorRT-RTX 1.4-era fallback
    assert ex.plan(BF16).fallbacks == {}


def test_on_tensorrt_rtx_2_13_strided_dilated_transposed_convolutions_run_in_pytorch() -> None:
    model = torch.nn.Sequential(torch.nn.ConvTranspose2d(4, 4, 3, stride=2, dilation=2),
                                torch.nn.ConvTranspose2d(4, 4, 3, stride=2)).eval()
    ex = Explorer(model, (torch.randn(1, 4, 8, 8),), target="2.13-rtx")
    plan = ex.plan(FP16)
    assert [plan[n].module for n in plan.fallbacks] == ["0"] and "#4306" in next(iter(plan.fallbacks.values()))
    ex.target = "2.12-rtx"
    assert ex.plan(FP16).fallbacks == {}


# -- the upgrade diff ---------------------------------------------------------------------------------------------
def test_upgrading_2_11_to_2_13_moves_no_node_and_drops_explicit_typing() -> None:
    ex = Explorer(*reference_autocast_model())
    ex.settings = FP16.replace(autocast_excluded_nodes={"^linear2$"})
    diff = ex.compare_targets("2.11", "2.13")
    assert diff.nodes == () and diff.counts_before == diff.counts_after == {"FP16": 2, "FP32": 1}
    vanished = {c.setting for c in diff.settings if c.kind == "vanishes"}
    assert vanished == {"use_explicit_typing", "enabled_precisions"}
    assert "use_explicit_typing=True" in diff.compile_before and "use_explicit_typing" not in diff.compile_after
    text = diff.text()
    assert "0 node(s) change" in text and "TensorRT 10.15.1" in text and "'Bindings' became 'I/O Tensors'" in text


def test_weak_typing_upgraded_to_2_13_becomes_strong_typing_node_by_node() -> None:
    ex = Explorer(*reference_autocast_model(), target="2.12")
    ex.settings = Settings(use_explicit_typing=False)
    diff = ex.compare_targets("2.12", "2.13")
    assert diff.refused_after and not diff.refused_before
    assert len(diff.nodes) == 3 and {(n.before, n.after) for n in diff.nodes} == {("TensorRT picks", "FP32")}
    assert "refuses these settings" in diff.compile_after and "use_explicit_typing" not in diff.compile_after
    assert "becomes strong typing" in diff.text()


def test_tensorrt_rtx_2_12_moves_bf16_depthwise_convolutions_to_pytorch_and_2_13_back() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, groups=4, padding=1), torch.nn.Conv2d(4, 8, 1)).eval()
    ex = Explorer(model, (torch.randn(1, 4, 8, 8),))
    diff = ex.compare_targets("2.11-rtx", "2.12-rtx", BF16)
    (shift,) = diff.nodes
    assert (shift.module, shift.before, shift.after) == ("0", "BF16", "BF16 in PyTorch") and "#4178" in shift.why
    assert [c.setting for c in diff.settings if c.kind == "changes meaning"] == ["convolutions on TensorRT-RTX"]
    back = ex.compare_targets("2.12-rtx", "2.13-rtx", BF16).nodes
    assert [(n.before, n.after) for n in back] == [("BF16 in PyTorch", "BF16")]
    weak = ex.compare_targets("2.12", "2.12-rtx", Settings(use_explicit_typing=False))
    assert weak.refused_after and weak.compile_after.startswith("# none") and weak.nodes == ()


# -- against each release's own sources (downloaded wheels) --------------------------------------------------------
WHEEL_OF = {"2.10": "2.10.0", "2.11": "2.11.0", "2.12": "2.12.1", "2.13": "2.13.0", "2.14": "2.14.0"}
RTX_WHEEL_OF = {"2.11": "2.11.0", "2.12": "2.12.1", "2.13": "2.13.0", "2.14": "2.14.0"}


@pytest.fixture(scope="session")
def release(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory):
    return release_loader(pytestconfig, tmp_path_factory)


def _settings_fields(wheel: Release) -> dict[str, str]:
    """``CompilationSettings`` field -> its default expression, from the release's ``dynamo/_settings.py``."""
    tree = ast.parse(wheel.source("dynamo/_settings.py"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CompilationSettings")
    return {s.target.id: ast.unparse(s.value) if s.value else "" for s in cls.body
            if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


def _requires(wheel: Release, package: str) -> set[str]:
    """The version specifiers a wheel's METADATA gives for ``package``."""
    metadata = wheel.zip.read(next(n for n in wheel.names if n.endswith(".dist-info/METADATA"))).decode()
    found = re.search(rf"^Requires-Dist: {package} ?\(?([^;\n)]*)", metadata, re.MULTILINE)
    assert found is not None, package
    return {part.strip() for part in found.group(1).split(",")}


def _defaults(wheel: Release) -> dict[str, str]:
    tree = ast.parse(wheel.source("dynamo/_defaults.py"))
    return {t.id: ast.unparse(n.value) for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
            if isinstance(t, ast.Name)}


@pytest.mark.network
@pytest.mark.parametrize("minor", SUPPORTED)
def test_the_snippets_arguments_are_the_releases_compilation_settings(minor: str, release) -> None:
    wheel = release(WHEEL_OF[minor])
    fields = _settings_fields(wheel)
    signature = set(wheel.compile_signature().parameters)
    everything = FP16.replace(autocast_excluded_nodes={"^fc1$"}, autocast_excluded_ops={"torch.ops.aten.relu.default"},
                              autocast_max_output_threshold=100.0, autocast_max_depth_of_reduction=64,
                              use_fp32_acc=True)
    keywords = set(_call_keywords(everything.to_python(target=minor, calibration=True))) - {"inputs"}
    assert keywords <= set(fields) and keywords <= signature, keywords - set(fields)
    # and nothing of the release's precision settings is missing
    assert {k for k in (*PRECISION_KEYWORDS, "autocast_calibration_dataloader") if k in fields} == keywords
    for name in SETTING_RELEASES:
        assert (name in signature) == has_setting(minor, name), name


@pytest.mark.network
@pytest.mark.parametrize("minor", SUPPORTED)
def test_our_defaults_are_the_releases(minor: str, release) -> None:
    defaults = _defaults(release(WHEEL_OF[minor]))
    ours = Settings().to_compile_kwargs(target=minor)
    expected = {"use_fp32_acc": "USE_FP32_ACC", "enable_autocast": "ENABLE_AUTOCAST",
                "autocast_low_precision_type": "AUTOCAST_LOW_PRECISION_TYPE",
                "autocast_max_output_threshold": "AUTOCAST_MAX_OUTPUT_THRESHOLD",
                "autocast_max_depth_of_reduction": "AUTOCAST_MAX_DEPTH_OF_REDUCTION",
                "use_explicit_typing": "USE_EXPLICIT_TYPING"}
    for key, constant in expected.items():
        if key in ours:
            assert ast.literal_eval(defaults[constant]) == ours[key], key
        else:
            assert constant not in defaults, constant
    assert defaults["AUTOCAST_EXCLUDED_NODES"] == "set[str]()" and ours["autocast_excluded_nodes"] == set()


@pytest.mark.network
@pytest.mark.parametrize("minor", SUPPORTED)
def test_each_releases_facts_are_read_from_its_wheels(minor: str, release) -> None:
    facts = RELEASES[minor]
    wheel = release(WHEEL_OF[minor])
    version = wheel.source("_version.py")
    assert f'__tensorrt_version__ = "{facts.tensorrt}"' in version
    assert f'__tensorrt_rtx_version__ = "{facts.tensorrt_rtx}"' in version
    assert f'__cuda_version__ = "{facts.cuda}"' in version
    assert _requires(wheel, r"tensorrt-cu13") == set(facts.tensorrt_requires.split(","))
    assert _requires(wheel, r"torch") == set(facts.torch.split(","))
    converters = wheel.source("dynamo/conversion/aten_ops_converters.py")
    assert ("Depthwise convolutions in BF16" in converters) is facts.rtx_depthwise_bf16_fallback
    assert ("Strided + dilated deconvolution" in converters) is (minor in ("2.13", "2.14"))
    # FP32 accumulation: impl/matmul.py casts only on a strongly typed network (TensorRT-RTX reports one, seen live)
    assert "ctx.net.get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)" in wheel.source(
        "dynamo/conversion/impl/matmul.py")
    decompositions = wheel.source("dynamo/lowering/_decompositions.py")
    assert ("FP32_ACC_ATTENTION_DECOMPOSITIONS" in decompositions) is facts.fp32_acc_attention
    if minor in RTX_WHEEL_OF:
        rtx = release(RTX_WHEEL_OF[minor], "torch-tensorrt-rtx")
        assert _requires(rtx, "tensorrt_rtx") == set(facts.tensorrt_rtx_requires.split(","))
        assert rtx.source("dynamo/conversion/_TRTInterpreter.py") == wheel.source(
            "dynamo/conversion/_TRTInterpreter.py")  # one source for both flavours
    else:
        assert facts.tensorrt_rtx_requires == ""  # no torch-tensorrt-rtx 2.10 on the package index



def test_the_widget_shows_the_compile_call_of_its_target_or_the_upgrade_diff() -> None:
    pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget (test extra)")
    from mixprec_explorer.widget.app import WidgetApp

    ex = Explorer(*reference_autocast_model(), target="2.12")
    ex.settings = FP16
    app = WidgetApp(ex)
    app.refresh()
    assert "use_explicit_typing=True" in app.snippet.value and "torch-tensorrt 2.12" in app.snippet.value
    app.export_panel.compare_to.value = "2.13"
    assert app.snippet.description == "2.12 -> 2.13" and "[vanishes] use_explicit_typing" in app.snippet.value
    app.export_panel.compare_to.value = ""
    assert app.snippet.value.startswith("# for torch-tensorrt 2.12")
