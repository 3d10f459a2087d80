"""Late fusion: each modality predicts on its own; the fused prediction is their learned
convex combination. A simple baseline, and a second model that exposes per-modality features
``F_s`` (so the covariance alignment plugs into it by config alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel, attach_encoders, encode_modalities
from msakit.objectives import RegressionL1


@dataclass
class LateFusionConfig:
    text_encoder: str = "minilm"
    audio_hidden: int = 16
    video_hidden: int = 32
    audio_out: int = 16
    video_out: int = 32
    feature_dim: int = 32  # size of every F_s
    dropout: float = 0.1
    lr_text: float = 5e-5
    lr_other: float = 1e-3
    weight_decay: float = 1e-3


@register_model
class LateFusion(MSAModel):
    name = "late_fusion"
    config_class = LateFusionConfig
    FEATURE_DIM_FIELDS = {"t": "feature_dim", "a": "feature_dim", "v": "feature_dim"}
    DATASET_DEFAULTS = {"mosei": {"train": {"batch_size": 32}}, "sims": {"train": {"batch_size": 32}}}

    def __init__(self, config: LateFusionConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c = config
        encoded = attach_encoders(self, text_encoder, (c.audio_hidden, c.audio_out, 0.0), (c.video_hidden, c.video_out, 0.0))
        self.feature_dims = {s: c.feature_dim for s in dims.modalities}
        self.feature_layers = nn.ModuleDict(
            {s: nn.Sequential(nn.Dropout(c.dropout), nn.Linear(k, c.feature_dim), nn.ReLU()) for s, k in encoded.items()}
        )
        self.regressors = nn.ModuleDict({s: nn.Linear(c.feature_dim, 1) for s in encoded})
        self.fusion_logits = nn.Parameter(torch.zeros(len(encoded)))

    def forward(self, batch) -> ModelOutput:
        features = {s: self.feature_layers[s](x) for s, x in encode_modalities(self, batch).items()}
        predictions = {s: self.regressors[s](f).squeeze(-1) for s, f in features.items()}
        weights = torch.softmax(self.fusion_logits, dim=0)
        predictions["m"] = sum(w * predictions[s] for w, s in zip(weights, self.dims.modalities))
        return ModelOutput(predictions=predictions, features=features)

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return self.text_and_other_groups(c.lr_text, c.lr_other, c.weight_decay)

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return [RegressionL1("m")]
