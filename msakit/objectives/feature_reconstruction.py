"""TFR-Net's reconstruction loss: rebuild the features of the positions that were made missing.

For each modality s, with the generator's output ``X̂_s`` (``(B, L, D_s)``), the complete
features ``X_s`` and ``M_s`` the valid positions made missing (broadcast over the D_s features),
``n_s = Σ M_s`` (positions x features)::

    rec_s = [ SmoothL1_sum(X̂_s ⊙ M_s, X_s ⊙ M_s) + λ_sim · CMD_3(X̂_s ⊙ M_s, X_s ⊙ M_s) ] / (n_s + 1e-4)
    loss  = Σ_s w_s · rec_s                 (only from epoch ``start_epoch`` on)

``CMD_3`` is the central moment discrepancy of orders 1 to 3 between the rows (every position
of every sample) of the two masked matrices (``subspace.central_moment_discrepancy``). This is
the ``combine`` loss of MMSA 2.2.1 ``models/missingTask/TFR_NET/model.py`` (``RECLoss``), with
its trainer's schedule: the prediction loss alone in the first epoch, both after.

The model puts ``{"reconstruction": {s: (X̂_s, X_s, M_s)}}`` in ``ModelOutput.extras`` in
training mode; without it (evaluation) this objective adds nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from msakit.objectives.subspace import central_moment_discrepancy

EPS = 1e-4


def masked_reconstruction_loss(reconstructed: torch.Tensor, target: torch.Tensor, missing: torch.Tensor, sim_weight: float) -> torch.Tensor:
    """``rec_s`` of the module docstring for one modality; ``missing`` is ``(B, L)`` booleans."""
    mask = missing.unsqueeze(-1).to(reconstructed.dtype).expand_as(reconstructed)
    pred, true = reconstructed * mask, target * mask
    count = mask.sum() + EPS
    loss = F.smooth_l1_loss(pred, true, reduction="sum") / count
    if sim_weight:
        loss = loss + sim_weight * central_moment_discrepancy(pred.reshape(-1, pred.shape[-1]), true.reshape(-1, true.shape[-1]), moments=3) / count
    return loss


class FeatureReconstruction(nn.Module):
    def __init__(self, weights: dict[str, float], sim_weight: float, start_epoch: int = 2):
        super().__init__()
        self.weights, self.sim_weight, self.start_epoch = dict(weights), float(sim_weight), int(start_epoch)

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        parts = output.extras.get("reconstruction")
        if not parts or epoch < self.start_epoch:
            return {}
        return {
            f"reconstruction_{s}": self.weights[s] * masked_reconstruction_loss(pred, target, missing, self.sim_weight)
            for s, (pred, target, missing) in parts.items()
            if self.weights.get(s)
        }


__all__ = ["FeatureReconstruction", "masked_reconstruction_loss"]
