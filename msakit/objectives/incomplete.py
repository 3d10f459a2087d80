"""Losses for learning from incomplete data, as LNLN (Zhang et al., NeurIPS 2024) trains with them;
usable by any model that puts the same entries in ``output.extras`` on training batches.

A training batch is seen twice by such a model: complete, and with a random part of each
modality removed at a rate drawn per sample (``msakit.data.random_missing``).

**Completeness estimation.** A model scores how complete the dominant modality's input is,
``w ∈ [0, 1]`` per sample, and is taught the truth: ``L_cc = mean_i (w_i − (1 − r_i))²``, with
``r_i`` the rate at which sample i's dominant modality was corrupted. Extras:
``"completeness"`` ``(B,)`` and ``"dominant_missing_rate"`` ``(B,)``.

**Effectiveness (adversarial).** A discriminator tells the corrected dominant representation
(computed from the incomplete input) from the dominant modality's representation of the
complete input, token by token: cross-entropy with class 1 for the corrected tokens and class 0
for the complete ones, ``L_adv = CE(D([h_d; h_complete]), [1…1, 0…0])``. The model places a
gradient-reversal layer where it wants the adversary (LNLN: on its proxy dominant feature), so
the same loss trains the discriminator and pushes the corrected representation towards the
complete one. Extra: ``"effectiveness_logits"`` ``(2·B·N, 2)``, the corrected tokens first.

**Reconstruction of the complete representation.** ``L_rec = mean (R − C)²`` over every
element, ``R`` the representations rebuilt from the incomplete input and ``C`` the same
encoders' representations of the complete input (neither detached, as the reference). Extras:
``"reconstructed"`` and ``"complete"``, tensors of the same shape.

Each objective returns nothing when its extras are absent (evaluation, or a model that skips
them), so it is safe to list it for any batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times ``-alpha`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.neg() * ctx.alpha, None


def reverse_gradient(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    return GradientReversal.apply(x, alpha)


class CompletenessEstimation(nn.Module):
    def __init__(self, weight: float = 0.9):
        super().__init__()
        self.weight = weight

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        w, rate = output.extras.get("completeness"), output.extras.get("dominant_missing_rate")
        if w is None or rate is None or self.weight == 0:
            return {}
        return {"completeness": self.weight * (w - (1.0 - rate)).pow(2).mean()}


class EffectivenessAdversarial(nn.Module):
    def __init__(self, weight: float = 0.8):
        super().__init__()
        self.weight = weight

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        logits = output.extras.get("effectiveness_logits")
        if logits is None or self.weight == 0:
            return {}
        half = logits.shape[0] // 2
        target = torch.cat([torch.ones(half, dtype=torch.long), torch.zeros(logits.shape[0] - half, dtype=torch.long)]).to(logits.device)
        return {"effectiveness": self.weight * F.cross_entropy(logits, target)}


class CompleteReconstruction(nn.Module):
    def __init__(self, weight: float = 0.1):
        super().__init__()
        self.weight = weight

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        rebuilt, complete = output.extras.get("reconstructed"), output.extras.get("complete")
        if rebuilt is None or complete is None or self.weight == 0:
            return {}
        return {"reconstruction": self.weight * F.mse_loss(rebuilt, complete)}


__all__ = ["CompleteReconstruction", "CompletenessEstimation", "EffectivenessAdversarial", "GradientReversal", "reverse_gradient"]
