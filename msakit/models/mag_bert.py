"""MAG-BERT (Rahman et al., ACL 2020): a multimodal adaptation gate inside the text encoder.

Structure followed: thuiar/MMSA 2.2.1 ``src/MMSA/models/singleTask/BERT_MAG.py`` (classes
``MAG``, ``MAG_BertModel``, ``MAG_BertForSequenceClassification``), trained as
``src/MMSA/trains/singleTask/BERT_MAG.py`` does (L1 loss, one Adam over every parameter, a
step per batch), with the ``bert_mag`` section of ``config_regression.json``.

At every token position i, with the text embedding ``e_i`` (the encoder's embedding output:
word + position + type, LayerNorm, dropout) and the word-aligned acoustic / visual frames
``a_i``, ``v_i``::

    g^v_i = ReLU(W_hv [v_i; e_i]),  g^a_i = ReLU(W_ha [a_i; e_i])
    H_i   = g^v_i ⊙ (W_v v_i) + g^a_i ⊙ (W_a a_i)
    α_i   = min(‖e_i‖ / ‖H_i‖ · β, 1)          (‖H_i‖ = 0 is read as 1)
    ê_i   = Dropout(LayerNorm(e_i + α_i H_i))

``ê`` replaces the embedding output and the encoder runs as usual (``TextEncoder``'s
``embedding_hook``: no copy of BERT). The first token's last state goes through a pooler
(``tanh(Linear(H → H))``), dropout and ``Linear(H → 1)``.

**Word-aligned frames and re-tokenisation.** MAG needs one audio and one vision frame per
text token. MMSA's aligned files (``aligned_50.pkl``) hold one frame per position of their
``text_bert`` tokens (bert-base-uncased word pieces, ``[CLS]`` first, padded to 50; valid
frames = the text mask), and MMSA's BERT_MAG pairs token position i with frame i. msakit
re-tokenises ``raw_text`` with the run's own tokenizer and does the same: token position i
gets frame i, positions past the sample's valid frames get zero frames (as the padding of
MMSA's aligned files). With bert-base-uncased or the packaged MiniLM (same uncased WordPiece
vocabulary) the positions are the file's own, up to ``data.max_text_tokens`` truncation; with
another vocabulary the pairing drifts where word pieces split differently. Unaligned data
(frames at their own rate, ``*_lengths`` keys) is refused with the file to use instead.

Modalities: text plus audio and/or vision (t,a,v; t,a; t,v); the gate has nothing to adapt
with text alone, and without text there is no encoder to adapt.

Parameter count, bert-base-uncased, MOSI sizes (D_a = 5, D_v = 20): reference 110,705,665
(its layers rebuilt with their shapes), msakit 110,705,665: equal. (The reference's pooler is BERT's pretrained one; msakit's text
encoder drops BERT poolers, so the pooler here is the model's own, of the same shape.)

Deliberate differences from the reference:
- The pooler starts from a fresh initialisation instead of BERT's pretrained pooler weights
  (the packaged MiniLM ships none that msakit loads).
- The text encoder is any BERT-family directory (default: the packaged MiniLM), tokenising
  ``raw_text`` itself (see above) instead of reading the file's bert-base ``text_bert`` ids.
- Token type ids are all 0 (single sentences), as the file's segment ids are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msakit.settings import setting
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.encoders.aligned import frames_per_token, refuse_unaligned
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel, require_text_plus_audio_or_vision
from msakit.objectives import RegressionL1

EPS = 1e-6


@dataclass
class MAGBertConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    beta_shift: float = setting(1.0, gt=0.0, doc="β: caps the gate's displacement at β·‖e‖")
    mag_dropout: float = 0.3  # reference dropout_prob (after the gate's LayerNorm)
    head_dropout: float = 0.1  # BERT's hidden_dropout_prob, before the regressor
    lr: float = 2e-5
    weight_decay: float = 0.0


class MultimodalAdaptationGate(nn.Module):
    """The MAG of the module docstring; ``audio``/``vision`` may be None (absent modality)."""

    def __init__(self, hidden: int, audio_dim: int | None, vision_dim: int | None, beta_shift: float, dropout: float):
        super().__init__()
        if vision_dim is not None:
            self.W_hv = nn.Linear(vision_dim + hidden, hidden)
            self.W_v = nn.Linear(vision_dim, hidden)
        if audio_dim is not None:
            self.W_ha = nn.Linear(audio_dim + hidden, hidden)
            self.W_a = nn.Linear(audio_dim, hidden)
        self.beta_shift = beta_shift
        self.layer_norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, embeddings: torch.Tensor, audio: torch.Tensor | None, vision: torch.Tensor | None) -> torch.Tensor:
        return self.dropout(self.layer_norm(embeddings + self.displacement(embeddings, audio, vision)))

    def displacement(self, embeddings: torch.Tensor, audio: torch.Tensor | None, vision: torch.Tensor | None) -> torch.Tensor:
        """``α H``: the nonverbal shift, at most ``β ‖e‖`` long at every position."""
        shift = torch.zeros_like(embeddings)
        if vision is not None:
            shift = shift + F.relu(self.W_hv(torch.cat((vision, embeddings), dim=-1))) * self.W_v(vision)
        if audio is not None:
            shift = shift + F.relu(self.W_ha(torch.cat((audio, embeddings), dim=-1))) * self.W_a(audio)
        embedding_norm = embeddings.norm(dim=-1)
        shift_norm = shift.norm(dim=-1)
        shift_norm = torch.where(shift_norm == 0, torch.ones_like(shift_norm), shift_norm)
        alpha = (embedding_norm / (shift_norm + EPS) * self.beta_shift).clamp(max=1.0).unsqueeze(-1)
        return alpha * shift


@register_model
class MAGBert(MSAModel):
    name = "mag_bert"
    config_class = MAGBertConfig
    FEATURE_DIM_FIELDS: dict[str, str] = {}
    # MMSA config_regression.json, bert_mag section: one step per batch.
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 32, "grad_accumulation": 1}},
        "mosei": {"model": {"lr": 1e-5, "mag_dropout": 0.2}, "train": {"batch_size": 32, "grad_accumulation": 1}},
        "sims": {"model": {"lr": 5e-5, "mag_dropout": 0.1}, "train": {"batch_size": 32, "grad_accumulation": 1}},
    }

    def __init__(self, config: MAGBertConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        self._check_modalities(dims.modalities)
        if text_encoder is None:
            raise ValueError("MAG-BERT needs a text encoder")
        c = config
        self.text_model = text_encoder
        hidden = text_encoder.hidden_size
        self.gate = MultimodalAdaptationGate(
            hidden,
            dims.audio_dim if "a" in dims.modalities else None,
            dims.vision_dim if "v" in dims.modalities else None,
            c.beta_shift,
            c.mag_dropout,
        )
        self.pooler = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
        self.head_dropout = nn.Dropout(c.head_dropout)
        self.regressor = nn.Linear(hidden, 1)
        self.feature_dims = {"m": hidden}

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        require_text_plus_audio_or_vision(modalities, "MAG-BERT adapts the text encoder with audio and/or vision")

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        cls._check_modalities(modalities)
        refuse_unaligned(data, modalities, "MAG-BERT")

    def forward(self, batch) -> ModelOutput:
        width = batch.text_ids.shape[1]
        audio = frames_per_token(batch.audio, batch.audio_lengths, width) if "a" in self.dims.modalities else None
        vision = frames_per_token(batch.vision, batch.vision_lengths, width) if "v" in self.dims.modalities else None
        first = self.text_model(batch.text_ids, batch.text_mask, embedding_hook=lambda e: self.gate(e, audio, vision))
        pooled = self.pooler(first)
        prediction = self.regressor(self.head_dropout(pooled)).squeeze(-1)
        return ModelOutput(predictions={"m": prediction}, features={"m": pooled})

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return [{"name": "all", "params": [p for p in self.parameters() if p.requires_grad], "lr": c.lr, "weight_decay": c.weight_decay}]

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return [RegressionL1("m")]
