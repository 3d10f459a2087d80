"""MMIM (Han, Chen, Poria, EMNLP 2021): hierarchical mutual-information maximisation.

Structure followed: thuiar/MMSA 2.2.1 ``src/MMSA/models/singleTask/MMIM.py`` (``RNNEncoder``,
``MMILB``, ``CPC``, ``Fusion``, ``MMIM``), the two-stage training of
``src/MMSA/trains/singleTask/MMIM.py`` and the ``mmim`` section of ``config_regression.json``.

Encoders: text, the first token's last hidden state ``x_t`` of a fine-tuned BERT-family encoder;
audio and vision, a one-layer bidirectional LSTM over the valid frames, the final states of
both directions, ``Linear(2·hidden → out)`` (``x_a``, ``x_v``). Fusion: ``[x_t; x_a; x_v]`` →
dropout → ``tanh(Linear → d)`` → ``tanh(Linear(d → d))`` = ``z`` (the fused feature) →
``Linear(d → 1)`` = ``ŷ``.

Mutual information (``msakit/objectives/infomax.py``): the modality-level lower bound (MMILB)
between text and vision and between text and audio, with its entropy term over a memory of
past batches; and CPC between the fused ``z`` and each modality. Loss::

    L1(ŷ, y) + α·Σ_s nce_s − β·(Σ_pairs lld + Σ_pairs H)        (stage 2: encoders, fusion, CPC)
    −Σ_pairs lld                                              (stage 1: the MMILB networks)

Optimiser groups (one Adam, per-group settings): the text encoder (``lr_text``), the MMILB
networks (``lr_mmilb``), everything else (``lr_main``); a step per batch; gradient norms
clipped to ``grad_clip`` separately for the MMILB networks and for the rest (the reference
clips each stage's backward). Non-text weight matrices are Xavier-normal initialised, as the
reference's trainer does. ``contrast = false`` trains on L1 alone (the reference switch).
The logged ``train_loss`` sums every term, the stage-1 ``mmilb_estimator`` included;
``train_l1_m`` is the task loss.

Modalities: text plus audio and/or vision (every MI term is anchored on text: t-v, t-a).

Parameter count, bert-base-uncased, MOSI sizes (D_a = 5, D_v = 20, defaults): reference
109,763,913 (its layers rebuilt with their shapes; BERT with its pooler), msakit 109,173,321; the difference is BERT's unused
pooler (590,592). ``tests/test_misa_mag_mmim.py`` checks the non-text part layer by layer.

Deliberate differences from the reference:
- **Two stages in one step.** The reference trains the MMILB networks for a whole epoch
  (stage 1, own Adam), then everything else for a whole epoch (stage 2). msakit's one trainer
  does one forward/backward per batch; the gradients are routed so that each parameter gets
  exactly its own stage's gradient (the estimator term on detached inputs; the encoder terms
  through the estimator with detached weights), i.e. the stages alternate per batch, on the
  same forward pass (same dropout mask), instead of per epoch. MOSEI's stage 1 on half the
  batches is not reproduced.
- The entropy projection is held at its initialisation, as in the reference (whose stage-2
  optimiser does not hold it and whose stage 1 gives it no gradient), but explicitly; where a
  class has too few samples for a non-singular covariance, the entropy term is 0 for that
  batch instead of ±inf.
- No ReduceLROnPlateau (patience 20 on the validation loss, factor 0.5): the shared trainer
  has no scheduler, and with early stopping after 8 epochs it would rarely act.
- ``add_va`` (a vision-audio MMILB, off in every reference config) is not offered.
- Audio/vision use their own valid lengths on aligned data too (msakit's reader gives aligned
  frames the text-mask lengths the reference uses there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from msakit.settings import setting
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.models._registry import register_model
from msakit.models.base import GradientClipping, InputDims, ModelOutput, MSAModel, require_text_plus_audio_or_vision
from msakit.objectives import RegressionL1
from msakit.objectives.infomax import CPC, MMILB, CPCObjective, MMILBEntropy, MMILBObjective


@dataclass
class MMIMConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    audio_hidden: int = 16  # d_ah
    video_hidden: int = 16  # d_vh
    audio_out: int = setting(16, min=4, doc="d_aout; the MMILB entropy projection has audio_out // 4 dims")
    video_out: int = setting(16, min=4, doc="d_vout; the MMILB entropy projection has video_out // 4 dims")
    bidirectional: bool = True
    fusion_dim: int = 128  # d_prjh
    fusion_dropout: float = 0.1  # dropout_prj
    contrast: bool = True  # False: L1 only (no CPC, no MMILB)
    cpc_weight: float = 0.1  # α
    mmilb_weight: float = 0.1  # β
    mem_size: int = setting(1, min=1, doc="batches of positive/negative samples kept for the entropy estimate")
    lr_text: float = 5e-5
    lr_main: float = 1e-3
    lr_mmilb: float = 1e-3
    weight_decay_text: float = 1e-4
    weight_decay_main: float = 1e-4
    weight_decay_mmilb: float = 1e-4
    grad_clip: float = setting(1.0, min=0.0, doc="clip the gradient norm of each stage's parameters; 0 = off")


class LSTMEncoder(nn.Module):
    """``(B, T, D)`` frames -> ``(B, out)``: a one-layer (bi)LSTM over the valid frames, the
    final hidden state of each direction, ``Linear``."""

    def __init__(self, in_dim: int, hidden: int, out: int, bidirectional: bool):
        super().__init__()
        self.rnn = nn.LSTM(in_dim, hidden, num_layers=1, bidirectional=bidirectional, batch_first=True)
        self.linear = nn.Linear((2 if bidirectional else 1) * hidden, out)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(frames, lengths.to("cpu", torch.int64), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.rnn(packed)
        return self.linear(torch.cat(list(h_n), dim=-1))  # (directions, B, hidden) -> (B, directions·hidden)


@register_model
class MMIM(MSAModel):
    name = "mmim"
    config_class = MMIMConfig
    FEATURE_DIM_FIELDS = {"a": "audio_out", "v": "video_out", "m": "fusion_dim"}
    # MMSA config_regression.json, mmim section (identical for MOSI, MOSEI and SIMS).
    DATASET_DEFAULTS = {kind: {"train": {"batch_size": 32, "grad_accumulation": 1}} for kind in ("mosi", "mosei", "sims")}

    def __init__(self, config: MMIMConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        self._check_modalities(dims.modalities)
        if text_encoder is None:
            raise ValueError("MMIM needs a text encoder")
        c = config
        self.text_model = text_encoder
        sizes = {"t": text_encoder.hidden_size}
        encoders = {}
        if "a" in dims.modalities:
            encoders["a"] = LSTMEncoder(dims.audio_dim, c.audio_hidden, c.audio_out, c.bidirectional)
            sizes["a"] = c.audio_out
        if "v" in dims.modalities:
            encoders["v"] = LSTMEncoder(dims.vision_dim, c.video_hidden, c.video_out, c.bidirectional)
            sizes["v"] = c.video_out
        self.sequence_encoders = nn.ModuleDict(encoders)
        self.pairs = tuple(("t", s) for s in ("v", "a") if s in dims.modalities)  # the reference's mi_tv, mi_ta
        self.mmilb = nn.ModuleDict({f"t{s}": MMILB(sizes["t"], sizes[s]) for _, s in self.pairs})
        self.cpc = nn.ModuleDict({s: CPC(sizes[s], c.fusion_dim) for s in dims.modalities})
        self.fusion = nn.Sequential(
            nn.Dropout(c.fusion_dropout), nn.Linear(sum(sizes.values()), c.fusion_dim), nn.Tanh(),
            nn.Linear(c.fusion_dim, c.fusion_dim), nn.Tanh(),
        )
        self.regressor = nn.Linear(c.fusion_dim, 1)
        self.feature_dims = {"m": c.fusion_dim, **sizes}
        text = {id(p) for p in self.text_model.parameters()}
        for p in self.parameters():
            if id(p) not in text and p.dim() > 1:
                nn.init.xavier_normal_(p)

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        require_text_plus_audio_or_vision(modalities, "MMIM's mutual-information terms pair text with audio and vision")

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        cls._check_modalities(modalities)

    def forward(self, batch) -> ModelOutput:
        h = {"t": self.text_model(batch.text_ids, batch.text_mask)}
        if "a" in self.dims.modalities:
            h["a"] = self.sequence_encoders["a"](batch.audio, batch.audio_lengths)
        if "v" in self.dims.modalities:
            h["v"] = self.sequence_encoders["v"](batch.vision, batch.vision_lengths)
        fused = self.fusion(torch.cat([h[s] for s in self.dims.modalities], dim=-1))
        prediction = self.regressor(fused).squeeze(-1)
        extras = {}
        if self.training and self.config.contrast:
            extras["cpc"] = {s: self.cpc[s](h[s], fused) for s in self.dims.modalities}
            extras["mmilb"] = {
                f"{x}{y}": (
                    self.mmilb[f"{x}{y}"].log_likelihood(h[x].detach(), h[y].detach()),  # stage 1: estimator only
                    self.mmilb[f"{x}{y}"].log_likelihood(h[x], h[y], frozen=True),  # stage 2: encoders only
                )
                for x, y in self.pairs
            }
            extras["mmilb_projected"] = {f"{x}{y}": self.mmilb[f"{x}{y}"].project(h[y], frozen=True) for x, y in self.pairs}
        return ModelOutput(predictions={"m": prediction}, features={"m": fused, **h}, extras=extras)

    def _groups(self) -> dict[str, list[nn.Parameter]]:
        text = list(self.text_model.parameters())
        mmilb = list(self.mmilb.parameters())
        taken = {id(p) for p in text + mmilb}
        return {"text": text, "mmilb": mmilb, "main": [p for p in self.parameters() if id(p) not in taken]}

    def parameter_groups(self) -> list[dict]:
        c = self.config
        settings = {"text": (c.lr_text, c.weight_decay_text), "mmilb": (c.lr_mmilb, c.weight_decay_mmilb), "main": (c.lr_main, c.weight_decay_main)}
        return [
            {"name": name, "params": params, "lr": settings[name][0], "weight_decay": settings[name][1]}
            for name, params in self._groups().items()
            if params
        ]

    def gradient_clipping(self) -> GradientClipping | None:
        # The reference clips the gradient norm of each stage's parameters before its step.
        if self.config.grad_clip <= 0:
            return None
        groups = self._groups()
        return GradientClipping("norm", self.config.grad_clip, when="step",
                                parameter_sets=(tuple(groups["mmilb"]), tuple(groups["text"] + groups["main"])))

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        c = self.config
        objectives: list[nn.Module] = [RegressionL1("m")]
        if c.contrast:
            objectives += [CPCObjective(c.cpc_weight), MMILBObjective(c.mmilb_weight), MMILBEntropy(c.mmilb_weight, c.mem_size)]
        return objectives
