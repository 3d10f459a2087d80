"""The task loss: ``mean |ŷ_m − y_m|`` (L1, as Self-MM and MMSA train every model)."""

from __future__ import annotations

import torch
from torch import nn


class RegressionL1(nn.Module):
    def __init__(self, target: str = "m"):
        super().__init__()
        self.target = target

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        prediction = output.predictions[self.target]
        return {f"l1_{self.target}": (prediction - batch.labels["m"]).abs().mean()}


class RegressionMSE(nn.Module):
    """``mean (ŷ_m − y_m)²``: the task loss MMSA's MISA trainer uses for regression."""

    def __init__(self, target: str = "m"):
        super().__init__()
        self.target = target

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        prediction = output.predictions[self.target]
        return {f"mse_{self.target}": (prediction - batch.labels["m"]).pow(2).mean()}
