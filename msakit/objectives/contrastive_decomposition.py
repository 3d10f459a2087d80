"""ConFEDE's contrastive feature decomposition loss (Yang, Xu, Gao; ACL 2023, "ConFEDE: Contrastive
Feature Decomposition for Multimodal Sentiment Analysis"; reference XpastaX/ConFEDE,
``MOSI/model/net/constrastive/TVA_fusion.py`` and ``MOSI/util/metrics.py``).

Each modality ``s`` of a sample has a *similarity* feature ``σ_s`` and a *dissimilarity* feature
``δ_s`` (all of one size ``k``). For an anchor sample ``i`` six partners are chosen
(``select_partners``), by rounded label and by the cosine similarity of the samples' unimodal
embeddings:

- ``ss``: the 2 most similar samples with the anchor's rounded label;
- ``dd``: the 2 least similar samples with another rounded label;
- ``sd``: the 2 most similar samples with another rounded label (hard negatives).

The anchor and its partners (members ``m = 0..6``: anchor, ss, ss, dd, dd, sd, sd) give 42 vectors
in six blocks of 7 (``σ_t, σ_v, σ_a, δ_t, δ_v, δ_a``). Pairs, as the reference's index tuples:

- positives: the anchor's ``σ_s`` with its two ``ss`` partners' ``σ_s`` (each s); and, for every
  member, ``σ_t`` with ``σ_v`` and ``σ_t`` with ``σ_a`` (a sample's similarity features agree);
- negatives: the anchor's ``σ_s`` with the four ``dd``/``sd`` partners' ``σ_s`` (each s); and, for
  every member, ``σ_t`` with its own ``δ_t``, ``δ_v``, ``δ_a``.

With cosine similarities ``c`` and temperature ``τ``, each positive pair ``(a, p)`` contributes
the NT-Xent term ``−log(e^{c_ap/τ} / (e^{c_ap/τ} + Σ_{n ∈ N(a)} e^{c_an/τ}))`` over the negatives
sharing its first index ``a``; the loss is the mean over positive pairs, then over anchors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BLOCKS = ("sim_t", "sim_v", "sim_a", "dis_t", "dis_v", "dis_a")
MEMBERS = 7  # the anchor, 2 ss, 2 dd, 2 sd partners


def _plan() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The reference's (anchor, positive) and (anchor, negative) index pairs over the 42 vectors."""
    block = {name: MEMBERS * b for b, name in enumerate(BLOCKS)}
    positives, negatives = [], []
    for s in ("t", "v", "a"):
        base = block[f"sim_{s}"]
        positives += [(base, base + 1), (base, base + 2)]
        negatives += [(base, base + m) for m in (3, 4, 5, 6)]
    for m in range(MEMBERS):
        positives += [(block["sim_t"] + m, block["sim_v"] + m), (block["sim_t"] + m, block["sim_a"] + m)]
        negatives += [(block["sim_t"] + m, block[f"dis_{s}"] + m) for s in ("t", "v", "a")]
    return positives, negatives


POSITIVES, NEGATIVES = _plan()


def select_partners(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of ``B`` samples, the indices ``(B, 6)`` of its partners ``[ss, ss, dd, dd, sd,
    sd]`` within the batch and whether it has them all ``(B,)`` (2 others with its rounded label
    and 2 with another)."""
    b = embeddings.shape[0]
    with torch.no_grad():
        unit = F.normalize(embeddings.float(), dim=-1, eps=1e-6)
        cosine = unit @ unit.T
        rounded = torch.round(labels.float())
        other = ~torch.eye(b, dtype=torch.bool, device=embeddings.device)
        same = (rounded[:, None] == rounded[None, :]) & other
        different = rounded[:, None] != rounded[None, :]
        valid = (same.sum(1) >= 2) & (different.sum(1) >= 2)
        if b < 3:
            return torch.zeros(b, 6, dtype=torch.long, device=embeddings.device), valid
        low = torch.finfo(cosine.dtype).min
        ss = cosine.masked_fill(~same, low).topk(2, dim=1).indices
        dd = (-cosine).masked_fill(~different, low).topk(2, dim=1).indices
        sd = cosine.masked_fill(~different, low).topk(2, dim=1).indices
        return torch.cat([ss, dd, sd], dim=1), valid


def pair_ntxent(vectors: torch.Tensor, positives, negatives, temperature: float) -> torch.Tensor:
    """NT-Xent over given pairs, per group: ``vectors`` ``(A, N, k)``; mean over positive pairs
    and groups (see the module docstring)."""
    unit = F.normalize(vectors, dim=-1)
    cosine = unit @ unit.transpose(1, 2) / temperature  # (A, N, N)
    pa, pp = (torch.tensor(x, device=vectors.device) for x in zip(*positives))
    na, nn_ = (torch.tensor(x, device=vectors.device) for x in zip(*negatives))
    positive = cosine[:, pa, pp]  # (A, P)
    negative = cosine[:, na, nn_]  # (A, Q)
    owner = pa[:, None] == na[None, :]  # (P, Q): the negatives sharing each positive's anchor
    scores = torch.cat([positive[..., None], negative[:, None, :].expand(-1, len(positives), -1)], dim=-1)
    mask = torch.cat([torch.ones(len(positives), 1, dtype=torch.bool, device=vectors.device), owner], dim=1)
    log_probability = positive - torch.logsumexp(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return -log_probability.mean()


class ContrastiveDecomposition(nn.Module):
    """Objective: ``weight · mean over anchors with partners of the pair NT-Xent``, term
    ``contrastive``; reads ``extras["similarity"]``, ``extras["dissimilarity"]`` (``{s: (B, k)}``)
    and ``extras["pairing"]`` ``(B, K)`` (the embeddings partners are chosen by)."""

    def __init__(self, weight: float, temperature: float = 0.5):
        super().__init__()
        self.weight, self.temperature = weight, temperature

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        sim, dis = output.extras["similarity"], output.extras["dissimilarity"]
        partners, valid = select_partners(output.extras["pairing"], batch.labels["m"])
        if not bool(valid.any()):
            return {"contrastive": sim["t"].sum() * 0.0}
        members = torch.cat([torch.arange(len(valid), device=partners.device)[:, None], partners], dim=1)[valid]  # (A, 7)
        features = [sim["t"], sim["v"], sim["a"], dis["t"], dis["v"], dis["a"]]
        vectors = torch.cat([f[members] for f in features], dim=1)  # (A, 42, k)
        return {"contrastive": self.weight * pair_ntxent(vectors, POSITIVES, NEGATIVES, self.temperature)}


class AuxiliaryMSE(nn.Module):
    """Objective: ``weight · mean_k mean (ŷ_k − y_m)²`` over ``keys`` of ``extras["logits"]``, term ``name``."""

    def __init__(self, keys: tuple[str, ...], weight: float, name: str = "aux_mse"):
        super().__init__()
        self.keys, self.weight, self.name = tuple(keys), weight, name

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        logits, y = output.extras["logits"], batch.labels["m"]
        return {self.name: self.weight * torch.stack([(logits[k] - y).pow(2).mean() for k in self.keys]).mean()}


__all__ = ["AuxiliaryMSE", "ContrastiveDecomposition", "NEGATIVES", "POSITIVES", "pair_ntxent", "select_partners"]
