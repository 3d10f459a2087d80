"""LMF, Low-rank Multimodal Fusion (Liu et al., ACL 2018, "Efficient Low-rank Multimodal Fusion
with Modality-Specific Factors").

Structure follows MMSA 2.2.1 ``src/MMSA/models/singleTask/LMF.py`` (sub-networks from
``subNets/FeatureNets.py``, shared with TFN: see ``msakit/encoders/pooled.py``); per-dataset
values from its ``config_regression.json`` (``lmf``). The pre-fusion vectors are TFN's (audio
and vision averaged over time through batch norm, dropout and three Linear+ReLU; text an LSTM
over token states to ``text_out = text_hidden // 2``). Instead of TFN's full outer product, each
modality vector with its appended 1 is multiplied by ``rank`` modality-specific factors
``W_s^(i)`` (``(d_s + 1) x 1``); the fused value of rank ``i`` is the product of the
modalities' projections, and the output is a learned weighted sum over the ranks plus a bias
(the reference's "more flexible" form of the paper's plain sum). Loss: L1. The factors get their
own learning rate ``lr_factor`` (MMSA's ``factor_lr``).

Modalities: any non-empty subset of t, a, v; a subset multiplies only the factors of the
modalities used (with all three it is the paper's).

Parameters, checked in tests/test_baselines.py against a count built from the reference's
layer list: for the MOSI configuration (text 128 -> 64, audio 16, video 128, rank 3) with
MOSI's unaligned feature sizes (text 768, audio 5, vision 20), the reference has 505,071
trainable parameters and this model without its text encoder the same 505,071 (the text
encoder, frozen by default, replaces the reference's fixed 768-d features).

Deliberate differences from the reference:
- Text comes from a BERT-family encoder (the packaged MiniLM by default, any local BERT
  directory) instead of fixed pre-extracted features; frozen by default as the reference's
  features are (``text_finetune``, see ``tfn.py``), fine-tuned at ``lr_text`` with ``text_finetune=true``.
- Audio/vision averages count valid frames only; the text LSTM's state is the one at the last
  real token.
- The reference's optimiser groups are cut by position (``parameters()[:3]`` at ``factor_lr``,
  ``[5:]`` at the main rate), which puts the audio sub-network's first parameters at the factor
  rate, leaves two audio tensors untrained and the factors at the main rate. Here the three
  factors are at ``lr_factor`` and every other parameter at ``lr_other``, as the paper and
  the config names intend. The reference's post-fusion dropout is defined but never applied;
  it is left out.
- A training batch of one sample is normalised with the running statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msakit.settings import setting
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel
from msakit.models.tfn import append_one, build_tfn_style_subnets, encode_tfn_style
from msakit.objectives import RegressionL1


@dataclass
class LMFConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    # The reference reads fixed pre-extracted text features; False does the same with the encoder
    # (frozen, each sequence encoded once and cached), True fine-tunes it at lr_text.
    text_finetune: bool = setting(False, doc="False: the text encoder is a fixed feature extractor, as in the reference; True: fine-tune it at lr_text")
    text_hidden: int = 128  # the text vector is text_hidden // 2 wide, as in the reference
    audio_hidden: int = 16
    video_hidden: int = 128
    audio_dropout: float = 0.3
    video_dropout: float = 0.3
    rank: int = 3
    lr_text: float = 5e-5
    lr_other: float = 1e-3
    lr_factor: float = 1e-3
    weight_decay: float = 5e-3

    def validate(self) -> None:
        if self.text_hidden < 2:
            raise ConfigError(f"model.text_hidden={self.text_hidden}: must be >= 2 (the text vector is text_hidden // 2 wide)")


@register_model
class LMF(MSAModel):
    name = "lmf"
    config_class = LMFConfig
    LEGACY_DEFAULTS = {"text_finetune": True}  # runs saved before the setting existed fine-tuned the encoder
    FEATURE_DIM_FIELDS = {"m": "rank", "a": "audio_hidden", "v": "video_hidden"}
    # MMSA config_regression.json, "lmf": hidden_dims are (text, audio, video); dropouts
    # (audio, video, text, post-fusion), the last two unused. One step per batch, early stop 8.
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 64, "grad_accumulation": 1}},
        "mosei": {
            "model": {"audio_dropout": 0.2, "video_dropout": 0.2, "rank": 4, "weight_decay": 1e-3},
            "train": {"batch_size": 32, "grad_accumulation": 1},
        },
        "sims": {
            "model": {"text_hidden": 64, "video_hidden": 64, "audio_dropout": 0.2, "video_dropout": 0.2, "rank": 4, "lr_other": 2e-3, "lr_factor": 5e-4},
            "train": {"batch_size": 64, "grad_accumulation": 1},
        },
    }
    TEST_OVERRIDES = {"text_hidden": 16, "audio_hidden": 8, "video_hidden": 8, "rank": 4, "lr_other": 3e-3, "lr_factor": 3e-3, "weight_decay": 0.0}

    def __init__(self, config: LMFConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c = config
        sizes = build_tfn_style_subnets(
            self, text_encoder, {"t": (c.text_hidden, c.text_hidden // 2), "a": (c.audio_hidden,), "v": (c.video_hidden,)}, {"a": c.audio_dropout, "v": c.video_dropout}
        )
        self.factors = nn.ParameterDict({s: nn.Parameter(torch.empty(c.rank, sizes[s] + 1, 1)) for s in self.dims.modalities})
        self.fusion_weights = nn.Parameter(torch.empty(1, c.rank))
        self.fusion_bias = nn.Parameter(torch.zeros(1, 1))
        for factor in self.factors.values():
            nn.init.xavier_normal_(factor)
        nn.init.xavier_normal_(self.fusion_weights)
        self.feature_dims = {"m": c.rank, **sizes}

    def forward(self, batch) -> ModelOutput:
        encoded = encode_tfn_style(self, batch)
        fused = None
        for s in self.dims.modalities:
            projected = torch.matmul(append_one(encoded[s]), self.factors[s]).squeeze(-1)  # (rank, B)
            fused = projected if fused is None else fused * projected
        fused = fused.transpose(0, 1)  # (B, rank)
        prediction = (fused @ self.fusion_weights.t() + self.fusion_bias).squeeze(-1)
        return ModelOutput(predictions={"m": prediction}, features={"m": fused, **encoded})

    def parameter_groups(self) -> list[dict]:
        c = self.config
        groups = self.text_and_other_groups(c.lr_text, c.lr_other, c.weight_decay)
        factors = {id(p) for p in self.factors.parameters()}
        for g in groups:
            g["params"] = [p for p in g["params"] if id(p) not in factors]
        groups.append({"name": "factors", "params": list(self.factors.parameters()), "lr": c.lr_factor, "weight_decay": c.weight_decay})
        return [g for g in groups if g["params"]]

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return [RegressionL1("m")]
