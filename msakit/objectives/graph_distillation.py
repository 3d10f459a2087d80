"""Graph distillation (DMD, Li et al., CVPR 2023; after Luo et al.'s graph distillation, ECCV 2018):
modalities are the vertices of a graph whose directed edges are learned, per sample,
distillation weights.

``GraphDistillationUnit`` (a module the *model* owns, so its parameters train with it) reads, for
``M`` modalities, each one's prediction ``ŷ_s`` ``(B,)`` and representation ``r_s`` ``(B, h)``:
``z_s = [W_logit ŷ_s ; W_repr r_s]`` (``2g``). For every ordered pair ``(j, i)``, ``i ≠ j`` (in
the order j = 0..M−1, then i), a raw edge ``e_{j,i} = W_edge [z_j ; z_i]``; the ``M(M−1)`` raw edges
of a sample are normalised together, ``softmax(α·e)`` (α = 1/8).

``GraphDistillationLoss`` (the objective) with a fixed prior ``π`` over the same edges:

- regulariser ``R = gd_reg · Σ_e (mean_b w_e − π_e)²`` (``gd_reg`` = 10);
- prediction distillation ``Σ_{(j,i)} mean_b (w_{j,i} + π_{j,i}) · |ŷ_j − sg(ŷ_i)|``: modality j
  (student) moves toward modality i's prediction (``sg``: the teacher gets no gradient);
- representation distillation, either ``"l1"``: ``Σ mean_b (w + π)·‖r_j − sg(r_i)‖₁`` times
  ``repr_weight``, or ``"cosine"`` (DMD's heterogeneous unit): ``Σ mean_b max(0, cos(r_j, sg(r_i)))
  · mean_b (w + π)`` times ``repr_weight``; or ``None``: left out (DMD's homogeneous unit computes
  it and never adds it).

The objective returns ``weight · (R + prediction + representation)`` as one term ``name``.
The unit's outputs come from ``output.extras[key]``: ``{"logits": (M, B), "reprs": (M, B, h),
"edges": (M(M−1), B)}``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def edge_prior(hot: list[int], temperature: float = 0.25) -> list[float]:
    """The reference's prior: ``softmax(hot / temperature)`` over the edges."""
    scaled = [h / temperature for h in hot]
    top = max(scaled)
    exp = [math.exp(s - top) for s in scaled]
    return [e / sum(exp) for e in exp]


class GraphDistillationUnit(nn.Module):
    def __init__(self, n_modalities: int, hidden_size: int, gd_size: int, alpha: float = 1 / 8):
        super().__init__()
        self.n, self.alpha = n_modalities, alpha
        self.w_logit = nn.Linear(1, gd_size)
        self.w_repr = nn.Linear(hidden_size, gd_size)
        self.w_edge = nn.Linear(4 * gd_size, 1)

    def pairs(self) -> list[tuple[int, int]]:
        return [(j, i) for j in range(self.n) for i in range(self.n) if i != j]

    def forward(self, logits: torch.Tensor, reprs: torch.Tensor) -> dict[str, torch.Tensor]:
        """``logits`` ``(M, B)``, ``reprs`` ``(M, B, h)`` -> the extras the loss reads."""
        z = torch.cat([self.w_logit(logits.unsqueeze(-1)), self.w_repr(reprs)], dim=-1)  # (M, B, 2g)
        raw = torch.cat([self.w_edge(torch.cat([z[j], z[i]], dim=-1)) for j, i in self.pairs()], dim=1)  # (B, E)
        edges = F.softmax(raw * self.alpha, dim=1).T  # (E, B)
        return {"logits": logits, "reprs": reprs, "edges": edges}


class GraphDistillationLoss(nn.Module):
    def __init__(self, key: str, prior: list[float], weight: float, gd_reg: float = 10.0, logit_weight: float = 1.0,
                 repr_weight: float = 10.0, repr_metric: str | None = "l1", name: str = "graph_distill"):
        super().__init__()
        if repr_metric not in ("l1", "cosine", None):
            raise ValueError(f"GraphDistillationLoss: repr_metric is l1|cosine|None, got {repr_metric!r}")
        self.key, self.weight, self.gd_reg, self.name = key, weight, gd_reg, name
        self.logit_weight, self.repr_weight, self.repr_metric = logit_weight, repr_weight, repr_metric
        self.register_buffer("prior", torch.tensor(prior, dtype=torch.float32), persistent=False)

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        unit = output.extras[self.key]
        logits, reprs, edges = unit["logits"], unit["reprs"], unit["edges"]
        n = logits.shape[0]
        pairs = [(j, i) for j in range(n) for i in range(n) if i != j]
        if len(pairs) != edges.shape[0] or len(pairs) != self.prior.shape[0]:
            raise ValueError(f"GraphDistillationLoss: {edges.shape[0]} edges and {self.prior.shape[0]} priors for {n} modalities")
        prior = self.prior.to(edges.dtype)
        total = self.gd_reg * (edges.mean(dim=1) - prior).pow(2).sum()
        for x, (j, i) in enumerate(pairs):
            w = edges[x] + prior[x]
            total = total + self.logit_weight * ((logits[j] - logits[i].detach()).abs() * w).mean()
            if self.repr_metric == "l1":
                total = total + self.repr_weight * ((reprs[j] - reprs[i].detach()).abs().sum(-1) * w).mean()
            elif self.repr_metric == "cosine":
                cosine = F.cosine_similarity(reprs[j], reprs[i].detach(), dim=-1, eps=1e-12)
                total = total + self.repr_weight * cosine.clamp(min=0).mean() * w.mean()
        return {self.name: self.weight * total}


__all__ = ["GraphDistillationLoss", "GraphDistillationUnit", "edge_prior"]
