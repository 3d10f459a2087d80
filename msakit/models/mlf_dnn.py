"""MLF-DNN, multi-task LF-DNN (Yu et al., ACL 2020, "CH-SIMS: A Chinese Multimodal Sentiment
Analysis Dataset with Fine-grained Annotations of Modality").

Structure follows MMSA 2.2.1 ``src/MMSA/models/multiTask/MLF_DNN.py``, trained as
``trains/multiTask/MLF_DNN.py`` does; per-dataset values from ``config_regression.json``
(``mlf_dnn``, which has CH-SIMS values only: they are the defaults for every kind). LF-DNN
(``lf_dnn.py``: pooled audio/vision sub-networks, a text LSTM, their concatenation through a
two-layer DNN) plus one head per modality on its pre-fusion vector, trained on the human
unimodal labels ``regression_labels_T/A/V`` with the weighted multi-task L1 of
``unimodal_tasks.py`` (``weight_m/t/a/v``, MMSA's ``M/T/A/V``); data without those labels is
refused for training with the reason.

Modalities: any non-empty subset of t, a, v (one head per modality used).

Parameters, checked in tests/test_classic_models.py against a count built from the reference's
layer list: SIMS configuration (text 64 -> 32, audio 32, video 64, post-fusion 32, heads 16 / 4
/ 32) with SIMS's unaligned feature sizes (text 768, audio 33, vision 709): the reference has
283,388 trainable parameters, this model without its text encoder the same 283,388.

Deliberate differences from the reference: those of LF-DNN (text encoder instead of fixed
features, valid-frame averages, the LSTM state at the last real token); the text dropout of
``dropouts`` is unused, as in the reference's one-layer LSTM; a fine-tuned text encoder
(``text_finetune=true``) trains at ``lr_text`` with the text sub-network's weight decay.
"""

from __future__ import annotations

from dataclasses import dataclass

from msakit.models._registry import register_model
from msakit.models.lf_dnn import LFDNN, LFDNNConfig
from msakit.models.unimodal_tasks import UnimodalTasksConfig, UnimodalTasksMixin
from msakit.settings import setting


@dataclass
class MLFDNNConfig(UnimodalTasksConfig, LFDNNConfig):
    # config_regression.json, "mlf_dnn", "sims".
    text_hidden: int = 64
    audio_hidden: int = 32
    video_hidden: int = 64
    text_out: int = 32
    post_fusion_dim: int = 32
    audio_dropout: float = 0.3
    video_dropout: float = 0.3
    post_fusion_dropout: float = 0.5
    post_text_dim: int = setting(16, min=1, doc="width of the text head (post_text_dim)")
    post_audio_dim: int = setting(4, min=1, doc="width of the audio head (post_audio_dim)")
    post_video_dim: int = setting(32, min=1, doc="width of the video head (post_video_dim)")
    post_text_dropout: float = setting(0.5, min=0.0, max=1.0)
    post_audio_dropout: float = setting(0.5, min=0.0, max=1.0)
    post_video_dropout: float = setting(0.5, min=0.0, max=1.0)
    weight_m: float = setting(0.6, min=0.0, doc="loss weight of the fused task (MMSA's M)")
    weight_t: float = setting(0.2, min=0.0, doc="loss weight of the text task on the human text labels (T)")
    weight_a: float = setting(0.8, min=0.0, doc="loss weight of the audio task on the human audio labels (A)")
    weight_v: float = setting(0.8, min=0.0, doc="loss weight of the video task on the human video labels (V)")
    text_weight_decay: float = setting(1e-4, min=0.0, doc="weight decay of the text sub-network")
    audio_weight_decay: float = setting(1e-3, min=0.0, doc="weight decay of the audio sub-network")
    video_weight_decay: float = setting(1e-4, min=0.0, doc="weight decay of the video sub-network")
    lr_other: float = 2e-3
    weight_decay: float = 0.0


_TRAIN = {"batch_size": 32, "grad_accumulation": 1, "early_stop": 8}


@register_model
class MLFDNN(UnimodalTasksMixin, LFDNN):
    name = "mlf_dnn"
    config_class = MLFDNNConfig
    TITLE, SINGLE_TASK = "MLF-DNN", "lf_dnn"  # for the refusal of data without unimodal labels
    DATASET_DEFAULTS = {kind: {"train": dict(_TRAIN)} for kind in ("mosi", "mosei", "sims")}
    TEST_OVERRIDES = {**LFDNN.TEST_OVERRIDES, "post_text_dim": 8, "post_audio_dim": 4, "post_video_dim": 8,
                      "post_text_dropout": 0.0, "post_audio_dropout": 0.0, "post_video_dropout": 0.0}
