"""Built-in example models: the reference text's models, ready for ``Explorer(*example())`` and the CLI."""

from __future__ import annotations

import torch


class ExplicitTypingModel(torch.nn.Module):
    """The reference's explicit-typing model: linear2 is ``.half()`` and fed through ``.to()`` casts."""

    def __init__(self) -> None:
        super().__init__()
        self.linear1 = torch.nn.Linear(10, 10)
        self.linear2 = torch.nn.Linear(10, 30).half()
        self.linear3 = torch.nn.Linear(30, 40)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear1(x)
        x = x.to(torch.float16)
        x = self.linear2(x)
        x = x.to(torch.float32)
        return self.linear3(x)


class AutocastModel(torch.nn.Module):
    """The reference's autocast model: three FP32 linears."""

    def __init__(self) -> None:
        super().__init__()
        self.linear1 = torch.nn.Linear(10, 10)
        self.linear2 = torch.nn.Linear(10, 30)
        self.linear3 = torch.nn.Linear(30, 40)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear3(self.linear2(self.linear1(x)))


def reference_explicit_model() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """(model, example_inputs) of the reference's explicit-typing example (CPU, float32 input (1, 10))."""
    torch.manual_seed(0)
    return ExplicitTypingModel().eval(), (torch.randn(1, 10),)


def reference_autocast_model() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """(model, example_inputs) of the reference's autocast example."""
    torch.manual_seed(0)
    return AutocastModel().eval(), (torch.randn(1, 10),)


class _Bottleneck(torch.nn.Module):
    """torchvision's ResNet bottleneck block, same module names (conv1..3, bn1..3, relu, downsample)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: torch.nn.Module | None = None):
        super().__init__()
        width = planes
        self.conv1 = torch.nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(width)
        self.conv2 = torch.nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(width)
        self.conv3 = torch.nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = torch.nn.BatchNorm2d(planes * 4)
        self.relu = torch.nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(torch.nn.Module):
    """A ResNet-50 with torchvision's layer shapes and module paths (``layer1.0.conv1``), random weights.

    Used where torchvision does not import (CI's CPU torch); prefer ``torchvision.models.resnet50()``
    where it does: both export to the same graph shape.
    """

    def __init__(self, num_classes: int = 1000, layers: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(64)
        self.relu = torch.nn.ReLU(inplace=True)
        self.maxpool = torch.nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stride = 1 if index == 1 else 2
            downsample = torch.nn.Sequential(
                torch.nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), torch.nn.BatchNorm2d(planes * 4))
            mods = [_Bottleneck(inplanes, planes, stride, downsample)]
            inplanes = planes * 4
            mods += [_Bottleneck(inplanes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{index}", torch.nn.Sequential(*mods))
        self.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # type: ignore[operator]  # set by setattr
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet50(batch: int = 1, image: int = 224) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """(ResNet-50, (images,)) with torchvision when it imports, else the same-shaped :class:`ResNet50`."""
    torch.manual_seed(0)
    try:
        import torchvision

        model: torch.nn.Module = torchvision.models.resnet50(weights=None)
    except Exception:  # torchvision missing or built for another torch
        model = ResNet50()
    return model.eval(), (torch.randn(batch, 3, image, image),)


class TransformerEncoder(torch.nn.Module):
    """A BERT-style encoder from ``torch.nn.TransformerEncoderLayer`` blocks, random weights, token ids in."""

    def __init__(self, layers: int = 12, d_model: int = 768, heads: int = 12, ffn: int = 3072,
                 vocab: int = 30522, max_len: int = 512, num_classes: int = 2) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d_model)
        self.pos = torch.nn.Embedding(max_len, d_model)
        self.norm = torch.nn.LayerNorm(d_model)
        self.layers = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(d_model, heads, ffn, dropout=0.0, activation="gelu", batch_first=True)
            for _ in range(layers))
        self.head = torch.nn.Linear(d_model, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.embed(ids) + self.pos(positions))
        for layer in self.layers:
            x = layer(x)
        return self.head(x[:, 0])


def transformer_encoder(layers: int = 12, batch: int = 1, seq: int = 128, d_model: int = 768, heads: int = 12,
                        ffn: int = 3072) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """(encoder, (token ids,)): BERT-base-sized by default (12 layers, 768 wide, sequence 128)."""
    torch.manual_seed(0)
    model = TransformerEncoder(layers, d_model, heads, ffn)
    return model.eval(), (torch.randint(0, 30522, (batch, seq)),)


class LayerStack(torch.nn.Module):
    """A synthetic stack of Linear-LayerNorm-GELU blocks with residuals: about 5 nodes per block."""

    def __init__(self, blocks: int, width: int = 16) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.LayerNorm(width), torch.nn.GELU())
            for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x


def layer_stack(nodes: int = 1000, width: int = 16) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """(stack, (x,)) whose graph has about ``nodes`` call_function nodes."""
    torch.manual_seed(0)
    return LayerStack(max(1, nodes // 4), width).eval(), (torch.randn(2, width),)
