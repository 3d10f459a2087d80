"""Frame-sequence encoder for audio and vision: a one-layer LSTM over the valid frames.

Self-MM (and MMSA) run ``pack_padded_sequence`` through the LSTM and take the final hidden
state. For a one-layer unidirectional LSTM the output at frame ``length - 1`` of an *unpacked*
run over the right-padded batch is exactly that final hidden state: the padding comes after
the valid frames, so it cannot influence them. The unpacked run lets PyTorch use its fused
(oneDNN) CPU kernel for the whole sequence, about 7x faster than the packed per-step loop
for the MOSI shapes (see benchmarks/), with every frame still used and the same numbers.
``packed=True`` keeps the reference path for comparison.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class SequenceLSTMEncoder(nn.Module):
    """``(B, T, D)`` frames + ``(B,)`` lengths -> ``(B, out_dim)``: LSTM, dropout, linear."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dropout: float = 0.0, packed: bool = False):
        super().__init__()
        if in_dim < 1 or hidden_dim < 1 or out_dim < 1:
            raise ValueError(f"SequenceLSTMEncoder: dims must be >= 1, got in={in_dim} hidden={hidden_dim} out={out_dim}")
        self.rnn = nn.LSTM(in_dim, hidden_dim, num_layers=1, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_dim, out_dim)
        self.packed = packed

    def final_hidden(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths_cpu = lengths.to("cpu", torch.int64)
        if self.packed:
            packed = pack_padded_sequence(frames, lengths_cpu, batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.rnn(packed)
            return h_n[0]
        steps = int(lengths_cpu.max())
        outputs, _ = self.rnn(frames[:, :steps])
        last = (lengths.to(frames.device, torch.int64) - 1).clamp(min=0)
        return outputs[torch.arange(frames.shape[0], device=frames.device), last]

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(self.final_hidden(frames, lengths)))
