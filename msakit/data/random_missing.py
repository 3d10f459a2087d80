"""Random missing inside a training batch, at a rate drawn per sample (LNLN's training protocol).

``msakit.data.corruption`` corrupts a whole split at one rate, in the data path, for evaluation
(``msakit robustness``) and for ``train.modality_dropout``. A model trained to recover from
missing data (LNLN) needs, for the same sample in the same step, both the clean input (its
reconstruction target) and a corrupted one, with a different rate per sample; these functions
make the corrupted copy of a batch's tensors with the same two corruptions as
``corruption.py``, so training and the robustness grid remove the same kind of thing:

- audio / vision: each valid frame zeroed with the sample's probability, lengths unchanged
  (``corruption.py``'s ``frames``);
- text: each token between the first (``[CLS]``) and the last (``[SEP]``) dropped with the
  sample's probability and the rest moved left (``corruption.py``'s ``words`` with ``drop``,
  on word pieces instead of words).

Draws come from torch's global generator (the trainer seeds it and keeps its state in every
resume checkpoint), so a run and its resumed twin draw the same.
"""

from __future__ import annotations

import torch


def draw_missing_rates(n: int, device: torch.device | str = "cpu", clean_fraction: float = 0.5) -> torch.Tensor:
    """``(n,)`` rates: uniform in [0, 1), then ``floor(n * clean_fraction)`` samples picked at
    random set to 0 (LNLN's reference keeps half of each modality complete)."""
    rates = torch.rand(n, device=device)
    clean = torch.randperm(n, device=device)[: int(n * clean_fraction)]
    rates[clean] = 0.0
    return rates


def drop_frames(frames: torch.Tensor, lengths: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    """``frames`` ``(B, T, D)`` with each valid frame of row i zeroed with probability
    ``rates[i]`` (padding untouched; lengths unchanged)."""
    b, t = frames.shape[:2]
    valid = torch.arange(t, device=frames.device)[None, :] < lengths.to(frames.device)[:, None]
    lost = (torch.rand(b, t, device=frames.device) < rates[:, None]) & valid
    return frames.masked_fill(lost[:, :, None], 0.0)


def drop_tokens(ids: torch.Tensor, mask: torch.Tensor, rates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)`` ``(B, L)`` with each token strictly between a row's first and last valid
    token dropped with probability ``rates[i]``; kept tokens move left in order, freed places
    become padding (mask 0, the row's padding id where it has one, else its last id)."""
    b, n = ids.shape
    valid = mask.bool()
    lengths = valid.sum(dim=1)
    position = torch.arange(n, device=ids.device)[None, :]
    inner = valid & (position > 0) & (position < (lengths - 1)[:, None])
    keep = valid & ~(inner & (torch.rand(b, n, device=ids.device) < rates[:, None]))
    order = torch.argsort((~keep).to(torch.int64) * n + position, dim=1)  # kept first, in order
    new_mask = torch.gather(keep, 1, order)
    pad = torch.where(lengths < n, ids[:, -1], ids.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1))
    new_ids = torch.where(new_mask, torch.gather(ids, 1, order), pad[:, None])
    return new_ids, new_mask.to(mask.dtype)


__all__ = ["draw_missing_rates", "drop_frames", "drop_tokens"]
