"""MMIM's mutual-information terms (Han et al., EMNLP 2021), as estimators and objectives.

**MMILB: modality-level lower bound.** For a pair (x, y), e.g. text and vision vectors, a
Gaussian ``q(y | x) = N(μ(x), diag σ²(x))`` with ``μ, log σ²`` from two small MLPs. Its
log-likelihood term, as the reference computes it (no ``−½ log σ²`` term, no constant)::

    lld(x, y) = mean_b Σ_d −(μ_d(x_b) − y_bd)² / (2 σ_d²(x_b))

The estimator networks are trained to raise ``lld`` (stage 1) and the encoders to raise it too
(stage 2). The entropy part of the bound uses the projections ``p(y) = tanh(W y)`` of the
positive (label > 0) and negative (label < 0) samples of this batch plus the last ``mem_size``
batches, and their covariances ``Σ = mean (p − p̄)(p − p̄)ᵀ``::

    H = ¼ (log det Σ_pos + log det Σ_neg)

**CPC: fusion-level bound** (contrastive predictive coding, van den Oord et al. 2018). The
fused vector ``z`` predicts each modality vector ``x_s`` with a linear map ``G_s``; with
``x̂ = G_s(z)/‖G_s(z)‖`` and ``x̃ = x_s/‖x_s‖``::

    nce_s = −mean_b ( x̃_b·x̂_b − log Σ_j exp(x̃_b·x̂_j) )

Lower is better (a better bound on I(x_s; z)); for B samples it is at least ``log B − 2``.

**Two-stage optimisation.** The reference alternates whole epochs: first the MMILB networks
alone are trained on ``−lld`` (its own Adam), then everything else on
``L1 + α·Σ_s nce_s − β·(Σ lld + H)`` (another Adam), the MMILB networks held fixed. msakit's
one trainer runs one forward/backward per batch, so both stages share it and the gradients are
routed instead: the estimator term is computed on detached x, y (its gradient reaches only the
MMILB networks), and the encoder terms through the MMILB networks with their weights detached
(their gradient reaches only the encoders). Each parameter thus receives exactly the gradient
its own stage would give it; the stages are interleaved per batch instead of per epoch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gaussian_log_likelihood_term(mu: torch.Tensor, logvar: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``mean_b Σ_d −(μ − y)² / (2 exp(log σ²))``; 0 exactly when ``μ = y``."""
    return (-(mu - y).pow(2) / 2.0 / logvar.exp()).sum(dim=-1).mean()


def cpc_nce(x: torch.Tensor, x_prediction: torch.Tensor) -> torch.Tensor:
    """CPC score of ``(B, k)`` targets and their predictions (see module doc); lower is better."""
    if x.shape != x_prediction.shape or x.dim() != 2:
        raise ValueError(f"cpc_nce: expected two (B, k) batches of one shape, got {tuple(x.shape)} and {tuple(x_prediction.shape)}")
    x = x / x.norm(dim=1, keepdim=True)
    x_prediction = x_prediction / x_prediction.norm(dim=1, keepdim=True)
    positive = (x * x_prediction).sum(dim=-1)
    negative = torch.logsumexp(x @ x_prediction.T, dim=-1)
    return -(positive - negative).mean()


def gaussian_entropy_term(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """``¼ (log det Σ_pos + log det Σ_neg)`` with ``Σ`` the biased covariance of each ``(n, k)`` set."""

    def covariance(z: torch.Tensor) -> torch.Tensor:
        centred = z - z.mean(dim=0)
        return centred.T @ centred / z.shape[0]

    return 0.25 * (torch.logdet(covariance(positive)) + torch.logdet(covariance(negative)))


def _linear(layer: nn.Linear, x: torch.Tensor, frozen: bool) -> torch.Tensor:
    if not frozen:
        return layer(x)
    return F.linear(x, layer.weight.detach(), None if layer.bias is None else layer.bias.detach())


class MMILB(nn.Module):
    """The MMILB estimator of one pair: ``μ(x)``, ``log σ²(x)`` MLPs (``x_size → y_size → y_size``,
    ``ReLU`` between) and the entropy projection ``tanh(Linear(y_size → y_size // 4))``."""

    def __init__(self, x_size: int, y_size: int):
        super().__init__()
        if y_size < 4:
            raise ValueError(f"MMILB: y_size must be >= 4 (the entropy projection has y_size // 4 dims), got {y_size}")
        self.mu = nn.ModuleList([nn.Linear(x_size, y_size), nn.Linear(y_size, y_size)])
        self.logvar = nn.ModuleList([nn.Linear(x_size, y_size), nn.Linear(y_size, y_size)])
        self.entropy_projection = nn.Linear(y_size, y_size // 4)

    def _mlp(self, layers: nn.ModuleList, x: torch.Tensor, frozen: bool) -> torch.Tensor:
        return _linear(layers[1], torch.relu(_linear(layers[0], x, frozen)), frozen)

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """``lld(x, y)``; ``frozen`` detaches this estimator's weights (gradient to x, y only)."""
        return gaussian_log_likelihood_term(self._mlp(self.mu, x, frozen), self._mlp(self.logvar, x, frozen), y)

    def project(self, y: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        return torch.tanh(_linear(self.entropy_projection, y, frozen))


class CPC(nn.Module):
    """``G_s``: predicts a ``x_size`` modality vector from the ``y_size`` fused vector (one linear
    layer, the reference's ``cpc_layers = 1``)."""

    def __init__(self, x_size: int, y_size: int):
        super().__init__()
        self.net = nn.Linear(y_size, x_size)

    def forward(self, x: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        return cpc_nce(x, self.net(fused))


class CPCObjective(nn.Module):
    """Objective: ``α · Σ_s nce_s`` from ``output.extras["cpc"] = {s: nce_s}``, term ``cpc``."""

    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        return {"cpc": self.weight * torch.stack(list(output.extras["cpc"].values())).sum()}


class MMILBObjective(nn.Module):
    """Objective, both stages of the MMILB from ``output.extras["mmilb"] = {pair: (lld_estimator,
    lld_encoders)}``: term ``mmilb_estimator = −Σ lld_estimator`` (stage 1, reaches only the
    estimator networks) and term ``mmilb_lld = −β · Σ lld_encoders`` (stage 2, only the encoders)."""

    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        pairs = output.extras["mmilb"].values()
        return {
            "mmilb_estimator": -torch.stack([estimator for estimator, _ in pairs]).sum(),
            "mmilb_lld": -self.weight * torch.stack([encoders for _, encoders in pairs]).sum(),
        }


class MMILBEntropy(nn.Module):
    """Objective: ``−β · Σ_pairs H`` (term ``mmilb_entropy``) over this batch's projected positive
    and negative samples plus those of the last ``mem_size`` batches of the epoch (detached).

    As in the reference: the memory restarts each epoch, and the term is used only from the
    batch after the memory first fills (batch index > ``mem_size``). Where a class has no more
    samples than dimensions (a singular covariance, log det = −∞) the term is 0 for that batch.
    """

    def __init__(self, weight: float, mem_size: int = 1):
        super().__init__()
        self.weight, self.mem_size = weight, mem_size
        self._epoch, self._step = None, 0
        self._memory: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    @staticmethod
    def _split(projected: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return projected[labels > 0], projected[labels < 0]

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        if epoch != self._epoch:
            self._epoch, self._step, self._memory = epoch, 0, {}
        projected = output.extras["mmilb_projected"]
        total = sum(p.sum() for p in projected.values()) * 0.0  # keeps the graph when unused
        if self._step > self.mem_size:
            labels = batch.labels["m"]
            for pair, p in projected.items():
                positive, negative = self._split(p, labels)
                history = self._memory.get(pair, [])
                positive = torch.cat([h[0] for h in history] + [positive])
                negative = torch.cat([h[1] for h in history] + [negative])
                k = p.shape[1]
                if positive.shape[0] > k and negative.shape[0] > k:
                    entropy = gaussian_entropy_term(positive, negative)
                    if torch.isfinite(entropy):
                        total = total + entropy
        return {"mmilb_entropy": -self.weight * total}

    @torch.no_grad()
    def after_step(self, output, batch, epoch: int) -> None:
        labels = batch.labels["m"]
        for pair, p in output.extras["mmilb_projected"].items():
            history = self._memory.setdefault(pair, [])
            history.append(tuple(t.detach() for t in self._split(p, labels)))
            del history[: max(0, len(history) - self.mem_size)]
        self._step += 1
