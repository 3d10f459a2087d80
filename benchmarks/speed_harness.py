"""Pieces shared by the side-by-side speed benchmarks (``mult_speed.py``, ``model_speed.py``).

The method: msakit's model and a reference-style forward that *shares its weights* run the
same training batches, alternated batch by batch (the order flipped every batch), so machine
load and cache state hit both sides alike; each side's time per trained sample is compared as
a ratio. Before timing, both sides' predictions are compared on unpadded input (every sample
of full length), where padding cannot make them differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

TEXT_PAD = 50  # MMSA's text length: ``text_bert`` and the ``text`` features are padded to 50
TEXT_WIDTH = 384  # the packaged MiniLM's hidden size: the width of fixed text features


class FixedText(nn.Module):
    """Fixed per-token text features, as the reference's ``text`` array (no text encoder runs):
    ``table[id]`` for each token, zero at padding. Looks like a msakit text encoder."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table)
        self.hidden_size = int(table.shape[1])

    def token_states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.table[ids] * mask[..., None]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.token_states(ids, mask)[:, 0]


def random_text_table(rows: int, width: int = TEXT_WIDTH, seed: int = 0) -> torch.Tensor:
    """A fixed feature per token id; id 0 (the padding id of BERT vocabularies) maps to zeros,
    as the padding of the reference's feature files."""
    table = torch.randn(rows, width, generator=torch.Generator().manual_seed(seed))
    table[0] = 0
    return table


def max_abs_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().reshape(-1) - b.detach().reshape(-1)).abs().max())


def alternate(steps: dict[str, Callable[[int], int]], n_batches: int, warmup: int = 0) -> dict:
    """Run ``steps[name](i)`` (one training batch; returns its sample count) for every side on
    batch ``i``, for ``warmup + n_batches`` batches, the sides' order reversed every batch.
    Returns the timed batches' seconds, samples and milliseconds per sample of each side."""
    names = list(steps)
    seconds = {name: 0.0 for name in names}
    samples = {name: 0 for name in names}
    for i in range(warmup + n_batches):
        for name in names if i % 2 else names[::-1]:
            started = time.perf_counter()
            n = steps[name](i)
            elapsed = time.perf_counter() - started
            if i >= warmup:
                seconds[name] += elapsed
                samples[name] += n
    return {
        "seconds": seconds,
        "samples": samples,
        "ms_per_sample": {name: seconds[name] / samples[name] * 1e3 for name in names},
    }
