"""MMMIE (Zheng et al. 2022, arXiv 2201.03969): mutual-information maximisation between
modality pairs, minimisation between each modality's input and its features, and identity
embeddings, around a shared Transformer.

Only the abstract was available; this is the reading in METHODS.md section 3, every part a
switch. Per modality: an encoder to the model size ``d`` (BERT token states + linear for text;
a strided 1-D convolution over frames for audio/vision, ``frame_stride`` 1 = per-frame
linear), then a Gaussian bottleneck ``μ, log σ²`` per position with ``z = μ + σ·ε`` in
training and ``z = μ`` at evaluation; a learned identity vector per modality is added to every
position of its sequence. The three sequences are concatenated and encoded by one shared
Transformer; each modality's segment, mean-pooled, is its feature ``F_s`` (InfoNCE acts on
these), and the mean over all positions feeds the regression head.

Loss = L1 + α·Σ_pairs(−I_NCE) + β·KL. Switches: ``infonce_weight = 0``,
``bottleneck_weight = 0``, ``identity_embedding = false``, ``infonce_pairs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel
from msakit.objectives import RegressionL1
from msakit.objectives.alignment import parse_pairs
from msakit.objectives.information import InfoNCE, InformationBottleneck


@dataclass
class MMMIEConfig:
    text_encoder: str = "minilm"
    model_dim: int = 64  # d: every modality's positions and features
    frame_stride: int = 1  # audio/vision conv kernel = stride; > 1 shortens long frame sequences
    transformer_layers: int = 2
    transformer_heads: int = 4
    transformer_ff_dim: int = 128
    dropout: float = 0.1
    identity_embedding: bool = True
    infonce_weight: float = 0.1  # α; 0 switches MI maximisation off
    infonce_pairs: str = "t-a,t-v,a-v"  # pairs among the modalities used
    infonce_temperature: float = 0.1  # τ
    bottleneck_weight: float = 1e-3  # β; 0 switches the KL (MI minimisation) off
    lr_text: float = 5e-5
    lr_other: float = 1e-3
    weight_decay: float = 1e-4


def _sinusoid(length: int, dim: int, device) -> torch.Tensor:
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


@register_model
class MMMIE(MSAModel):
    name = "mmmie"
    config_class = MMMIEConfig
    FEATURE_DIM_FIELDS = {"t": "model_dim", "a": "model_dim", "v": "model_dim", "m": "model_dim"}
    # No published settings could be read (abstract only): these are the MOSI-style batch sizes
    # the other models use; the model sizes are the config's untuned defaults.
    DATASET_DEFAULTS = {"mosei": {"train": {"batch_size": 32}}, "sims": {"train": {"batch_size": 32}}}

    def __init__(self, config: MMMIEConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c, d = config, config.model_dim
        if d % 2 or d % c.transformer_heads:
            raise ConfigError(f"model.model_dim={d} must be even and divisible by model.transformer_heads={c.transformer_heads}")
        if c.frame_stride < 1:
            raise ConfigError(f"model.frame_stride must be >= 1, got {c.frame_stride}")
        projections = {}
        if "t" in dims.modalities:
            if text_encoder is None:
                raise ValueError("MMMIE with text needs a text encoder")
            self.text_model = text_encoder
            projections["t"] = nn.Linear(text_encoder.hidden_size, d)
        for s, in_dim in (("a", dims.audio_dim), ("v", dims.vision_dim)):
            if s in dims.modalities:
                projections[s] = nn.Conv1d(in_dim, d, kernel_size=c.frame_stride, stride=c.frame_stride)
        self.projections = nn.ModuleDict(projections)
        self.bottleneck_mu = nn.ModuleDict({s: nn.Linear(d, d) for s in dims.modalities})
        self.bottleneck_logvar = nn.ModuleDict({s: nn.Linear(d, d) for s in dims.modalities})
        self.identity = nn.Parameter(torch.randn(len(dims.modalities), d) * 0.1)
        layer = nn.TransformerEncoderLayer(d, c.transformer_heads, c.transformer_ff_dim, c.dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, c.transformer_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))
        self.feature_dims = {s: d for s in ("m",) + tuple(dims.modalities)}
        self.use_identity = c.identity_embedding

    def _sequences(self, batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each modality as ``(B, L_s, d)`` positions with a ``(B, L_s)`` validity mask."""
        out = {}
        if "t" in self.dims.modalities:
            states = self.text_model.token_states(batch.text_ids, batch.text_mask)
            out["t"] = (self.projections["t"](states), batch.text_mask.bool())
        stride = self.config.frame_stride
        for s, frames, lengths in (("a", batch.audio, batch.audio_lengths), ("v", batch.vision, batch.vision_lengths)):
            if s not in self.dims.modalities:
                continue
            x = self.projections[s](frames.transpose(1, 2)).transpose(1, 2)  # (B, T/stride, d)
            x = x + _sinusoid(x.shape[1], x.shape[2], x.device)
            kept = torch.div(lengths + stride - 1, stride, rounding_mode="floor").clamp(min=1, max=x.shape[1])
            mask = torch.arange(x.shape[1], device=x.device)[None, :] < kept.to(x.device)[:, None]
            out[s] = (x, mask)
        return out

    def forward(self, batch) -> ModelOutput:
        sequences, masks, bottleneck = [], [], {}
        for s, (x, mask) in self._sequences(batch).items():
            mu, logvar = self.bottleneck_mu[s](x), self.bottleneck_logvar[s](x).clamp(-10.0, 10.0)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
            if self.use_identity:
                z = z + self.identity[self.dims.modalities.index(s)]
            bottleneck[s] = (mu, logvar, mask)
            sequences.append(z)
            masks.append(mask)
        mask = torch.cat(masks, dim=1)
        encoded = self.transformer(torch.cat(sequences, dim=1), src_key_padding_mask=~mask)
        features, start = {}, 0
        for s, segment_mask in zip(bottleneck, masks):
            length = segment_mask.shape[1]
            features[s] = _masked_mean(encoded[:, start : start + length], segment_mask)
            start += length
        features["m"] = _masked_mean(encoded, mask)
        prediction = self.head(features["m"]).squeeze(-1)
        return ModelOutput(predictions={"m": prediction}, features=features, extras={"bottleneck": bottleneck})

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return self.text_and_other_groups(c.lr_text, c.lr_other, c.weight_decay)

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        c = self.config
        objectives: list[nn.Module] = [RegressionL1("m")]
        pairs = [(i, j) for i, j, _ in parse_pairs(c.infonce_pairs) if i in self.dims.modalities and j in self.dims.modalities]
        if c.infonce_weight > 0 and pairs:
            objectives.append(InfoNCE(pairs, c.infonce_weight, c.infonce_temperature))
        if c.bottleneck_weight > 0:
            objectives.append(InformationBottleneck(c.bottleneck_weight))
        return objectives


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(x.dtype)[..., None]
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
