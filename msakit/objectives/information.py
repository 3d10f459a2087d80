"""Mutual-information objectives (MMMIE, Zheng et al. 2022, arXiv 2201.03969; shapes as MMIM).

**InfoNCE** (maximisation). For paired batches ``x, y ∈ R^{B×k}`` with cosine similarities
``s_ij = cos(x_i, y_j) / τ``, the estimate ``I_NCE = log B − mean_i CE(s_i·, i)`` (averaged
over both directions) is a lower bound on ``I(X; Y)`` and never exceeds ``log B``. The
objective adds ``−α · I_NCE`` per pair, so training raises the bound.

**Information bottleneck KL** (minimisation). An encoder that outputs ``μ, log σ²`` per
position and samples ``z = μ + σ·ε`` pays ``β · KL(N(μ, σ²) ‖ N(0, I))`` =
``β · ½ Σ_d (μ² + σ² − log σ² − 1)``, averaged over valid positions: an upper bound on
``I(X_s; Z_s)`` (the variational information bottleneck). It is 0 exactly at ``μ = 0,
log σ² = 0``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def info_nce_lower_bound(x: torch.Tensor, y: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """``log B − CE``: the InfoNCE lower bound on I(X; Y) from in-batch negatives (≤ log B)."""
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"info_nce_lower_bound: expected two (B, k) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if temperature <= 0:
        raise ValueError(f"info_nce_lower_bound: temperature must be > 0, got {temperature}")
    batch = x.shape[0]
    logits = F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T / temperature
    targets = torch.arange(batch, device=x.device)
    cross_entropy = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
    return math.log(batch) - cross_entropy


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``KL(N(μ, σ²) ‖ N(0, I))`` summed over the last dim, averaged over (valid) positions."""
    kl = 0.5 * (mu.square() + logvar.exp() - logvar - 1.0).sum(dim=-1)
    if mask is None:
        return kl.mean()
    mask = mask.to(kl.dtype)
    return (kl * mask).sum() / mask.sum().clamp(min=1.0)


class InfoNCE(nn.Module):
    """Objective: ``−α · I_NCE(F_i, F_j)`` for each pair, one named term per pair."""

    def __init__(self, pairs: list[tuple[str, str]], weight: float, temperature: float):
        super().__init__()
        self.pairs, self.weight, self.temperature = list(pairs), weight, temperature

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        return {
            f"infonce_{i}{j}": -self.weight * info_nce_lower_bound(output.features[i], output.features[j], self.temperature)
            for i, j in self.pairs
        }


class InformationBottleneck(nn.Module):
    """Objective: ``β ·`` mean over modalities of ``gaussian_kl``, from the ``(μ, log σ², mask)``
    triples a model puts in ``output.extras["bottleneck"]``."""

    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        terms = [gaussian_kl(mu, logvar, mask) for mu, logvar, mask in output.extras["bottleneck"].values()]
        return {"bottleneck_kl": self.weight * torch.stack(terms).mean()}
