"""What the Self-MM family shares: the unimodal-task heads, the five Adam groups and the
objectives (the fusion task's L1 plus ULGM's generated unimodal labels).

Self-MM (``self_mm.py``) and its descendants (TETFN, ``tetfn.py``) build their prediction
heads, optimiser groups and objectives from here, so the label generation and its training
schedule exist once. A model using these helpers has the config fields ``lr_text``,
``lr_audio``, ``lr_video``, ``lr_other``, ``weight_decay_{text,audio,video,other}``, ``ulgm``,
``ulgm_bound``, ``ulgm_zero_is_positive`` (optionally ``ulgm_skip_absent``), and sets ``self.feature_dims`` for ``m`` and each
modality it uses.
"""

from __future__ import annotations

from torch import nn

from msakit.data.types import Split
from msakit.objectives import ULGM, RegressionL1


def unimodal_head(in_dim: int, feature_dim: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """dropout -> Linear+ReLU gives the feature F; Linear+ReLU -> Linear(1) the prediction."""
    feature = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, feature_dim), nn.ReLU())
    regressor = nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.ReLU(), nn.Linear(feature_dim, 1))
    return feature, regressor


def five_parameter_groups(model: nn.Module) -> list[dict]:
    """MMSA's five Adam groups: BERT with/without decay, audio subnet, video subnet, rest.
    The subnets are the model's ``text_model`` / ``audio_model`` / ``video_model``."""
    c = model.config
    groups = []
    taken = set()
    if "t" in model.dims.modalities:
        no_decay = ("bias", "LayerNorm.bias", "LayerNorm.weight")
        named = list(model.text_model.named_parameters())
        groups.append({"name": "text_decay", "params": [p for n, p in named if not any(k in n for k in no_decay)], "lr": c.lr_text, "weight_decay": c.weight_decay_text})
        groups.append({"name": "text_no_decay", "params": [p for n, p in named if any(k in n for k in no_decay)], "lr": c.lr_text, "weight_decay": 0.0})
        taken |= {id(p) for _, p in named}
    for attr, lr, wd, name in (("audio_model", c.lr_audio, c.weight_decay_audio, "audio"), ("video_model", c.lr_video, c.weight_decay_video, "video")):
        if hasattr(model, attr):
            params = list(getattr(model, attr).parameters())
            groups.append({"name": name, "params": params, "lr": lr, "weight_decay": wd})
            taken |= {id(p) for p in params}
    rest = [p for p in model.parameters() if id(p) not in taken]
    groups.append({"name": "other", "params": rest, "lr": c.lr_other, "weight_decay": c.weight_decay_other})
    return [g for g in groups if g["params"]]


def fusion_and_ulgm_objectives(model: nn.Module, train_split: Split) -> list[nn.Module]:
    """L1 on ``ŷ_m``, plus ULGM on every modality used unless ``config.ulgm`` is off."""
    c = model.config
    objectives: list[nn.Module] = [RegressionL1("m")]
    if c.ulgm:
        objectives.append(
            ULGM(
                train_split.labels["m"],
                {s: model.feature_dims[s] for s in ("m",) + model.dims.modalities},
                model.dims.modalities,
                bound=c.ulgm_bound,
                zero_is_positive=c.ulgm_zero_is_positive,
                skip_absent=getattr(c, "ulgm_skip_absent", False),
            )
        )
    return objectives


__all__ = ["five_parameter_groups", "fusion_and_ulgm_objectives", "unimodal_head"]
