"""Multi-task L1 on human labels: ``Σ_s w_s · mean |ŷ_s − y_s|`` over s in m, t, a, v.

The training objective of the CH-SIMS paper's multi-task models (Yu et al., ACL 2020: MTFN,
MLF-DNN, MLMF; MMSA ``trains/multiTask/MTFN.py``): the fused prediction ``ŷ_m`` is trained on
the multimodal label and each unimodal head ``ŷ_t``, ``ŷ_a``, ``ŷ_v`` on the *human* unimodal
label of its modality (CH-SIMS's ``regression_labels_T/A/V``, in ``batch.labels["t"|"a"|"v"]``),
each term weighted by its ``w_s`` (MMSA's ``M``, ``T``, ``A``, ``V``). A weight of 0 drops the
term (its head is then untrained, as in the reference). Unlike ULGM (``ulgm.py``), which
*generates* unimodal labels, this objective needs them in the data; the models using it refuse
data without them (``msakit/models/unimodal_tasks.py``).
"""

from __future__ import annotations

import torch
from torch import nn


class UnimodalLabelsL1(nn.Module):
    def __init__(self, weights: dict[str, float]):
        super().__init__()
        unknown = set(weights) - {"m", "t", "a", "v"}
        if unknown:
            raise ValueError(f"UnimodalLabelsL1: weights for {sorted(unknown)}; the tasks are m, t, a, v")
        self.weights = {s: float(w) for s, w in weights.items() if w != 0}

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        losses = {}
        for s, w in self.weights.items():
            if s not in batch.labels:
                raise KeyError(f"UnimodalLabelsL1: the batch has no {s!r} labels (human unimodal labels regression_labels_{s.upper()})")
            losses[f"l1_{s}"] = w * (output.predictions[s] - batch.labels[s]).abs().mean()
        return losses


__all__ = ["UnimodalLabelsL1"]
