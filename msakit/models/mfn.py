"""MFN, the Memory Fusion Network (Zadeh et al., AAAI 2018, "Memory Fusion Network for
Multi-view Sequential Learning").

Structure follows MMSA 2.2.1 ``src/MMSA/models/singleTask/MFN.py`` (itself from
pliang279/MFN), trained as ``trains/singleTask/MFN.py`` does (L1 loss, one Adam at
``learning_rate``/``weight_decay``, a step per batch); per-dataset values from the ``mfn``
section of ``config_regression.json``.

A **system of LSTMs**, one per modality, steps through the word-aligned sequence (text token
states, and the audio and vision frame of each token: ``msakit/encoders/aligned.py``). At each
step t the **delta-memory attention** reads the cell states of the last two steps,
``c* = [c_{t-1}; c_t]`` over every modality, ``a = softmax(NN1(c*))``, ``ĉ = a ⊙ c*``; the
**multi-view gated memory** proposes ``u = tanh(NN2(ĉ))`` and updates ``m_t = γ1 ⊙ m_{t-1} +
γ2 ⊙ u`` with ``γ1 = σ(Γ1([ĉ; m_{t-1}]))``, ``γ2 = σ(Γ2([ĉ; m_{t-1}]))`` (each NN a
Linear-ReLU-dropout-Linear). The last hidden state of each LSTM and the last memory go
through Linear-ReLU-dropout-Linear to the prediction.

Modalities: any non-empty subset of t, a, v (the system has one LSTM per modality used);
word-aligned data only (the paper's model steps through aligned words), unaligned files are
refused with the file to use.

Parameters, checked in tests/test_aligned_models.py against a count built from the
reference's layer list: for the MOSI configuration (hidden 256/32/256, memory 400) with MOSI's
aligned feature sizes (text 768, audio 5, vision 20) the reference has 2,172,657 trainable
parameters, and this model without its text encoder has the same 2,172,657 (the encoder,
frozen by default, is added on top).

Deliberate differences from the reference:
- Text comes from a BERT-family encoder's token states (the packaged MiniLM by default, any
  local BERT directory) instead of the file's pre-extracted features; frozen by default
  (``text_finetune=false``), as those features are fixed; ``true`` fine-tunes it at ``lr_text``.
- Each sample stops at its last real token (the reference steps through the padding to
  position 50 and reads the states there).
- The reference's config asks the loader for time-averaged audio/vision (``need_normalized``),
  which leaves one frame against the text's 50 steps; here every token has its own frame, as
  in the paper.
- The LSTMs run as ``nn.LSTM`` (fused kernel) with the cell states rebuilt from the gates, and
  the parts of the memory networks that do not depend on the memory are computed for all steps
  at once: the same function as the reference's step-by-step ``LSTMCell`` loop, faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msakit.settings import setting
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.encoders.aligned import ORDER, aligned_sequences, at_last_step, attach_text_encoder, lstm_with_cells, refuse_unaligned
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel
from msakit.objectives import RegressionL1


@dataclass
class MFNConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    text_finetune: bool = setting(False, doc="False: the text encoder is a fixed feature extractor, as in the reference; True: fine-tune it at lr_text")
    text_hidden: int = setting(256, min=1)  # hidden_dims (l, a, v)
    audio_hidden: int = setting(32, min=1)
    video_hidden: int = setting(256, min=1)
    memory_dim: int = setting(400, min=1, doc="memsize: width of the multi-view gated memory")
    attention_hidden: int = setting(32, min=1)  # NN1Config: delta-memory attention
    attention_dropout: float = 0.2
    proposal_hidden: int = setting(64, min=1)  # NN2Config: the memory proposal
    proposal_dropout: float = 0.0
    gamma1_hidden: int = setting(256, min=1)  # gamma1Config: retain gate
    gamma1_dropout: float = 0.7
    gamma2_hidden: int = setting(32, min=1)  # gamma2Config: update gate
    gamma2_dropout: float = 0.5
    out_hidden: int = setting(128, min=1)  # outConfig
    out_dropout: float = 0.0
    lr_text: float = 5e-5
    lr_other: float = 2e-3  # learning_rate
    weight_decay: float = 0.0


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """The reference's two-layer nets: Linear -> ReLU -> dropout -> Linear."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


class GatedMemory(nn.Module):
    """MFN's multi-view gated memory (also Graph-MFN's): from the attended input ``ĉ_t``
    ``(B, L, A)`` of every step, the memory after every step ``(B, L, M)``."""

    def __init__(self, attended_dim: int, memory_dim: int, proposal: tuple[int, float], gamma1: tuple[int, float], gamma2: tuple[int, float]):
        super().__init__()
        self.attended_dim, self.memory_dim = attended_dim, memory_dim
        self.proposal = mlp(attended_dim, proposal[0], memory_dim, proposal[1])
        self.gamma1 = mlp(attended_dim + memory_dim, gamma1[0], memory_dim, gamma1[1])
        self.gamma2 = mlp(attended_dim + memory_dim, gamma2[0], memory_dim, gamma2[1])

    def forward(self, attended: torch.Tensor, steps: int) -> torch.Tensor:
        proposal = torch.tanh(self.proposal(attended))
        # The gates' first layer on [ĉ_t; m_{t-1}]: the ĉ part for every step at once.
        a = self.attended_dim
        parts = []
        for gamma in (self.gamma1, self.gamma2):
            first = gamma[0]
            parts.append((F.linear(attended, first.weight[:, :a], first.bias), first.weight[:, a:]))
        memory = attended.new_zeros(attended.shape[0], self.memory_dim)
        memories = []
        for t in range(steps):
            gates = []
            for gamma, (from_attended, from_memory) in zip((self.gamma1, self.gamma2), parts):
                hidden = gamma[2](gamma[1](from_attended[:, t] + F.linear(memory, from_memory)))
                gates.append(torch.sigmoid(gamma[3](hidden)))
            memory = gates[0] * memory + gates[1] * proposal[:, t]
            memories.append(memory)
        return torch.stack(memories, dim=1)


class MemoryFusion(nn.Module):
    """The system of LSTMs, the delta-memory attention and the gated memory (MFN without its
    output layers; MFM's multimodal encoder): ``forward`` returns the last hidden state of each
    modality's LSTM and the last memory."""

    def __init__(self, in_dims: dict[str, int], hidden: dict[str, int], c: MFNConfig):
        super().__init__()
        self.order = tuple(s for s in ORDER if s in in_dims)
        self.lstms = nn.ModuleDict({s: nn.LSTM(in_dims[s], hidden[s], batch_first=True) for s in self.order})
        total = sum(hidden[s] for s in self.order)
        self.attention = mlp(2 * total, c.attention_hidden, 2 * total, c.attention_dropout)
        self.memory = GatedMemory(2 * total, c.memory_dim, (c.proposal_hidden, c.proposal_dropout), (c.gamma1_hidden, c.gamma1_dropout), (c.gamma2_hidden, c.gamma2_dropout))
        self.out_dim = total + c.memory_dim

    def forward(self, sequences: dict[str, torch.Tensor], lengths: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        steps = int(lengths.max())
        hs, cs = {}, {}
        for s in self.order:
            hs[s], cs[s] = lstm_with_cells(self.lstms[s], sequences[s][:, :steps])
        cells = torch.cat([cs[s] for s in self.order], dim=-1)
        c_star = torch.cat([F.pad(cells, (0, 0, 1, 0))[:, :-1], cells], dim=-1)  # [c_{t-1}; c_t], c_{-1} = 0
        attended = torch.softmax(self.attention(c_star), dim=-1) * c_star
        memories = self.memory(attended, steps)
        return {s: at_last_step(hs[s], lengths) for s in self.order}, at_last_step(memories, lengths)


def check_modalities(modalities: tuple[str, ...], name: str) -> None:
    if not modalities:
        raise ConfigError(f"{name}: data.modalities is empty; use any of t, a, v")


def input_dims(model: nn.Module, text_encoder, finetune: bool) -> dict[str, int]:
    """Attach the text encoder (when text is used); the width of each modality's sequence."""
    dims = model.dims
    sizes = {}
    if "t" in dims.modalities:
        sizes["t"] = attach_text_encoder(model, text_encoder, finetune)
    if "a" in dims.modalities:
        sizes["a"] = dims.audio_dim
    if "v" in dims.modalities:
        sizes["v"] = dims.vision_dim
    return sizes


@register_model
class MFN(MSAModel):
    name = "mfn"
    config_class = MFNConfig
    FEATURE_DIM_FIELDS = {"t": "text_hidden", "a": "audio_hidden", "v": "video_hidden"}
    # MMSA config_regression.json, "mfn" (early stop 8, one step per batch).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 128, "grad_accumulation": 1}},
        "mosei": {
            "model": {"text_hidden": 128, "video_hidden": 128, "memory_dim": 128, "attention_hidden": 128, "proposal_hidden": 128, "proposal_dropout": 0.5,
                      "gamma2_dropout": 0.0, "gamma2_hidden": 256, "out_dropout": 0.5, "lr_other": 5e-4, "weight_decay": 1e-4},
            "train": {"batch_size": 64, "grad_accumulation": 1},
        },
        "sims": {
            "model": {"text_hidden": 64, "audio_hidden": 16, "video_hidden": 64, "memory_dim": 64, "attention_hidden": 128, "proposal_hidden": 128,
                      "gamma1_hidden": 64, "gamma1_dropout": 0.2, "gamma2_hidden": 64, "gamma2_dropout": 0.7, "out_hidden": 64, "out_dropout": 0.7, "lr_other": 1e-3},
            "train": {"batch_size": 32, "grad_accumulation": 1},
        },
    }
    TEST_OVERRIDES = {"text_hidden": 16, "audio_hidden": 8, "video_hidden": 8, "memory_dim": 16, "attention_hidden": 16, "proposal_hidden": 16,
                      "gamma1_hidden": 16, "gamma1_dropout": 0.0, "gamma2_hidden": 16, "gamma2_dropout": 0.0, "out_hidden": 16, "lr_other": 5e-3}

    def __init__(self, config: MFNConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c = config
        check_modalities(dims.modalities, self.name)
        hidden = {"t": c.text_hidden, "a": c.audio_hidden, "v": c.video_hidden}
        self.fusion = MemoryFusion(input_dims(self, text_encoder, c.text_finetune), hidden, c)
        self.head = mlp(self.fusion.out_dim, c.out_hidden, 1, c.out_dropout)
        self.feature_dims = {"m": self.fusion.out_dim, **{s: hidden[s] for s in self.fusion.order}}

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        check_modalities(modalities, cls.name)
        refuse_unaligned(data, modalities, "MFN")

    def forward(self, batch) -> ModelOutput:
        sequences, lengths = aligned_sequences(self, batch)
        last, memory = self.fusion(sequences, lengths)
        fused = torch.cat([last[s] for s in self.fusion.order] + [memory], dim=-1)
        return ModelOutput(predictions={"m": self.head(fused).squeeze(-1)}, features={"m": fused, **last})

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return self.text_and_other_groups(c.lr_text, c.lr_other, c.weight_decay)

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return [RegressionL1("m")]
