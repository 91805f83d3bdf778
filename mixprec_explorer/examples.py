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
