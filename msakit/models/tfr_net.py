"""TFR-Net, the Transformer-based Feature Reconstruction Network (Yuan et al., ACM MM 2021,
"Transformer-based Feature Reconstruction Network for Robust Multimodal Sentiment Analysis").

Structure follows MMSA 2.2.1 ``src/MMSA/models/missingTask/TFR_NET/`` (``model.py``,
``alignment.py`` with ``CM_ATTN``, ``generator.py`` with ``LinearTrans``, ``fusion.py`` with
``GATE_F``/``C_GATE``), trained as ``trains/missingTask/TFR_NET.py`` does; per-dataset values
from ``config_regression.json`` (``tfr_net``). The reference's settings are its defaults:
cross-modal attention alignment, linear generators, the c-gate fusion and the ``combine``
reconstruction loss.

**Training on incomplete data.** In training mode every batch is made incomplete here, as the
reference's data loader does: each valid position of each modality is missing with probability
``missing_rate_{t,a,v}`` (text: the token becomes ``[UNK]``, ``[CLS]`` and the last token are
kept; audio/vision: the frame becomes zeros). The model sees the incomplete sequences only; its
generators must rebuild, at the missing positions, the complete features (audio/vision frames,
the text encoder's states of the complete transcript). In evaluation the model takes what it is
given, so ``msakit robustness`` (absent modalities, dropped frames, noise, word errors, all in
the data path) evaluates it like any model.

**Forward.** Each sequence is brought to a fixed width ``seq_len_{t,a,v}`` (the reference's
``seq_lens``: MOSI/MOSEI 50 / 500 / 375; longer ones are cut, shorter ones padded), projected
to ``model_dim`` by a bias-free 1-D convolution of odd kernel with "same" padding (none where a
modality already has ``model_dim`` features). For each modality s: a self-attention transformer
(``max(layers, 3)`` layers) and a cross-modal transformer from each other modality
(``layers``; MulT's, ``mult.py``, with its source-dependent attention dropout and causal mask)
give ``h_s = [self; from o1; from o2]`` (``3·model_dim`` wide). A *temporal* transformer
(``max(layers, 3)`` layers, ``temporal_heads`` heads, no positions) then attends across the
``3·model_dim`` channels, each channel a vector over the ``seq_len_s`` positions, and a linear
generator maps each position back to the modality's features (the reconstruction). Fusion: per
modality a context gate (``C_GATE``: a bidirectional GRU, a sigmoid gate from a kernel-3
convolution, ``tanh(Linear([h_s; tanh(GRU) ⊙ gate]))`` max-pooled over the positions, dropout)
gives ``fusion_hidden_{t,a,v}`` features; they are concatenated -> BatchNorm -> Linear
(``cls_hidden``) -> LeakyReLU -> dropout -> Linear(1). Loss: L1 on the prediction plus, from the
second epoch, ``Σ_s w_s · rec_s`` (``msakit/objectives/feature_reconstruction.py``). Gradient
values clipped to ``[-grad_clip, grad_clip]`` after each backward; Adam groups: the text encoder
(with/without decay) at ``lr_text`` and everything else at ``lr_other``.

Modalities: t, a and v (each is rebuilt from, and attends to, the other two); other sets are
refused with the reason.

Parameters, checked in tests/test_classic_models.py against a count built from the reference's
layer list: MOSI configuration (d = 30, 6 heads, 3 levels, widths 50 / 500 / 375, 25 temporal
heads, fusion 36 / 20 / 48, classifier 128) with MOSI's unaligned feature sizes (text 768,
audio 5, vision 20): the reference has 14,850,620 trainable parameters besides its BERT, this
model without its text encoder the same 14,850,620.

Deliberate differences from the reference:
- Text comes from any BERT-family encoder (the packaged MiniLM by default), fine-tuned at
  ``lr_text`` as the reference's BERT is; ``unk_token_id`` is the ``[UNK]`` id of its
  vocabulary (100 for the uncased BERT vocabulary MiniLM shares).
- The missing positions are drawn afresh for every batch from the run's seeded generator (the
  reference draws them once per dataset, seed 1111, so every epoch sees the same holes).
- Padding is masked: attention ignores padded keys, positions past a sample's length are zeroed
  before the temporal transformer, the GRUs run over the valid positions only (packed, as the
  reference) and the max-pooling is over valid positions (the reference pools over padding too).
- CH-SIMS widths: the reference's (39, 400, 55) are not divisible by its 25 temporal heads (its
  attention refuses them); the SIMS defaults here round them up to multiples of 25: 50, 400, 75.
- The reference's ``ReduceLROnPlateau`` schedule is not used (the shared trainer has one rate
  per group, early stopping and best-epoch selection); its ``update_epochs`` loop steps the
  optimiser after every batch anyway, so one step per batch (``grad_accumulation`` 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import GradientClipping, InputDims, ModelOutput, MSAModel
from msakit.models.mult import CrossmodalTransformer
from msakit.objectives import RegressionL1
from msakit.objectives.feature_reconstruction import FeatureReconstruction
from msakit.settings import setting

ORDER = ("t", "a", "v")


@dataclass
class TFRNetConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    text_finetune: bool = setting(True, doc="True: fine-tune the text encoder at lr_text, as the reference does; False: a fixed feature extractor")
    unk_token_id: int = setting(100, min=0, doc="the [UNK] id of the text encoder's vocabulary (missing tokens become it in training)")
    seq_len_t: int = setting(50, min=1, doc="text width: tokens past it are cut (the reference's seq_lens)")
    seq_len_a: int = setting(500, min=1, doc="audio width: frames past it are cut")
    seq_len_v: int = setting(375, min=1, doc="vision width: frames past it are cut")
    missing_rate_t: float = setting(0.2, min=0.0, max=1.0, doc="training: share of text tokens made missing ([UNK])")
    missing_rate_a: float = setting(0.2, min=0.0, max=1.0, doc="training: share of audio frames made missing (zeros)")
    missing_rate_v: float = setting(0.2, min=0.0, max=1.0, doc="training: share of vision frames made missing (zeros)")
    model_dim: int = 30  # dst_feature_dim_nheads[0]
    heads: int = 6  # dst_feature_dim_nheads[1]
    layers: int = 3  # nlevels
    temporal_heads: int = 25  # num_temporal_head
    conv_kernel_t: int = setting(1, min=1, doc="text projection kernel (odd: 'same' padding)")
    conv_kernel_a: int = setting(5, min=1, doc="audio projection kernel (odd)")
    conv_kernel_v: int = setting(3, min=1, doc="vision projection kernel (odd)")
    text_dropout: float = 0.2
    attn_dropout: float = 0.2
    attn_dropout_a: float = 0.1
    attn_dropout_v: float = 0.0
    relu_dropout: float = 0.2
    embed_dropout: float = 0.2
    res_dropout: float = 0.2
    attn_mask: bool = True
    fusion_hidden_t: int = 36
    fusion_hidden_a: int = 20
    fusion_hidden_v: int = 48
    fusion_gru_layers: int = 3
    fusion_dropout: float = 0.2
    cls_hidden: int = 128
    cls_dropout: float = 0.0
    weight_gen_t: float = setting(5.0, min=0.0, doc="weight of the text reconstruction loss")
    weight_gen_a: float = setting(2.0, min=0.0, doc="weight of the audio reconstruction loss")
    weight_gen_v: float = setting(20.0, min=0.0, doc="weight of the vision reconstruction loss")
    weight_sim: float = setting(5.0, min=0.0, doc="weight of the CMD term inside each reconstruction loss")
    grad_clip: float = setting(0.8, min=0.0, doc="clip every gradient value to [-v, v] after each backward; 0 = off")
    lr_text: float = 2e-6
    lr_other: float = 1e-3
    weight_decay_text: float = 1e-4
    weight_decay_other: float = 1e-3

    def validate(self) -> None:
        if self.model_dim % self.heads:
            raise ConfigError(f"model.model_dim={self.model_dim} must be divisible by model.heads={self.heads}")
        for s in ORDER:
            width, kernel = getattr(self, f"seq_len_{s}"), getattr(self, f"conv_kernel_{s}")
            if width % self.temporal_heads:
                raise ConfigError(f"model.seq_len_{s}={width} must be divisible by model.temporal_heads={self.temporal_heads} (the temporal attention's width is the sequence width)")
            if kernel % 2 == 0:
                raise ConfigError(f"model.conv_kernel_{s}={kernel} must be odd ('same' padding keeps the positions the reconstruction needs)")


class TemporalTransformer(CrossmodalTransformer):
    """MulT's transformer without positions: the reference's ``*_final`` encoders, whose tokens
    are feature channels (each a vector over the sequence positions)."""

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return F.dropout(math.sqrt(self.dim) * x, self.embed_dropout, self.training)


class ContextGate(nn.Module):
    """The reference's ``C_GATE``: ``(B, L, D)`` + lengths -> ``(B, hidden)``."""

    def __init__(self, in_dim: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, num_layers=layers, bidirectional=True, batch_first=True)
        self.gate = nn.Conv1d(2 * hidden, 1, kernel_size=3, padding=1)
        self.fc = nn.Linear(2 * hidden + in_dim, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.to("cpu", torch.int64), batch_first=True, enforce_sorted=False)
        context, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=x.shape[1])
        gate = torch.sigmoid(self.gate(context.transpose(1, 2)).transpose(1, 2))
        rep = torch.tanh(self.fc(torch.cat([x, torch.tanh(context) * gate], dim=-1)))
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        rep = rep.masked_fill(~valid[..., None], float("-inf")).max(dim=1).values
        return self.dropout(rep)


def _to_width(x: torch.Tensor, width: int) -> torch.Tensor:
    """Cut or zero-pad dimension 1 of ``x`` to ``width``."""
    if x.shape[1] >= width:
        return x[:, :width]
    return F.pad(x, (0, 0, 0, width - x.shape[1]) if x.dim() == 3 else (0, width - x.shape[1]))


@register_model
class TFRNet(MSAModel):
    name = "tfr_net"
    config_class = TFRNetConfig
    FEATURE_DIM_FIELDS = {"t": "fusion_hidden_t", "a": "fusion_hidden_a", "v": "fusion_hidden_v"}
    # MMSA config_regression.json, "tfr_net" (early stop 6; update_epochs steps every batch).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 24, "grad_accumulation": 1, "early_stop": 6}},
        "mosei": {
            "model": {"lr_text": 1e-5, "lr_other": 2e-3, "weight_gen_t": 5e-6, "weight_gen_a": 2e-6, "weight_gen_v": 2e-5},
            "train": {"batch_size": 24, "grad_accumulation": 1, "early_stop": 6},
        },
        "sims": {
            "model": {
                "seq_len_t": 50, "seq_len_a": 400, "seq_len_v": 75, "layers": 2, "relu_dropout": 0.0, "embed_dropout": 0.1, "cls_dropout": 0.1,
                "lr_text": 1e-5, "lr_other": 2e-3, "weight_gen_t": 1.0, "weight_gen_a": 0.01, "weight_gen_v": 1e-4,
            },
            "train": {"batch_size": 16, "grad_accumulation": 1, "early_stop": 6},
        },
    }
    TEST_OVERRIDES = {
        "unk_token_id": 1, "seq_len_t": 16, "seq_len_a": 20, "seq_len_v": 24, "temporal_heads": 2, "model_dim": 8, "heads": 2, "layers": 1,
        "conv_kernel_a": 3, "fusion_hidden_t": 8, "fusion_hidden_a": 8, "fusion_hidden_v": 8, "fusion_gru_layers": 1, "cls_hidden": 16,
        "text_dropout": 0.0, "embed_dropout": 0.0, "relu_dropout": 0.0, "res_dropout": 0.0, "fusion_dropout": 0.0, "lr_text": 1e-4, "lr_other": 3e-3,
    }

    def __init__(self, config: TFRNetConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c, d = config, config.model_dim
        self._check_modalities(dims.modalities)
        if text_encoder is None:
            raise ValueError("TFR-Net needs a text encoder")
        vocab = getattr(getattr(getattr(text_encoder, "backbone", None), "config", None), "vocab_size", None)
        if isinstance(vocab, int) and c.unk_token_id >= vocab:
            raise ConfigError(f"model.unk_token_id={c.unk_token_id} is outside the text encoder's vocabulary ({vocab} ids); set it to the vocabulary's [UNK] id")
        self.text_model = text_encoder
        if not c.text_finetune and hasattr(text_encoder, "freeze"):
            text_encoder.freeze()
        in_dims = {"t": text_encoder.hidden_size, "a": dims.audio_dim, "v": dims.vision_dim}
        self.in_dims = in_dims
        self.widths = {s: getattr(c, f"seq_len_{s}") for s in ORDER}
        kernels = {s: getattr(c, f"conv_kernel_{s}") for s in ORDER}
        self.projections = nn.ModuleDict(
            {s: nn.Conv1d(k, d, kernel_size=kernels[s], padding=(kernels[s] - 1) // 2, bias=False) for s, k in in_dims.items() if k != d}
        )
        key_dropout = {"t": c.attn_dropout, "a": c.attn_dropout_a, "v": c.attn_dropout_v}
        deep = max(c.layers, 3)
        self.crossmodal = nn.ModuleDict(
            {f"{s}_with_{o}": CrossmodalTransformer(d, c.heads, c.layers, key_dropout[o], c.relu_dropout, c.res_dropout, c.embed_dropout, c.attn_mask)
             for s in ORDER for o in ORDER if o != s}
        )
        self.memory = nn.ModuleDict(
            {s: CrossmodalTransformer(d, c.heads, deep, c.attn_dropout, c.relu_dropout, c.res_dropout, c.embed_dropout, c.attn_mask) for s in ORDER}
        )
        self.temporal = nn.ModuleDict(
            {s: TemporalTransformer(self.widths[s], c.temporal_heads, deep, c.attn_dropout, c.relu_dropout, c.res_dropout, c.embed_dropout, c.attn_mask) for s in ORDER}
        )
        self.generators = nn.ModuleDict({s: nn.Linear(3 * d, in_dims[s]) for s in ORDER})
        hidden = {s: getattr(c, f"fusion_hidden_{s}") for s in ORDER}
        self.gates = nn.ModuleDict({s: ContextGate(3 * d, hidden[s], c.fusion_gru_layers, c.fusion_dropout) for s in ORDER})
        total = sum(hidden.values())
        self.classifier = nn.Sequential(
            nn.BatchNorm1d(total), nn.Linear(total, c.cls_hidden), nn.LeakyReLU(), nn.Dropout(c.cls_dropout), nn.Linear(c.cls_hidden, 1)
        )
        self.feature_dims = {"m": total, **hidden}

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        if set(modalities) != set(ORDER):
            raise ConfigError(
                f"TFR-Net rebuilds each modality from the other two and attends across all three: it needs t, a and v, "
                f"got data.modalities={','.join(modalities) or 'none'}; use t,a,v (or a model for fewer modalities, e.g. tfn)"
            )

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        cls._check_modalities(modalities)

    def gradient_clipping(self) -> GradientClipping | None:
        return GradientClipping("value", self.config.grad_clip, when="backward") if self.config.grad_clip > 0 else None

    # ---- inputs ---------------------------------------------------------------------------
    def _inputs(self, batch):
        """Complete and (in training) incomplete inputs at the fixed widths, and valid lengths."""
        c = self.config
        ids = _to_width(batch.text_ids, self.widths["t"])
        mask = _to_width(batch.text_mask, self.widths["t"])
        lengths = {"t": mask.sum(dim=1).clamp(min=1)}
        frames = {}
        for s, x, n in (("a", batch.audio, batch.audio_lengths), ("v", batch.vision, batch.vision_lengths)):
            frames[s] = _to_width(x, self.widths[s])
            lengths[s] = n.to(x.device).clamp(min=1, max=self.widths[s])
        valid = {s: torch.arange(self.widths[s], device=ids.device)[None, :] < lengths[s][:, None] for s in ORDER}
        if not self.training:
            return ids, mask, frames, lengths, valid, None
        missing = {}
        for s in ORDER:
            rate = getattr(c, f"missing_rate_{s}")
            drawn = torch.rand(valid[s].shape, device=ids.device) < rate
            missing[s] = drawn & valid[s]
        rows = torch.arange(ids.shape[0], device=ids.device)
        missing["t"][:, 0] = False  # [CLS] and the last token stay, as in the reference
        missing["t"][rows, lengths["t"] - 1] = False
        return ids, mask, frames, lengths, valid, missing

    def _project(self, s: str, x: torch.Tensor) -> torch.Tensor:
        if s in self.projections:
            x = self.projections[s](x.transpose(1, 2)).transpose(1, 2)
        return x

    def forward(self, batch) -> ModelOutput:
        c = self.config
        ids, mask, frames, lengths, valid, missing = self._inputs(batch)
        complete = {"a": frames["a"], "v": frames["v"]}
        if missing is None:
            seen_ids, seen = ids, dict(complete)
        else:
            seen_ids = torch.where(missing["t"], torch.full_like(ids, c.unk_token_id), ids)
            seen = {s: complete[s] * (~missing[s]).unsqueeze(-1).to(complete[s].dtype) for s in ("a", "v")}
        text_states = self.text_model.token_states(seen_ids, mask)
        seen["t"] = _to_width(text_states, self.widths["t"])
        x = {s: self._project(s, F.dropout(seen[s], c.text_dropout, self.training) if s == "t" else seen[s]) for s in ORDER}

        aligned, rebuilt = {}, {}
        for s in ORDER:
            parts = [self.memory[s](x[s], lengths[s])]
            parts += [self.crossmodal[f"{s}_with_{o}"](x[s], lengths[s], x[o], lengths[o]) for o in ORDER if o != s]
            h = torch.cat(parts, dim=-1) * valid[s].unsqueeze(-1).to(x[s].dtype)  # (B, L_s, 3d), padding zeroed
            aligned[s] = h
            channels = torch.full((h.shape[0],), h.shape[2], device=h.device, dtype=torch.int64)
            temporal = self.temporal[s](h.transpose(1, 2), channels).transpose(1, 2)  # attention across the 3d channels
            rebuilt[s] = self.generators[s](temporal)

        reps = {s: self.gates[s](aligned[s], lengths[s]) for s in ORDER}
        fused = torch.cat([reps[s] for s in ORDER], dim=-1)
        prediction = self.classifier(fused).squeeze(-1)
        extras = {}
        if missing is not None:
            complete["t"] = _to_width(self.text_model.token_states(ids, mask), self.widths["t"])
            extras["reconstruction"] = {s: (rebuilt[s], complete[s], missing[s]) for s in ORDER}
        return ModelOutput(predictions={"m": prediction}, features={"m": fused, **reps}, extras=extras)

    def parameter_groups(self) -> list[dict]:
        c = self.config
        no_decay = ("bias", "LayerNorm.bias", "LayerNorm.weight")
        named = [(n, p) for n, p in self.text_model.named_parameters() if p.requires_grad]
        taken = {id(p) for p in self.text_model.parameters()}
        groups = [
            {"name": "text_decay", "params": [p for n, p in named if not any(k in n for k in no_decay)], "lr": c.lr_text, "weight_decay": c.weight_decay_text},
            {"name": "text_no_decay", "params": [p for n, p in named if any(k in n for k in no_decay)], "lr": c.lr_text, "weight_decay": 0.0},
            {"name": "other", "params": [p for p in self.parameters() if id(p) not in taken and p.requires_grad], "lr": c.lr_other, "weight_decay": c.weight_decay_other},
        ]
        return [g for g in groups if g["params"]]

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        c = self.config
        return [RegressionL1("m"), FeatureReconstruction({"t": c.weight_gen_t, "a": c.weight_gen_a, "v": c.weight_gen_v}, c.weight_sim, start_epoch=2)]
