"""LF-DNN, late fusion of per-modality deep networks (the late-fusion baseline of "Benchmarking
Multimodal Sentiment Analysis", Cambria et al., CICLing 2017; MMSA's version after Williams et
al., "Recognizing Emotions in Video Using Multimodal DNN Feature Fusion", 2018).

Structure follows MMSA 2.2.1 ``src/MMSA/models/singleTask/LF_DNN.py`` (sub-networks from
``subNets/FeatureNets.py``, shared with TFN and LMF: ``msakit/encoders/pooled.py``), trained as
``trains/singleTask/LF_DNN.py`` does (L1 loss, one Adam over every parameter with
``weight_decay``, a step per batch); per-dataset values from ``config_regression.json``
(``lf_dnn``: ``hidden_dims`` are (text, audio, video), ``dropouts`` (audio, video, text,
post-fusion), the text one unused by a one-layer LSTM; early stop 8). Audio and vision are
averaged over time and pass through batch norm, dropout and three Linear+ReLU
(``audio_hidden``/``video_hidden``); text is a one-layer LSTM over the text encoder's token
states, its last state through a Linear to ``text_out``. The three vectors are concatenated
(audio, video, text) -> dropout -> Linear+ReLU -> Linear+ReLU (``post_fusion_dim``) -> Linear(1).

Not msakit's ``late_fusion`` (which averages per-modality *predictions* with learned weights):
LF-DNN fuses per-modality *representations* with a DNN.

Modalities: any non-empty subset of t, a, v (the concatenation holds the ones used).

Parameters, checked in tests/test_classic_models.py against a count built from the reference's
layer list: MOSI configuration (text 128 -> 256, audio 16, video 128, post-fusion 128) with
MOSI's unaligned feature sizes (text 768, audio 5, vision 20): the reference has 597,171
trainable parameters, and this model without its text encoder the same 597,171.

Deliberate differences from the reference (those of TFN, ``tfn.py``):
- Text comes from a BERT-family encoder's token states (frozen by default, as the reference's
  fixed features; ``text_finetune=true`` fine-tunes it at ``lr_text``).
- Audio/vision averages count valid frames only; the text LSTM's state is the one at the last
  real token. A training batch of one sample is normalised with the running statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel
from msakit.models.tfn import build_tfn_style_subnets, encode_tfn_style
from msakit.objectives import RegressionL1
from msakit.settings import setting

# The reference's concatenation order.
FUSION_ORDER = ("a", "v", "t")


@dataclass
class LFDNNConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    text_finetune: bool = setting(False, doc="False: the text encoder is a fixed feature extractor, as in the reference; True: fine-tune it at lr_text")
    text_hidden: int = 128
    audio_hidden: int = 16
    video_hidden: int = 128
    text_out: int = 256
    post_fusion_dim: int = 128
    audio_dropout: float = 0.2
    video_dropout: float = 0.2
    post_fusion_dropout: float = 0.2
    lr_text: float = 5e-5
    lr_other: float = 1e-3
    weight_decay: float = 1e-2


def late_fusion_dnn(in_dim: int, post_fusion_dim: int, dropout: float) -> nn.Sequential:
    """dropout -> Linear+ReLU -> Linear+ReLU: the post-fusion network of LF-DNN and MLF-DNN."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, post_fusion_dim), nn.ReLU(), nn.Linear(post_fusion_dim, post_fusion_dim), nn.ReLU())


@register_model
class LFDNN(MSAModel):
    name = "lf_dnn"
    config_class = LFDNNConfig
    FEATURE_DIM_FIELDS = {"m": "post_fusion_dim", "t": "text_out", "a": "audio_hidden", "v": "video_hidden"}
    # MMSA config_regression.json, "lf_dnn".
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 128, "grad_accumulation": 1, "early_stop": 8}},
        "mosei": {
            "model": {"audio_hidden": 32, "text_out": 128, "lr_other": 2e-3, "weight_decay": 1e-3},
            "train": {"batch_size": 64, "grad_accumulation": 1, "early_stop": 8},
        },
        "sims": {
            "model": {"audio_hidden": 32, "post_fusion_dim": 32, "audio_dropout": 0.3, "video_dropout": 0.3, "post_fusion_dropout": 0.5, "lr_other": 5e-3, "weight_decay": 5e-3},
            "train": {"batch_size": 128, "grad_accumulation": 1, "early_stop": 8},
        },
    }
    TEST_OVERRIDES = {"text_hidden": 16, "text_out": 8, "audio_hidden": 8, "video_hidden": 8, "post_fusion_dim": 16, "post_fusion_dropout": 0.0, "lr_other": 5e-3, "weight_decay": 0.0}

    def __init__(self, config: LFDNNConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c = config
        sizes = build_tfn_style_subnets(
            self, text_encoder, {"t": (c.text_hidden, c.text_out), "a": (c.audio_hidden,), "v": (c.video_hidden,)}, {"a": c.audio_dropout, "v": c.video_dropout}
        )
        self.post_fusion = late_fusion_dnn(sum(sizes.values()), c.post_fusion_dim, c.post_fusion_dropout)
        self.out_layer = nn.Linear(c.post_fusion_dim, 1)
        self.feature_dims = {"m": c.post_fusion_dim, **sizes}

    def fuse(self, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.post_fusion(torch.cat([encoded[s] for s in FUSION_ORDER if s in encoded], dim=-1))

    def forward(self, batch) -> ModelOutput:
        encoded = encode_tfn_style(self, batch)
        hidden = self.fuse(encoded)
        prediction = self.out_layer(hidden).squeeze(-1)
        return ModelOutput(predictions={"m": prediction}, features={"m": hidden, **encoded})

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return self.text_and_other_groups(c.lr_text, c.lr_other, c.weight_decay)

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return [RegressionL1("m")]
