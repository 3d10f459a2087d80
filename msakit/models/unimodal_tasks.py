"""What the CH-SIMS paper's multi-task models share (Yu et al., ACL 2020, "CH-SIMS: A Chinese
Multimodal Sentiment Analysis Dataset with Fine-grained Annotations of Modality"): MTFN
(``mtfn.py``), MLF-DNN (``mlf_dnn.py``) and MLMF (``mlmf.py``) are TFN, LF-DNN and LMF with one
extra head per modality, trained on the *human* unimodal labels ``regression_labels_T/A/V``.

Following MMSA 2.2.1 ``models/multiTask/{MTFN,MLF_DNN,MLMF}.py`` and their trainers: each
modality's pre-fusion vector -> dropout -> Linear+ReLU -> Linear+ReLU (``post_{text,audio,
video}_dim``) -> Linear(1) (Self-MM's ``unimodal_head`` of ``multitask.py``, the same layers);
the loss is ``w_m·L1(ŷ_m, y_m) + w_t·L1(ŷ_t, y_t) + w_a·L1(ŷ_a, y_a) + w_v·L1(ŷ_v, y_v)``
(``msakit/objectives/unimodal_labels.py``; MMSA's ``M``, ``T``, ``A``, ``V``); Adam groups: the
text, audio and video sub-networks each with their own weight decay (``text_weight_decay``,
...), everything else with ``weight_decay``, all at ``lr_other`` (MMSA's ``learning_rate``).

Data without the human unimodal labels of a modality used is refused for training, with the
reason (the labels are the point of these models; ULGM in ``self_mm`` generates them instead).
Evaluation and prediction need no unimodal labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msakit.errors import DataError
from msakit.models.multitask import unimodal_head
from msakit.objectives.unimodal_labels import UnimodalLabelsL1
from msakit.settings import setting

LABEL_KEYS = {"t": "regression_labels_T", "a": "regression_labels_A", "v": "regression_labels_V"}


@dataclass
class UnimodalTasksConfig:
    """The fields the multi-task models add to their single-task config (the SIMS values of
    MTFN in ``config_regression.json`` as defaults; each model sets its own)."""

    post_text_dim: int = setting(64, min=1, doc="width of the text head (post_text_dim)")
    post_audio_dim: int = setting(4, min=1, doc="width of the audio head (post_audio_dim)")
    post_video_dim: int = setting(8, min=1, doc="width of the video head (post_video_dim)")
    post_text_dropout: float = setting(0.2, min=0.0, max=1.0)
    post_audio_dropout: float = setting(0.2, min=0.0, max=1.0)
    post_video_dropout: float = setting(0.2, min=0.0, max=1.0)
    weight_m: float = setting(0.6, min=0.0, doc="loss weight of the fused task (MMSA's M)")
    weight_t: float = setting(0.4, min=0.0, doc="loss weight of the text task on the human text labels (T)")
    weight_a: float = setting(0.0, min=0.0, doc="loss weight of the audio task on the human audio labels (A)")
    weight_v: float = setting(1.0, min=0.0, doc="loss weight of the video task on the human video labels (V)")
    text_weight_decay: float = setting(1e-3, min=0.0, doc="weight decay of the text sub-network")
    audio_weight_decay: float = setting(1e-4, min=0.0, doc="weight decay of the audio sub-network")
    video_weight_decay: float = setting(1e-5, min=0.0, doc="weight decay of the video sub-network")


def refuse_without_unimodal_labels(data, modalities: tuple[str, ...], model: str, single_task: str) -> None:
    """Refuse training data whose train split lacks a used modality's human label."""
    if "train" not in data.splits:  # evaluating or predicting: the unimodal labels are not used
        return
    for split_name in ("train",):
        split = data.splits.get(split_name)
        if split is None:
            continue
        absent = [LABEL_KEYS[s] for s in modalities if s in LABEL_KEYS and s not in split.labels]
        if absent:
            raise DataError(
                f"{data.source}: {model} trains one head per modality on the human unimodal labels (CH-SIMS's regression_labels_T/A/V), "
                f"but split {split_name!r} has no {', '.join(absent)}; use data with those labels (CH-SIMS; msakit synth plants them) "
                f"or the single-task {single_task}"
            )


class UnimodalTasksMixin:
    """For an ``MSAModel`` whose config has ``UnimodalTasksConfig``'s fields and whose
    sub-networks are ``self.subnets`` (``build_tfn_style_subnets``): the single-task model's
    forward plus one head per modality on its encodings, the unimodal-label objective, the
    reference's optimiser groups, and the refusal of data without unimodal labels. A subclass
    names itself (``TITLE``) and its single-task model (``SINGLE_TASK``) for that refusal."""

    TITLE: str
    SINGLE_TASK: str

    def __init__(self, config, dims, text_encoder=None):
        super().__init__(config, dims, text_encoder)
        self.build_unimodal_heads({s: self.feature_dims[s] for s in dims.modalities})

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        refuse_without_unimodal_labels(data, modalities, cls.TITLE, cls.SINGLE_TASK)

    def forward(self, batch):
        output = super().forward(batch)
        output.predictions.update(self.unimodal_predictions(output.features))
        return output

    def parameter_groups(self) -> list[dict]:
        return self.subnet_parameter_groups()

    def build_objectives(self, train_split, kind: str) -> list[nn.Module]:
        return self.unimodal_objectives()

    def build_unimodal_heads(self, sizes: dict[str, int]) -> None:
        c = self.config
        widths = {"t": (c.post_text_dim, c.post_text_dropout), "a": (c.post_audio_dim, c.post_audio_dropout), "v": (c.post_video_dim, c.post_video_dropout)}
        self.unimodal_heads = nn.ModuleDict({s: nn.Sequential(*unimodal_head(sizes[s], *widths[s])) for s in self.dims.modalities})

    def unimodal_predictions(self, encoded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {s: head(encoded[s]).squeeze(-1) for s, head in self.unimodal_heads.items()}

    def unimodal_objectives(self) -> list[nn.Module]:
        c = self.config
        weights = {"m": c.weight_m, **{s: getattr(c, f"weight_{s}") for s in self.dims.modalities}}
        return [UnimodalLabelsL1(weights)]

    def subnet_parameter_groups(self, exclude: set[int] = frozenset()) -> list[dict]:
        """The reference's Adam groups: each sub-network with its weight decay, the rest with
        ``weight_decay``, all at ``lr_other``; a fine-tuned text encoder at ``lr_text``;
        parameters whose ids are in ``exclude`` are left for the caller's own group."""
        c = self.config
        groups, taken = [], set(exclude)
        if hasattr(self, "text_model"):
            text = [p for p in self.text_model.parameters() if p.requires_grad]
            groups.append({"name": "text_encoder", "params": text, "lr": c.lr_text, "weight_decay": c.text_weight_decay})
            taken |= {id(p) for p in self.text_model.parameters()}
        for s, wd in (("t", c.text_weight_decay), ("a", c.audio_weight_decay), ("v", c.video_weight_decay)):
            if s in self.subnets:
                params = [p for p in self.subnets[s].parameters() if id(p) not in taken]
                groups.append({"name": f"{s}_subnet", "params": params, "lr": c.lr_other, "weight_decay": wd})
                taken |= {id(p) for p in params}
        rest = [p for p in self.parameters() if id(p) not in taken and p.requires_grad]
        groups.append({"name": "other", "params": rest, "lr": c.lr_other, "weight_decay": c.weight_decay})
        return [g for g in groups if g["params"]]


__all__ = ["LABEL_KEYS", "UnimodalTasksConfig", "UnimodalTasksMixin", "refuse_without_unimodal_labels"]
