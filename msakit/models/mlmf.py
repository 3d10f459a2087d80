"""MLMF, multi-task LMF (Yu et al., ACL 2020, "CH-SIMS: A Chinese Multimodal Sentiment Analysis
Dataset with Fine-grained Annotations of Modality").

Structure follows MMSA 2.2.1 ``src/MMSA/models/multiTask/MLMF.py``, trained as
``trains/multiTask/MLMF.py`` does; per-dataset values from ``config_regression.json`` (``mlmf``,
which has CH-SIMS values only: they are the defaults for every kind). LMF (``lmf.py``: TFN's
sub-networks, rank-``rank`` modality-specific factors, a learned weighted sum over the ranks)
plus one head per modality on its pre-fusion vector, trained on the human unimodal labels
``regression_labels_T/A/V`` with the weighted multi-task L1 of ``unimodal_tasks.py``
(``weight_m/t/a/v``, MMSA's ``M/T/A/V``); data without those labels is refused for training
with the reason. The factors train at ``lr_factor`` (MMSA's ``factor_lr``).

Modalities: any non-empty subset of t, a, v (the factors and heads of the modalities used).

Parameters, checked in tests/test_classic_models.py against a count built from the reference's
layer list: SIMS configuration (text 256 -> 128, audio 32, video 256, rank 3, heads 8 / 4 / 32)
with SIMS's unaligned feature sizes (text 768, audio 33, vision 709): the reference has
1,413,392 trainable parameters, this model without its text encoder the same 1,413,392.

Deliberate differences from the reference: those of LMF (text encoder instead of fixed
features, valid-frame averages, the LSTM state at the last real token, no unused post-fusion
dropout); the reference cuts optimiser groups by position (``parameters()[:3]`` at
``factor_lr``, ``[3:5]`` at learning rate 0), which picks audio sub-network tensors, not the
factors, and overlaps the sub-network groups (refused by current PyTorch); here the three
factors train at ``lr_factor`` with ``weight_decay``, the sub-networks with their own weight
decays and everything else at ``lr_other``, as the config names intend.
"""

from __future__ import annotations

from dataclasses import dataclass

from msakit.models._registry import register_model
from msakit.models.lmf import LMF, LMFConfig
from msakit.models.unimodal_tasks import UnimodalTasksConfig, UnimodalTasksMixin
from msakit.settings import setting


@dataclass
class MLMFConfig(UnimodalTasksConfig, LMFConfig):
    # config_regression.json, "mlmf", "sims".
    text_hidden: int = 256
    audio_hidden: int = 32
    video_hidden: int = 256
    audio_dropout: float = 0.3
    video_dropout: float = 0.3
    rank: int = 3
    post_text_dim: int = setting(8, min=1, doc="width of the text head (post_text_dim)")
    post_audio_dim: int = setting(4, min=1, doc="width of the audio head (post_audio_dim)")
    post_video_dim: int = setting(32, min=1, doc="width of the video head (post_video_dim)")
    post_text_dropout: float = setting(0.4, min=0.0, max=1.0)
    post_audio_dropout: float = setting(0.4, min=0.0, max=1.0)
    post_video_dropout: float = setting(0.4, min=0.0, max=1.0)
    weight_m: float = setting(0.2, min=0.0, doc="loss weight of the fused task (MMSA's M)")
    weight_t: float = setting(1.0, min=0.0, doc="loss weight of the text task on the human text labels (T)")
    weight_a: float = setting(0.4, min=0.0, doc="loss weight of the audio task on the human audio labels (A)")
    weight_v: float = setting(0.8, min=0.0, doc="loss weight of the video task on the human video labels (V)")
    text_weight_decay: float = setting(1e-4, min=0.0, doc="weight decay of the text sub-network")
    audio_weight_decay: float = setting(0.0, min=0.0, doc="weight decay of the audio sub-network")
    video_weight_decay: float = setting(1e-4, min=0.0, doc="weight decay of the video sub-network")
    lr_other: float = 1e-3
    lr_factor: float = 1e-3
    weight_decay: float = 5e-3


_TRAIN = {"batch_size": 128, "grad_accumulation": 1, "early_stop": 8}


@register_model
class MLMF(UnimodalTasksMixin, LMF):
    name = "mlmf"
    config_class = MLMFConfig
    TITLE, SINGLE_TASK = "MLMF", "lmf"  # for the refusal of data without unimodal labels
    LEGACY_DEFAULTS: dict = {}
    DATASET_DEFAULTS = {kind: {"train": dict(_TRAIN)} for kind in ("mosi", "mosei", "sims")}
    TEST_OVERRIDES = {**LMF.TEST_OVERRIDES, "post_text_dim": 8, "post_audio_dim": 4, "post_video_dim": 8,
                      "post_text_dropout": 0.0, "post_audio_dropout": 0.0, "post_video_dropout": 0.0,
                      "text_weight_decay": 0.0, "audio_weight_decay": 0.0, "video_weight_decay": 0.0}

    def parameter_groups(self) -> list[dict]:
        c = self.config
        factors = list(self.factors.parameters())
        groups = self.subnet_parameter_groups(exclude={id(p) for p in factors})
        groups.append({"name": "factors", "params": factors, "lr": c.lr_factor, "weight_decay": c.weight_decay})
        return groups
