"""ALMT, the Adaptive Language-guided Multimodal Transformer (Zhang, Yang, Zhang, Zhou, Li;
EMNLP 2023, "Learning Language-guided Adaptive Hyper-modality Representation for Multimodal
Sentiment Analysis").

Structure follows MMSA git master ``src/MMSA/models/singleTask/ALMT.py`` (``Transformer``,
``HhyperLearningEncoder``, ``CrossTransformer``), its trainer ``src/MMSA/trains/singleTask/ALMT.py``
and the ``almt`` section of ``config_regression.json``.

1. Embedding: each modality's sequence (text: the text encoder's token states; audio, vision:
   the frames) -> Linear to ``model_dim`` (d = 128) -> ``token_length`` (8) learned tokens
   prepended -> learned position embeddings -> a pre-norm transformer (``embedding_depth``
   layers; attention with ``embedding_heads`` heads of 64, separate LayerNorms for query, key
   and value; GELU feed-forward ``embedding_ff_dim`` wide); the 8 learned tokens' outputs are the
   modality's representation ``H_s`` (8 x d).
2. Adaptive hyper-modality learning (AHL): the language tokens pass through a transformer
   (``ahl_depth - 1`` layers, positions, no extra tokens) keeping every layer's input and
   output (``ahl_depth`` states ``H_t^i``). A learned hyper-modality ``H_hyper`` (8 x d, ones at
   start) is updated ``ahl_depth`` times: LayerNorm each input, then
   ``H_hyper <- LN(H_hyper) + W_o(softmax(Q K_a^T) V_a + softmax(Q K_v^T) V_v)`` with the queries
   from ``H_t^i`` and keys/values from ``H_a`` / ``H_v`` (``ahl_heads`` heads of d / heads).
3. Fusion: a cross-modal transformer (``fusion_depth`` layers): one learned token is prepended
   to both the hyper-modality (source) and the last language state (target), both get learned
   positions, and the target attends to the source; the token's output (d) -> Linear(1) = ``ŷ``.
Loss: MSE. Optimiser: one group for every parameter, the text encoder included (``lr``),
decoupled weight decay (AdamW's: Adam with ``decoupled_weight_decay`` in its one group).

Modalities: text plus audio and/or vision. Language guides everything (its tokens are the
AHL queries and the fusion target), and the hyper-modality is learned from audio/vision, so
text alone, or audio/vision without text, is refused. With one of audio/vision, AHL attends to
that one only. Layouts: aligned and unaligned files both work (each modality is embedded
over its own frames; the reference config reads unaligned files).

Parameters, checked in tests/test_new_models.py against a count built from the reference's
layer list: MOSI configuration (d = 128, 8 tokens, embedding/AHL/fusion depths 1/3/2, 8 heads,
position tables for 50/375/500 positions) with MOSI's feature sizes (text 768, audio 5,
vision 20): the reference without its BERT has 2,603,649 trainable parameters and this model
without its text encoder the same 2,603,649; output shape ``(B,)`` (the reference ``(B, 1)``).

Deliberate differences from the reference:
- Text comes from any BERT-family encoder (default: the packaged MiniLM), fine-tuned; the
  text projection reads its hidden size instead of 768.
- Padding is masked: padded positions get no attention as keys in the embedding
  transformers (the reference pads every file to a fixed length and attends to the padding),
  so a sample's prediction is independent of its batch.
- The learned position tables have the reference's sizes (``text_positions``,
  ``audio_positions``, ``video_positions``: MOSI's file lengths by default); a longer sequence is
  cut to its first that-many positions (the reference's fixed-length files are cut the same way
  when built), so any file trains.
- The reference's warm-up + cosine learning-rate schedule is not used (the shared trainer has
  one learning rate per group, early stopping and best-epoch selection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel, require_text_plus_audio_or_vision
from msakit.objectives import RegressionMSE
from msakit.settings import setting


@dataclass
class ALMTConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    model_dim: int = 128  # dst_feature_dims
    embedding_ff_dim: int = 128  # dst_feature_hidden_dims
    token_length: int = setting(8, min=1, doc="learned tokens per modality (dst_embedding_length)")
    embedding_depth: int = setting(1, min=1, doc="layers of each modality's embedding transformer")
    embedding_heads: int = setting(8, min=1, doc="heads of the embedding transformers (64 wide each, as the reference)")
    head_dim: int = setting(64, min=1, doc="width of each head in the embedding, language and fusion transformers")
    text_heads: int = setting(8, min=1, doc="heads of the language encoder inside AHL (l_encoder_heads)")
    ahl_depth: int = setting(3, min=1, doc="hyper-modality updates; the language encoder has ahl_depth - 1 layers")
    ahl_heads: int = setting(8, min=1, doc="heads of the hyper-modality layers (model_dim / heads wide)")
    fusion_depth: int = setting(2, min=1, doc="layers of the cross-modal fusion transformer")
    fusion_heads: int = setting(8, min=1)
    fusion_ff_dim: int = 128  # fusion_hidden_d
    text_positions: int = setting(50, min=1, doc="learned text positions (the reference's feature_length); longer text is cut")
    audio_positions: int = setting(375, min=1, doc="learned audio positions; longer audio is cut")
    video_positions: int = setting(500, min=1, doc="learned vision positions; longer vision is cut")
    lr: float = 1e-4
    weight_decay: float = setting(1e-4, min=0.0, doc="decoupled (AdamW) weight decay")

    def validate(self) -> None:
        if self.model_dim % self.ahl_heads:
            raise ConfigError(f"model.model_dim={self.model_dim} must be divisible by model.ahl_heads={self.ahl_heads}")


class Attention(nn.Module):
    """Multi-head attention with bias-free q/k/v projections to ``heads·head_dim`` and an output
    Linear back to ``dim``; ``mask`` ``(B, 1, Lq, Lk)`` marks the keys each query may use."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        # As the reference: no output projection when one head already has the model's width.
        self.to_out = nn.Identity() if heads == 1 and head_dim == dim else nn.Linear(inner, dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = F.scaled_dot_product_attention(self.split(q), self.split(k), self.split(v), attn_mask=mask)
        return out.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1)

    def forward(self, q, k, v, mask=None) -> torch.Tensor:
        return self.to_out(self.attend(self.to_q(q), self.to_k(k), self.to_v(v), mask))


class EncoderLayer(nn.Module):
    """Pre-norm: ``x + Attn(LN_q(x), LN_k(s), LN_v(s))``, then ``x + FF(LN(x))`` (GELU)."""

    def __init__(self, dim: int, heads: int, head_dim: int, ff_dim: int):
        super().__init__()
        self.norm_q, self.norm_k, self.norm_v = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = Attention(dim, heads, head_dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        source = x if source is None else source
        x = x + self.attention(self.norm_q(x), self.norm_k(source), self.norm_v(source), mask)
        return x + self.ff(self.norm_ff(x))


class TokenTransformer(nn.Module):
    """``tokens`` learned tokens (zeros at start) prepended to the sequence, learned positions
    for ``positions + tokens`` places, ``depth`` encoder layers; keys past a row's valid length
    are masked. ``keep_states``: every layer's input and output, else the last output."""

    def __init__(self, positions: int, tokens: int, dim: int, depth: int, heads: int, head_dim: int, ff_dim: int):
        super().__init__()
        self.tokens = tokens
        self.position = nn.Parameter(torch.randn(1, positions + tokens, dim))
        self.extra = nn.Parameter(torch.zeros(1, tokens, dim)) if tokens else None
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, head_dim, ff_dim) for _ in range(depth)])

    @property
    def max_positions(self) -> int:
        return self.position.shape[1] - self.tokens

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, keep_states: bool = False):
        x = x[:, : self.max_positions]
        b, n, _ = x.shape
        if self.extra is not None:
            x = torch.cat([self.extra.expand(b, -1, -1), x], dim=1)
        x = x + self.position[:, : n + self.tokens]
        mask = None
        if lengths is not None:
            valid = torch.arange(n + self.tokens, device=x.device)[None, :] < (lengths.to(x.device).clamp(max=n) + self.tokens)[:, None]
            mask = valid[:, None, None, :]
        states = [x]
        for layer in self.layers:
            x = layer(x, mask=mask)
            states.append(x)
        return states if keep_states else x


class HyperModalityLayer(nn.Module):
    """One AHL update of the hyper-modality, the language tokens as queries and each of
    audio/vision as keys and values; each input is LayerNorm-ed first (the update adds to the
    normalised hyper-modality, as the reference does)."""

    def __init__(self, dim: int, heads: int, sources: tuple[str, ...]):
        super().__init__()
        head_dim = dim // heads
        self.heads, self.sources = heads, sources
        self.norm_t, self.norm_hyper = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.norms = nn.ModuleDict({s: nn.LayerNorm(dim) for s in sources})
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.ModuleDict({s: nn.Linear(dim, heads * head_dim, bias=False) for s in sources})
        self.to_v = nn.ModuleDict({s: nn.Linear(dim, heads * head_dim, bias=False) for s in sources})
        self.to_out = nn.Identity() if heads == 1 else nn.Linear(heads * head_dim, dim)

    def forward(self, h_t: torch.Tensor, sources: dict[str, torch.Tensor], hyper: torch.Tensor) -> torch.Tensor:
        split = lambda x: x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)  # noqa: E731
        q = split(self.to_q(self.norm_t(h_t)))
        shift = 0
        for s in self.sources:
            x = self.norms[s](sources[s])
            out = F.scaled_dot_product_attention(q, split(self.to_k[s](x)), split(self.to_v[s](x)))
            shift = shift + out.transpose(1, 2).reshape(h_t.shape[0], h_t.shape[1], -1)
        return self.norm_hyper(hyper) + self.to_out(shift)


class FusionTransformer(nn.Module):
    """One learned token prepended to source and target, learned positions for each, then
    ``depth`` layers in which the target attends to the source; the token's output."""

    def __init__(self, source_len: int, target_len: int, dim: int, depth: int, heads: int, head_dim: int, ff_dim: int):
        super().__init__()
        self.position_source = nn.Parameter(torch.randn(1, source_len + 1, dim))
        self.position_target = nn.Parameter(torch.randn(1, target_len + 1, dim))
        self.extra = nn.Parameter(torch.zeros(1, 1, dim))
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, head_dim, ff_dim) for _ in range(depth)])

    def encode(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Every target position's output, the token's first (LNLN pools the others)."""
        extra = self.extra.expand(source.shape[0], -1, -1)
        source = torch.cat([extra, source], dim=1) + self.position_source[:, : source.shape[1] + 1]
        target = torch.cat([extra, target], dim=1) + self.position_target[:, : target.shape[1] + 1]
        for layer in self.layers:
            target = layer(target, source)
        return target

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.encode(source, target)[:, 0]


@register_model
class ALMT(MSAModel):
    name = "almt"
    config_class = ALMTConfig
    FEATURE_DIM_FIELDS: dict[str, str] = {}
    # MMSA config_regression.json, "almt": one step per batch (no accumulation), early stop 32;
    # feature_length -> the position tables.
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 64, "grad_accumulation": 1, "early_stop": 32}},
        "mosei": {"model": {"fusion_depth": 4, "audio_positions": 500}, "train": {"batch_size": 64, "grad_accumulation": 1, "early_stop": 32}},
        "sims": {
            "model": {"fusion_depth": 4, "text_positions": 39, "audio_positions": 400, "video_positions": 55},
            "train": {"batch_size": 64, "grad_accumulation": 1, "early_stop": 32},
        },
    }
    TEST_OVERRIDES = {"model_dim": 16, "embedding_ff_dim": 16, "fusion_ff_dim": 16, "token_length": 4, "embedding_heads": 2, "head_dim": 8,
                      "text_heads": 2, "ahl_depth": 2, "ahl_heads": 2, "fusion_depth": 1, "fusion_heads": 2, "lr": 3e-3}

    def __init__(self, config: ALMTConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        self._check_modalities(dims.modalities)
        if text_encoder is None:
            raise ValueError("ALMT needs a text encoder")
        c, d, n = config, config.model_dim, config.token_length
        self.text_model = text_encoder
        self.sources = tuple(s for s in ("a", "v") if s in dims.modalities)
        in_dims = {"t": text_encoder.hidden_size, "a": dims.audio_dim, "v": dims.vision_dim}
        positions = {"t": c.text_positions, "a": c.audio_positions, "v": c.video_positions}
        self.project = nn.ModuleDict({s: nn.Linear(in_dims[s], d) for s in ("t",) + self.sources})
        self.embed = nn.ModuleDict(
            {s: TokenTransformer(positions[s], n, d, c.embedding_depth, c.embedding_heads, c.head_dim, c.embedding_ff_dim) for s in ("t",) + self.sources}
        )
        self.language = TokenTransformer(n, 0, d, c.ahl_depth - 1, c.text_heads, c.head_dim, d)
        self.hyper = nn.Parameter(torch.ones(1, n, d))
        self.ahl = nn.ModuleList([HyperModalityLayer(d, c.ahl_heads, self.sources) for _ in range(c.ahl_depth)])
        self.fusion = FusionTransformer(n, n, d, c.fusion_depth, c.fusion_heads, c.head_dim, c.fusion_ff_dim)
        self.regressor = nn.Linear(d, 1)
        self.feature_dims = {"m": d}

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        require_text_plus_audio_or_vision(modalities, "ALMT learns a hyper-modality from audio/vision guided by language")

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        cls._check_modalities(modalities)

    def forward(self, batch) -> ModelOutput:
        n = self.config.token_length
        states = self.text_model.token_states(batch.text_ids, batch.text_mask)
        inputs = {"t": (states, batch.text_mask.sum(dim=1))}
        if "a" in self.sources:
            inputs["a"] = (batch.audio, batch.audio_lengths)
        if "v" in self.sources:
            inputs["v"] = (batch.vision, batch.vision_lengths)
        tokens = {s: self.embed[s](self.project[s](x), lengths)[:, :n] for s, (x, lengths) in inputs.items()}
        language = self.language(tokens["t"], keep_states=True)
        hyper = self.hyper.expand(states.shape[0], -1, -1)
        for layer, h_t in zip(self.ahl, language):
            hyper = layer(h_t, tokens, hyper)
        fused = self.fusion(hyper, language[-1])
        return ModelOutput(predictions={"m": self.regressor(fused).squeeze(-1)}, features={"m": fused})

    def parameter_groups(self) -> list[dict]:
        """One group; AdamW's decoupled weight decay (``p <- p·(1 − lr·wd)`` at each step), which
        the trainer's Adam applies per group with ``decoupled_weight_decay``."""
        c = self.config
        return [{"name": "all", "params": [p for p in self.parameters() if p.requires_grad], "lr": c.lr,
                 "weight_decay": c.weight_decay, "decoupled_weight_decay": True}]

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return [RegressionMSE("m")]


__all__ = ["ALMT", "ALMTConfig"]
