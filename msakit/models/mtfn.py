"""MTFN, multi-task TFN (Yu et al., ACL 2020, "CH-SIMS: A Chinese Multimodal Sentiment Analysis
Dataset with Fine-grained Annotations of Modality").

Structure follows MMSA 2.2.1 ``src/MMSA/models/multiTask/MTFN.py``, trained as
``trains/multiTask/MTFN.py`` does; per-dataset values from ``config_regression.json`` (``mtfn``,
which has CH-SIMS values only: they are the defaults for every kind). TFN (``tfn.py``: pooled
audio/vision sub-networks, a text LSTM, their outer product with appended 1s through a
two-layer DNN and a sigmoid scaled to ``[-output_bound, output_bound]``) plus one head per
modality on its pre-fusion vector, trained on the human unimodal labels
``regression_labels_T/A/V`` with the weighted multi-task L1 of ``unimodal_tasks.py``
(``weight_m/t/a/v``, MMSA's ``M/T/A/V``; the SIMS default gives audio weight 0, so the audio
head is untrained there, as in the reference); data without those labels is refused for
training with the reason.

Modalities: any non-empty subset of t, a, v (the tensor and the heads of the modalities used).

Parameters, checked in tests/test_classic_models.py against a count built from the reference's
layer list: SIMS configuration (text 256 -> 256, audio 32, video 256, post-fusion 64, heads 64 /
4 / 8) with SIMS's unaligned feature sizes (text 768, audio 33, vision 709): the reference has
140,957,188 trainable parameters (139.5 M of them in the first post-fusion layer, on the
257 x 257 x 33 tensor), this model without its text encoder the same 140,957,188.

Deliberate differences from the reference: those of TFN (text encoder instead of fixed
features, valid-frame averages, the LSTM state at the last real token, ``features["m"]`` the
post-fusion layer's output); the reference's optimiser puts the first two parameters (the audio
batch norm's) both in the audio group and in a group at learning rate 0, which current PyTorch
refuses; here the four groups of MLF-DNN's trainer are used (each sub-network with its weight
decay, the rest with ``weight_decay``), every parameter trained.
"""

from __future__ import annotations

from dataclasses import dataclass

from msakit.models._registry import register_model
from msakit.models.tfn import TFN, TFNConfig
from msakit.models.unimodal_tasks import UnimodalTasksConfig, UnimodalTasksMixin


@dataclass
class MTFNConfig(UnimodalTasksConfig, TFNConfig):
    # config_regression.json, "mtfn", "sims" (the head fields' defaults in UnimodalTasksConfig are MTFN's).
    text_hidden: int = 256
    audio_hidden: int = 32
    video_hidden: int = 256
    text_out: int = 256
    post_fusion_dim: int = 64
    audio_dropout: float = 0.2
    video_dropout: float = 0.2
    post_fusion_dropout: float = 0.2
    lr_other: float = 5e-3
    weight_decay: float = 5e-3


_TRAIN = {"batch_size": 64, "grad_accumulation": 1, "early_stop": 8}


@register_model
class MTFN(UnimodalTasksMixin, TFN):
    name = "mtfn"
    config_class = MTFNConfig
    TITLE, SINGLE_TASK = "MTFN", "tfn"  # for the refusal of data without unimodal labels
    LEGACY_DEFAULTS: dict = {}
    DATASET_DEFAULTS = {kind: {"train": dict(_TRAIN)} for kind in ("mosi", "mosei", "sims")}
    TEST_OVERRIDES = {**TFN.TEST_OVERRIDES, "post_text_dim": 8, "post_audio_dim": 4, "post_video_dim": 8, "post_fusion_dropout": 0.0,
                      "post_text_dropout": 0.0, "post_audio_dropout": 0.0, "post_video_dropout": 0.0, "weight_decay": 0.0,
                      "text_weight_decay": 0.0, "audio_weight_decay": 0.0, "video_weight_decay": 0.0}
