"""Word-aligned sequences, for the models that step through a sample one word at a time
(MFN, Graph-MFN, MFM, MCTN; MAG-BERT uses ``frames_per_token``).

MMSA's aligned files (``aligned_50.pkl``) hold one audio and one vision frame per position of
their ``text_bert`` tokens (bert-base-uncased word pieces, ``[CLS]`` first, valid frames = the
text mask). msakit re-tokenises ``raw_text`` with the run's own tokenizer and pairs token
position i with frame i; positions past a sample's valid frames get zero frames, as the padding
of the aligned files. With bert-base-uncased or the packaged MiniLM (same uncased WordPiece
vocabulary) the positions are the file's own, up to ``data.max_text_tokens`` truncation.

A sample's sequence is its text tokens when text is used (else its valid frames): every
modality then has the same width ``L`` and the same valid length per sample. The text
"features" are the text encoder's token states, frozen by default (the reference models read
fixed 768-d BERT states from the file).

``MaskedBatchNorm`` normalises each feature over the valid positions of a batch only, and
``StackedLSTM`` returns a multi-layer LSTM's top state at each sample's last valid position
(EF-LSTM).

``lstm_with_cells`` runs a one-layer ``nn.LSTM`` (PyTorch's fused kernel over the whole
sequence) and recovers every step's cell state, which MFN's attention reads; an ``nn.LSTM``
has exactly the parameters of the ``nn.LSTMCell`` the reference steps by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from msakit.errors import DataError

ORDER = ("t", "a", "v")  # the reference models' (l, a, v) order


def frames_per_token(frames: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """``(B, T, D)`` word-aligned frames -> ``(B, width, D)``: token position i takes frame i;
    positions at or past the sample's valid length (or past T) get zeros."""
    batch, steps, dim = frames.shape
    out = frames.new_zeros(batch, width, dim)
    n = min(steps, width)
    out[:, :n] = frames[:, :n]
    valid = torch.arange(width, device=frames.device)[None, :] < lengths.to(frames.device)[:, None]
    return out * valid.unsqueeze(-1).to(frames.dtype)


def refuse_unaligned(data, modalities: tuple[str, ...], model_title: str) -> None:
    """One-line ``DataError`` unless ``data`` is word-aligned (MMSA's aligned layout) or the
    run uses neither audio nor vision (text alone needs no alignment)."""
    if {"a", "v"} & set(modalities) and not getattr(data, "aligned", False):
        raise DataError(
            f"{data.source}: {model_title} needs word-aligned audio/vision (one frame per text token), but this data is "
            "unaligned (its frames have their own *_lengths); use the aligned file instead (aligned_50.pkl for MOSI/MOSEI; "
            "for synthetic data: msakit synth PATH --aligned)"
        )


def attach_text_encoder(model: nn.Module, text_encoder, finetune: bool) -> int:
    """Give ``model`` its ``text_model`` (frozen unless ``finetune``); returns its width."""
    if text_encoder is None:
        raise ValueError(f"{type(model).__name__} with text needs a text encoder")
    model.text_model = text_encoder
    if not finetune and hasattr(text_encoder, "freeze"):  # stand-ins (tests) are fixed already
        text_encoder.freeze()
    return int(text_encoder.hidden_size)


def aligned_sequences(model: nn.Module, batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``({s: (B, L, D_s)}, lengths (B,))`` for the modalities in ``model.dims``: the text
    encoder's token states and the frames paired with them (see the module docstring)."""
    modalities = model.dims.modalities
    if "t" in modalities:
        width = batch.text_ids.shape[1]
        lengths = batch.text_mask.sum(dim=1)
    else:
        present = [(batch.audio, batch.audio_lengths)] if "a" in modalities else []
        present += [(batch.vision, batch.vision_lengths)] if "v" in modalities else []
        width = max(frames.shape[1] for frames, _ in present)
        lengths = torch.stack([n.to(present[0][1].device) for _, n in present]).max(dim=0).values
    out = {}
    if "t" in modalities:
        out["t"] = model.text_model.token_states(batch.text_ids, batch.text_mask)
    if "a" in modalities:
        out["a"] = frames_per_token(batch.audio, batch.audio_lengths, width)
    if "v" in modalities:
        out["v"] = frames_per_token(batch.vision, batch.vision_lengths, width)
    return out, lengths.clamp(min=1).to(torch.int64)


def valid_positions(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """``(B, width)`` bool: position i of sample b is one of its ``lengths[b]`` valid steps."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def at_last_step(sequence: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, L, k)`` -> ``(B, k)``: each sample's state at its last valid step."""
    last = (lengths.to(sequence.device) - 1).clamp(min=0, max=sequence.shape[1] - 1)
    return sequence[torch.arange(sequence.shape[0], device=sequence.device), last]


def lstm_with_cells(lstm: nn.LSTM, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden and cell states ``(B, L, H)`` of every step of a one-layer, unidirectional,
    batch-first ``lstm`` started from zeros. The hidden states come from the fused kernel; the
    cell states are rebuilt from them (``c_t = f_t c_{t-1} + i_t g_t``, the gates computed from
    ``x_t`` and ``h_{t-1}`` in one batched product), the same values a step-by-step
    ``LSTMCell`` gives, with gradients through both paths."""
    hidden, _ = lstm(x)
    previous = F.pad(hidden, (0, 0, 1, 0))[:, :-1]
    gates = F.linear(x, lstm.weight_ih_l0, lstm.bias_ih_l0) + F.linear(previous, lstm.weight_hh_l0, lstm.bias_hh_l0)
    i, f, g, _ = gates.chunk(4, dim=-1)
    i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
    c = torch.zeros_like(hidden[:, 0])
    cells = []
    for step in range(x.shape[1]):
        c = f[:, step] * c + i[:, step] * g[:, step]
        cells.append(c)
    return hidden, torch.stack(cells, dim=1)


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
