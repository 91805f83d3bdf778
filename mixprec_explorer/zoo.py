"""A zoo of real architectures by name, as a user builds them: random weights, seeded, never downloaded.

One registry serves the CLI (``mixprec-explorer plan zoo:convnext_tiny``), the zoo test and the benchmarks::

    from mixprec_explorer import zoo
    model, inputs = zoo.build("convnext_tiny", size="small", batch=2, seed=0)

``size="small"`` is fast on a CPU (64x64 images where the net allows, tiny Hugging Face configs, 16 tokens);
``size="real"`` is the real architecture at its native resolution (224x224, Inception 299x299) or the real
Hugging Face config with 128 tokens. Hugging Face models return their ``ModelOutput``, as ``from_pretrained``
models do (``return_dict`` left at its default); decoders are built with ``use_cache=False``, their usual
setting for export. torchvision, timm and transformers are optional (``pip install mixprec-explorer[zoo]``) and
imported only when a model of theirs is built.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._optional import install_hint
from .errors import ZooError

if TYPE_CHECKING:
    import torch

__all__ = ["SIZES", "ZooModel", "available", "build", "entry", "names"]

#: The sizes every builder knows.
SIZES = ("small", "real")

_SEQ = {"small": 16, "real": 128}  # tokens per sequence
_PIP = {"torchvision": "torchvision", "timm": "timm", "transformers": "transformers"}


@dataclass(frozen=True)
class ZooModel:
    """One zoo entry: ``source`` is the library that defines it, ``requires`` the modules it imports."""

    name: str
    family: str
    source: str
    task: str
    requires: tuple[str, ...]
    note: str = ""


Builder = Callable[[str, int, "torch.Generator"], tuple["torch.nn.Module", tuple[Any, ...]]]
_REGISTRY: dict[str, tuple[ZooModel, Builder]] = {}


def _register(name: str, family: str, source: str, task: str, note: str = "") -> Callable[[Builder], Builder]:
    def add(builder: Builder) -> Builder:
        requires = ("torchvision",) if source == "torchvision" else (source,)
        _REGISTRY[name] = (ZooModel(name, family, source, task, requires, note), builder)
        return builder

    return add


# -- inputs --------------------------------------------------------------------------------------------------
def _images(batch: int, side: int, gen: torch.Generator, channels: int = 3) -> torch.Tensor:
    import torch

    return torch.randn(batch, channels, side, side, generator=gen)


def _tokens(batch: int, seq: int, vocab: int, gen: torch.Generator) -> torch.Tensor:
    import torch

    return torch.randint(3, vocab, (batch, seq), generator=gen)  # above the usual pad/bos/eos ids


def _mask(batch: int, seq: int) -> torch.Tensor:
    """All ones, except the last sample (when there are several) padded over its last quarter, as a batch
    of unequal sentences is."""
    import torch

    mask = torch.ones(batch, seq, dtype=torch.long)
    if batch > 1:
        mask[-1, seq - seq // 4:] = 0
    return mask


# -- torchvision ------------------------------------------------------------------------------------------------
def _torchvision(name: str, family: str, fn: str, *, task: str = "classification", small: int = 64,
                 real: int = 224, small_kwargs: dict[str, Any] | None = None, note: str = "",
                 module: str = "torchvision.models", after: Callable[[Any], None] | None = None,
                 **kwargs: Any) -> None:
    """``after`` adjusts the built model (seeded like the rest)."""

    def build(size: str, batch: int, gen: torch.Generator) -> tuple[torch.nn.Module, tuple[Any, ...]]:
        models = importlib.import_module(module)
        options = {**kwargs, **((small_kwargs or {}) if size == "small" else {})}
        model = getattr(models, fn)(weights=None, **options)
        if after is not None:
            after(model)
        return model, (_images(batch, small if size == "small" else real, gen),)

    _register(name, family, "torchvision", task, note)(build)


_torchvision("resnet18", "resnet", "resnet18")
_torchvision("resnet50", "resnet", "resnet50")
_torchvision("mobilenet_v2", "mobilenet", "mobilenet_v2")
_torchvision("mobilenet_v3_small", "mobilenet", "mobilenet_v3_small")
_torchvision("mobilenet_v3_large", "mobilenet", "mobilenet_v3_large")
_torchvision("efficientnet_b0", "efficientnet", "efficientnet_b0")
_torchvision("convnext_tiny", "convnext", "convnext_tiny")
_torchvision("regnet_y_400mf", "regnet", "regnet_y_400mf")
_torchvision("swin_t", "swin", "swin_t", note="windows padded at 64x64 (small)")
def _random_vit_head(model: Any) -> None:
    import torch

    torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # a trained head's scale


_torchvision("vit_b_16", "vit", "vit_b_16", small_kwargs={"image_size": 64}, after=_random_vit_head,
             note="small: 64x64 images, 16 patches (the position embedding sized to match); the classifier "
                  "head drawn at random (torchvision starts it at zero, so every output would be 0)")
_torchvision("densenet121", "densenet", "densenet121")
_torchvision("googlenet", "inception", "googlenet", aux_logits=False, init_weights=True)
_torchvision("inception_v3", "inception", "inception_v3", small=96, real=299, aux_logits=False, init_weights=True,
             note="needs at least 75x75: small is 96x96, real 299x299")
_torchvision("shufflenet_v2", "shufflenet", "shufflenet_v2_x1_0")
_torchvision("lraspp_mobilenet_v3", "lraspp", "lraspp_mobilenet_v3_large", task="segmentation",
             module="torchvision.models.segmentation", weights_backbone=None, num_classes=21,
             note="returns a dict {'out': mask logits}")
_torchvision("deeplabv3_mobilenet_v3", "deeplabv3", "deeplabv3_mobilenet_v3_large", task="segmentation",
             module="torchvision.models.segmentation", weights_backbone=None, num_classes=21, aux_loss=False,
             note="returns a dict {'out': mask logits}")


# -- timm -------------------------------------------------------------------------------------------------------
def _timm(name: str, family: str, arch: str, *, small: int = 64, real: int = 224, sized: bool = False,
          note: str = "") -> None:
    """``sized``: the model fixes its resolution at creation (ViT-like), so it is created at the input's size."""

    def build(size: str, batch: int, gen: torch.Generator) -> tuple[torch.nn.Module, tuple[Any, ...]]:
        timm = importlib.import_module("timm")
        side = small if size == "small" else real
        model = timm.create_model(arch, pretrained=False, **({"img_size": side} if sized else {}))
        return model, (_images(batch, side, gen),)

    _register(name, family, "timm", "classification", note or f"timm.create_model({arch!r})")(build)


_timm("timm_resnet26d", "resnet", "resnet26d")
_timm("timm_efficientnet_lite0", "efficientnet", "efficientnet_lite0")
_timm("timm_convnextv2_atto", "convnext", "convnextv2_atto")
_timm("timm_deit_tiny", "vit", "deit_tiny_patch16_224", sized=True)
_timm("timm_mobilevit_xxs", "mobilevit", "mobilevit_xxs")
_timm("timm_levit_128s", "levit", "levit_128s", sized=True)
_timm("timm_ghostnet_100", "ghostnet", "ghostnet_100")


# -- Hugging Face transformers ------------------------------------------------------------------------------------
def _hf_model(cls_name: str, config_name: str, size: str, small: dict[str, Any],
              real: dict[str, Any] | None = None) -> Any:
    transformers = importlib.import_module("transformers")
    config = getattr(transformers, config_name)(**(small if size == "small" else real or {}))
    return getattr(transformers, cls_name)(config)


_TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
         "vocab_size": 1000, "max_position_embeddings": 64}


@_register("bert_base", "bert", "transformers", "text encoder", "BertModel; real: bert-base config")
def _bert(size: str, batch: int, gen: torch.Generator):
    model = _hf_model("BertModel", "BertConfig", size, _TINY)
    seq, vocab = _SEQ[size], model.config.vocab_size
    return model, (_tokens(batch, seq, vocab, gen), _mask(batch, seq))


@_register("distilbert_base", "distilbert", "transformers", "text encoder",
           "DistilBertModel; real: distilbert-base config")
def _distilbert(size: str, batch: int, gen: torch.Generator):
    small = {"dim": 64, "n_layers": 2, "n_heads": 4, "hidden_dim": 128, "vocab_size": 1000,
             "max_position_embeddings": 64}
    model = _hf_model("DistilBertModel", "DistilBertConfig", size, small)
    seq, vocab = _SEQ[size], model.config.vocab_size
    return model, (_tokens(batch, seq, vocab, gen), _mask(batch, seq))


@_register("roberta_base", "roberta", "transformers", "text encoder", "RobertaModel; real: roberta-base config")
def _roberta(size: str, batch: int, gen: torch.Generator):
    common = {"pad_token_id": 1, "type_vocab_size": 1}
    real = {**common, "vocab_size": 50265, "max_position_embeddings": 514}
    model = _hf_model("RobertaModel", "RobertaConfig", size, {**_TINY, **common, "max_position_embeddings": 66},
                      real)
    seq, vocab = _SEQ[size], model.config.vocab_size
    return model, (_tokens(batch, seq, vocab, gen), _mask(batch, seq))


@_register("gpt2", "gpt2", "transformers", "text decoder", "GPT2Model(use_cache=False); real: gpt2 (124M) config")
def _gpt2(size: str, batch: int, gen: torch.Generator):
    small = {"n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 1000, "n_positions": 64, "use_cache": False}
    model = _hf_model("GPT2Model", "GPT2Config", size, small, {"use_cache": False})
    return model, (_tokens(batch, _SEQ[size], model.config.vocab_size, gen),)


@_register("llama_small", "llama", "transformers", "text decoder",
           "LlamaModel(use_cache=False); real: a SmolLM-135M-sized Llama config")
def _llama(size: str, batch: int, gen: torch.Generator):
    small = {**_TINY, "num_key_value_heads": 2, "use_cache": False}
    real = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
            "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 2048, "use_cache": False}
    model = _hf_model("LlamaModel", "LlamaConfig", size, small, real)
    seq, vocab = _SEQ[size], model.config.vocab_size
    return model, (_tokens(batch, seq, vocab, gen), _mask(batch, seq))


_T5_TINY = {"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_heads": 4, "vocab_size": 1000,
            "use_cache": False}


@_register("t5_small_encoder", "t5", "transformers", "text encoder", "T5EncoderModel; real: t5-small config")
def _t5_encoder(size: str, batch: int, gen: torch.Generator):
    model = _hf_model("T5EncoderModel", "T5Config", size, _T5_TINY, {"use_cache": False})
    seq, vocab = _SEQ[size], model.config.vocab_size
    return model, (_tokens(batch, seq, vocab, gen), _mask(batch, seq))


@_register("t5_small", "t5", "transformers", "encoder-decoder",
           "T5Model(use_cache=False) with decoder_input_ids half as long; real: t5-small config")
def _t5(size: str, batch: int, gen: torch.Generator):
    model = _hf_model("T5Model", "T5Config", size, _T5_TINY, {"use_cache": False})
    seq, vocab = _SEQ[size], model.config.vocab_size
    return model, (_tokens(batch, seq, vocab, gen), _mask(batch, seq), _tokens(batch, seq // 2, vocab, gen))


@_register("bart_base", "bart", "transformers", "encoder-decoder",
           "BartModel(use_cache=False) with decoder_input_ids half as long; real: bart-base config")
def _bart(size: str, batch: int, gen: torch.Generator):
    small = {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
             "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128, "vocab_size": 1000,
             "max_position_embeddings": 64, "use_cache": False}
    real = {"d_model": 768, "encoder_layers": 6, "decoder_layers": 6, "encoder_attention_heads": 12,
            "decoder_attention_heads": 12, "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072, "use_cache": False}
    model = _hf_model("BartModel", "BartConfig", size, small, real)  # BartConfig() alone is bart-large
    seq, vocab = _SEQ[size], model.config.vocab_size
    return model, (_tokens(batch, seq, vocab, gen), _mask(batch, seq), _tokens(batch, seq // 2, vocab, gen))


@_register("vit_base_hf", "vit", "transformers", "image encoder", "ViTModel; small: 32x32, patch 8; real: vit-base 224")
def _hf_vit(size: str, batch: int, gen: torch.Generator):
    small = {**_TINY, "image_size": 32, "patch_size": 8}
    small.pop("vocab_size"), small.pop("max_position_embeddings")
    model = _hf_model("ViTModel", "ViTConfig", size, small)
    return model, (_images(batch, model.config.image_size, gen),)


@_register("whisper_tiny_encoder", "whisper", "transformers", "audio encoder",
           "WhisperModel(...).get_encoder(); small: 64 frames; real: whisper-tiny config, 3000 frames (30 s)")
def _whisper(size: str, batch: int, gen: torch.Generator):
    import torch

    small = {"d_model": 64, "encoder_layers": 2, "decoder_layers": 1, "encoder_attention_heads": 4,
             "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128, "num_mel_bins": 80,
             "max_source_positions": 32, "max_target_positions": 32, "use_cache": False}
    model = _hf_model("WhisperModel", "WhisperConfig", size, small, {"use_cache": False}).get_encoder()
    frames = 2 * model.config.max_source_positions  # the encoder checks for exactly this many
    return model, (torch.randn(batch, model.config.num_mel_bins, frames, generator=gen),)


# -- the public face ------------------------------------------------------------------------------------------------
def names(available: bool = False) -> list[str]:
    """All registered names, sorted; ``available=True``: only those whose optional dependency imports here."""
    return sorted(n for n in _REGISTRY if not available or _importable(_REGISTRY[n][0].requires)[0])


def entry(name: str) -> ZooModel:
    """The registry's record of ``name``; ZooError (listing close names) when there is none."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise ZooError(f"no zoo model named {name!r}; {hint}the zoo has: {', '.join(names())}")
    return _REGISTRY[name][0]


def available(name: str) -> tuple[bool, str]:
    """Whether ``name`` can be built here and, when not, why (the module that fails and the pip command)."""
    return _importable(entry(name).requires)


@functools.cache
def _importable(modules: tuple[str, ...]) -> tuple[bool, str]:
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            return False, f"{module} is not installed; install it with {install_hint('zoo')}"
        except Exception as err:  # installed but broken (e.g. a torchvision built for another torch)
            return False, (f"{module} is installed but failed to import ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''}); install versions that match "
                           f"your torch, e.g. {install_hint('zoo')}")
    return True, ""


def build(name: str, size: str = "small", batch: int = 2, seed: int = 0) -> tuple[torch.nn.Module, tuple[Any, ...]]:
    """``(model.eval(), example_inputs)`` of zoo model ``name``: random weights and inputs from ``seed``.

    The caller's random state is left as it was. Raises ZooError for an unknown name or size, a bad batch,
    or a missing optional dependency (naming ``pip install mixprec-explorer[zoo]``).
    """
    record = entry(name)
    if size not in SIZES:
        raise ZooError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ZooError(f"batch must be a positive whole number; got {batch!r}")
    ok, reason = _importable(record.requires)
    if not ok:
        raise ZooError(f"zoo model {name!r} needs {', '.join(record.requires)}: {reason}")
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        try:
            model, inputs = _REGISTRY[name][1](size, batch, gen)
        except Exception as err:  # a library version whose constructor differs from the one the zoo knows
            raise ZooError(f"could not build zoo model {name!r} ({size}): {type(err).__name__}: {err}; "
                           f"the zoo is tested with the versions {install_hint('zoo')} installs beside "
                           "torch 2.14 - check yours") from err
    return model.eval(), tuple(inputs)
