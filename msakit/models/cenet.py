"""CENET, the Cross-modal Enhancement Network (Wang, Li, Chen, Wang, Wang; IEEE Transactions on
Multimedia 2022, "Cross-modal Enhancement Network for Multimodal Sentiment Analysis").

Structure follows MMSA git master ``src/MMSA/models/singleTask/CENET.py`` (``CE``,
``SelfAttention``, ``BertEncoder``, ``BertClassificationHead``), its trainer
``src/MMSA/trains/singleTask/CENET.py`` and the ``cenet`` section of ``config_regression.json``.

The text encoder's hidden states are enhanced *inside* the encoder, before layer
``injection_layer`` (1: after the first layer), by the cross-modal enhancement module (CE):
audio and vision frames are each mapped to the encoder's width H by ``Linear -> ReLU ->
Linear``; each word's state attends (one head, queries from the word states, keys and values
from the frames, scores scaled *up* by ``attention_scale`` = 8 as the reference does) to the
vision frames and to the audio frames; the two results, concatenated (2H), pass through a
Linear back to H and are added to the word states, which continue through the remaining
layers. The first token's last state -> dropout -> Linear(H, H) -> tanh -> dropout ->
Linear(1) = ``ŷ``. The embedding layer is not trained (the reference computes it under
``no_grad``). Loss: L1. One Adam (eps ``adam_eps``) at ``lr`` for every parameter; weight
decay ``weight_decay`` except on biases and LayerNorm weights outside CE (CE's are all decayed,
as the reference's groups are); gradient norm clipped to ``grad_clip`` before each step.

Modalities: text plus audio and/or vision; CE shifts the text with what the other modalities
contribute, so text alone, or audio/vision without text, is refused. With one of audio/vision,
the Linear after CE reads H instead of 2H. Aligned and unaligned files both work (the
attention pairs every word with every frame).

Parameters, checked in tests/test_new_models.py against a count built from the reference's
layer list: MOSI configuration, bert-base-uncased (H = 768), MOSI's feature sizes (audio 5,
vision 20): the reference has 115,999,489 trainable parameters (BERT with its pooler
109,482,240, CE 5,925,888, head 591,361) and this model, with the same encoder, 115,408,897;
the difference, 590,592, is the BERT pooler the reference builds and never uses (its head
reads the first token's state). Without the text encoder both have 6,517,249 (CE and head).
Output shape ``(B,)`` (the reference ``(B, 1)``).

Deliberate differences from the reference:
- Any BERT-family encoder with ``encoder.layer`` (BERT, RoBERTa, MiniLM; default: the packaged
  MiniLM) instead of bert-base; H is read from it. The reference uses its own BERT copy (an
  old ``pytorch_transformers`` one); msakit hooks CE into the stock encoder before layer
  ``injection_layer``.
- Padded frames get no attention in CE (the reference attends over each file's fixed-length
  padding), so a sample's prediction is independent of its batch.
- The audio/vision inputs are the frames as read (standardised by default, see the README);
  the reference reads MMSA's files as they are.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import GradientClipping, InputDims, ModelOutput, MSAModel, require_text_plus_audio_or_vision
from msakit.objectives import RegressionL1
from msakit.settings import setting


@dataclass
class CENETConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    injection_layer: int = setting(1, min=0, doc="CE shifts the hidden states entering this encoder layer (0: the embeddings)")
    attention_scale: float = setting(8.0, gt=0.0, doc="CE's attention scores are multiplied by this (the reference: 8)")
    head_dropout: float = 0.1  # BERT's hidden_dropout_prob, in the classification head
    freeze_embeddings: bool = setting(True, doc="True: the encoder's embedding layer is not trained (the reference computes it under no_grad)")
    lr: float = 1e-5
    weight_decay: float = 1e-4
    adam_eps: float = setting(3e-8, gt=0.0, doc="Adam's epsilon (the reference's adam_epsilon)")
    grad_clip: float = setting(2.0, min=0.0, doc="clip the gradient norm before each step (max_grad_norm); 0 = off")


class CrossModalAttention(nn.Module):
    """One head: queries from the word states, keys/values from the (H-wide) frames;
    ``softmax(scale · Q Kᵀ) V`` over each row's valid frames."""

    def __init__(self, hidden: int, scale: float):
        super().__init__()
        self.scale = scale
        self.Wq, self.Wk, self.Wv = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)

    def forward(self, words: torch.Tensor, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        scores = torch.matmul(self.Wq(words), self.Wk(frames).transpose(-1, -2)) * self.scale
        valid = torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths.to(frames.device)[:, None]
        scores = scores.masked_fill(~valid[:, None, :], float("-inf"))
        return torch.matmul(torch.softmax(scores, dim=-1), self.Wv(frames))


class CrossModalEnhancement(nn.Module):
    """CE: ``words + W_c [attend(words, T_v(vision)); attend(words, T_a(audio))]``."""

    def __init__(self, hidden: int, audio_dim: int | None, vision_dim: int | None, scale: float):
        super().__init__()
        self.sources = tuple(s for s, k in (("v", vision_dim), ("a", audio_dim)) if k is not None)  # the reference's order
        sizes = {"a": audio_dim, "v": vision_dim}
        self.transform = nn.ModuleDict({s: nn.Sequential(nn.Linear(sizes[s], hidden), nn.ReLU(), nn.Linear(hidden, hidden)) for s in self.sources})
        self.attend = nn.ModuleDict({s: CrossModalAttention(hidden, scale) for s in self.sources})
        self.connect = nn.Linear(len(self.sources) * hidden, hidden)

    def forward(self, words: torch.Tensor, frames: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        parts = [self.attend[s](words, self.transform[s](frames[s][0]), frames[s][1]) for s in self.sources]
        return words + self.connect(torch.cat(parts, dim=-1))


@register_model
class CENET(MSAModel):
    name = "cenet"
    config_class = CENETConfig
    FEATURE_DIM_FIELDS: dict[str, str] = {}
    # MMSA config_regression.json, "cenet": one step per batch, early stop 8.
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 64, "grad_accumulation": 1, "early_stop": 8}},
        "mosei": {"model": {"adam_eps": 1e-8}, "train": {"batch_size": 64, "grad_accumulation": 1, "early_stop": 8}},
        "sims": {"model": {"lr": 2e-6, "weight_decay": 0.0, "adam_eps": 2e-8}, "train": {"batch_size": 32, "grad_accumulation": 1, "early_stop": 8}},
    }
    TEST_OVERRIDES = {"lr": 1e-3}

    def __init__(self, config: CENETConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        self._check_modalities(dims.modalities)
        if text_encoder is None:
            raise ValueError("CENET needs a text encoder")
        c = config
        layers = getattr(getattr(text_encoder.backbone, "encoder", None), "layer", None)
        if not isinstance(layers, nn.ModuleList) or c.injection_layer >= len(layers):
            raise ConfigError(
                f"CENET enhances the hidden states before encoder layer model.injection_layer={c.injection_layer}; "
                f"the text encoder ({type(text_encoder.backbone).__name__}) has "
                f"{len(layers) if isinstance(layers, nn.ModuleList) else 'no'} `encoder.layer` layers: use a BERT-family encoder or a smaller injection_layer"
            )
        self.text_model = text_encoder
        hidden = text_encoder.hidden_size
        self.enhancement = CrossModalEnhancement(
            hidden, dims.audio_dim if "a" in dims.modalities else None, dims.vision_dim if "v" in dims.modalities else None, c.attention_scale
        )
        self.head = nn.Sequential(nn.Dropout(c.head_dropout), nn.Linear(hidden, hidden), nn.Tanh(), nn.Dropout(c.head_dropout))
        self.regressor = nn.Linear(hidden, 1)
        self.feature_dims = {"m": hidden}

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        require_text_plus_audio_or_vision(modalities, "CENET enhances the text encoder's states with audio and/or vision")

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        cls._check_modalities(modalities)

    @contextlib.contextmanager
    def _inject(self, frames):
        """CE on the hidden states entering encoder layer ``injection_layer`` (>= 1)."""

        def before_layer(module, args, kwargs):
            if args:
                return (self.enhancement(args[0], frames), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": self.enhancement(kwargs["hidden_states"], frames)}

        handle = self.text_model.backbone.encoder.layer[self.config.injection_layer].register_forward_pre_hook(before_layer, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    def forward(self, batch) -> ModelOutput:
        frames = {}
        if "a" in self.dims.modalities:
            frames["a"] = (batch.audio, batch.audio_lengths)
        if "v" in self.dims.modalities:
            frames["v"] = (batch.vision, batch.vision_lengths)
        frozen = self.config.freeze_embeddings
        if self.config.injection_layer == 0:  # CE on the embeddings themselves
            hook, injection = (lambda e: self.enhancement(e.detach() if frozen else e, frames)), contextlib.nullcontext()
        else:
            hook, injection = ((lambda e: e.detach()) if frozen else None), self._inject(frames)
        with injection:
            states = self.text_model.token_states(batch.text_ids, batch.text_mask, embedding_hook=hook)
        pooled = self.head(states[:, 0])
        return ModelOutput(predictions={"m": self.regressor(pooled).squeeze(-1)}, features={"m": pooled})

    def parameter_groups(self) -> list[dict]:
        """The reference's three groups: non-CE weights (decayed), CE (all decayed), non-CE
        biases and LayerNorm weights (no decay); one lr and Adam epsilon."""
        c = self.config
        ce = {id(p) for p in self.enhancement.parameters()}
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad and id(p) not in ce]
        no_decay = ("bias", "LayerNorm.weight")
        groups = [
            {"name": "decay", "params": [p for n, p in named if not any(k in n for k in no_decay)], "weight_decay": c.weight_decay},
            {"name": "enhancement", "params": list(self.enhancement.parameters()), "weight_decay": c.weight_decay},
            {"name": "no_decay", "params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0},
        ]
        return [{**g, "lr": c.lr, "eps": c.adam_eps} for g in groups if g["params"]]

    def gradient_clipping(self) -> GradientClipping | None:
        """The reference's ``max_grad_norm``: the total gradient norm clipped before each step."""
        return GradientClipping("norm", self.config.grad_clip, "step") if self.config.grad_clip > 0 else None

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return [RegressionL1("m")]


__all__ = ["CENET", "CENETConfig"]
