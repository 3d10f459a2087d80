"""The pre-fusion subnetworks of TFN and LMF (MMSA ``subNets/FeatureNets.py``, structure only).

Audio and vision: the frames are averaged over time (MMSA's ``need_normalized`` step for these
models), then batch norm -> dropout -> three Linear+ReLU layers. Text: a one-layer LSTM over
the text encoder's per-token states, its final state through a linear layer (the reference's
``TextSubNet``; its dropout is forced to 0 for a one-layer LSTM, so there is none here).

Deliberate differences from the reference: the time average is over the valid frames only
(MMSA averages over the padded array, so padding zeros shrink short clips' features), and the
LSTM's final state is the one at the last real token (the reference runs over the padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from msakit.encoders.sequence import SequenceLSTMEncoder


def mean_over_valid_frames(frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, T, D)`` frames and ``(B,)`` lengths -> ``(B, D)``, the mean of each valid prefix."""
    steps = torch.arange(frames.shape[1], device=frames.device)
    mask = (steps[None, :] < lengths.to(frames.device)[:, None]).to(frames.dtype)
    return (frames * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)


class PooledFrameSubNet(nn.Module):
    """Time-averaged frames -> BatchNorm -> dropout -> 3 x (Linear + ReLU): ``(B, hidden)``."""

    def __init__(self, in_dim: int, hidden_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim), nn.ReLU()
        )

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = mean_over_valid_frames(frames, lengths)
        if self.training and x.shape[0] == 1:
            # Batch statistics of one sample do not exist (the reference would crash on a last
            # batch of one); normalise it with the running statistics instead.
            x = F.batch_norm(x, self.norm.running_mean, self.norm.running_var, self.norm.weight, self.norm.bias, False, 0.0, self.norm.eps)
        else:
            x = self.norm(x)
        return self.layers(self.drop(x))


class TokenLSTMSubNet(nn.Module):
    """A text encoder's per-token states -> one-layer LSTM -> Linear: ``(B, out_dim)``."""

    def __init__(self, text_encoder: nn.Module, hidden_dim: int, out_dim: int):
        super().__init__()
        self.encoder = SequenceLSTMEncoder(text_encoder.hidden_size, hidden_dim, out_dim, 0.0)

    def forward(self, text_model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = text_model.token_states(ids, mask)
        return self.encoder(states, mask.sum(dim=1))
