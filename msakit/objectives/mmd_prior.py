"""MFM's prior-matching loss: a maximum mean discrepancy between latent codes and samples of a
standard normal (Tsai et al., ICLR 2019, following the MMD-VAE / Wasserstein autoencoder).

For a batch of codes ``Z ∈ R^{B×k}`` and as many draws ``G`` of ``N(0, I_k)``::

    K(X, Y)_{ij} = exp(−mean_d (x_{id} − y_{jd})² / k)
    MMD(Z)       = mean K(G, G) + mean K(Z, Z) − 2 · mean K(G, Z)

(the kernel exactly as MMSA 2.2.1 ``models/singleTask/MFM.py`` writes it, with its extra
``/k``). The objective sums ``MMD`` over the codes in ``output.extras["latents"]``
(``{name: (B, k)}``) and multiplies by ``weight``; one term, ``mmd``. The normal draws come from
torch's global generator, which the trainer seeds: the same seed gives the same run.
"""

from __future__ import annotations

import torch
from torch import nn


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(n, k)``, ``(m, k)`` -> ``(n, m)`` kernel matrix (see the module docstring)."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"gaussian_kernel: expected (n, k) and (m, k), got {tuple(x.shape)} and {tuple(y.shape)}")
    return torch.exp(-(x[:, None, :] - y[None, :, :]).pow(2).mean(dim=2) / x.shape[1])


def mmd_to_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """``MMD(Z)`` against as many standard normal draws as ``Z`` has rows."""
    g = torch.randn_like(z)
    return gaussian_kernel(g, g).mean() + gaussian_kernel(z, z).mean() - 2.0 * gaussian_kernel(g, z).mean()


class GaussianPriorMMD(nn.Module):
    """Objective: ``weight · Σ_codes MMD(code)``, one term ``mmd``."""

    def __init__(self, weight: float):
        super().__init__()
        if weight < 0:
            raise ValueError(f"GaussianPriorMMD: weight must be >= 0, got {weight}")
        self.weight = weight

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        latents = output.extras.get("latents")
        if not latents or self.weight == 0:
            return {}
        return {"mmd": self.weight * sum(mmd_to_standard_normal(z) for z in latents.values())}
