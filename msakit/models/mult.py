"""MulT, the Multimodal Transformer (Tsai et al., ACL 2019, "Multimodal Transformer for Unaligned
Multimodal Language Sequences").

Structure follows MMSA 2.2.1 ``src/MMSA/models/singleTask/MULT.py`` and its
``subNets/transformers_encoder/`` (fairseq-style encoder, multi-head attention, sinusoidal
positions); per-dataset values from its ``config_regression.json`` (``mult``). Each modality's
sequence (text: the text encoder's token states after dropout ``text_dropout``; audio, vision:
the frames) is projected to ``model_dim`` by a bias-free 1-D convolution (kernel
``conv_kernel_*``, no padding). For every target modality and every other (source) modality a
cross-modal transformer (``layers`` pre-norm layers; queries from the target, keys/values from
the source; input scaled by sqrt(d) plus sinusoidal positions) lets the target attend to the
source: this works on unaligned sequences of any lengths, nothing is word-aligned. A target's
cross-modal outputs are concatenated and encoded by a self-attention transformer
(``max(layers, 3)`` layers); its last position is the target's vector. The vectors are
concatenated, passed through a residual block (Linear, ReLU, dropout, Linear, + input) and a
Linear(1). Loss: L1. Attention dropout depends on the source modality (``attn_dropout`` for
text keys and the self-attention, ``attn_dropout_a``/``attn_dropout_v`` for audio/vision keys)
as in the reference. With ``attn_mask`` (the reference's setting) position ``i`` of the query
attends to key positions ``j <= i + |L_k - L_q|``.

Modalities: two or three. A target needs at least one other modality to attend to, so a single
modality is refused. With two, each target has one cross-modal transformer and the
self-attention width is ``model_dim`` instead of ``2 * model_dim``.

Parameters, checked in tests/test_baselines.py against a count built from the reference's
layer list: for the MOSI configuration (d = 50, 10 heads, 4 levels, kernels 5) with MOSI's
unaligned feature sizes (text 768, audio 5, vision 20), the reference has 2,571,551 trainable
parameters and this model without its text encoder the same 2,571,551.

Deliberate differences from the reference:
- Text comes from a BERT-family encoder (the packaged MiniLM by default, any local BERT
  directory) instead of the file's features. MMSA's MulT default (``use_bert: false``) reads
  fixed pre-extracted features; so by default the encoder is frozen (``text_finetune=false``,
  each sequence encoded once and cached, see ``tfn.py``); ``text_finetune=true`` fine-tunes it
  at ``lr_text``.
- Padding is masked: a batch is padded to its longest sequence, padded keys get no attention,
  padded positions get no position embedding, and a target's vector is taken at its last
  *valid* position (the reference attends to padding and takes the last padded position, and
  its causal offset ``|L_k - L_q|`` uses the padded lengths). Every sample's prediction is thus
  what the reference would give that sample alone, independent of its batch.
- Sequences shorter than a convolution kernel are zero-padded up to it (the reference needs
  fixed-length files of 50 or more frames).
- Keys and values share one embedding dropout mask (the reference draws two).
- The reference's ``ReduceLROnPlateau`` schedule is not used (the shared trainer has one
  learning rate per group, early stopping and best-epoch selection); gradient value clipping
  (``grad_clip``) and the 8-batch accumulation (``update_epochs`` -> ``train.grad_accumulation``)
  are kept. The reference's ``weight_decay`` setting is never passed to its optimiser, so the
  default here is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msakit.settings import setting
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import GradientClipping, InputDims, ModelOutput, MSAModel
from msakit.objectives import RegressionL1


@dataclass
class MulTConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    # The reference reads fixed pre-extracted text features; False does the same with the encoder
    # (frozen, each sequence encoded once and cached), True fine-tunes it at lr_text.
    text_finetune: bool = setting(False, doc="False: the text encoder is a fixed feature extractor, as in the reference; True: fine-tune it at lr_text")
    model_dim: int = 50  # the reference's dst_feature_dim
    heads: int = 10
    layers: int = 4  # nlevels: cross-modal layers; the self-attention has max(layers, 3)
    conv_kernel_t: int = setting(5, min=1, doc="text projection kernel (frames shrink by kernel - 1)")
    conv_kernel_a: int = setting(5, min=1, doc="audio projection kernel")
    conv_kernel_v: int = setting(5, min=1, doc="vision projection kernel")
    text_dropout: float = 0.5
    attn_dropout: float = 0.3
    attn_dropout_a: float = 0.2
    attn_dropout_v: float = 0.0
    relu_dropout: float = 0.0
    embed_dropout: float = 0.2
    res_dropout: float = 0.0
    output_dropout: float = 0.5
    attn_mask: bool = True
    grad_clip: float = setting(0.6, min=0.0, doc="clip every gradient value to [-v, v] after each backward; 0 = off")
    lr_text: float = 5e-5
    lr_other: float = 2e-3
    weight_decay: float = 0.0

    def validate(self) -> None:
        if self.model_dim % self.heads:
            raise ConfigError(f"model.model_dim={self.model_dim} must be divisible by model.heads={self.heads}")


def sinusoidal_positions(lengths: torch.Tensor, steps: int, dim: int) -> torch.Tensor:
    """fairseq's table: position p = 1..length of each row, ``[sin(p·f), cos(p·f)]`` with
    ``f_k = 10000^(-k / (dim/2 - 1))``; padded positions get zeros. ``(B, steps, dim)``."""
    half = dim // 2
    scale = math.log(10000) / max(half - 1, 1)
    freq = torch.exp(torch.arange(half, dtype=torch.float32, device=lengths.device) * -scale)
    position = torch.arange(1, steps + 1, dtype=torch.float32, device=lengths.device)
    angles = position[:, None] * freq[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = F.pad(table, (0, 1))
    valid = (torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]).to(table.dtype)
    return table[None] * valid[..., None]


class CrossmodalLayer(nn.Module):
    """Pre-norm layer: attention (queries from ``x``, keys/values from ``source`` or ``x``) and a
    4x ReLU feed-forward, each with dropout and a residual connection."""

    def __init__(self, dim: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.heads, self.attn_dropout, self.relu_dropout, self.res_dropout = heads, attn_dropout, relu_dropout, res_dropout
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.norms = nn.ModuleList([nn.LayerNorm(dim), nn.LayerNorm(dim)])
        for linear in (self.in_proj, self.out_proj, self.fc1, self.fc2):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def attention(self, query: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, lq, d = query.shape
        w, bias = self.in_proj.weight, self.in_proj.bias
        q = F.linear(query, w[:d], bias[:d])
        k, v = F.linear(source, w[d:], bias[d:]).chunk(2, dim=-1)
        split = lambda x: x.view(b, x.shape[1], self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        p = self.attn_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask, dropout_p=p)
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, d))

    def forward(self, x: torch.Tensor, source: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
        q = self.norms[0](x)
        kv = q if source is None else self.norms[0](source)
        x = x + F.dropout(self.attention(q, kv, mask), self.res_dropout, self.training)
        h = F.dropout(F.relu(self.fc1(self.norms[1](x))), self.relu_dropout, self.training)
        return x + F.dropout(self.fc2(h), self.res_dropout, self.training)


class CrossmodalTransformer(nn.Module):
    """``layers`` CrossmodalLayers and a final LayerNorm; inputs are scaled by sqrt(d), get
    sinusoidal positions and embedding dropout."""

    def __init__(self, dim: int, heads: int, layers: int, attn_dropout: float, relu_dropout: float, res_dropout: float, embed_dropout: float, causal: bool):
        super().__init__()
        self.dim, self.embed_dropout, self.causal = dim, embed_dropout, causal
        self.layers = nn.ModuleList([CrossmodalLayer(dim, heads, attn_dropout, relu_dropout, res_dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = math.sqrt(self.dim) * x + sinusoidal_positions(lengths, x.shape[1], self.dim)
        return F.dropout(x, self.embed_dropout, self.training)

    def forward(self, x, x_lengths, source=None, source_lengths=None) -> torch.Tensor:
        x = self.embed(x, x_lengths)
        if source is None:
            kv, kv_lengths = None, x_lengths
        else:
            kv, kv_lengths = self.embed(source, source_lengths), source_lengths
        lq, lk = x.shape[1], (x if kv is None else kv).shape[1]
        i = torch.arange(lq, device=x.device)[None, :, None]
        j = torch.arange(lk, device=x.device)[None, None, :]
        mask = j < kv_lengths[:, None, None]
        if self.causal:
            offset = (kv_lengths - x_lengths).abs()[:, None, None]
            mask = mask & (j <= i + offset)
        mask = mask[:, None]  # (B, 1, Lq, Lk), broadcast over heads
        for layer in self.layers:
            x = layer(x, kv, mask)
        return self.norm(x)


@register_model
class MulT(MSAModel):
    name = "mult"
    config_class = MulTConfig
    LEGACY_DEFAULTS = {"text_finetune": True}  # runs saved before the setting existed fine-tuned the encoder
    # MMSA config_regression.json, "mult" (update_epochs 8 -> one optimiser step per 8 batches).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 16, "grad_accumulation": 8}},
        "mosei": {
            "model": {
                "model_dim": 30, "heads": 6, "conv_kernel_a": 1, "conv_kernel_v": 3, "text_dropout": 0.3, "attn_dropout": 0.4,
                "attn_dropout_a": 0.0, "embed_dropout": 0.0, "lr_other": 5e-4,
            },
            "train": {"batch_size": 4, "grad_accumulation": 8},
        },
        "sims": {
            "model": {
                "layers": 2, "conv_kernel_a": 1, "conv_kernel_v": 1, "text_dropout": 0.3, "attn_dropout": 0.2, "attn_dropout_a": 0.1,
                "embed_dropout": 0.1, "res_dropout": 0.2, "output_dropout": 0.1,
            },
            "train": {"batch_size": 16, "grad_accumulation": 8},
        },
    }
    TEST_OVERRIDES = {"model_dim": 8, "heads": 2, "layers": 1, "conv_kernel_t": 1, "conv_kernel_a": 3, "conv_kernel_v": 3, "text_dropout": 0.1, "embed_dropout": 0.0, "output_dropout": 0.0, "lr_other": 3e-3}

    def __init__(self, config: MulTConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c, d = config, config.model_dim
        if len(dims.modalities) < 2:
            raise ConfigError(
                f"mult: data.modalities={','.join(dims.modalities) or 'none'}: MulT needs two or three modalities "
                "(each one attends to the others); use a single-modality model such as self_mm or tfn"
            )
        in_dims = {}
        if "t" in dims.modalities:
            if text_encoder is None:
                raise ValueError("MulT with text needs a text encoder")
            self.text_model = text_encoder
            if not c.text_finetune and hasattr(text_encoder, "freeze"):  # stand-ins (tests) are fixed already
                text_encoder.freeze()
            in_dims["t"] = text_encoder.hidden_size
        in_dims.update({s: k for s, k in (("a", dims.audio_dim), ("v", dims.vision_dim)) if s in dims.modalities})
        self.kernels = {"t": c.conv_kernel_t, "a": c.conv_kernel_a, "v": c.conv_kernel_v}
        # As the reference: no projection where a modality already has d features.
        self.projections = nn.ModuleDict(
            {s: nn.Conv1d(k, d, kernel_size=self.kernels[s], bias=False) for s, k in in_dims.items() if k != d}
        )
        key_dropout = {"t": c.attn_dropout, "a": c.attn_dropout_a, "v": c.attn_dropout_v}
        others = lambda s: [o for o in dims.modalities if o != s]  # noqa: E731
        self.crossmodal = nn.ModuleDict(
            {
                f"{s}_with_{o}": CrossmodalTransformer(d, c.heads, c.layers, key_dropout[o], c.relu_dropout, c.res_dropout, c.embed_dropout, c.attn_mask)
                for s in dims.modalities
                for o in others(s)
            }
        )
        width = d * (len(dims.modalities) - 1)
        self.memory = nn.ModuleDict(
            {s: CrossmodalTransformer(width, c.heads, max(c.layers, 3), c.attn_dropout, c.relu_dropout, c.res_dropout, c.embed_dropout, c.attn_mask) for s in dims.modalities}
        )
        combined = width * len(dims.modalities)
        self.proj1 = nn.Linear(combined, combined)
        self.proj2 = nn.Linear(combined, combined)
        self.out_layer = nn.Linear(combined, 1)
        self.feature_dims = {"m": combined, **{s: width for s in dims.modalities}}

    def gradient_clipping(self) -> GradientClipping | None:
        # The reference clips gradient values after every backward, inside its accumulation loop.
        return GradientClipping("value", self.config.grad_clip, when="backward") if self.config.grad_clip > 0 else None

    def _project(self, s: str, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, D)`` -> ``(B, T - k + 1, d)`` and the valid lengths after the convolution."""
        k = self.kernels[s] if s in self.projections else 1
        if x.shape[1] < k:
            x = F.pad(x, (0, 0, 0, k - x.shape[1]))
        if s in self.projections:
            x = self.projections[s](x.transpose(1, 2)).transpose(1, 2)
        return x, (lengths - k + 1).clamp(min=1, max=x.shape[1])

    def forward(self, batch) -> ModelOutput:
        sequences = {}
        if "t" in self.dims.modalities:
            states = self.text_model.token_states(batch.text_ids, batch.text_mask)
            states = F.dropout(states, self.config.text_dropout, self.training)
            sequences["t"] = self._project("t", states, batch.text_mask.sum(dim=1))
        if "a" in self.dims.modalities:
            sequences["a"] = self._project("a", batch.audio, batch.audio_lengths.to(batch.audio.device))
        if "v" in self.dims.modalities:
            sequences["v"] = self._project("v", batch.vision, batch.vision_lengths.to(batch.vision.device))
        features = {}
        for s in self.dims.modalities:
            x, lengths = sequences[s]
            attended = [self.crossmodal[f"{s}_with_{o}"](x, lengths, *sequences[o]) for o in self.dims.modalities if o != s]
            h = self.memory[s](torch.cat(attended, dim=-1), lengths)
            features[s] = h[torch.arange(h.shape[0], device=h.device), lengths - 1]  # last valid position
        combined = torch.cat([features[s] for s in self.dims.modalities], dim=-1)
        hidden = self.proj2(F.dropout(F.relu(self.proj1(combined)), self.config.output_dropout, self.training)) + combined
        features["m"] = combined
        return ModelOutput(predictions={"m": self.out_layer(hidden).squeeze(-1)}, features=features)

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return self.text_and_other_groups(c.lr_text, c.lr_other, c.weight_decay)

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return [RegressionL1("m")]
