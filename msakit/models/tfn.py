"""TFN, the Tensor Fusion Network (Zadeh et al., EMNLP 2017, "Tensor Fusion Network for
Multimodal Sentiment Analysis").

Structure follows MMSA 2.2.1 ``src/MMSA/models/singleTask/TFN.py`` (with its
``subNets/FeatureNets.py``); per-dataset values from its ``config_regression.json`` (``tfn``).
Audio and vision are averaged over time and pass through a sub-network (batch norm, dropout,
three Linear+ReLU, ``audio_hidden``/``video_hidden`` wide); text is a one-layer LSTM over the
text encoder's token states, its last state through a Linear to ``text_out``. Each modality
vector gets a 1 appended and the three are joined by their outer product (the "tensor"), so
the fused input holds every unimodal, bimodal and trimodal product; it is flattened ->
dropout -> Linear+ReLU -> Linear+ReLU (``post_fusion_dim``) -> Linear(1) -> sigmoid scaled to
``[-output_bound, output_bound]``. Loss: L1.

Modalities: any non-empty subset of t, a, v. The tensor is the outer product of the modalities
used (with their appended 1s), so a subset drops that factor; with all three it is the paper's.

Parameters, checked in tests/test_baselines.py against a count built from the reference's
layer list: for the MOSI configuration (text 128 -> 32, audio 32, video 128, post-fusion 64)
with MOSI's unaligned feature sizes (text 768, audio 5, vision 20), the reference has
9,497,043 trainable parameters, and this model without its text encoder has the same
9,497,043 (the reference reads fixed 768-d BERT features; here the encoder's own hidden
states feed the LSTM, so the encoder's parameters, frozen by default, are added on top of the count).

Deliberate differences from the reference:
- Text comes from a BERT-family encoder (the packaged MiniLM by default, any local BERT
  directory) instead of the file's pre-extracted features. By default it is frozen
  (``text_finetune=false``), as the reference's features are fixed: each distinct sequence is
  encoded once, alone, and its token states are cached, so training costs what the reference's
  does (benchmarks/results/model_speed.md). ``text_finetune=true`` fine-tunes it at ``lr_text``.
- Audio/vision averages count valid frames only (see ``msakit/encoders/pooled.py``); the text
  LSTM's state is the one at the last real token.
- The reference's optimiser skips the audio batch norm's two affine parameters
  (``list(model.parameters())[2:]``, meant to skip the fixed output range); every trainable
  parameter is optimised here.
- ``features["m"]`` is the second post-fusion layer's output (``post_fusion_dim``), not the
  flattened tensor (whose size makes storing it per sample wasteful).
- A training batch of one sample is normalised with the running statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msakit.settings import setting
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.encoders.pooled import PooledFrameSubNet, TokenLSTMSubNet
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel
from msakit.objectives import RegressionL1


@dataclass
class TFNConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    # The reference reads fixed pre-extracted text features; False does the same with the encoder
    # (frozen, each sequence encoded once and cached), True fine-tunes it at lr_text.
    text_finetune: bool = setting(False, doc="False: the text encoder is a fixed feature extractor, as in the reference; True: fine-tune it at lr_text")
    text_hidden: int = 128
    audio_hidden: int = 32
    video_hidden: int = 128
    text_out: int = 32
    post_fusion_dim: int = 64
    audio_dropout: float = 0.3
    video_dropout: float = 0.3
    post_fusion_dropout: float = 0.5
    output_bound: float = setting(3.0, gt=0.0, doc="predictions are a sigmoid scaled to [-bound, bound]")
    lr_text: float = 5e-5
    lr_other: float = 1e-3
    weight_decay: float = 0.0


def append_one(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.ones_like(x[:, :1]), x], dim=1)


def encode_tfn_style(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    """The TFN/LMF pre-fusion vectors of the modalities used: ``{"t"|"a"|"v": (B, k)}``."""
    out = {}
    if "t" in model.dims.modalities:
        out["t"] = model.subnets["t"](model.text_model, batch.text_ids, batch.text_mask)
    if "a" in model.dims.modalities:
        out["a"] = model.subnets["a"](batch.audio, batch.audio_lengths)
    if "v" in model.dims.modalities:
        out["v"] = model.subnets["v"](batch.vision, batch.vision_lengths)
    return out


def build_tfn_style_subnets(model: nn.Module, text_encoder, sizes: dict[str, tuple[int, ...]], dropouts: dict[str, float]) -> dict[str, int]:
    """Attach ``text_model`` and ``subnets`` for the modalities in ``model.dims``; ``sizes`` is
    ``{"t": (hidden, out), "a": (hidden,), "v": (hidden,)}``. Returns each output size."""
    dims, subnets, out = model.dims, {}, {}
    if not dims.modalities:
        raise ConfigError(f"{model.name}: data.modalities is empty; use any of t, a, v")
    if "t" in dims.modalities:
        if text_encoder is None:
            raise ValueError(f"{type(model).__name__} with text needs a text encoder")
        model.text_model = text_encoder
        if not model.config.text_finetune and hasattr(text_encoder, "freeze"):  # stand-ins (tests) are fixed already
            text_encoder.freeze()
        subnets["t"] = TokenLSTMSubNet(text_encoder, sizes["t"][0], sizes["t"][1])
        out["t"] = sizes["t"][1]
    for s, in_dim in (("a", dims.audio_dim), ("v", dims.vision_dim)):
        if s in dims.modalities:
            subnets[s] = PooledFrameSubNet(in_dim, sizes[s][0], dropouts[s])
            out[s] = sizes[s][0]
    model.subnets = nn.ModuleDict(subnets)
    return out


@register_model
class TFN(MSAModel):
    name = "tfn"
    config_class = TFNConfig
    LEGACY_DEFAULTS = {"text_finetune": True}  # runs saved before the setting existed fine-tuned the encoder
    FEATURE_DIM_FIELDS = {"m": "post_fusion_dim", "t": "text_out", "a": "audio_hidden", "v": "video_hidden"}
    # MMSA config_regression.json, "tfn": hidden_dims are (text, audio, video); dropouts
    # (audio, video, text, post-fusion), the text one unused by a one-layer LSTM. One optimiser
    # step per batch (no accumulation), early stop 8.
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 32, "grad_accumulation": 1}},
        "mosei": {
            "model": {"audio_hidden": 16, "text_out": 128, "post_fusion_dim": 16, "audio_dropout": 0.4, "video_dropout": 0.4, "post_fusion_dropout": 0.4, "lr_other": 5e-3},
            "train": {"batch_size": 128, "grad_accumulation": 1},
        },
        "sims": {
            "model": {"text_out": 256, "post_fusion_dim": 32, "audio_dropout": 0.4, "video_dropout": 0.4, "post_fusion_dropout": 0.4, "lr_other": 5e-4},
            "train": {"batch_size": 32, "grad_accumulation": 1},
        },
    }
    # Tiny sizes for the registry-wide tests (tests/test_every_model.py).
    TEST_OVERRIDES = {"text_hidden": 16, "text_out": 8, "audio_hidden": 8, "video_hidden": 8, "post_fusion_dim": 16, "lr_other": 3e-3}

    def __init__(self, config: TFNConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c = config
        sizes = build_tfn_style_subnets(
            self, text_encoder, {"t": (c.text_hidden, c.text_out), "a": (c.audio_hidden,), "v": (c.video_hidden,)}, {"a": c.audio_dropout, "v": c.video_dropout}
        )
        fused = 1
        for s in self.fusion_order:
            fused *= sizes[s] + 1
        self.post_fusion = nn.Sequential(
            nn.Dropout(c.post_fusion_dropout), nn.Linear(fused, c.post_fusion_dim), nn.ReLU(), nn.Linear(c.post_fusion_dim, c.post_fusion_dim), nn.ReLU()
        )
        self.out_layer = nn.Linear(c.post_fusion_dim, 1)
        self.feature_dims = {"m": c.post_fusion_dim, **sizes}

    @property
    def fusion_order(self) -> tuple[str, ...]:
        """The reference's order of the outer product: audio, video, then text."""
        return tuple(s for s in ("a", "v", "t") if s in self.dims.modalities)

    def forward(self, batch) -> ModelOutput:
        encoded = encode_tfn_style(self, batch)
        tensor = None
        for s in self.fusion_order:
            x = append_one(encoded[s])
            tensor = x if tensor is None else (tensor[:, :, None] * x[:, None, :]).flatten(1)
        hidden = self.post_fusion(tensor)
        bound = self.config.output_bound
        prediction = torch.sigmoid(self.out_layer(hidden)).squeeze(-1) * (2 * bound) - bound
        return ModelOutput(predictions={"m": prediction}, features={"m": hidden, **encoded})

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return self.text_and_other_groups(c.lr_text, c.lr_other, c.weight_decay)

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return [RegressionL1("m")]
