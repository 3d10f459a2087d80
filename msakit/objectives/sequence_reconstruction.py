"""Reconstruction of word-aligned sequences: MFM's generative loss and MCTN's translation
losses (the same formula, different weights and targets).

For each modality s with weight ``λ_s``, a model's reconstruction ``X̂_s`` ``(B, L, D_s)`` of
a target sequence ``X_s`` (the modality's own sequence for MFM, the translation target for
MCTN) is scored by the mean squared error over the valid steps of every sample::

    L_s = λ_s · mean_{b, i < len_b, d} (X̂_s[b, i, d] − X_s[b, i, d])²

(``msakit.objectives.subspace.reconstruction_loss`` on the valid rows). The references take
the mean over every padded position as well; padding is no sample's content, so it is left out
here. The target is treated as a constant (a fine-tuned text encoder is not pulled towards
its own reconstruction).

The objective reads ``output.extras``: ``"reconstructed"`` and ``"reconstruction_targets"``
(``{s: (B, L, D_s)}``) and ``"valid_steps"`` (``(B, L)`` bool). One term per modality,
``recon_<s>``.
"""

from __future__ import annotations

import torch
from torch import nn

from msakit.objectives.subspace import reconstruction_loss


def masked_sequence_mse(reconstructed: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the valid steps (``valid``: ``(B, L)`` bool) of ``(B, L, D)``."""
    if reconstructed.shape != target.shape or valid.shape != reconstructed.shape[:2]:
        raise ValueError(f"masked_sequence_mse: shapes {tuple(reconstructed.shape)}, {tuple(target.shape)}, mask {tuple(valid.shape)}")
    return reconstruction_loss(reconstructed[valid], target.detach()[valid])


class SequenceReconstruction(nn.Module):
    """Objective: ``λ_s · masked MSE(X̂_s, X_s)`` for each s in ``weights`` (``{s: λ_s}``)."""

    def __init__(self, weights: dict[str, float]):
        super().__init__()
        if not weights or any(w < 0 for w in weights.values()):
            raise ValueError(f"SequenceReconstruction: weights must be a non-empty {{modality: weight >= 0}}, got {weights}")
        self.weights = dict(weights)

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        extras = output.extras
        if "reconstructed" not in extras:  # evaluation: the model skips its decoders
            return {}
        valid = extras["valid_steps"]
        return {
            f"recon_{s}": w * masked_sequence_mse(extras["reconstructed"][s], extras["reconstruction_targets"][s], valid)
            for s, w in self.weights.items()
            if w > 0
        }
