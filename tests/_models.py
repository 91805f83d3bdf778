"""Small models covering the graph shapes the policy must handle (CPU, random weights)."""

from __future__ import annotations

import torch


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.act = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class ResidualCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)) + y)  # residual add in the root forward
        return self.head(y.mean(dim=(2, 3)))


class Encoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)

    def forward(self, x):
        return self.layer(x)


class AutocastRegion(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 8)
        self.fc2 = torch.nn.Linear(8, 8)

    def forward(self, x):
        x = self.fc1(x)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            y = self.fc2(x)
        return torch.log(y.float().abs() + 1)


class HalfSub(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = torch.nn.Linear(8, 8)
        self.sub = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).half()
        self.post = torch.nn.Linear(8, 2)

    def forward(self, x):
        x = self.pre(x)
        x = self.sub(x.half())
        return self.post(x.float())


class Matmuls(torch.nn.Module):
    def forward(self, a, b):
        return torch.bmm(a, b).softmax(-1) @ b.transpose(1, 2)


def cases():
    """(id, model, inputs) for every model above."""
    torch.manual_seed(0)
    return [
        ("mlp", MLP().eval(), (torch.randn(2, 8),)),
        ("cnn", ResidualCNN().eval(), (torch.randn(2, 3, 8, 8),)),
        ("encoder", Encoder().eval(), (torch.randn(2, 5, 16),)),
        ("autocast_region", AutocastRegion().eval(), (torch.randn(2, 8),)),
        ("half_sub", HalfSub().eval(), (torch.randn(2, 8),)),
        ("matmuls", Matmuls().eval(), (torch.randn(2, 4, 6), torch.randn(2, 6, 4))),
    ]
