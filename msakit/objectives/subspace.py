"""Subspace losses of MISA (Hazarika et al., ACM MM 2020), usable by any shared/private model.

Each modality s is projected to ``u_s`` and split into a shared code ``h^c_s`` (one encoder for
every modality) and a private code ``h^p_s`` (one encoder per modality).

**Similarity: central moment discrepancy** (Zellinger et al., ICLR 2017). For two batches
``X, Y ∈ R^{B×k}`` with means ``μ_X, μ_Y`` and central moments ``c_j(X) = mean_b (x_b − μ_X)^j``
(per dimension)::

    CMD_K(X, Y) = ‖μ_X − μ_Y‖₂ + Σ_{j=2..K} ‖c_j(X) − c_j(Y)‖₂

It is 0 for identical batches (and for any two batches with the same first K moments). The
original definition divides term j by ``|b − a|^j`` for features in ``[a, b]``; MISA's shared
codes come out of a sigmoid (``[0, 1]``), so the factor is 1 and, like the reference, omitted.
MISA averages ``CMD_5`` over every pair of shared codes.

**Difference: soft orthogonality.** Both batches are centred over the batch, each row scaled to
unit L2 norm (the norm is treated as a constant, as in the reference), then
``L_diff(X, Y) = mean_{i,j} ((X̂ᵀŶ)_{ij})²``: 0 when every feature of X is orthogonal (across
the batch) to every feature of Y. MISA sums it over (private_s, shared_s) for each s and over
every pair of private codes.

**Reconstruction.** ``L_recon = mean_s MSE(D_s(h^c_s + h^p_s), u_s)``: each modality's projected
vector is decoded back from the sum of its shared and private codes.

The objectives read ``output.extras``: ``"shared"``, ``"private"``, ``"projected"`` and
``"reconstructed"``, each ``{s: (B, k)}``.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

EPS = 1e-6


def central_moment_discrepancy(x: torch.Tensor, y: torch.Tensor, moments: int = 5) -> torch.Tensor:
    """``CMD_K(x, y)`` for two ``(B, k)`` batches (the batch sizes may differ, k must agree)."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"central_moment_discrepancy: expected (B, k) batches with one k, got {tuple(x.shape)} and {tuple(y.shape)}")
    if moments < 1:
        raise ValueError(f"central_moment_discrepancy: moments must be >= 1, got {moments}")
    mean_x, mean_y = x.mean(dim=0), y.mean(dim=0)
    centred_x, centred_y = x - mean_x, y - mean_y
    # vector_norm has a zero (sub)gradient at 0, where sqrt(sum(...)) would give NaN.
    total = torch.linalg.vector_norm(mean_x - mean_y)
    for order in range(2, moments + 1):
        total = total + torch.linalg.vector_norm(centred_x.pow(order).mean(dim=0) - centred_y.pow(order).mean(dim=0))
    return total


def difference_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Soft orthogonality ``mean((X̂ᵀŶ)²)`` of two ``(B, k_x)``, ``(B, k_y)`` batches (see module doc)."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"difference_loss: expected (B, k) batches of one B, got {tuple(x.shape)} and {tuple(y.shape)}")

    def unit_rows(z: torch.Tensor) -> torch.Tensor:
        z = z - z.mean(dim=0, keepdim=True)
        return z / (torch.linalg.vector_norm(z, dim=1, keepdim=True).detach() + EPS)

    return (unit_rows(x).T @ unit_rows(y)).pow(2).mean()


def reconstruction_loss(reconstructed: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element."""
    if reconstructed.shape != target.shape:
        raise ValueError(f"reconstruction_loss: shapes differ: {tuple(reconstructed.shape)} and {tuple(target.shape)}")
    return (reconstructed - target).pow(2).mean()


class CMDSimilarity(nn.Module):
    """Objective: ``weight · mean over pairs of CMD_K(h^c_i, h^c_j)``, one term ``cmd``."""

    def __init__(self, modalities: tuple[str, ...], weight: float, moments: int = 5):
        super().__init__()
        self.pairs = list(itertools.combinations(modalities, 2))
        if not self.pairs:
            raise ValueError(f"CMDSimilarity needs at least two modalities, got {modalities}")
        self.weight, self.moments = weight, moments

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        shared = output.extras["shared"]
        terms = [central_moment_discrepancy(shared[i], shared[j], self.moments) for i, j in self.pairs]
        return {"cmd": self.weight * torch.stack(terms).mean()}


class DifferenceLoss(nn.Module):
    """Objective: ``weight · (Σ_s L_diff(h^p_s, h^c_s) + Σ_{i<j} L_diff(h^p_i, h^p_j))``, term ``diff``."""

    def __init__(self, modalities: tuple[str, ...], weight: float):
        super().__init__()
        self.modalities = tuple(modalities)
        self.pairs = list(itertools.combinations(self.modalities, 2))
        self.weight = weight

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        shared, private = output.extras["shared"], output.extras["private"]
        terms = [difference_loss(private[s], shared[s]) for s in self.modalities]
        terms += [difference_loss(private[i], private[j]) for i, j in self.pairs]
        return {"diff": self.weight * torch.stack(terms).sum()}


class ReconstructionLoss(nn.Module):
    """Objective: ``weight · mean_s MSE(reconstructed_s, projected_s)``, term ``recon``."""

    def __init__(self, modalities: tuple[str, ...], weight: float):
        super().__init__()
        self.modalities, self.weight = tuple(modalities), weight

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        recon, target = output.extras["reconstructed"], output.extras["projected"]
        terms = [reconstruction_loss(recon[s], target[s]) for s in self.modalities]
        return {"recon": self.weight * torch.stack(terms).mean()}
