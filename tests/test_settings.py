"""Settings: Torch-TensorRT's names, defaults and constraints; JSON in and out, safely."""

from __future__ import annotations

import ast
import dataclasses
import json
import os

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mixprec_explorer import Settings, SettingsError
from mixprec_explorer.settings import write_atomic


def test_defaults_are_torch_tensorrt_defaults():
    s = Settings()
    common = {"enable_autocast": False, "autocast_low_precision_type": None,
              "autocast_excluded_nodes": set(), "autocast_excluded_ops": set(),
              "autocast_max_output_threshold": 512.0, "autocast_max_depth_of_reduction": None, "use_fp32_acc": False}
    for release in ("2.10", "2.11", "2.12"):
        assert s.to_compile_kwargs(target=release) == {"use_explicit_typing": True, **common}
    for release in ("2.13", "2.14"):  # pytorch/TensorRT#4195 removed use_explicit_typing: strong typing only
        assert s.to_compile_kwargs(target=release) == common


@pytest.mark.parametrize("kwargs, message", [
    ({"enable_autocast": True, "use_explicit_typing": False}, "needs use_explicit_typing=True"),
    ({"use_fp32_acc": True, "use_explicit_typing": False}, "needs use_explicit_typing=True"),
    ({"autocast_low_precision_type": torch.float32}, "must be torch.float16 or torch.bfloat16"),
    ({"autocast_low_precision_type": 16}, "must be a torch.dtype"),
    ({"autocast_excluded_nodes": {"layer[1"}}, "not a valid regular expression"),
    ({"autocast_excluded_nodes": "^fc1$"}, "not a single string"),
    ({"autocast_excluded_ops": {"torch.ops.aten.lienar.default"}}, "did you mean torch.ops.aten.linear.default"),
    ({"autocast_max_output_threshold": "big"}, "must be a number"),
    ({"autocast_max_depth_of_reduction": -1}, "non-negative int"),
    ({"enable_autocast": "yes"}, "must be True or False"),
])
def test_invalid_settings_name_the_problem_and_fix(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        Settings(**kwargs)


def test_op_objects_become_the_strings_torch_tensorrt_compares():
    s = Settings(autocast_excluded_ops={torch.ops.aten.softmax.int})
    assert s.autocast_excluded_ops == {"torch.ops.aten.softmax.int"}


def test_to_python_is_a_runnable_compile_call():
    s = Settings(enable_autocast=True, autocast_low_precision_type=torch.bfloat16,
                 autocast_excluded_nodes={"^fc1$"}, use_fp32_acc=True)
    tree = ast.parse(s.to_python())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("dynamo.compile"))
    kwargs = {k.arg: ast.unparse(k.value) for k in call.keywords}
    assert kwargs["autocast_low_precision_type"] == "torch.bfloat16"
    assert kwargs["autocast_excluded_nodes"] == "{'^fc1$'}" and kwargs["use_fp32_acc"] == "True"


settings_strategy = st.builds(
    Settings,
    enable_autocast=st.booleans(),
    autocast_low_precision_type=st.sampled_from([None, torch.float16, torch.bfloat16]),
    autocast_excluded_nodes=st.frozensets(st.sampled_from(["^fc1$", "layer1", r"^layers\.0\.", ".*relu"])),
    autocast_excluded_ops=st.frozensets(st.sampled_from(["torch.ops.aten.linear.default",
                                                         "torch.ops.aten.softmax.int"])),
    autocast_max_output_threshold=st.floats(0, 1e6),
    autocast_max_depth_of_reduction=st.none() | st.integers(0, 10**6),
    use_fp32_acc=st.booleans(),
)


@given(settings_strategy)
def test_json_round_trip_is_exact(s):
    assert Settings.from_json(s.to_json()) == s


@pytest.mark.parametrize("doc, message", [
    ({"schema": "mixprec_explorer.settings", "version": 1, "settings": {"use_fp16": True}}, "unknown settings"),
    ({"schema": "mixprec_explorer.settings", "version": 1, "settings": {"use_fp32_acc": "true"}},
     "use_fp32_acc must be bool"),
    ({"schema": "mixprec_explorer.settings", "version": 1,
      "settings": {"autocast_max_depth_of_reduction": 2.5}}, "must be int or null"),
    ({"schema": "mixprec_explorer.settings", "version": 99, "settings": {}}, "unsupported version 99"),
    ({"schema": "other", "version": 1, "settings": {}}, "'schema' must be"),
    ({"schema": "mixprec_explorer.settings", "version": 1, "settings": {}, "code": "x"},
     "unknown top-level key 'code'"),
    ({"settings": {"schema": "mixprec_explorer.settings"}}, "'settings.schema' .it belongs at top level"),
    ({"settings": []}, "'settings' must be a JSON object, got an array"),
    ([1, 2], "expected a JSON object, got an array"),
    ({"enable_autocast": "true"}, "enable_autocast must be bool"),
    ({"autocast_excluded_nodes": "^linear2$"}, r'must be list, got "\^linear2\$"; write \["\^linear2\$"\]'),
    ({"autocast_excluded_ops": [1]}, "must be a list of strings"),
    ({"autocast_low_precision_type": "fp16"}, "unknown dtype 'fp16'"),
    ({"version": 2, "enable_autocast": True}, "unsupported version 2"),
])
def test_bad_json_is_rejected_by_name(doc, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_json(json.dumps(doc))


def test_not_json_is_an_error_not_code(tmp_path):
    path = tmp_path / "evil.json"
    marker = tmp_path / "ran"
    path.write_text(f"__import__('pathlib').Path({str(marker)!r}).touch()")
    with pytest.raises(SettingsError, match="not valid JSON"):
        Settings.load(path)
    assert not marker.exists()


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    Settings().save(path)
    before = path.read_text()

    def crash(*args, **kwargs):
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        Settings(use_fp32_acc=True).save(path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"], "no temporary file left behind"


def test_load_missing_file_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="cannot read settings file"):
        Settings.load(tmp_path / "nope.json")


def test_write_atomic_creates_parents(tmp_path):
    assert write_atomic(tmp_path / "a" / "b.txt", "x").read_text() == "x"


def test_written_files_keep_usual_permissions(tmp_path):
    fresh = write_atomic(tmp_path / "new.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask, "not mkstemp's private 0600"
    kept = tmp_path / "shared.json"
    kept.write_text("{}")
    kept.chmod(0o640)
    write_atomic(kept, "[]")
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "[]"


# -- the settings file: flat or nested, read as JSON only ----------------------------------------------------------
FLAT = {"enable_autocast": True, "autocast_low_precision_type": "float16", "autocast_excluded_nodes": ["^linear2$"],
        "use_fp32_acc": True}
EXPECTED = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16,
                    autocast_excluded_nodes={"^linear2$"}, use_fp32_acc=True)


@pytest.mark.parametrize("doc", [
    FLAT,
    {"schema": "mixprec_explorer.settings", "version": 1, **FLAT},
    {"schema": "mixprec_explorer.settings", "version": 1, "settings": FLAT},
    {"settings": FLAT},
], ids=["flat", "flat-with-schema", "nested", "nested-without-schema"])
def test_a_settings_file_may_be_flat_or_nested(doc, tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    assert Settings.load(path) == EXPECTED


@given(settings_strategy)
def test_the_flat_form_round_trips(s):
    assert Settings.from_json(json.dumps(s.to_dict()["settings"])) == s


def test_an_empty_object_is_the_defaults():
    assert Settings.from_json("{}") == Settings()


@pytest.mark.parametrize(("doc", "key", "suggestion"), [
    ({"enable_autocast": True, "autocast_low_precison_type": "float16"}, "autocast_low_precison_type",
     "autocast_low_precision_type"),
    ({"autocast_exclude_nodes": ["^fc$"]}, "autocast_exclude_nodes", "autocast_excluded_nodes"),
    ({"Settings": {"enable_autocast": True}}, "Settings", "settings"),
    ({"settings": {"enable_autocastt": True}}, "settings.enable_autocastt", "enable_autocast"),
    ({"enabled_precisions": ["float16"]}, "enabled_precisions", None),
])
def test_an_unknown_key_is_named_with_the_closest_and_the_valid_ones(doc, key, suggestion):
    with pytest.raises(SettingsError) as caught:
        Settings.from_json(json.dumps(doc))
    message = str(caught.value)
    assert f"unknown settings key {key!r}" in message
    assert (f"did you mean {suggestion!r}?" in message) if suggestion else ("did you mean" not in message)
    assert "valid settings: " + ", ".join(f.name for f in dataclasses.fields(Settings)) in message


def test_settings_at_top_level_beside_a_settings_object_name_the_mistake_and_both_forms():
    doc = {"schema": "mixprec_explorer.settings", "version": 1, "settings": {"enable_autocast": True},
           "use_fp32_acc": True}
    with pytest.raises(SettingsError) as caught:
        Settings.from_json(json.dumps(doc))
    message = str(caught.value)
    assert "'use_fp32_acc' at top level beside a 'settings' object" in message
    assert '{"enable_autocast": true, "autocast_low_precision_type": "float16"' in message, "the flat form"
    assert '"settings": {"enable_autocast": true' in message, "the nested form"


def test_every_file_error_is_a_settings_error_and_a_value_error(tmp_path):
    path = tmp_path / "s.json"
    for text in ("[]", "{", '{"use_fp16": true}', '{"settings": 1}', "\"float16\""):
        path.write_text(text)
        with pytest.raises(SettingsError) as caught:
            Settings.load(path)
        assert isinstance(caught.value, ValueError) and str(path) in str(caught.value)


@pytest.mark.parametrize("name", ["compile.py", "plan.pkl"])
def test_a_python_or_pickle_file_is_refused_never_run(tmp_path, name):
    marker = tmp_path / "ran"
    path = tmp_path / name
    if name.endswith(".py"):
        path.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    else:
        import pickle

        path.write_bytes(pickle.dumps({"enable_autocast": True}))
    with pytest.raises(SettingsError, match="settings files are JSON and are never executed or unpickled"):
        Settings.load(path)
    assert not marker.exists()
