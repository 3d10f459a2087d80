"""Word-aligned sequences: one vector per text position, joining the modalities used.

For models that need one audio and one vision frame per text token (MMSA's ``aligned_50.pkl``
layout: frame i belongs to ``text_bert`` position i, valid frames = the text mask). msakit
re-tokenises ``raw_text``; token position i gets frame i, positions past a sample's valid frames
get zero frames (see ``msakit/models/mag_bert.py`` for the pairing and its limits).

``MaskedBatchNorm`` normalises each feature over the valid positions of a batch only, so the
padding neither enters the statistics nor depends on how wide the batch happens to be.
``StackedLSTM`` runs a multi-layer unidirectional LSTM and returns the top layer's state at each
sample's last valid position (the final state of a packed run: the padding comes after).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def frames_per_position(frames: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """``(B, T, D)`` word-aligned frames -> ``(B, width, D)``: position i takes frame i;
    positions at or past the sample's valid length (or past T) get zeros."""
    batch, steps, dim = frames.shape
    out = frames.new_zeros(batch, width, dim)
    n = min(steps, width)
    out[:, :n] = frames[:, :n]
    valid = torch.arange(width, device=frames.device)[None, :] < lengths.to(frames.device)[:, None]
    return out * valid.unsqueeze(-1).to(frames.dtype)


def aligned_sequence(model: nn.Module, batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The per-position inputs of the modalities in ``model.dims`` and each sample's length.

    Text: the ``model.text_model``'s token states (``(B, L, H)``), length = its mask. Audio and
    vision: frames placed per position on the same width (the text's, or the frames' own when
    the model uses no text). Returns ``({"t"|"a"|"v": (B, L, D_s)}, lengths (B,))``."""
    modalities = model.dims.modalities
    out = {}
    if "t" in modalities:
        out["t"] = model.text_model.token_states(batch.text_ids, batch.text_mask)
        lengths = batch.text_mask.sum(dim=1)
        width = out["t"].shape[1]
    else:
        first = batch.audio_lengths if "a" in modalities else batch.vision_lengths
        lengths = first
        width = int(first.max())
    if "a" in modalities:
        out["a"] = frames_per_position(batch.audio, batch.audio_lengths, width)
    if "v" in modalities:
        out["v"] = frames_per_position(batch.vision, batch.vision_lengths, width)
    return out, lengths.clamp(min=1)


def valid_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """``(B, width)`` booleans: position < length."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the feature axis of ``(B, L, D)``, statistics from valid positions only;
    padded positions come out as zeros. A training batch with a single valid position is
    normalised with the running statistics (batch statistics of one value do not exist)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        valid = x[mask]
        if self.training and valid.shape[0] == 1:
            normed = F.batch_norm(valid, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        else:
            normed = super().forward(valid)
        out = x.new_zeros(x.shape)
        out[mask] = normed
        return out


class StackedLSTM(nn.Module):
    """``(B, L, D)`` + lengths -> ``(B, hidden)``: a ``layers``-deep unidirectional LSTM (dropout
    between layers), the top layer's output at each sample's last valid position."""

    def __init__(self, in_dim: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.rnn = nn.LSTM(in_dim, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = int(lengths.max())
        outputs, _ = self.rnn(x[:, :steps])
        last = (lengths.to(x.device, torch.int64) - 1).clamp(min=0)
        return outputs[torch.arange(x.shape[0], device=x.device), last]


__all__ = ["MaskedBatchNorm", "StackedLSTM", "aligned_sequence", "frames_per_position", "valid_mask"]
