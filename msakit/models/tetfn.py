"""TETFN, the Text Enhanced Transformer Fusion Network (Wang, Liu, Ju, Zhang, Yang; Pattern
Recognition 136, 2023, "TETFN: A text enhanced transformer fusion network for multimodal
sentiment analysis"): a Self-MM descendant whose fusion is text-guided cross-modal attention.

Structure follows MMSA git master ``src/MMSA/models/multiTask/TETFN.py`` (``TETFN``,
``TextEnhancedTransformer``, ``AuViSubNet``), its trainer ``src/MMSA/trains/multiTask/TETFN.py``
(Self-MM's, line for line) and the ``tetfn`` section of ``config_regression.json``.

Sequences, each ``model_dim`` (d) wide:
  text    the text encoder's token states, a bias-free 1-D convolution (kernel ``conv_kernel_t``);
  audio, vision   a one-layer LSTM over the frames, a bias-free 1-D convolution of its outputs
          (kernel ``conv_kernel_a``; see ``conv_kernel_v`` below).
Cross-modal transformers (MulT's pre-norm layers, ``msakit/models/mult.py``; two layers each,
causal offset mask, no position embedding, as the reference builds them): text attends to audio
and to vision; audio and vision each attend to text; and the two *text-enhanced* transformers:
vision first attends to text (one layer, sinusoidal positions), and audio attends to that
text-enhanced vision (two layers, positions), and the same with audio and vision swapped. Each
target's two outputs, concatenated (2d), pass through a two-layer self-attention transformer;
its last valid position is the target's vector. Fusion: the three vectors (6d) -> dropout ->
Linear+ReLU (``F_m``, ``post_fusion_dim``) -> Linear+ReLU -> Linear(1) = ``ŷ_m``.
Unimodal tasks (Self-MM's heads, ``msakit/models/multitask.py``): each modality's sequence,
max-pooled over its valid positions (d) -> dropout -> Linear+ReLU (``F_s``) -> Linear+ReLU ->
Linear(1) = ``ŷ_s``. Training: L1 on ``ŷ_m`` plus ULGM's generated unimodal labels
(``msakit/objectives/ulgm.py``, the same objective Self-MM trains with), MMSA's five Adam groups
(text encoder with/without decay, audio subnet, video subnet, rest), one optimiser step per
4 batches (``update_epochs``).

Modalities: t, a and v. Every cross-modal block of TETFN takes text together with audio or
vision, and the text-enhanced ones all three, so any smaller subset is refused. Layouts: the
reference config asks for word-aligned files (``need_data_aligned``), but nothing in the
structure needs one frame per word (attention pairs any lengths); aligned and unaligned files
both train here.

Parameters, checked in tests/test_new_models.py against a count built from the reference's
layer list: MOSI configuration (d = 50, 5 heads, LSTM hidden 16/64, kernels 1, post dims
64/32/32/16), MOSI's feature sizes (text 768, audio 5, vision 20): the reference without its
BERT has 1,254,224 trainable parameters and this model without its text encoder the same
1,254,224; output shapes ``(B,)`` for each of ``m, t, a, v`` and features ``(B, 64)``,
``(B, 32)``, ``(B, 32)``, ``(B, 16)`` as the reference's ``M, T, A, V`` and ``Feature_*``.

Deliberate differences from the reference:
- Text comes from any BERT-family encoder (default: the packaged MiniLM), fine-tuned at
  ``lr_text``; the convolution reads its hidden size.
- Padding is masked: the audio/vision LSTM outputs and the text states at padded positions
  are excluded from the max-pooling, get no attention as keys, and each target's vector is its
  last *valid* position (the reference pools and attends over padding and takes the last padded
  position). A sample's prediction is thus independent of its batch. Unidirectional LSTM
  outputs at valid positions are the same with or without padding after them.
- ``conv_kernel_v``: the reference's code convolves vision with the *audio* kernel and never
  reads its config's ``conv1d_kernel_size_v``; ``0`` (the default) does the same, a positive
  value sets the vision kernel.
- Sequences shorter than a kernel are zero-padded up to it.
- The reference's LSTM dropout settings act only between stacked layers, of which it has one;
  they are not offered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel
from msakit.models.mult import CrossmodalTransformer
from msakit.models.multitask import five_parameter_groups, fusion_and_ulgm_objectives, unimodal_head
from msakit.settings import setting


@dataclass
class TETFNConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    audio_hidden: int = 16  # a_lstm_hidden_size
    video_hidden: int = 64  # v_lstm_hidden_size
    conv_kernel_t: int = setting(1, min=1, doc="text projection kernel (positions shrink by kernel - 1)")
    conv_kernel_a: int = setting(1, min=1, doc="audio projection kernel")
    conv_kernel_v: int = setting(0, min=0, doc="vision projection kernel; 0: the audio kernel, as the reference's code does")
    model_dim: int = 50  # dst_feature_dims
    heads: int = 5  # nheads
    layers: int = setting(2, min=1, doc="layers of each cross-modal, upper text-enhanced and memory transformer (the reference: 2)")
    attn_dropout: float = 0.1
    attn_dropout_a: float = 0.0
    attn_dropout_v: float = 0.1
    relu_dropout: float = 0.0
    embed_dropout: float = 0.0
    res_dropout: float = 0.1
    attn_mask: bool = True
    post_fusion_dim: int = 64
    post_text_dim: int = 32
    post_audio_dim: int = 32
    post_video_dim: int = 16
    post_fusion_dropout: float = 0.0
    post_text_dropout: float = 0.0
    post_audio_dropout: float = 0.0
    post_video_dropout: float = 0.0
    lr_text: float = 3e-5
    lr_audio: float = 5e-4
    lr_video: float = 3e-4
    lr_other: float = 3e-4
    weight_decay_text: float = 1e-3
    weight_decay_audio: float = 1e-2
    weight_decay_video: float = 0.0
    weight_decay_other: float = 1e-2
    ulgm: bool = True  # False: train the fusion task only (the unimodal heads get no loss)
    ulgm_bound: float = 3.0  # H: generated labels are clamped to [-H, H]
    ulgm_zero_is_positive: bool = False  # excludeZero = true in the reference config

    def validate(self) -> None:
        if self.model_dim % self.heads or (2 * self.model_dim) % self.heads:
            raise ConfigError(f"model.model_dim={self.model_dim} must be divisible by model.heads={self.heads}")


class SequenceTransformer(CrossmodalTransformer):
    """MulT's transformer with sinusoidal positions optional: the reference's cross-modal and
    memory transformers have none, its text-enhanced ones have them."""

    def __init__(self, *args, positions: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.positions = positions

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.positions:
            return super().embed(x, lengths)
        return F.dropout(math.sqrt(self.dim) * x, self.embed_dropout, self.training)


class TextEnhancedTransformer(nn.Module):
    """``guide`` attends to text (one layer), then ``target`` attends to the text-enhanced guide."""

    def __init__(self, dim: int, heads: int, layers: int, attn_dropout: float, relu_dropout: float, res_dropout: float, embed_dropout: float, causal: bool):
        super().__init__()
        self.lower = SequenceTransformer(dim, heads, 1, attn_dropout, relu_dropout, res_dropout, embed_dropout, causal, positions=True)
        self.upper = SequenceTransformer(dim, heads, layers, attn_dropout, relu_dropout, res_dropout, embed_dropout, causal, positions=True)

    def forward(self, target, target_lengths, guide, guide_lengths, text, text_lengths) -> torch.Tensor:
        enhanced = self.lower(guide, guide_lengths, text, text_lengths)
        return self.upper(target, target_lengths, enhanced, guide_lengths)


class FrameSubNet(nn.Module):
    """``(B, T, D)`` frames -> ``(B, T', d)``: a one-layer LSTM, then a bias-free 1-D convolution."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, kernel: int):
        super().__init__()
        self.rnn = nn.LSTM(in_dim, hidden, num_layers=1, batch_first=True)
        self.conv = nn.Conv1d(hidden, out_dim, kernel_size=kernel, bias=False)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, _ = self.rnn(frames)
        return convolve(self.conv, outputs, lengths)


def convolve(conv: nn.Conv1d, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1-D convolution over time, ``(B, T, D) -> (B, T - k + 1, d)``, and the valid lengths."""
    k = conv.kernel_size[0]
    if x.shape[1] < k:
        x = F.pad(x, (0, 0, 0, k - x.shape[1]))
    y = conv(x.transpose(1, 2)).transpose(1, 2)
    return y, (lengths.to(y.device) - k + 1).clamp(min=1, max=y.shape[1])


def masked_max(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The maximum over each row's valid positions, ``(B, T, d) -> (B, d)``."""
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
    return x.masked_fill(~valid[..., None], float("-inf")).amax(dim=1)


@register_model
class TETFN(MSAModel):
    name = "tetfn"
    config_class = TETFNConfig
    FEATURE_DIM_FIELDS = {"m": "post_fusion_dim", "t": "post_text_dim", "a": "post_audio_dim", "v": "post_video_dim"}
    # MMSA config_regression.json, "tetfn" (update_epochs 4 -> one optimiser step per 4 batches;
    # conv1d_kernel_size_v is not listed: the reference never reads it).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 64, "grad_accumulation": 4, "early_stop": 8}},
        "mosei": {
            "model": {
                "audio_hidden": 32, "video_hidden": 32, "relu_dropout": 0.1, "embed_dropout": 0.1, "res_dropout": 0.0,
                "post_text_dropout": 0.1, "post_text_dim": 64, "post_video_dropout": 0.1,
                "weight_decay_audio": 0.0, "weight_decay_video": 1e-3, "lr_audio": 1e-3, "lr_video": 5e-3, "lr_other": 1e-4,
            },
            "train": {"batch_size": 32, "grad_accumulation": 4, "early_stop": 8},
        },
        "sims": {
            "model": {
                "conv_kernel_t": 3, "conv_kernel_a": 5, "attn_dropout": 0.0, "attn_dropout_a": 0.1, "attn_dropout_v": 0.0,
                "relu_dropout": 0.1, "post_fusion_dropout": 0.1, "post_text_dim": 64, "post_audio_dim": 16, "post_video_dim": 32,
                "weight_decay_audio": 0.0, "weight_decay_video": 1e-2, "weight_decay_other": 1e-3,
                "lr_audio": 3e-3, "lr_video": 5e-4, "lr_other": 3e-3,
                "ulgm_bound": 3.0,  # the reference's H for SIMS too (labels in [-1, 1]: no clamping in effect)
            },
            "train": {"batch_size": 64, "grad_accumulation": 4, "early_stop": 8},
        },
    }
    TEST_OVERRIDES = {"model_dim": 8, "heads": 2, "layers": 1, "audio_hidden": 8, "video_hidden": 8, "post_fusion_dim": 16,
                      "post_text_dim": 8, "post_audio_dim": 8, "post_video_dim": 8, "lr_other": 3e-3, "lr_audio": 3e-3, "lr_video": 3e-3, "lr_text": 1e-3}

    def __init__(self, config: TETFNConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        self._check_modalities(dims.modalities)
        if text_encoder is None:
            raise ValueError("TETFN needs a text encoder")
        c, d = config, config.model_dim
        self.text_model = text_encoder
        self.proj_t = nn.Conv1d(text_encoder.hidden_size, d, kernel_size=c.conv_kernel_t, bias=False)
        self.audio_model = FrameSubNet(dims.audio_dim, c.audio_hidden, d, c.conv_kernel_a)
        self.video_model = FrameSubNet(dims.vision_dim, c.video_hidden, d, c.conv_kernel_v or c.conv_kernel_a)

        def transformer(width: int, attn_dropout: float) -> SequenceTransformer:
            return SequenceTransformer(width, c.heads, c.layers, attn_dropout, c.relu_dropout, c.res_dropout, c.embed_dropout, c.attn_mask, positions=False)

        self.t_with_a = transformer(d, c.attn_dropout_a)
        self.t_with_v = transformer(d, c.attn_dropout_v)
        self.a_with_t = transformer(d, c.attn_dropout)
        self.a_with_v = TextEnhancedTransformer(d, c.heads, c.layers, c.attn_dropout, c.relu_dropout, c.res_dropout, c.embed_dropout, c.attn_mask)
        self.v_with_t = transformer(d, c.attn_dropout)
        self.v_with_a = TextEnhancedTransformer(d, c.heads, c.layers, c.attn_dropout, c.relu_dropout, c.res_dropout, c.embed_dropout, c.attn_mask)
        self.memory = nn.ModuleDict({s: transformer(2 * d, c.attn_dropout) for s in ("t", "a", "v")})

        self.feature_dims = {"m": c.post_fusion_dim, "t": c.post_text_dim, "a": c.post_audio_dim, "v": c.post_video_dim}
        inputs = {"m": 6 * d, "t": d, "a": d, "v": d}
        dropouts = {"m": c.post_fusion_dropout, "t": c.post_text_dropout, "a": c.post_audio_dropout, "v": c.post_video_dropout}
        heads = {s: unimodal_head(inputs[s], self.feature_dims[s], dropouts[s]) for s in ("m", "t", "a", "v")}
        self.feature_layers = nn.ModuleDict({s: h[0] for s, h in heads.items()})
        self.regressors = nn.ModuleDict({s: h[1] for s, h in heads.items()})

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        if tuple(modalities) != ("t", "a", "v"):
            raise ConfigError(
                f"TETFN needs t, a and v (its text-enhanced transformers join all three), got data.modalities="
                f"{','.join(modalities) or 'none'}; use t,a,v, or self_mm for a subset"
            )

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        cls._check_modalities(modalities)

    def forward(self, batch) -> ModelOutput:
        states = self.text_model.token_states(batch.text_ids, batch.text_mask)
        seq = {
            "t": convolve(self.proj_t, states, batch.text_mask.sum(dim=1)),
            "a": self.audio_model(batch.audio, batch.audio_lengths),
            "v": self.video_model(batch.vision, batch.vision_lengths),
        }
        (t, lt), (a, la), (v, lv) = seq["t"], seq["a"], seq["v"]
        attended = {
            "t": (self.t_with_a(t, lt, a, la), self.t_with_v(t, lt, v, lv)),
            "a": (self.a_with_t(a, la, t, lt), self.a_with_v(a, la, v, lv, t, lt)),
            "v": (self.v_with_t(v, lv, t, lt), self.v_with_a(v, lv, a, la, t, lt)),
        }
        rows = torch.arange(t.shape[0], device=t.device)
        last = []
        for s in ("t", "a", "v"):
            lengths = seq[s][1]
            h = self.memory[s](torch.cat(attended[s], dim=-1), lengths)
            last.append(h[rows, lengths - 1])  # last valid position
        inputs = {"m": torch.cat(last, dim=-1), **{s: masked_max(*seq[s]) for s in ("t", "a", "v")}}
        features = {s: self.feature_layers[s](x) for s, x in inputs.items()}
        predictions = {s: self.regressors[s](f).squeeze(-1) for s, f in features.items()}
        return ModelOutput(predictions=predictions, features=features)

    def parameter_groups(self) -> list[dict]:
        return five_parameter_groups(self)

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return fusion_and_ulgm_objectives(self, train_split)


__all__ = ["TETFN", "TETFNConfig"]
