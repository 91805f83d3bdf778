"""The worker process: real crashes (segfault, os._exit), timeouts and errors come back as exceptions, and the
explorer keeps working afterwards."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest
import torch

from mixprec_explorer import Explorer, OptionError, OptionTypeError, Settings, UnknownName, WorkerCrashed
from mixprec_explorer import backends as B
from mixprec_explorer.backends.subject import Subject
from mixprec_explorer.backends.worker import FunctionCall, Ref, get_worker, numerics_flags, shutdown_worker
from mixprec_explorer.examples import reference_autocast_model

FP16 = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)


@pytest.fixture
def ex() -> Explorer:
    explorer = Explorer(*reference_autocast_model())
    explorer.settings = FP16
    return explorer


def _state(explorer: Explorer):
    return (explorer.settings, explorer.can_undo, explorer.can_redo, explorer.last_profile, explorer.last_accuracy,
            explorer.plan().counts())


@pytest.mark.parametrize(("fault", "exit_text"), [("segfault", "killed by signal SIGSEGV"),
                                                  ("exit", "exited with status 3")])
def test_a_crashing_worker_raises_and_the_explorer_carries_on(ex, fault, exit_text):
    compiled = ex.compile(device="cpu", backend="torch", progress=False)
    before = _state(ex)
    old_pid = get_worker().pid
    with pytest.raises(WorkerCrashed) as info:
        B.compile_plan(ex, FP16.replace(use_fp32_acc=True), device="cpu", backend="torch", progress=False, _fault=fault)
    message = str(info.value)
    assert exit_text in message
    assert f"injected fault '{fault}'" in message  # the worker's own last output
    if fault == "segfault":
        assert "Fatal Python error: Segmentation fault" in message  # faulthandler's report, from fd 2
    assert _state(ex) == before
    assert not get_worker().is_alive
    # the next call starts a fresh worker; a compile held by the dead one is redone transparently
    profile = ex.profile(compiled, runs=2, warmup=0, progress=False)
    assert get_worker().pid != old_pid
    assert any("compiled again" in note for note in profile.notes)
    assert [layer.name for layer in profile.layers] == ["linear", "linear_1", "linear_2"]
    assert ex.compile(device="cpu", backend="torch", progress=False) is compiled  # still cached


def test_a_python_error_in_the_worker_is_reraised_and_the_worker_survives(ex):
    ex.compile(device="cpu", backend="torch", progress=False)
    pid = get_worker().pid
    with pytest.raises(RuntimeError, match="injected failure") as info:
        B.compile_plan(ex, FP16.replace(use_fp32_acc=True), device="cpu", backend="torch", progress=False, _fault="raise")
    assert any("raised in the mixprec worker process" in note for note in getattr(info.value, "__notes__", []))
    with pytest.raises(ValueError, match="mode must be one of"):
        B.compile_plan(ex, device="cpu", backend="torch", progress=False, mode="nope")
    assert get_worker().pid == pid and get_worker().is_alive


def test_a_timeout_kills_the_worker():
    worker = get_worker()
    with pytest.raises(WorkerCrashed, match="ran past timeout_s=0.5"):
        worker.call(FunctionCall(time.sleep, (30,), what="sleeping"), timeout_s=0.5)
    assert not worker.is_alive
    assert worker.call(FunctionCall(math.hypot, (3, 4))) == 5.0


def test_missing_reference_and_bad_fault():
    worker = get_worker()
    with pytest.raises(UnknownName, match="no compiled 'nothing'"):
        worker.call(FunctionCall(len, (Ref("compiled", "nothing"),)))
    with pytest.raises(OptionError, match="fault must be one of"):
        worker.call(FunctionCall(len, ([],)), fault="melt")
    with pytest.raises(ValueError, match="needs isolate=True"):
        B.compile_plan(Explorer(*reference_autocast_model()), FP16, device="cpu", backend="torch", isolate=False, _fault="exit")


@pytest.fixture
def strict_fp32():
    """The parent switches TF32 off for cuDNN and on for matmuls (neither is PyTorch's default), then restores."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = False, True
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_the_worker_runs_under_the_parents_tf32_switches(strict_fp32):
    seen = get_worker().call(FunctionCall(numerics_flags))
    assert seen["cudnn.allow_tf32"] is False and seen["matmul.allow_tf32"] is True
    assert seen == numerics_flags()


# -- programs whose inputs or outputs are not plain containers --------------------------------------------------
@dataclasses.dataclass
class Pair:
    """An input and output type the worker only knows once this module is imported (it registers it)."""

    x: torch.Tensor
    y: torch.Tensor


torch.export.register_dataclass(Pair, serialized_type_name=f"{__name__}.Pair")


class PairModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, pair: Pair) -> Pair:
        return Pair(self.fc(pair.x), pair.y * 2)


def _tiny_bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=100)
    return transformers.BertModel(config).eval(), torch.randint(0, 100, (2, 16))


def _tiny_distilbert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=100)
    return transformers.DistilBertModel(config).eval(), torch.randint(0, 100, (2, 16))


@pytest.mark.parametrize("build", [_tiny_bert, _tiny_distilbert], ids=["bert", "distilbert"])
def test_hugging_face_models_compile_profile_and_run_in_the_default_worker(build):
    # their outputs are transformers ModelOutputs, which a process that never imported transformers cannot rebuild
    model, ids = build()
    ex = Explorer(model, (ids,))
    compiled = ex.compile(backend="torch", device="cpu", progress=False)
    assert isinstance(compiled.handle, B.WorkerHandle)
    out = B.run_compiled(ex, compiled)
    with torch.no_grad():
        want = model(ids)
    assert type(out) is type(want)  # the model's own output type, as with isolate=False
    assert list(out.keys()) == list(want.keys())
    for key in want:
        torch.testing.assert_close(out[key], want[key])
    assert ex.accuracy(compiled).rel_l2_error < 1e-6
    profile = ex.profile(compiled, runs=2, warmup=0, progress=False)
    assert {layer.name for layer in profile.layers} >= {"embedding", "linear"}


@pytest.mark.filterwarnings("ignore:Torch-TensorRT .* autocast turns integer tensors")
def test_search_runs_a_hugging_face_model_through_the_worker():
    model, ids = _tiny_distilbert()
    ex = Explorer(model, (ids,))
    ex.settings = FP16
    result = ex.search(budget=1e-3, backend="torch", device="cpu", max_probes=1, progress=False)
    assert result.compiles >= 2  # all-FP32 and all-FP16 at least, built in the worker
    assert ex.settings == result.settings


def test_a_registered_input_type_is_imported_in_the_worker():
    model = PairModel().eval()
    pair = Pair(torch.randn(2, 8), torch.randn(2, 8))
    ex = Explorer(model, (pair,))
    compiled = ex.compile(backend="torch", device="cpu", progress=False)
    out = B.run_compiled(ex, compiled)
    with torch.no_grad():
        want = model(pair)
    assert isinstance(out, Pair)
    torch.testing.assert_close(out.x, want.x)
    torch.testing.assert_close(out.y, want.y)


def test_an_input_type_no_other_process_can_import_is_refused_before_shipping():
    @dataclasses.dataclass
    class Local:
        x: torch.Tensor

    torch.export.register_dataclass(Local, serialized_type_name="test_worker.Local")

    class Model(torch.nn.Module):
        def forward(self, value: Local) -> torch.Tensor:
            return value.x * 2

    ex = Explorer(Model().eval(), (Local(torch.randn(2, 3)),))
    worker = get_worker()
    worker.ensure_started()
    held = set(worker.models)
    with pytest.raises(OptionTypeError, match=r"Local.*defined inside a function.*isolate=False"):
        ex.compile(backend="torch", device="cpu", progress=False)
    assert worker.models == held  # nothing was sent
    compiled = ex.compile(backend="torch", device="cpu", progress=False, isolate=False)
    torch.testing.assert_close(B.run_compiled(ex, compiled), ex.example_inputs[0].x * 2)


def test_the_worker_compiles_profiles_and_runs_without_the_facade():
    """The worker holds the captured graph and batches (a Subject), never an Explorer: backends sit below the
    facade, and a calibrated explorer's batches reach it as they are."""
    shutdown_worker()
    ex = Explorer(*reference_autocast_model())
    ex.calibrate([ex.example_inputs, (torch.randn(1, 10),)])
    compiled = ex.compile(FP16, backend="torch", device="cpu", progress=False)
    ex.profile(compiled, runs=2, warmup=0, progress=False)
    B.run_compiled(ex, compiled)
    worker = get_worker()
    held = worker.call(FunctionCall(type, (Ref("model", compiled.handle.model),)))
    assert held is Subject
    batches = worker.call(FunctionCall(getattr, (Ref("model", compiled.handle.model), "calibration_batches")))
    assert len(batches) == 2 and torch.equal(batches[1][0], ex.calibration_batches[1][0])
    loaded = worker.call(FunctionCall(eval, ("sorted(__import__('sys').modules)",)))
    assert "mixprec_explorer.explorer" not in loaded and "mixprec_explorer.backends.torch_backend" in loaded


def test_an_encoder_decoder_with_a_padded_mask_comes_back_field_by_field_from_the_worker():
    """BART from the zoo (ids, a mask padding the second sample, decoder ids): its ModelOutput holds the decoder's
    and the encoder's last hidden states. The worker ships them flat and the explorer puts each back under its own
    name, so accuracy compares each output with its own reference: FP32 gives no error (the live FP32 engines'
    0.47 on BART is not the explorer's bookkeeping)."""
    pytest.importorskip("transformers")
    from mixprec_explorer import zoo

    model, inputs = zoo.build("bart_base", size="small", batch=2, seed=0)
    assert not bool(inputs[1].all())  # a padded sample
    ex = Explorer(model, inputs)
    compiled = ex.compile(backend="torch", device="cpu", progress=False)
    assert isinstance(compiled.handle, B.WorkerHandle)
    out = B.run_compiled(ex, compiled)
    with torch.no_grad():
        want = model(*inputs)
    assert type(out) is type(want) and list(out.keys()) == list(want.keys())
    assert {"last_hidden_state", "encoder_last_hidden_state"} <= set(want.keys())
    for key in want:
        torch.testing.assert_close(out[key], want[key])
    assert ex.accuracy(compiled).rel_l2_error < 1e-6
