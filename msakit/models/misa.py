"""MISA (Hazarika, Zimmermann, Poria, ACM MM 2020): modality-invariant and -specific representations.

Structure followed: thuiar/MMSA 2.2.1 ``src/MMSA/models/singleTask/MISA.py`` with the loss
composition of ``src/MMSA/trains/singleTask/MISA.py`` and the MISA section of
``src/MMSA/config/config_regression.json`` (``use_cmd_sim = true``, ``rnncell = lstm``).

Per modality, an utterance vector:
  text   the mean of the text encoder's last hidden states over the real tokens;
  audio, vision   two bidirectional LSTMs with the input size as hidden size, a LayerNorm over
         the first one's outputs between them; the final states of both, both directions
         (``4·D``).
Each is projected to ``u_s = LayerNorm(ReLU(W_s x_s))`` of size ``h`` (``hidden_dim``), then
split into a private code ``h^p_s = σ(P_s u_s)`` (one encoder per modality) and a shared code
``h^c_s = σ(S u_s)`` (one encoder for all). A one-layer Transformer (2 heads) runs over the
``2n`` codes (privates then shared, in the order t, v, a); their outputs, concatenated, go
through ``Linear(2n·h → n·h) → Dropout → ReLU → Linear(n·h → 1)``. Decoders
``D_s(h^p_s + h^c_s)`` reconstruct ``u_s``.

Loss (MMSA's trainer): ``MSE(ŷ, y) + diff_weight·L_diff + sim_weight·L_CMD + recon_weight·L_recon``,
the three auxiliary losses in ``msakit/objectives/subspace.py``. One Adam (``lr`` for every
parameter, the text encoder included), an optimiser step every 2 batches, gradients clipped to
``[−grad_clip, grad_clip]`` (value clipping).

Modalities: any two or three of t, a, v (the similarity and difference losses act between
modalities); a single modality is refused.

Parameter count, bert-base-uncased text encoder, MOSI sizes (D_a = 5, D_v = 20, h = 128):
reference 110,620,273 (its layers rebuilt with their shapes; BERT with the pooler it loads);
msakit 110,026,093. The difference, 594,180, is exactly what the reference builds and never uses:
the BERT pooler (590,592), ``tlayer_norm`` (LayerNorm(1536): 3,072) and ``sp_discriminator``
(Linear(128 → 4): 516; its output enters no loss with ``use_cmd_sim``). Every other tensor has
the reference's shape; ``tests/test_misa_mag_mmim.py`` checks the non-text part layer by layer.

Deliberate differences from the reference:
- Audio and vision LSTMs run over each modality's own valid frames; the reference packs them
  with the *text* lengths (``mask_len``), which on unaligned files truncates or pads them
  (on aligned files the two agree).
- The unused modules above are not built.
- Gradient value clipping happens once, before each optimiser step, on the accumulated
  gradient; the reference clips after every backward (twice per step with 2 accumulated batches).
- ``weight_decay``: the reference's config lists 5e-5 for MOSEI/SIMS but its trainer never
  passes it to Adam; here it is 0 for every dataset, as the reference actually trains, and
  settable.
- The text encoder is any BERT-family directory (default: the packaged MiniLM); the model's
  text projection reads its hidden size instead of assuming 768.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from msakit.settings import setting
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import GradientClipping, InputDims, ModelOutput, MSAModel
from msakit.objectives import RegressionMSE
from msakit.objectives.subspace import CMDSimilarity, DifferenceLoss, ReconstructionLoss

ORDER = ("t", "v", "a")  # the reference's order of codes in the fusion Transformer


@dataclass
class MISAConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    hidden_dim: int = 128  # h: projected, shared and private codes (reference hidden_size)
    dropout: float = 0.2  # in the fusion head
    transformer_heads: int = 2
    transformer_ff_dim: int = 2048  # nn.TransformerEncoderLayer's default, as the reference
    transformer_dropout: float = 0.1
    cmd_moments: int = setting(5, min=1, doc="K of the central moment discrepancy")
    sim_weight: float = 0.3
    diff_weight: float = 0.1
    recon_weight: float = 1.0
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float = setting(0.8, min=0.0, doc="clip each gradient value to [-c, c] before a step; 0 = off")

    def validate(self) -> None:
        if self.hidden_dim % self.transformer_heads:
            raise ConfigError(
                f"model.hidden_dim={self.hidden_dim} must be divisible by model.transformer_heads={self.transformer_heads}"
            )


class StackedBiLSTM(nn.Module):
    """``(B, T, D)`` frames -> ``(B, 4·D)``: two bidirectional LSTMs (hidden ``D``) with a
    LayerNorm over the first one's outputs; the final states of both layers and directions."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.rnn1 = nn.LSTM(in_dim, in_dim, bidirectional=True, batch_first=True)
        self.rnn2 = nn.LSTM(2 * in_dim, in_dim, bidirectional=True, batch_first=True)
        self.layer_norm = nn.LayerNorm(2 * in_dim)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.to("cpu", torch.int64)
        packed = pack_padded_sequence(frames, lengths, batch_first=True, enforce_sorted=False)
        outputs, (h1, _) = self.rnn1(packed)
        padded, _ = pad_packed_sequence(outputs, batch_first=True)
        packed = pack_padded_sequence(self.layer_norm(padded), lengths, batch_first=True, enforce_sorted=False)
        _, (h2, _) = self.rnn2(packed)
        # (2 directions, B, D) each -> (B, [h1_fwd, h2_fwd, h1_bwd, h2_bwd]) as the reference.
        return torch.cat((h1, h2), dim=2).permute(1, 0, 2).reshape(frames.shape[0], -1)


def _projection(in_dim: int, out_dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.LayerNorm(out_dim))


@register_model
class MISA(MSAModel):
    name = "misa"
    config_class = MISAConfig
    FEATURE_DIM_FIELDS = {"t": "hidden_dim", "a": "hidden_dim", "v": "hidden_dim"}
    # MMSA config_regression.json, MISA section (update_epochs = 2 is the accumulation).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 16, "grad_accumulation": 2}},
        "mosei": {"model": {"dropout": 0.5, "diff_weight": 0.3, "sim_weight": 0.8}, "train": {"batch_size": 64, "grad_accumulation": 2}},
        "sims": {
            "model": {"dropout": 0.0, "diff_weight": 0.3, "sim_weight": 1.0, "recon_weight": 0.8, "grad_clip": 1.0},
            "train": {"batch_size": 64, "grad_accumulation": 2},
        },
    }

    def __init__(self, config: MISAConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        self._check_modalities(dims.modalities)
        c, h = config, config.hidden_dim
        self.order = tuple(s for s in ORDER if s in dims.modalities)
        n = len(self.order)
        projections = {}
        if "t" in dims.modalities:
            if text_encoder is None:
                raise ValueError("MISA with text needs a text encoder")
            self.text_model = text_encoder
            projections["t"] = _projection(text_encoder.hidden_size, h)
        frame_dims = {"a": dims.audio_dim, "v": dims.vision_dim}
        self.sequence_encoders = nn.ModuleDict({s: StackedBiLSTM(frame_dims[s]) for s in ("a", "v") if s in dims.modalities})
        for s in ("a", "v"):
            if s in dims.modalities:
                projections[s] = _projection(4 * frame_dims[s], h)
        self.project = nn.ModuleDict(projections)
        self.private = nn.ModuleDict({s: nn.Sequential(nn.Linear(h, h), nn.Sigmoid()) for s in self.order})
        self.shared = nn.Sequential(nn.Linear(h, h), nn.Sigmoid())
        self.reconstruct = nn.ModuleDict({s: nn.Linear(h, h) for s in self.order})
        layer = nn.TransformerEncoderLayer(h, c.transformer_heads, c.transformer_ff_dim, c.transformer_dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.fusion = nn.Sequential(nn.Linear(2 * n * h, n * h), nn.Dropout(c.dropout), nn.ReLU())
        self.regressor = nn.Linear(n * h, 1)
        self.feature_dims = {"m": n * h, **{s: h for s in self.order}}

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise ConfigError(
                f"MISA needs at least two modalities (its similarity and difference losses act between modalities), "
                f"got data.modalities={','.join(modalities) or 'none'}; use t,a,v or any two of them"
            )

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        cls._check_modalities(modalities)

    def _utterances(self, batch) -> dict[str, torch.Tensor]:
        out = {}
        if "t" in self.dims.modalities:
            states = self.text_model.token_states(batch.text_ids, batch.text_mask)
            mask = batch.text_mask.to(states.dtype).unsqueeze(-1)
            out["t"] = (states * mask).sum(dim=1) / mask.sum(dim=1)
        if "a" in self.dims.modalities:
            out["a"] = self.sequence_encoders["a"](batch.audio, batch.audio_lengths)
        if "v" in self.dims.modalities:
            out["v"] = self.sequence_encoders["v"](batch.vision, batch.vision_lengths)
        return out

    def forward(self, batch) -> ModelOutput:
        utterances = self._utterances(batch)
        projected = {s: self.project[s](utterances[s]) for s in self.order}
        private = {s: self.private[s](projected[s]) for s in self.order}
        shared = {s: self.shared(projected[s]) for s in self.order}
        combined = {s: private[s] + shared[s] for s in self.order}
        reconstructed = {s: self.reconstruct[s](combined[s]) for s in self.order}
        codes = torch.stack([private[s] for s in self.order] + [shared[s] for s in self.order], dim=1)  # (B, 2n, h)
        fused = self.fusion(self.transformer(codes).flatten(1))
        prediction = self.regressor(fused).squeeze(-1)
        return ModelOutput(
            predictions={"m": prediction},
            features={"m": fused, **combined},
            extras={"projected": projected, "private": private, "shared": shared, "reconstructed": reconstructed},
        )

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return [{"name": "all", "params": [p for p in self.parameters() if p.requires_grad], "lr": c.lr, "weight_decay": c.weight_decay}]

    def gradient_clipping(self) -> GradientClipping | None:
        # The reference clips gradient values before each optimiser step.
        return GradientClipping("value", self.config.grad_clip, when="step") if self.config.grad_clip > 0 else None

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        c = self.config
        objectives: list[nn.Module] = [RegressionMSE("m")]
        if c.diff_weight > 0:
            objectives.append(DifferenceLoss(self.order, c.diff_weight))
        if c.sim_weight > 0:
            objectives.append(CMDSimilarity(self.order, c.sim_weight, c.cmd_moments))
        if c.recon_weight > 0:
            objectives.append(ReconstructionLoss(self.order, c.recon_weight))
        return objectives


__all__ = ["MISA", "MISAConfig", "StackedBiLSTM"]
