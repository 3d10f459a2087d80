"""MFM, the Multimodal Factorization Model (Tsai et al., ICLR 2019, "Learning Factorized
Multimodal Representations").

Structure follows MMSA 2.2.1 ``src/MMSA/models/singleTask/MFM.py`` (classes ``encoderLSTM``,
``decoderLSTM``, ``MFM``, with an ``MFN`` as its multimodal encoder), trained as
``trains/singleTask/MFM.py`` does (loss ``L1 + gen_loss + lda_mmd · mmd_loss``, one Adam over
every parameter); per-dataset values from the ``mfm`` section of ``config_regression.json``.

Each sample is factorised into a **multimodal discriminative factor** ``F_y`` and one
**modality-specific generative factor** ``F_s`` per modality. ``Z_y`` comes from an MFN over the
word-aligned sequences (``msakit/models/mfn.py``: its LSTMs' last states and last memory,
through a Linear); each ``Z_s`` from an LSTM over modality s alone (last state, Linear); every
``F = ReLU(Linear(Dropout(ReLU(Linear(Z)))))``. The prediction reads ``F_y`` alone
(Linear-ReLU-dropout-Linear). Each modality's sequence is regenerated from ``[F_y; F_s]`` by an
LSTM decoder fed its own previous output (the factors at the first step), one Linear to the
modality's width per step. Loss::

    L1(ŷ, y) + Σ_s λ_s · MSE(X̂_s, X_s) + λ_mmd · Σ_{Z ∈ Z_y, Z_t, Z_a, Z_v} MMD(Z, N(0, I))

with the reconstruction in ``msakit/objectives/sequence_reconstruction.py`` (valid steps only)
and the prior matching in ``msakit/objectives/mmd_prior.py``. The decoders run in training only
(the prediction never reads them).

Modalities: any non-empty subset of t, a, v; word-aligned data only (the MFN steps through
aligned words), unaligned files are refused with the file to use.

Parameters, checked in tests/test_aligned_models.py against a count built from the
reference's layer list: MOSI configuration (text 768, audio 5, vision 20): the reference has
1,416,123 parameters, of which 45,313 are its inner MFN's output layers (``out_fc1``,
``out_fc2``), which MFM never calls; this model leaves them out and has the other 1,370,810
(without its text encoder, frozen by default).

Deliberate differences from the reference:
- Text comes from a BERT-family encoder's token states (the packaged MiniLM by default),
  frozen by default as the reference's features; ``text_finetune=true`` fine-tunes it at
  ``lr_text`` (the text reconstruction target is then held constant in each step).
- The reference's trainer builds its Adam without a learning rate, so it runs at Adam's default
  1e-3 whatever ``learning_rate`` says; ``lr_other`` defaults to that 1e-3.
- Each sample's encoders stop at its last real token and the reconstruction is scored on the
  valid steps only (the reference runs through, and reconstructs, the padding to 50); MFN's
  differences (``msakit/models/mfn.py``) apply to the inner MFN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msakit.settings import setting
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.encoders.aligned import aligned_sequences, at_last_step, refuse_unaligned, valid_positions
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel
from msakit.models.mfn import MemoryFusion, check_modalities, input_dims, mlp
from msakit.objectives import RegressionL1
from msakit.objectives.mmd_prior import GaussianPriorMMD
from msakit.objectives.sequence_reconstruction import SequenceReconstruction


@dataclass
class MFMConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    text_finetune: bool = setting(False, doc="False: the text encoder is a fixed feature extractor, as in the reference; True: fine-tune it at lr_text")
    # The inner MFN (hidden_dims, memsize, NN1/NN2/gamma1/gamma2 configs).
    text_hidden: int = setting(128, min=1)
    audio_hidden: int = setting(32, min=1)
    video_hidden: int = setting(128, min=1)
    memory_dim: int = setting(64, min=1)
    attention_hidden: int = setting(32, min=1)
    attention_dropout: float = 0.7
    proposal_hidden: int = setting(64, min=1)
    proposal_dropout: float = 0.0
    gamma1_hidden: int = setting(32, min=1)
    gamma1_dropout: float = 0.0
    gamma2_hidden: int = setting(64, min=1)
    gamma2_dropout: float = 0.5
    # Codes Z and factors F: y (multimodal discriminative), t/a/v (generative).
    zy_size: int = setting(80, min=1)
    zt_size: int = setting(64, min=1)  # zl_size
    za_size: int = setting(80, min=1)
    zv_size: int = setting(80, min=1)
    fy_size: int = setting(64, min=1)
    ft_size: int = setting(32, min=1)  # fl_size
    fa_size: int = setting(16, min=1)
    fv_size: int = setting(64, min=1)
    zy_dropout: float = 0.5
    zt_dropout: float = 0.5
    za_dropout: float = 0.7
    zv_dropout: float = 0.5
    fy_to_y_dropout: float = 0.0
    mmd_weight: float = setting(100.0, min=0.0, doc="lda_mmd: weight of the MMD prior matching of every code")
    recon_t_weight: float = setting(0.5, min=0.0, doc="lda_xl: weight of the text reconstruction")
    recon_a_weight: float = setting(0.01, min=0.0, doc="lda_xa: weight of the audio reconstruction")
    recon_v_weight: float = setting(0.5, min=0.0, doc="lda_xv: weight of the vision reconstruction")
    lr_text: float = 5e-5
    lr_other: float = 1e-3  # the reference trainer's Adam default (see the docstring)
    weight_decay: float = 1e-3


class SequenceDecoder(nn.Module):
    """The reference's ``decoderLSTM``: an LSTM cell fed the factors at the first step and its
    own previous hidden state afterwards; one Linear per step to the modality's width."""

    def __init__(self, factors: int, out_dim: int):
        super().__init__()
        self.cell = nn.LSTMCell(factors, factors)
        self.out = nn.Linear(factors, out_dim)

    def forward(self, factors: torch.Tensor, steps: int) -> torch.Tensor:
        h = c = torch.zeros_like(factors)
        x, hs = factors, []
        for _ in range(steps):
            h, c = self.cell(x, (h, c))
            hs.append(h)
            x = h
        return self.out(torch.stack(hs, dim=1))


def factor_net(z: int, f: int, dropout: float) -> nn.Sequential:
    """``Z -> F``: Linear -> ReLU -> dropout -> Linear -> ReLU."""
    return nn.Sequential(*mlp(z, f, f, dropout), nn.ReLU())


@register_model
class MFM(MSAModel):
    name = "mfm"
    config_class = MFMConfig
    FEATURE_DIM_FIELDS = {"m": "fy_size", "t": "ft_size", "a": "fa_size", "v": "fv_size"}
    # MMSA config_regression.json, "mfm" (early stop 8, one step per batch). Its learning_rate
    # is not used by its trainer (Adam's default 1e-3 throughout).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 64, "grad_accumulation": 1}},
        "mosei": {
            "model": {"text_hidden": 256, "video_hidden": 256, "zy_size": 32, "zt_size": 256, "fy_size": 16, "fa_size": 80, "fv_size": 32,
                      "zy_dropout": 0.2, "zt_dropout": 0.7, "zv_dropout": 0.7, "fy_to_y_dropout": 0.2, "mmd_weight": 10.0,
                      "recon_t_weight": 5.0, "recon_a_weight": 2.0, "recon_v_weight": 5.0, "attention_hidden": 1278, "attention_dropout": 0.5,
                      "proposal_hidden": 32, "proposal_dropout": 0.7, "gamma1_dropout": 0.5, "gamma1_hidden": 64, "gamma2_dropout": 0.2,
                      "gamma2_hidden": 128, "weight_decay": 5e-4},
            "train": {"batch_size": 64, "grad_accumulation": 1},
        },
        "sims": {
            "model": {"text_hidden": 64, "audio_hidden": 16, "video_hidden": 64, "zy_size": 48, "zt_size": 256, "za_size": 32, "fy_size": 48,
                      "ft_size": 256, "fa_size": 80, "fv_size": 48, "zt_dropout": 0.0, "zv_dropout": 0.0, "fy_to_y_dropout": 0.7,
                      "mmd_weight": 200.0, "recon_v_weight": 0.01, "memory_dim": 128, "attention_dropout": 0.5, "proposal_dropout": 0.5,
                      "gamma1_dropout": 0.7, "gamma1_hidden": 64, "gamma2_dropout": 0.0, "gamma2_hidden": 256, "weight_decay": 5e-3},
            "train": {"batch_size": 128, "grad_accumulation": 1},
        },
    }
    TEST_OVERRIDES = {"text_hidden": 16, "audio_hidden": 8, "video_hidden": 8, "memory_dim": 16, "attention_hidden": 16, "attention_dropout": 0.0,
                      "proposal_hidden": 16, "gamma1_hidden": 16, "gamma2_hidden": 16, "gamma2_dropout": 0.0, "zy_size": 16, "zt_size": 8, "za_size": 8,
                      "zv_size": 8, "fy_size": 16, "ft_size": 8, "fa_size": 8, "fv_size": 8, "zy_dropout": 0.0, "mmd_weight": 1.0, "weight_decay": 0.0,
                      "lr_other": 1e-2}  # tiny codes of 8-16 dims: the MOSI weight 100 on their MMD swamps 48 steps of L1

    def __init__(self, config: MFMConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c = config
        check_modalities(dims.modalities, self.name)
        widths = input_dims(self, text_encoder, c.text_finetune)
        self.fusion = MemoryFusion(widths, {"t": c.text_hidden, "a": c.audio_hidden, "v": c.video_hidden}, c)
        self.order = self.fusion.order
        z = {"t": c.zt_size, "a": c.za_size, "v": c.zv_size}
        f = {"t": c.ft_size, "a": c.fa_size, "v": c.fv_size}
        drop = {"t": c.zt_dropout, "a": c.za_dropout, "v": c.zv_dropout}
        self.encoders = nn.ModuleDict({s: nn.LSTM(widths[s], z[s], batch_first=True) for s in self.order})
        self.encoder_out = nn.ModuleDict({s: nn.Linear(z[s], z[s]) for s in self.order})
        self.to_zy = nn.Linear(self.fusion.out_dim, c.zy_size)
        self.to_fy = factor_net(c.zy_size, c.fy_size, c.zy_dropout)
        self.to_f = nn.ModuleDict({s: factor_net(z[s], f[s], drop[s]) for s in self.order})
        self.decoders = nn.ModuleDict({s: SequenceDecoder(c.fy_size + f[s], widths[s]) for s in self.order})
        self.head = mlp(c.fy_size, c.fy_size, 1, c.fy_to_y_dropout)
        self.feature_dims = {"m": c.fy_size, **{s: f[s] for s in self.order}}

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        check_modalities(modalities, cls.name)
        refuse_unaligned(data, modalities, "MFM")

    def forward(self, batch) -> ModelOutput:
        sequences, lengths = aligned_sequences(self, batch)
        steps = int(lengths.max())
        sequences = {s: x[:, :steps] for s, x in sequences.items()}
        last, memory = self.fusion(sequences, lengths)
        zy = self.to_zy(torch.cat([last[s] for s in self.order] + [memory], dim=-1))
        codes = {s: self.encoder_out[s](at_last_step(self.encoders[s](sequences[s])[0], lengths)) for s in self.order}
        fy = self.to_fy(zy)
        factors = {s: self.to_f[s](codes[s]) for s in self.order}
        prediction = self.head(fy).squeeze(-1)
        extras = {}
        if self.training:
            extras = {
                "reconstructed": {s: self.decoders[s](torch.cat([fy, factors[s]], dim=-1), steps) for s in self.order},
                "reconstruction_targets": sequences,
                "valid_steps": valid_positions(lengths, steps),
                "latents": {"y": zy, **codes},
            }
        return ModelOutput(predictions={"m": prediction}, features={"m": fy, **factors}, extras=extras)

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return self.text_and_other_groups(c.lr_text, c.lr_other, c.weight_decay)

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        c = self.config
        weights = {"t": c.recon_t_weight, "a": c.recon_a_weight, "v": c.recon_v_weight}
        return [RegressionL1("m"), SequenceReconstruction({s: weights[s] for s in self.order}), GaussianPriorMMD(c.mmd_weight)]
