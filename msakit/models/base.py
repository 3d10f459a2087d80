"""What every model shares: its inputs' sizes, its output, and the contract with the trainer.

A model builds its encoders, fusion and heads; returns predictions and features per
modality; says how its parameters split into optimiser groups; and lists the objectives it
trains with. The trainer knows nothing model-specific beyond this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from msakit.data.types import Split


def require_text_plus_audio_or_vision(modalities: tuple[str, ...], why: str) -> None:
    """Refuse a modality set without text, or with text alone, for a model that fuses text with
    audio and/or vision; ``why`` says what the model does with them (the start of the message)."""
    if "t" not in modalities or not ({"a", "v"} & set(modalities)):
        from msakit.errors import ConfigError

        raise ConfigError(f"{why}: it needs t plus a and/or v, got data.modalities={','.join(modalities) or 'none'}; use t,a,v, t,a or t,v")


@dataclass(frozen=True)
class GradientClipping:
    """How a model's reference clips its gradients; the trainer applies it (one mechanism).

    ``mode``: ``"value"`` (each gradient entry into ``[-limit, limit]``) or ``"norm"`` (the
    total L2 norm of a parameter set at most ``limit``). ``when``: ``"backward"`` after every
    backward pass (MulT's reference clips inside its accumulation loop) or ``"step"`` once per
    optimiser step, on the accumulated gradients (MISA, MMIM). ``parameter_sets``: sets clipped
    separately (MMIM clips its MI estimator apart from the rest); ``None`` = every trainable
    parameter as one set. With fp16 loss scaling the gradients are unscaled first, so a
    per-backward clip then happens at the step."""

    mode: str
    limit: float
    when: str = "step"
    parameter_sets: tuple[tuple[nn.Parameter, ...], ...] | None = None

    def __post_init__(self):
        if self.mode not in ("value", "norm") or self.when not in ("backward", "step"):
            raise ValueError(f"GradientClipping(mode={self.mode!r}, when={self.when!r}): mode is value|norm, when is backward|step")

    def apply(self, model: nn.Module) -> None:
        sets = self.parameter_sets or (tuple(p for p in model.parameters() if p.requires_grad),)
        clip = nn.utils.clip_grad_value_ if self.mode == "value" else nn.utils.clip_grad_norm_
        for params in sets:
            with_grad = [p for p in params if p.grad is not None]
            if with_grad:
                clip(with_grad, self.limit)


@dataclass(frozen=True)
class PretrainingStage:
    """A run the trainer makes before a model's own epochs (``MSAModel.pretraining_stages``), in
    ``RUN/stage_<name>``, resumable like any run: the model's configuration with ``model``'s
    field changes, ``train``'s changes to the train settings, on ``modalities`` only, learning
    the data's label ``label`` (a unimodal label such as ``"t"`` where every split has it, else
    the multimodal ``"m"``); its best model goes to ``adopt_pretrained``."""

    name: str
    modalities: tuple[str, ...]
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    label: str = "m"


@dataclass(frozen=True)
class InputDims:
    """Modalities a model sees and their feature sizes, read from the data, never assumed."""

    modalities: tuple[str, ...]
    audio_dim: int | None = None
    vision_dim: int | None = None

    @classmethod
    def from_split(cls, split: Split, modalities: tuple[str, ...]) -> "InputDims":
        return cls(
            modalities=tuple(modalities),
            audio_dim=split.feature_dim("a") if "a" in modalities else None,
            vision_dim=split.feature_dim("v") if "v" in modalities else None,
        )


@dataclass
class ModelOutput:
    """Predictions ``(B,)`` and features ``(B, k)`` keyed by ``m`` (fused), ``t``, ``a``, ``v``."""

    predictions: dict[str, torch.Tensor]
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # model-specific, for its objectives


def attach_encoders(
    model: nn.Module,
    text_encoder: nn.Module | None,
    audio: tuple[int, int, float],
    video: tuple[int, int, float],
    packed_lstm: bool = False,
) -> dict[str, int]:
    """Give ``model`` its ``text_model`` / ``audio_model`` / ``video_model`` for the modalities
    in ``model.dims``; ``audio``/``video`` are ``(hidden, out, dropout)`` of the LSTM encoders.
    Returns the size of each modality's encoding."""
    from msakit.encoders import SequenceLSTMEncoder

    dims, sizes = model.dims, {}
    if "t" in dims.modalities:
        if text_encoder is None:
            raise ValueError(f"{type(model).__name__} with text needs a text encoder")
        model.text_model = text_encoder
        sizes["t"] = text_encoder.hidden_size
    if "a" in dims.modalities:
        model.audio_model = SequenceLSTMEncoder(dims.audio_dim, audio[0], audio[1], audio[2], packed_lstm)
        sizes["a"] = audio[1]
    if "v" in dims.modalities:
        model.video_model = SequenceLSTMEncoder(dims.vision_dim, video[0], video[1], video[2], packed_lstm)
        sizes["v"] = video[1]
    return sizes


def encode_modalities(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    """One vector per modality used, from the model's ``text_model`` / ``audio_model`` /
    ``video_model`` (the attribute names every model here uses for its encoders)."""
    encoded = {}
    if "t" in model.dims.modalities:
        encoded["t"] = model.text_model(batch.text_ids, batch.text_mask)
    if "a" in model.dims.modalities:
        encoded["a"] = model.audio_model(batch.audio, batch.audio_lengths)
    if "v" in model.dims.modalities:
        encoded["v"] = model.video_model(batch.vision, batch.vision_lengths)
    return encoded


class MSAModel(nn.Module):
    """Base class of registered models. Subclasses set ``name``, ``config_class`` and
    ``DATASET_DEFAULTS`` (``{kind: {"model": {...}, "train": {...}}}``)."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    # Modality -> the config field that sets the size of its feature F_s (used by align_dim).
    FEATURE_DIM_FIELDS: ClassVar[dict[str, str]] = {}
    DATASET_DEFAULTS: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    uses_text_encoder: ClassVar[bool] = True

    def __init__(self, config: Any, dims: InputDims):
        super().__init__()
        self.config = config
        self.dims = dims

    @classmethod
    def dataset_defaults(cls, kind: str) -> dict[str, dict[str, Any]]:
        return cls.DATASET_DEFAULTS.get(kind, {})

    def forward(self, batch) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def exposed_feature_dims(self) -> dict[str, int]:
        """Sizes of the features ``forward`` returns (``m`` and each modality used); models set
        ``self.feature_dims``. Objectives such as the covariance alignment read this."""
        dims = getattr(self, "feature_dims", {})
        return {s: dims[s] for s in ("m",) + tuple(self.dims.modalities) if s in dims}

    def parameter_groups(self) -> list[dict]:
        """Adam parameter groups; the default is one group with the config's lr/weight decay."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def text_and_other_groups(self, lr_text: float, lr_other: float, weight_decay: float) -> list[dict]:
        """Two Adam groups: the pretrained text encoder (usually a small lr) and everything else."""
        text = list(self.text_model.parameters()) if hasattr(self, "text_model") else []
        taken = {id(p) for p in text}
        text = [p for p in text if p.requires_grad]  # a frozen encoder (``text_finetune=false``) is not optimised
        rest = [p for p in self.parameters() if id(p) not in taken]
        groups = [
            {"name": "text", "params": text, "lr": lr_text, "weight_decay": weight_decay},
            {"name": "other", "params": rest, "lr": lr_other, "weight_decay": weight_decay},
        ]
        return [g for g in groups if g["params"]]

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        """Refuse (``ConfigError``/``DataError``) data this model cannot use, e.g. unaligned
        frames for a model that needs one frame per word; called before the model is built."""

    def gradient_clipping(self) -> GradientClipping | None:
        """The clipping the model's reference applies (``GradientClipping``), or ``None``; read
        once by the trainer, which applies it at the declared moment."""
        return None

    @classmethod
    def fusion_candidates(cls, config, modalities: tuple[str, ...]) -> dict:
        """``{name: model config}`` when this configuration asks the trainer to train each of
        several model configs as a run of its own and keep the one with the lowest validation
        MAE (Self-MM's ``model.fusion=auto``); empty for a single run."""
        return {}

    def needs_text_stage(self) -> bool:
        """True when the trainer must first train this model's configuration on text alone and
        hand the result to ``adopt_text_model`` before training this one (Self-MM's
        ``model.fusion=text_first``)."""
        return False

    def second_stage_epochs(self) -> int:
        """With ``needs_text_stage``: the most epochs of the stage after the text stage (0: the
        run's ``train.max_epochs``)."""
        return 0

    def adopt_text_model(self, text_model: "MSAModel") -> None:  # pragma: no cover - only with needs_text_stage
        raise NotImplementedError

    def pretraining_stages(self) -> list[PretrainingStage]:
        """Runs the trainer makes, in order, before this model's epochs (KuDA's knowledge
        pretraining of each unimodal encoder); each stage's best model is handed to
        ``adopt_pretrained``. Empty: none."""
        return []

    def adopt_pretrained(self, name: str, model: "MSAModel") -> None:  # pragma: no cover - only with pretraining_stages
        raise NotImplementedError

    def fit_to_validation(self, predict, labels) -> dict[str, float] | None:
        """Called by the trainer after each epoch's training, before the validation score: a
        model may fit post-hoc quantities on the validation split here (``predict()`` returns
        its predictions on it, ``labels`` the split's labels), e.g. Self-MM's fused-correction
        weight (``model.blend``). Returns what it fitted, recorded in ``metrics.jsonl``."""
        return None

