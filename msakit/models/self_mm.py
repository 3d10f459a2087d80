"""Self-MM (Yu et al., AAAI 2021): multimodal fusion plus three unimodal tasks whose labels
ULGM generates during training.

Text: the first token's last hidden state of a fine-tuned BERT-family encoder. Audio and
vision: a one-layer LSTM over the valid frames, dropout, linear to ``audio_out``/``video_out``.
Fusion: concat -> dropout -> Linear+ReLU (``F_m``) -> Linear+ReLU -> Linear(1) = ``ŷ_m``.
Each unimodal head, on the same encoder outputs: dropout -> Linear+ReLU (``F_s``) ->
Linear+ReLU -> Linear(1) = ``ŷ_s``. Any subset of t/a/v may be used.

Fusions (``model.fusion``; the default is ``"auto"``, below): ``"concat"`` is the published fusion above. ``"text_residual"`` adds a text-only regressor on the text encoding (dropout ->
Linear+ReLU -> Linear+ReLU -> Linear(1)) and lets the fused head predict only a correction:
``ŷ_m = ŷ_text→m + ŷ_fusion``, the fused head's last layer initialised to zero, so training
starts from the text prediction and audio/vision move it only as far as they help. ``F_m``
(the feature ULGM and the alignment read) is the fused feature in both forms. With text alone,
or without text, both forms are the same model.

``"text_first"`` (not in the paper) has the same form, ``ŷ_m = ŷ_text→m + ŷ_fusion``, but its
text part is not trained with the rest: the trainer first trains this configuration on text
alone (the model's own text-only run, in ``RUN/text_stage/``), then copies that run's text
encoder and fused head into ``ŷ_text→m`` and freezes them, and trains the zero-initialised
correction on top. The correction's fused head reads audio and vision only (``F_m`` is their
fused feature): what they add to the text. The unimodal heads, ULGM and the alignment train as
in Self-MM, the text head on the frozen encoder. The run keeps whichever epoch, the frozen text
prediction (epoch 0) included, has the lowest validation MAE. The multimodal run and its own
text-only run then differ by the correction alone.

``"auto"`` (not in the paper) trains both ``"concat"`` and ``"text_first"`` as runs of their own
(``RUN/fusion_concat/``, ``RUN/fusion_text_first/``) and keeps the one with the lower validation
MAE (the trainer does it: ``fusion_candidates``). The text encoder is fine-tuned once: text_first's
text stage takes the concat candidate's fine-tuned encoder, frozen (each transcript encoded once),
and trains only its heads on text alone (``auto_text_stage="concat"``, about 1.2x one concat
training; ``"own"`` gives text_first its own text-only fine-tuning, about 2.5x). Where audio and vision carry little that
transfers to unseen speakers, text_first wins on validation and the run cannot fall far below its
own text-only run; where they carry much of the label, concat wins. With text alone it is concat.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from msakit.errors import ConfigError
from msakit.settings import setting
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel, attach_encoders, encode_modalities
from msakit.models.multitask import five_parameter_groups, fusion_and_ulgm_objectives, unimodal_head


@dataclass
class SelfMMConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    audio_hidden: int = 16
    video_hidden: int = 32
    audio_out: int = 16
    video_out: int = 32
    audio_lstm_dropout: float = 0.0
    video_lstm_dropout: float = 0.0
    post_fusion_dim: int = 128
    post_text_dim: int = 32
    post_audio_dim: int = 16
    post_video_dim: int = 32
    post_fusion_dropout: float = 0.0
    post_text_dropout: float = 0.1
    post_audio_dropout: float = 0.1
    post_video_dropout: float = 0.0
    lr_text: float = 5e-5
    lr_audio: float = 5e-3
    lr_video: float = 5e-3
    lr_other: float = 1e-3
    weight_decay_text: float = 1e-3
    weight_decay_audio: float = 1e-3
    weight_decay_video: float = 1e-3
    weight_decay_other: float = 1e-3
    ulgm: bool = True  # False: train the fusion task only (the unimodal heads get no loss)
    ulgm_bound: float = 3.0  # H: generated labels are clamped to [-H, H]
    ulgm_zero_is_positive: bool = False  # reference MOSI/MOSEI code counts only > 0 as positive
    # True: a sample's withheld modality (modality dropout) updates no ULGM label, memory or
    # centre and gets no unimodal loss (msakit/objectives/ulgm.py). Off by default: on the
    # weak/noisy setting it raised Acc-2 but cost MAE (benchmarks/results/real_features_weak_ulgm_skip.md).
    ulgm_skip_absent: bool = False
    packed_lstm: bool = False  # True: the reference packed LSTM (same numbers, slower on CPU)
    # Not the paper's by default: auto keeps concat (the paper's) or text_first, whichever has the
    # lower validation MAE; on the weak/noisy and utterance settings it beats text alone on MAE,
    # Corr and Acc-2 and on the standard data it loses nothing (benchmarks/results/fusion_choice_*.md).
    # text_residual lost on the standard synthetic data in a short budget (READINGS.md).
    fusion: str = setting("auto", choices=("concat", "text_residual", "text_first", "auto"),
                          doc="concat: the paper's fusion; text_residual: ŷ_m = text prediction + a zero-initialised fused correction; "
                              "text_first: the text prediction trained first on text alone and frozen, plus a zero-initialised correction from audio and vision; "
                              "auto: concat and text_first both trained, the one with the lower validation MAE kept")
    # fusion=text_first: what the correction's fused head reads besides audio and vision: nothing
    # ("av"), the frozen text prediction as one number ("av+prediction", so a correction can
    # depend on how sure the text is), or the (frozen) text encoding as well ("av+text").
    correction_input: str = setting("av+prediction", choices=("av", "av+prediction", "av+text"),
                                    doc="fusion=text_first: the correction reads audio and vision (av), also the frozen text prediction, "
                                        "or also the text encoding")
    # fusion=text_first: the correction trains fast (the text encoder is frozen and its output
    # cached per batch), so it may get more epochs than the text stage; early stopping still applies.
    correction_epochs: int = setting(0, min=0, doc="fusion=text_first: the most epochs of the correction stage (0: train.max_epochs)")
    # fusion=text_first: where the text stage's encoder comes from. "own": fine-tuned on text alone
    # (a second full training); "concat": the encoder of the concat candidate trained beside it
    # (fusion=auto only), frozen, so the text stage trains only its heads.
    text_stage: str = setting("own", choices=("own", "concat"),
                              doc="fusion=text_first: own: its text stage fine-tunes the text encoder on text alone; "
                                  "concat: it reads the fusion=auto run's concat encoder, frozen (set by auto_text_stage)")
    # fusion=auto: the text_first candidate's text stage (above). "concat" costs one training plus
    # heads on cached text (about 1.2x a concat run); "own" trains the text encoder twice (2.3-2.6x).
    auto_text_stage: str = setting("concat", choices=("concat", "own"),
                                   doc="fusion=auto: concat: text_first reuses the concat candidate's text encoder, frozen (about one training); "
                                       "own: text_first fine-tunes its own on text alone (about 2.5 trainings)")
    # Not in the paper, off by default: "valid" predicts ŷ_m = ŷ_text + α·(ŷ_fused − ŷ_text), α in
    # [0, 1] refitted on the validation split after every epoch (lowest MAE; training itself is
    # unchanged), so audio/vision move the text prediction only as far as that carries over to
    # unseen samples. ŷ_text: the text_residual fusion's text regressor (so it needs that fusion, or text_first).
    blend: str = setting("off", choices=("off", "valid"),
                         doc="off: the fused prediction; valid: text prediction + α·(fused − text), α fitted on the validation split")

    def validate(self) -> None:
        if self.blend == "valid" and self.fusion not in ("text_residual", "text_first"):
            raise ConfigError(
                "model.blend=valid needs model.fusion=text_residual (or text_first): the blend starts from that fusion's text regressor, "
                "trained on the label (the unimodal text head learns ULGM's generated labels, off the label's scale)"
            )


@register_model
class SelfMM(MSAModel):
    name = "self_mm"
    config_class = SelfMMConfig
    # Settings a run saved before they existed had these values (read by load_model/resume).
    LEGACY_DEFAULTS = {"fusion": "concat", "blend": "off", "correction_input": "av", "correction_epochs": 0,
                       "text_stage": "own", "auto_text_stage": "own"}
    FEATURE_DIM_FIELDS = {"m": "post_fusion_dim", "t": "post_text_dim", "a": "post_audio_dim", "v": "post_video_dim"}
    # MMSA's config_regression.json, Self-MM section (see DATA.md).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 16}},
        "mosei": {
            "model": {
                "lr_video": 1e-4,
                "weight_decay_audio": 0.0,
                "weight_decay_video": 0.0,
                "weight_decay_other": 1e-2,
                "post_fusion_dropout": 0.1,
                "post_text_dropout": 0.0,
                "post_audio_dropout": 0.0,
            },
            "train": {"batch_size": 32},
        },
        "sims": {
            "model": {
                "video_hidden": 64,
                "post_text_dim": 64,
                "weight_decay_audio": 1e-2,
                "weight_decay_video": 1e-2,
                "ulgm_bound": 1.0,
            },
            "train": {"batch_size": 32},
        },
    }

    # Not in the paper (README, "Real extractor features"): in each epoch a training sample lacks
    # its audio, or its vision, with this probability, so the fused head cannot lean on weak,
    # noisy audio/vision that merely fit the training split. Off: --set train.modality_dropout=none.
    DEFAULT_MODALITY_DROPOUT = "a:0.25,v:0.25"

    @classmethod
    def dataset_defaults(cls, kind: str) -> dict[str, dict[str, Any]]:
        defaults = {section: dict(values) for section, values in cls.DATASET_DEFAULTS.get(kind, {}).items()}
        defaults.setdefault("train", {}).setdefault("modality_dropout", cls.DEFAULT_MODALITY_DROPOUT)
        return defaults

    def __init__(self, config: SelfMMConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        if not dims.modalities:
            raise ValueError("Self-MM needs at least one modality")
        c = config
        encoded = attach_encoders(
            self, text_encoder, (c.audio_hidden, c.audio_out, c.audio_lstm_dropout), (c.video_hidden, c.video_out, c.video_lstm_dropout), c.packed_lstm
        )
        self.feature_dims = {
            "m": c.post_fusion_dim,
            "t": c.post_text_dim,
            "a": c.post_audio_dim,
            "v": c.post_video_dim,
        }
        dropouts = {"m": c.post_fusion_dropout, "t": c.post_text_dropout, "a": c.post_audio_dropout, "v": c.post_video_dropout}
        # text_first: the correction is what audio and vision add to the frozen text prediction;
        # it reads the text encoding only with correction_input=av+text
        text_and_more = "t" in dims.modalities and len(dims.modalities) > 1  # with text alone every fusion is concat
        text_first = c.fusion == "text_first" and text_and_more
        self.fused_modalities = tuple(s for s in dims.modalities if not (text_first and s == "t" and c.correction_input != "av+text"))
        self.reads_prediction = text_first and c.correction_input == "av+prediction"
        fused_in = sum(encoded[s] for s in self.fused_modalities) + int(self.reads_prediction)
        heads = {"m": unimodal_head(fused_in, c.post_fusion_dim, c.post_fusion_dropout)}
        for s in dims.modalities:
            heads[s] = unimodal_head(encoded[s], self.feature_dims[s], dropouts[s])
        self.feature_layers = nn.ModuleDict({s: h[0] for s, h in heads.items()})
        self.regressors = nn.ModuleDict({s: h[1] for s, h in heads.items()})
        self.text_residual = c.fusion in ("text_residual", "text_first") and text_and_more
        self.text_first = text_first
        self.text_frozen = False  # set by adopt_text_model
        if self.text_residual:
            # text_first: the text-only model's own fused head (its size), copied from that run
            size, dropout = (c.post_fusion_dim, c.post_fusion_dropout) if self.text_first else (c.post_text_dim, c.post_text_dropout)
            feature, regressor = unimodal_head(encoded["t"], size, dropout)
            self.text_to_m = nn.Sequential(feature, regressor)
            last = self.regressors["m"][-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.blending = c.blend == "valid" and self.text_residual
        if self.blending:
            self.register_buffer("blend_alpha", torch.ones(()))

    def forward(self, batch) -> ModelOutput:
        encoded = encode_modalities(self, batch)
        text_to_m = self.text_to_m(encoded["t"]).squeeze(-1) if self.text_residual else None
        parts = [encoded[s] for s in self.fused_modalities] + ([text_to_m.unsqueeze(-1)] if self.reads_prediction else [])
        inputs = {"m": torch.cat(parts, dim=-1), **encoded}
        features = {s: self.feature_layers[s](x) for s, x in inputs.items()}
        predictions = {s: self.regressors[s](f).squeeze(-1) for s, f in features.items()}
        if self.text_residual:
            predictions["m"] = predictions["m"] + text_to_m
        if self.blending and not self.training:  # training sees the fused prediction, as without the blend
            predictions["m_text"] = text_to_m  # the anchor, so fit_to_validation needs one pass
            predictions["m"] = text_to_m + self.blend_alpha * (predictions["m"] - text_to_m)
        return ModelOutput(predictions=predictions, features=features)

    @classmethod
    def fusion_candidates(cls, config: SelfMMConfig, modalities: tuple[str, ...]) -> dict[str, SelfMMConfig]:
        """``fusion=auto`` with text and audio/vision: concat and text_first (in that order: a tie keeps concat;
        text_first's text stage reads concat's encoder unless ``auto_text_stage=own``)."""
        if config.fusion != "auto" or "t" not in modalities or len(modalities) < 2:
            return {}
        return {"concat": dataclasses.replace(config, fusion="concat"),
                "text_first": dataclasses.replace(config, fusion="text_first", text_stage=config.auto_text_stage)}

    def needs_text_stage(self) -> bool:
        return self.text_first

    def second_stage_epochs(self) -> int:
        return self.config.correction_epochs if self.text_first else 0

    def adopt_text_model(self, text_model: MSAModel) -> None:
        """``fusion=text_first``: take the text encoder and the fused head of ``text_model`` (this
        configuration trained on text alone) as the frozen text prediction ``ŷ_text→m``."""
        if not self.text_first or tuple(text_model.dims.modalities) != ("t",):
            raise ValueError("adopt_text_model needs model.fusion=text_first with text plus audio/vision, and a text-only model")
        self.text_model.load_state_dict(text_model.text_model.state_dict())
        self.text_to_m[0].load_state_dict(text_model.feature_layers["m"].state_dict())
        self.text_to_m[1].load_state_dict(text_model.regressors["m"].state_dict())
        for p in (*self.text_model.parameters(), *self.text_to_m.parameters()):
            p.requires_grad_(False)
        if hasattr(self.text_model, "freeze"):  # each transcript encoded once, then read from memory
            self.text_model.freeze()
        self.text_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.text_frozen:  # the frozen text prediction is the same in training as in use: no dropout
            self.text_model.eval()
            self.text_to_m.eval()
        return self

    BLEND_GRID = tuple(i / 20 for i in range(21))

    def fit_to_validation(self, predict, labels) -> dict[str, float] | None:
        """``model.blend=valid``: the α of the grid 0, 0.05, ..., 1 with the lowest validation
        MAE of ``ŷ_text + α·(ŷ_fused − ŷ_text)`` (the smallest on a tie)."""
        if not self.blending:
            return None
        self.blend_alpha.fill_(1.0)
        predictions = predict()
        anchor, fused = predictions["m_text"], predictions["m"]
        labels = np.asarray(labels, dtype=np.float64)
        errors = [float(np.mean(np.abs(anchor + a * (fused - anchor) - labels))) for a in self.BLEND_GRID]
        alpha = self.BLEND_GRID[int(np.argmin(errors))]
        self.blend_alpha.fill_(alpha)
        return {"blend_alpha": alpha}

    def parameter_groups(self) -> list[dict]:
        """MMSA's five Adam groups: BERT with/without decay, audio subnet, video subnet, rest."""
        return five_parameter_groups(self)

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return fusion_and_ulgm_objectives(self, train_split)
