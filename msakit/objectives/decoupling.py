"""Losses of the decoupling models DMD (Li et al., CVPR 2023) and DLF (Wang et al., AAAI 2025):
each modality's sequence split into a modality-invariant part ``c_s`` (one encoder shared by all
modalities) and a modality-specific part ``s_s`` (one encoder per modality).

**Auxiliary L1.** ``Σ_k w_k · mean_b |ŷ_k − y|`` over auxiliary predictions ``k`` (a head per
space and modality), read from ``output.extras["logits"]``; term ``aux_l1``.

**Sequence reconstruction** (``ExtrasMSE``). ``Σ_s mean((X_s − T_s)²)`` for two tensors of one
shape per modality named by ``extras`` keys: DMD/DLF use it twice, for the decoder's
reconstruction of the projected sequence (``recon``: ``D_s([s_s; c_s])`` against the projection)
and for the cycle consistency of the specific code (``cycle``: ``E^s_s(D_s(...))`` against
``s_s``).

**Orthogonality** (``CosineOrthogonality``). For each modality, the cosine between ``s_s`` and
``c_s`` at each frame of each sample (over the ``d`` features), clamped at 0 and averaged:
``Σ_s mean_{b,t} max(0, cos(s_s[b,t], c_s[b,t]))``, PyTorch's ``CosineEmbeddingLoss`` with
target −1 and margin 0. It is 0 when the two codes are orthogonal or opposed at every frame.

**Label-margin hinge** (``LabelMarginHinge``, DMD's ``HingeLoss``). The invariant codes of every
modality of every sample, ``3B`` vectors ``f_i`` with labels ``y_i``, i.e. each sample's three
codes share its label. For an anchor ``i``, its positives are the other vectors with exactly
its label (its own other modalities, and other samples with the same label), its negatives the
rest; with margins ``m_ik = 0.15·|y_i − y_k|``::

    L_i = mean_{j ∈ P(i), k ∈ N(i)} max(0, m_ik − cos(f_i, f_j) + cos(f_i, f_k))

averaged over anchors that have both positives and negatives. It is 0 once every positive is
closer (in cosine) than every negative by the label-proportional margin.
"""

from __future__ import annotations

import torch
from torch import nn

from msakit.objectives.subspace import reconstruction_loss


class AuxiliaryL1(nn.Module):
    """Objective: ``Σ_k w_k · mean|ŷ_k − y_m|`` over ``weights = {k: w_k}``, one term ``aux_l1``."""

    def __init__(self, weights: dict[str, float]):
        super().__init__()
        self.weights = dict(weights)

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        logits, y = output.extras["logits"], batch.labels["m"]
        terms = [w * (logits[k] - y).abs().mean() for k, w in self.weights.items()]
        return {"aux_l1": torch.stack(terms).sum()}


class ExtrasMSE(nn.Module):
    """Objective: ``weight · Σ_s MSE(extras[produced][s], extras[target][s])``, one term ``name``."""

    def __init__(self, modalities: tuple[str, ...], produced: str, target: str, weight: float, name: str):
        super().__init__()
        self.modalities, self.produced, self.target, self.weight, self.name = tuple(modalities), produced, target, weight, name

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        produced, target = output.extras[self.produced], output.extras[self.target]
        terms = [reconstruction_loss(produced[s], target[s]) for s in self.modalities]
        return {self.name: self.weight * torch.stack(terms).sum()}


def cosine_orthogonality(specific: torch.Tensor, invariant: torch.Tensor) -> torch.Tensor:
    """``mean max(0, cos)`` between two ``(..., d)`` tensors of one shape, over their last axis."""
    if specific.shape != invariant.shape:
        raise ValueError(f"cosine_orthogonality: shapes differ: {tuple(specific.shape)} and {tuple(invariant.shape)}")
    # CosineEmbeddingLoss's cosine: the product over sqrt of the squared norms plus 1e-12.
    product = (specific * invariant).sum(-1)
    norms = ((specific.pow(2).sum(-1) + 1e-12) * (invariant.pow(2).sum(-1) + 1e-12)).sqrt()
    return (product / norms).clamp(min=0).mean()


class CosineOrthogonality(nn.Module):
    """Objective: ``weight · Σ_s cosine_orthogonality(specific_s, invariant_s)``, term ``ortho``.
    ``width`` > 0: the cosine is taken over consecutive ``width``-feature pieces of each frame's
    vector instead of the whole vector (DLF's MOSEI setting, 10 of 50)."""

    def __init__(self, modalities: tuple[str, ...], weight: float, width: int = 0):
        super().__init__()
        self.modalities, self.weight, self.width = tuple(modalities), weight, width

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        specific, invariant = output.extras["specific"], output.extras["invariant"]
        piece = (lambda x: x.reshape(-1, self.width)) if self.width > 0 else (lambda x: x)  # noqa: E731
        terms = [cosine_orthogonality(piece(specific[s]), piece(invariant[s])) for s in self.modalities]
        return {"ortho": self.weight * torch.stack(terms).sum()}


def label_margin_hinge(features: torch.Tensor, labels: torch.Tensor, margin_scale: float = 0.15) -> torch.Tensor:
    """The hinge of the module docstring for ``(N, k)`` features and ``(N,)`` labels (exact
    equality makes a positive); 0 when no anchor has both a positive and a negative."""
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f"label_margin_hinge: expected (N, k) features and (N,) labels, got {tuple(features.shape)} and {tuple(labels.shape)}")
    n = features.shape[0]
    norm = (features.pow(2).sum(1) + 1e-8).sqrt().clamp(min=1e-8)
    unit = features / norm[:, None]
    cosine = unit @ unit.T  # (N, N)
    other = ~torch.eye(n, dtype=torch.bool, device=features.device)
    same = (labels[:, None] == labels[None, :]) & other
    different = (labels[:, None] != labels[None, :]) & other
    margin = margin_scale * (labels[:, None] - labels[None, :]).abs()
    # hinge[i, j, k] = max(0, m_ik − cos_ij + cos_ik) for positive j and negative k of anchor i.
    hinge = (margin[:, None, :] - cosine[:, :, None] + cosine[:, None, :]).clamp(min=0)
    pairs = same[:, :, None] & different[:, None, :]
    counts = pairs.sum(dim=(1, 2))
    used = counts > 0
    if not bool(used.any()):
        return features.sum() * 0.0
    per_anchor = (hinge * pairs).sum(dim=(1, 2))[used] / counts[used]
    return per_anchor.mean()


class LabelMarginHinge(nn.Module):
    """Objective: ``weight · label_margin_hinge`` over ``extras["invariant_vectors"]`` of every
    modality (each sample's vectors carry its label ``y_m``), term ``margin``."""

    def __init__(self, modalities: tuple[str, ...], weight: float, margin_scale: float = 0.15):
        super().__init__()
        self.modalities, self.weight, self.margin_scale = tuple(modalities), weight, margin_scale

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        vectors = output.extras["invariant_vectors"]
        # Sample-major order, as the reference: sample 0's modalities, then sample 1's, ...
        features = torch.stack([vectors[s] for s in self.modalities], dim=1).flatten(0, 1)
        labels = batch.labels["m"].repeat_interleave(len(self.modalities))
        return {"margin": self.weight * label_margin_hinge(features, labels, self.margin_scale)}


__all__ = [
    "AuxiliaryL1", "CosineOrthogonality", "ExtrasMSE", "LabelMarginHinge", "cosine_orthogonality", "label_margin_hinge",
]
