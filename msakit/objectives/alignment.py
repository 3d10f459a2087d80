"""Deep modal alignment (Lai et al. 2023, arXiv 2305.08473): a covariance loss between modalities.

For a batch ``X ∈ R^{B×k}`` of one modality's features, the batch covariance is
``C = (X − x̄)ᵀ(X − x̄) / (B − 1)``. Two modalities i, j of the same size k are aligned by the
Deep CORAL distance ``L_cov(i, j) = ‖C_i − C_j‖²_F / (4k²)``, which pulls their second-order
statistics together (the shared information) while leaving their means free. The total
objective adds ``Σ_{(i,j) ∈ pairs} λ_ij · L_cov(i, j)`` to the model's own loss.

Plug-and-play: ``CovarianceAlignment`` needs only ``output.features[s]`` for the modalities
in its pairs, so any model that exposes per-modality features can use it.
"""

from __future__ import annotations

import itertools
import math
import warnings

import torch
from torch import nn

from msakit.errors import ConfigError

ALIGNABLE = ("t", "a", "v", "m")


def batch_covariance(x: torch.Tensor) -> torch.Tensor:
    """``(B, k) -> (k, k)`` unbiased covariance of the rows of ``x``."""
    if x.dim() != 2:
        raise ValueError(f"batch_covariance: expected a (B, k) matrix, got shape {tuple(x.shape)}")
    centred = x - x.mean(dim=0, keepdim=True)
    return centred.T @ centred / (x.shape[0] - 1)


def covariance_alignment_loss(x_i: torch.Tensor, x_j: torch.Tensor) -> torch.Tensor:
    """``‖C_i − C_j‖²_F / (4k²)`` for two ``(B, k)`` feature batches (Deep CORAL).

    Zero for identical batches and for batches that differ by a shift; invariant to the
    order of samples (applied to both). With fewer than 2 samples the covariance is
    undefined: returns a zero that keeps the graph, and warns, instead of NaN.
    """
    if x_i.dim() != 2 or x_j.dim() != 2:
        raise ValueError(f"covariance_alignment_loss: expected (B, k) inputs, got {tuple(x_i.shape)} and {tuple(x_j.shape)}")
    if x_i.shape != x_j.shape:
        raise ValueError(
            f"covariance_alignment_loss: the two feature batches must have the same shape, got "
            f"{tuple(x_i.shape)} and {tuple(x_j.shape)}; aligned modalities need the same feature size"
        )
    batch, k = x_i.shape
    if batch < 2:
        warnings.warn("covariance_alignment_loss: a batch of 1 has no covariance; returning 0 for it", RuntimeWarning, stacklevel=2)
        return (x_i.sum() + x_j.sum()) * 0.0
    difference = batch_covariance(x_i.float()) - batch_covariance(x_j.float())
    return difference.square().sum() / (4.0 * k * k)


def covariance_distances(features: dict[str, torch.Tensor]) -> dict[str, float]:
    """``L_cov`` between every two same-size features (e.g. over a whole test split), a
    diagnostic of how far apart the modalities' second-order statistics are."""
    names = [s for s in ALIGNABLE if s in features]
    return {
        f"{i}-{j}": float(covariance_alignment_loss(features[i], features[j]))
        for i, j in itertools.combinations(names, 2)
        if features[i].shape[1] == features[j].shape[1] and features[i].shape[0] >= 2
    }


def parse_pairs(spec: str | list | tuple, default_weight: float = 1.0) -> list[tuple[str, str, float]]:
    """Read a pair set: ``"a-v"``, ``"t-a,t-v"``, ``"all"`` (every pair of t, a, v), ``"none"``,
    with optional per-pair weights ``"a-v:0.5,t-a:0.1"``. Returns ``[(i, j, weight), ...]``."""
    if isinstance(spec, (list, tuple)):
        spec = ",".join(p if isinstance(p, str) else "-".join(p) for p in spec)
    text = str(spec).strip().lower().replace(" ", "")
    if text in ("", "none"):
        return []
    items = [item for item in text.split(",") if item]
    pairs: list[tuple[str, str, float]] = []
    for item in items:
        name, _, weight_text = item.partition(":")
        try:
            weight = float(weight_text) if weight_text else default_weight
        except ValueError:
            raise ConfigError(f"alignment pairs {spec!r}: weight {weight_text!r} of {name!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"alignment pairs {spec!r}: the weight of {name!r} is {weight}; it must be a finite number >= 0")
        if name == "all":
            chosen = list(itertools.combinations(("t", "a", "v"), 2))
        else:
            ends = name.split("-")
            if len(ends) != 2 or any(e not in ALIGNABLE for e in ends) or ends[0] == ends[1]:
                raise ConfigError(
                    f"alignment pairs {spec!r}: {name!r} is not a pair; write pairs of two different "
                    f"modalities from {', '.join(ALIGNABLE)} as 'a-v', 't-a,t-v', or 'all' / 'none'"
                )
            chosen = [tuple(ends)]
        for i, j in chosen:
            if any({i, j} == {p[0], p[1]} for p in pairs):
                raise ConfigError(f"alignment pairs {spec!r}: the pair {i}-{j} is given twice")
            pairs.append((i, j, weight))
    return pairs


class CovarianceAlignment(nn.Module):
    """Objective: ``Σ λ_ij · L_cov(F_i, F_j)`` over the chosen pairs, one named term per pair."""

    def __init__(self, pairs: list[tuple[str, str, float]], feature_dims: dict[str, int]):
        super().__init__()
        for i, j, _ in pairs:
            for s in (i, j):
                if s not in feature_dims:
                    raise ConfigError(f"alignment pair {i}-{j}: the model exposes no {s!r} features (it has {sorted(feature_dims)})")
            if feature_dims[i] != feature_dims[j]:
                raise ConfigError(
                    f"alignment pair {i}-{j}: F_{i} has {feature_dims[i]} dims and F_{j} has {feature_dims[j]}; "
                    f"aligned features must have one size: set alignment.align_dim (e.g. --set alignment.align_dim=32) "
                    "or make the two post dims equal"
                )
        self.pairs = list(pairs)

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        terms = {}
        absent = getattr(batch, "absent", None) or {}
        for i, j, weight in self.pairs:
            x_i, x_j = output.features[i], output.features[j]
            if i in absent or j in absent:  # modality dropout: align only samples that have both
                keep = torch.ones(x_i.shape[0], dtype=torch.bool, device=x_i.device)
                for s in (i, j):
                    if s in absent:
                        keep &= ~absent[s].to(x_i.device)
                if int(keep.sum()) < 2:
                    terms[f"cov_{i}{j}"] = x_i.sum() * 0.0  # nothing to align in this batch
                    continue
                x_i, x_j = x_i[keep], x_j[keep]
            terms[f"cov_{i}{j}"] = weight * covariance_alignment_loss(x_i, x_j)
        return terms
