"""One way to apply a plan (issue 22): the analyses' runner (PlanRunner/PlanEvaluator) and the torch backend's planned
graph (apply_plan) give the same outputs for the same plan, both in real FP16 arithmetic on the CPU.

Bit-identical: the two paths run the same ops in the same dtypes, their casts decided by one rule
(:mod:`mixprec_explorer.backends.plan_rules`), FP32 accumulation included. One difference is left, in the error
only: the runner's reference runs every classified node in FP32, the backend's accuracy the model as written."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.utils._pytree import tree_leaves

from mixprec_explorer import Explorer, Settings, zoo
from mixprec_explorer.analysis import PlanEvaluator, PlanRunner
from mixprec_explorer.backends.torch_plan import apply_plan, flatten_inputs
from mixprec_explorer.examples import (
    layer_stack,
    reference_autocast_model,
    reference_explicit_model,
    transformer_encoder,
)

from _models import AutocastRegion

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
#: a mixed plan: residual adds and scalings kept in FP32 (FP16 and FP32 inputs meet), some modules excluded by path
MIXED = FP16.replace(autocast_excluded_ops={"torch.ops.aten.add.Tensor", "torch.ops.aten.mul.Tensor"},
                     autocast_excluded_nodes={"^fc$", "^layer1", "^classifier", r"^.*\.0\.", "^linear2$"})
ACC = FP16.replace(use_fp32_acc=True)
SETTINGS = {"fp16": FP16, "mixed": MIXED, "fp32-acc": ACC, "mixed-fp32-acc": MIXED.replace(use_fp32_acc=True)}


def _zoo(name: str):
    def build():
        ok, why = zoo.available(name)
        if not ok:
            pytest.skip(why)
        return zoo.build(name, size="small", batch=2 if zoo.entry(name).source == "transformers" else 1)
    return build


MODELS = {
    "resnet18": _zoo("resnet18"),
    "mobilenet_v3_small": _zoo("mobilenet_v3_small"),
    "distilbert_base": _zoo("distilbert_base"),
    "llama_small": _zoo("llama_small"),  # a torch.autocast region (the rotary embedding)
    "reference_autocast": reference_autocast_model,
    "reference_explicit": reference_explicit_model,
    "transformer_encoder": lambda: transformer_encoder(layers=2, batch=2, seq=16, d_model=64, heads=4, ffn=128),
    "layer_stack": lambda: layer_stack(nodes=60),
}

OPTION_MODELS = {
    "t5_small_encoder": (_zoo("t5_small_encoder"), "fill values beyond"),  # finfo(float32).min masks
    "autocast_region": (lambda: (AutocastRegion().eval(), (torch.randn(4, 8),)), "torch.autocast region"),
}


@functools.cache
def _explorer(name: str) -> tuple[Explorer, tuple]:
    """One explorer per model for every test of this file, built seeded."""
    torch.manual_seed(0)
    model, inputs = MODELS[name]() if name in MODELS else OPTION_MODELS[name][0]()
    return Explorer(model, inputs), tuple(inputs)


def _floats(value) -> list[torch.Tensor]:
    return [x for x in tree_leaves(value) if isinstance(x, torch.Tensor) and x.is_floating_point()]


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("name", list(MODELS))
def test_the_runner_and_the_planned_graph_give_the_same_outputs(name, setting):
    ex, inputs = _explorer(name)
    settings = SETTINGS[setting]
    runner = PlanRunner(ex, [inputs], simulate=False)
    evaluator = PlanEvaluator(ex, runner)
    analysed = runner.outputs(evaluator.run(settings))
    compiled = ex.compile(settings, backend="torch", isolate=False, progress=False)
    with torch.no_grad():
        planned = _floats(compiled.handle(*inputs))
    assert len(analysed) == len(planned)
    for a, p in zip(analysed, planned):
        assert a.dtype == p.dtype and a.shape == p.shape
        assert torch.equal(a, p), f"{name} {setting}: max |runner - planned| {(a.float() - p.float()).abs().max()}"
    # the evaluator's error is the backend's accuracy, exactly; except where the model types a node itself (the
    # explicit model's .half() linear2): the runner's reference runs every classified node in FP32, the backend's
    # accuracy compares against the model as written
    if setting == "mixed-fp32-acc" and name != "reference_explicit":
        report = ex.accuracy(compiled, simulate=False)
        assert evaluator.error(settings) == pytest.approx(report.rel_l2_error, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("name", list(OPTION_MODELS))
def test_the_cast_graphs_options_agree_too(name):
    """Restored autocast regions and saturated fills (the TensorRT cast graph's options) follow the same rule."""
    note = OPTION_MODELS[name][1]
    ex, inputs = _explorer(name)
    runner = PlanRunner(ex, [inputs], simulate=False, saturate_fills=True, restore_regions=True)
    analysed = runner.outputs(PlanEvaluator(ex, runner).run(FP16))
    planned = apply_plan(ex.exported_program, ex.plan(FP16), saturate_fills=True, restore_regions=True)
    assert any(note in n for n in planned.notes), planned.notes  # the option does something here
    with torch.no_grad():
        out = _floats(planned.module(*flatten_inputs(inputs)))
    assert len(analysed) == len(out)
    for a, p in zip(analysed, out):
        assert torch.equal(a, p), f"{name}: max |runner - planned| {(a.float() - p.float()).abs().max()}"
