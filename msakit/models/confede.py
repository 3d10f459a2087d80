"""ConFEDE, Contrastive FEature DEcomposition (Yang, Xu, Gao; ACL 2023, "ConFEDE: Contrastive
Feature Decomposition for Multimodal Sentiment Analysis").

Structure follows the authors' repository XpastaX/ConFEDE (branch ``Graph_Main``), MOSI folder:
``model/net/constrastive/TVA_fusion.py`` (the fusion network and its loss), the unimodal
encoders ``text_encoder_finetune.py``, ``vision_encoder_finetune.py``, ``audio_encoder_fintune.py``,
``model/decoder/classifier.py``, ``train/constrastive/TVA_fusion_train.py``, ``dataloader/MOSI.py``
(partner selection) and ``config.py``.

1. Unimodal encoders, each to ``D`` (``encoder_dim``; 0 = the text encoder's hidden size, the
   reference's 768 with BERT-base): text, the text encoder's first-token state (fine-tuned with
   the fusion, see below); audio and vision, ``Linear(D_s → D)``, a
   learned CLS token (ones at start) prepended, learned positions (``audio_positions`` 375,
   ``video_positions`` 500, + 1), dropout, a post-norm GELU transformer (``layers`` 2, ``heads``
   8, feed-forward ``D``, dropout 0.5; ``audio_layers``/``video_layers``), a LayerNorm and the mean over positions.
2. Decomposition: per modality a similarity projector and a dissimilarity projector, each
   ``LayerNorm(D) → Linear(D → D/2) → tanh → dropout``.
3. The six features concatenated (``3D``) -> an MLP ``[D, D/2, D/4, D/8]`` (GELU) -> ``ŷ``; each
   feature alone -> a shared "mono" MLP ``[D/4, D/8]`` -> a prediction.

Loss (``TVA_fusion.forward``): ``MSE(ŷ, y) + 0.1·contrastive + 0.01·mono MSE``, the contrastive
term and the partner selection in ``msakit/objectives/contrastive_decomposition.py``: each
sample's 2 most similar same-label partners (positives), 2 least similar and 2 most similar
other-label ones (negatives), similarity features of one sample pulled together and pushed away
from its dissimilarity features.

Modalities: text, audio and vision (the pair plan relates the three); other sets are refused.
Layouts: aligned and unaligned files.

Parameters (``tests/test_models_2024a.py`` rebuilds the reference's count from its layer list):
MOSI sizes (BERT 768, audio 5, vision 20): the fusion network without BERT has 20,118,914
trainable parameters in the reference and 18,916,994 here. The difference, 1,201,920, is exactly
what the reference's audio and vision encoders build and never run: ``fc`` (``Linear(5 → 768)``,
``Linear(20 → 768)``) and ``dense`` (``Linear(768 → 768)`` each). Output ``(B,)`` (reference ``(B, 1)``).

Deliberate differences from the reference:
- **One stage by default.** The reference first pre-trains each unimodal encoder with its own
  regressor (``Ttrain.py``, ``Vtrain.py``, ``Atrain.py``) and loads them before the fusion
  training, BERT frozen. By default the encoders here train with the fusion from the start, and
  the text encoder, which no pre-training stage has tuned, is fine-tuned with it at ``lr``
  (``text_finetune=false`` freezes it). ``unimodal_pretraining=true`` runs the reference's
  recipe inside the one ``msakit train`` (``RUN/stage_unimodal_{t,v,a}``, resumable, each
  stage's metrics in ``results.json``): each encoder with a regressor MLP
  ``[D/2, D/4, D/8] → 1`` (``BaseClassifier``'s sizes, GELU, dropout ``encoder_dropout``) learns
  the multimodal label alone, as ``Ttrain``/``Vtrain``/``Atrain`` do, at ``pretrain_lr``
  1e-4, weight decay 1e-3, batch 128, for ``pretrain_epochs_{t,v,a}`` (200/100/100, MOSI's
  ``config.py``; the best validation MAE is kept), then the fusion starts from the encoders.
  With it, set ``text_finetune=false`` to freeze the pre-trained text encoder as the reference
  does. Not kept: the text stage's first third of epochs with BERT frozen (the regressor alone),
  and the linear warm-up schedule.
- **Partners come from the batch.** The reference ranks the whole training set by the cosine
  similarity of the encoders' embeddings (refreshed every second epoch) and draws 2 of the top
  10 per kind, adding the 6 partners of each sample to the batch (their predictions also enter
  the MSE). Here the partners are the batch's own samples, chosen by the current (detached)
  embeddings; a sample without 2 same-label and 2 other-label samples in its batch has no
  contrastive term. The reference's retrieval lists also store rank positions where sample
  indices are meant (``_ss.append(j)`` instead of ``_rank[i][j]``), so its partners are not the
  ones the paper describes; msakit selects the described ones.
- The text vector is the encoder's first-token state (the packaged encoders carry no pooler;
  the reference takes BERT's ``pooler_output``).
- The audio/vision mean runs over each sample's valid frames and its CLS token (the reference
  averages over the fixed-length padded file, padding included); longer sequences are cut to the
  position tables.
- Optimiser: one Adam at ``lr`` 1e-4 without weight decay; the reference's AdamW decay 1e-3
  (a per-step shrink of 1e-7) and linear warm-up schedule are not used.
- Per dataset (``DATASET_DEFAULTS``, from each reference folder): layers, position tables,
  batch size and the fixed epoch count (MOSI 25, MOSEI 6, SIMS 50), which the reference trains
  through keeping the best validation MAE; here it is ``train.max_epochs``, with msakit's early
  stopping on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel, PretrainingStage
from msakit.models.dmd import require_text_audio_vision
from msakit.objectives import RegressionMSE
from msakit.objectives.contrastive_decomposition import AuxiliaryMSE, ContrastiveDecomposition
from msakit.settings import setting

ORDER = ("t", "v", "a")
FEATURES = tuple(f"{kind}_{s}" for kind in ("sim", "dis") for s in ORDER)


@dataclass
class ConFEDEConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    text_finetune: bool = setting(True, doc="True: fine-tune the text encoder at lr (no text pre-training stage runs); False: frozen, as in the reference's fusion stage")
    encoder_dim: int = setting(0, min=0, doc="D, the unimodal encoders' width; 0 = the text encoder's hidden size (768 with BERT-base)")
    heads: int = setting(8, min=1, doc="heads of the audio/vision transformers")
    audio_layers: int = setting(2, min=1, doc="layers of the audio transformer")
    video_layers: int = setting(2, min=1, doc="layers of the vision transformer")
    encoder_dropout: float = 0.5  # vision_drop_out / audio_drop_out
    projector_dropout: float = 0.5
    audio_positions: int = setting(375, min=1, doc="learned audio positions; longer audio is cut")
    video_positions: int = setting(500, min=1, doc="learned vision positions; longer vision is cut")
    temperature: float = setting(0.5, gt=0.0, doc="NT-Xent temperature (const_heat)")
    contrastive_weight: float = setting(0.1, min=0.0, doc="weight of the contrastive decomposition loss")
    mono_weight: float = setting(0.01, min=0.0, doc="weight of the per-feature (mono) regression MSE")
    lr: float = 1e-4
    weight_decay: float = 0.0
    unimodal_pretraining: bool = setting(False, doc="the reference's first stage: pre-train each unimodal encoder with a regressor on the label, then fuse")
    pretrain_epochs_t: int = setting(200, min=1, doc="epochs of the text pre-training stage (config.py textPretrain.epoch)")
    pretrain_epochs_v: int = setting(100, min=1, doc="epochs of the vision pre-training stage")
    pretrain_epochs_a: int = setting(100, min=1, doc="epochs of the audio pre-training stage")
    pretrain_lr: float = 1e-4
    pretrain_weight_decay: float = setting(1e-3, min=0.0)
    pretrain_batch_size: int = setting(128, min=1)
    stage: str = setting("", choices=("", "t", "a", "v"), doc="set by the trainer: the unimodal pre-training model of one modality")

    def validate(self) -> None:
        if self.encoder_dim and (self.encoder_dim % self.heads or self.encoder_dim % 8):
            raise ConfigError(f"model.encoder_dim={self.encoder_dim} must be divisible by model.heads={self.heads} and by 8")


class FrameEncoder(nn.Module):
    """Audio/vision: project, prepend a CLS token, learned positions, dropout, a post-norm GELU
    transformer, LayerNorm, mean over the CLS token and the valid frames."""

    def __init__(self, in_dim: int, dim: int, positions: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.cls_token = nn.Parameter(torch.ones(1, 1, dim))
        self.positions = nn.Parameter(torch.zeros(1, positions + 1, dim))
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, dim, dropout, activation="gelu", batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        frames = frames[:, : self.positions.shape[1] - 1]
        b, n, _ = frames.shape
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.proj(frames)], dim=1) + self.positions[:, : n + 1]
        valid = torch.arange(n + 1, device=x.device)[None, :] < (lengths.to(x.device).clamp(min=1, max=n) + 1)[:, None]
        x = self.norm(self.transformer(self.dropout(x), src_key_padding_mask=~valid))
        weights = valid.to(x.dtype)[..., None]
        return (x * weights).sum(1) / weights.sum(1)


def _projector(dim: int, out: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out), nn.Tanh(), nn.Dropout(dropout))


def _mlp(in_dim: int, hidden: list[int], dropout: float = 0.0) -> nn.Module:
    layers, previous = [], in_dim
    for h in hidden:
        layers += [nn.Linear(previous, h), nn.GELU()] + ([nn.Dropout(dropout)] if dropout else [])
        previous = h
    return nn.Sequential(*layers, nn.Linear(previous, 1))


@register_model
class ConFEDE(MSAModel):
    name = "confede"
    config_class = ConFEDEConfig
    # XpastaX/ConFEDE {MOSI,MOSEI,SIMS}/config.py (TVAExp_fusion's batch size and epochs, the
    # encoders' layers) and the position tables of each folder's encoders (num_patches).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 16, "grad_accumulation": 1, "max_epochs": 25}},
        "mosei": {"model": {"audio_layers": 3, "video_layers": 3, "audio_positions": 500, "video_positions": 500},
                  "train": {"batch_size": 8, "grad_accumulation": 1, "max_epochs": 6}},
        "sims": {"model": {"audio_layers": 2, "video_layers": 1, "audio_positions": 400, "video_positions": 55},
                 "train": {"batch_size": 32, "grad_accumulation": 1, "max_epochs": 50}},
    }
    TEST_OVERRIDES = {"encoder_dim": 16, "heads": 2, "audio_layers": 1, "video_layers": 1, "encoder_dropout": 0.0, "projector_dropout": 0.0,
                      "audio_positions": 32, "video_positions": 32, "lr": 3e-3}

    def __init__(self, config: ConFEDEConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c = config
        if c.stage:
            if dims.modalities != (c.stage,):
                raise ConfigError(f"model.stage={c.stage}: ConFEDE's unimodal pre-training model needs data.modalities={c.stage}, "
                                  f"got {','.join(dims.modalities)}")
        else:
            self._check_modalities(dims.modalities)
        if text_encoder is None and "t" in dims.modalities:
            raise ValueError("ConFEDE needs a text encoder")
        if text_encoder is not None:
            self.text_model = text_encoder
            if not c.text_finetune and hasattr(text_encoder, "freeze") and c.stage != "t":  # stand-ins (tests) are fixed already
                text_encoder.freeze()
        hidden = text_encoder.hidden_size if text_encoder is not None else 0
        d = c.encoder_dim or hidden
        if not d:
            raise ConfigError("ConFEDE's unimodal audio/vision model needs model.encoder_dim (0 takes the text encoder's width)")
        if d % c.heads or d % 8:
            raise ConfigError(f"ConFEDE's encoder width {d} must be divisible by model.heads={c.heads} and by 8; set model.encoder_dim")
        if text_encoder is not None:
            self.text_proj = nn.Identity() if hidden == d else nn.Linear(hidden, d)
        frames = {"v": (dims.vision_dim, c.video_positions, c.video_layers), "a": (dims.audio_dim, c.audio_positions, c.audio_layers)}
        self.frame_encoders = nn.ModuleDict({s: FrameEncoder(width, d, positions, c.heads, layers, c.encoder_dropout)
                                             for s, (width, positions, layers) in frames.items() if s in dims.modalities})
        if c.stage:  # Ttrain/Vtrain/Atrain: the encoder and a regressor (BaseClassifier [D/2, D/4, D/8] -> 1)
            self.unimodal_head = _mlp(d, [d // 2, d // 4, d // 8], c.encoder_dropout)
            self.feature_dims = {"m": d, c.stage: d}
            return
        half = d // 2
        self.similarity = nn.ModuleDict({s: _projector(d, half, c.projector_dropout) for s in ORDER})
        self.dissimilarity = nn.ModuleDict({s: _projector(d, half, c.projector_dropout) for s in ORDER})
        self.decoder = _mlp(6 * half, [2 * half, half, half // 2, half // 4])
        self.mono_decoder = _mlp(half, [half // 2, half // 4])
        self.feature_dims = {"m": 6 * half, "t": d, "a": d, "v": d}

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        require_text_audio_vision("ConFEDE", modalities, "contrasts the similarity and dissimilarity features of text, audio and vision")

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        if len(modalities) != 1:  # one modality: a pre-training stage (the model refuses it otherwise)
            cls._check_modalities(modalities)

    def _embed(self, s: str, batch) -> torch.Tensor:
        if s == "t":
            return self.text_proj(self.text_model(batch.text_ids, batch.text_mask))
        key = "vision" if s == "v" else "audio"
        return self.frame_encoders[s](getattr(batch, key), getattr(batch, f"{key}_lengths"))

    def forward(self, batch) -> ModelOutput:
        if self.config.stage:
            s = self.config.stage
            embedded = self._embed(s, batch)
            return ModelOutput(predictions={"m": self.unimodal_head(embedded).squeeze(-1)}, features={"m": embedded, s: embedded})
        embedded = {
            "t": self.text_proj(self.text_model(batch.text_ids, batch.text_mask)),
            "v": self.frame_encoders["v"](batch.vision, batch.vision_lengths),
            "a": self.frame_encoders["a"](batch.audio, batch.audio_lengths),
        }
        sim = {s: self.similarity[s](embedded[s]) for s in ORDER}
        dis = {s: self.dissimilarity[s](embedded[s]) for s in ORDER}
        fused = torch.cat([sim[s] for s in ORDER] + [dis[s] for s in ORDER], dim=-1)
        prediction = self.decoder(fused).squeeze(-1)
        logits = {f"{kind}_{s}": self.mono_decoder(feats[s]).squeeze(-1) for kind, feats in (("sim", sim), ("dis", dis)) for s in ORDER}
        pairing = torch.cat([embedded[s] for s in ORDER], dim=-1).detach()
        return ModelOutput(
            predictions={"m": prediction},
            features={"m": fused, **embedded},
            extras={"similarity": sim, "dissimilarity": dis, "logits": logits, "pairing": pairing},
        )

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return [{"name": "all", "params": [p for p in self.parameters() if p.requires_grad], "lr": c.lr, "weight_decay": c.weight_decay}]

    def pretraining_stages(self) -> list[PretrainingStage]:
        c = self.config
        if c.stage or not c.unimodal_pretraining:
            return []
        epochs = {"t": c.pretrain_epochs_t, "v": c.pretrain_epochs_v, "a": c.pretrain_epochs_a}
        return [PretrainingStage(f"unimodal_{s}", (s,), label="m",
                                 model={"stage": s, "encoder_dim": self.feature_dims["t"], "lr": c.pretrain_lr,
                                        "weight_decay": c.pretrain_weight_decay},
                                 train={"max_epochs": epochs[s], "early_stop": epochs[s], "batch_size": c.pretrain_batch_size,
                                        "grad_accumulation": 1})
                for s in ORDER]  # main.py: text, vision, audio

    def adopt_pretrained(self, name: str, model: MSAModel) -> None:
        s = getattr(model.config, "stage", "")
        if not isinstance(model, ConFEDE) or name != f"unimodal_{s}" or self.config.stage:
            raise ValueError(f"adopt_pretrained({name!r}): expected ConFEDE's unimodal pre-training model of t, v or a")
        if s == "t":
            self.text_model.load_state_dict(model.text_model.state_dict())
            self.text_proj.load_state_dict(model.text_proj.state_dict())
        else:
            self.frame_encoders[s].load_state_dict(model.frame_encoders[s].state_dict())

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        c = self.config
        objectives: list[nn.Module] = [RegressionMSE("m")]
        if c.stage:  # the unimodal regressor's MSE alone
            return objectives
        if c.contrastive_weight > 0:
            objectives.append(ContrastiveDecomposition(c.contrastive_weight, c.temperature))
        if c.mono_weight > 0:
            objectives.append(AuxiliaryMSE(FEATURES, c.mono_weight, "mono_mse"))
        return objectives


__all__ = ["ConFEDE", "ConFEDEConfig", "FrameEncoder"]
