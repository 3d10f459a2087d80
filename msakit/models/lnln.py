"""LNLN, the Language-dominated Noise-resistant Learning Network (Zhang, Chen, Huang, Zhou, Qian,
Sun, Li; NeurIPS 2024, "Towards Robust Multimodal Sentiment Analysis with Incomplete Data").

Structure follows the authors' repository github:Haoyu-ha/LNLN, ``models/lnln.py`` with its
layers in ``models/basic_layers.py``, the losses in ``core/losses.py``, the missing-data
protocol in ``core/dataset.py`` and the settings in ``configs/train_{mosi,mosei,sims}.yaml``.
LNLN is ALMT (``msakit/models/almt.py``) with language made robust to missing data; every
ALMT layer is shared from that file, not copied:

1. Feature extraction, as ALMT's embedding (``embedding_depth`` = 2 here): each modality ->
   Linear -> ``token_length`` learned tokens + positions -> pre-norm transformer -> the 8
   tokens ``h_s``.
2. Dominance-modality correction (DMC): a completeness check (a transformer with one learned
   token over ``h_t``, then Linear(d, d/2), LeakyReLU(0.1), Linear(d/2, 1), sigmoid) scores the
   language's completeness ``w``; a proxy dominant feature ``h_p`` is generated from a learned
   8 x d input (ones at start) and ``h_a``, ``h_v`` by a transformer with 8 learned tokens
   (their outputs), passed through a gradient-reversal layer, and
   ``h_d = (1 − w)·h_p + w·h_t``. An effectiveness discriminator (Linear(d, 64), LeakyReLU(0.1),
   Linear(64, 2)) tells ``h_d``'s tokens from the complete input's ``h_t`` tokens.
3. Dominance-modality-based multimodal learning (DMML): ALMT's adaptive hyper-modality learning
   and cross-modal fusion with ``h_d`` in place of the language tokens; the prediction is a
   Linear of the mean of the fusion's 8 target outputs (not its extra token, as the reference).
4. Reconstructor: one transformer per modality (no tokens) rebuilding the complete input's
   ``h_s`` from the incomplete one; used only by its loss (the reference never feeds it forward).

Training (``train_missing``, on by default): each training batch is also seen with a random part
of each modality removed, at a rate drawn per sample and modality from U(0, 1) with a random
half of the samples kept complete (``msakit.data.random_missing``: frames zeroed as msakit's
``frames`` corruption, word pieces dropped as its ``words`` corruption); the prediction comes
from the incomplete input. Loss (``msakit.objectives.incomplete``):
``σ·MSE(ŷ, y) + α·L_cc + β·L_adv + γ·L_rec`` with the completeness target ``1 − r_t``
(α = 0.9, β = 0.8 (SIMS: 0.6), γ = 0.1, σ = 1). Evaluation takes the data as given: the
missing-rate table comes from ``msakit robustness`` (``frames``/``words``/``missing``), the same
corruption for every model.

Modalities and layouts: as ALMT (text plus audio and/or vision; aligned or unaligned files).

Parameters, checked in tests/test_models_2024b.py against a count built from the reference's
layer list: MOSI configuration (d = 128, 8 tokens, feature-extractor depth 2, DMC/reconstructor/
language-encoder depths 2, hyper-modality depth 3, fusion depth 2, 8 heads, position tables
for 50/375/500 positions) with MOSI's feature sizes (text 768, audio 5, vision 20): the
reference without its BERT has 6,483,012 trainable parameters; this model without its text
encoder the same 6,483,012; output shape ``(B,)`` (the reference ``(B, 1)``).

Deliberate differences from the reference:
- Text comes from any BERT-family encoder (default: the packaged MiniLM), fine-tuned.
- Missing text word pieces are dropped (the rest move left) instead of replaced by ``[UNK]``
  (id 100 of bert-base): the model gets no tokenizer, and dropping is what msakit's ``words``
  corruption does at evaluation. The reference re-draws the rates once per epoch with the
  same per-element draws each epoch (``np.random.seed`` fixed); here every batch draws anew.
- Padding is masked in the feature extractors (ALMT's difference, shared).
- With one of audio/vision, the proxy generator reads that one only (its position table is
  ``8·(1 + sources)`` long; 24 with both, as the reference) and one reconstructor per modality.
- The reference's AdamW (decoupled weight decay 1e-4) with warm-up + cosine schedule: the
  shared trainer's Adam with one group (``lr``, ALMT's, with its decoupled weight decay) and no
  schedule. 200 epochs as the reference, the best validation epoch kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msakit.data.random_missing import draw_missing_rates, drop_frames, drop_tokens
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.models._registry import register_model
from msakit.models.almt import ALMT, ALMTConfig, TokenTransformer
from msakit.models.base import InputDims, ModelOutput, require_text_plus_audio_or_vision
from msakit.objectives import RegressionMSE
from msakit.objectives.incomplete import CompleteReconstruction, CompletenessEstimation, EffectivenessAdversarial, reverse_gradient
from msakit.settings import setting


@dataclass
class LNLNConfig(ALMTConfig):
    embedding_depth: int = setting(2, min=1, doc="layers of each modality's feature extractor (feature_extractor.depth)")
    correction_depth: int = setting(2, min=1, doc="layers of the completeness check, the proxy generator and the reconstructors")
    correction_heads: int = setting(8, min=1, doc="heads of the completeness check, proxy generator and reconstructors")
    discriminator_hidden: int = setting(64, min=1, doc="hidden width of the effectiveness discriminator")
    train_missing: bool = setting(True, doc="train on a randomly incomplete copy of each batch (the paper's protocol)")
    completeness_weight: float = 0.9  # alpha
    adversarial_weight: float = 0.8  # beta
    reconstruction_weight: float = 0.1  # gamma
    sentiment_weight: float = 1.0  # sigma


@register_model
class LNLN(ALMT):
    name = "lnln"
    config_class = LNLNConfig
    # configs/train_{mosi,mosei,sims}.yaml: batch 64, lr 1e-4, weight decay 1e-4, 200 epochs, no
    # early stopping (the best validation epoch is kept); input_length -> the position tables.
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 64, "grad_accumulation": 1, "max_epochs": 200, "early_stop": 200}},
        "mosei": {"model": {"fusion_depth": 4, "audio_positions": 500},
                  "train": {"batch_size": 64, "grad_accumulation": 1, "max_epochs": 200, "early_stop": 200}},
        "sims": {"model": {"fusion_depth": 4, "adversarial_weight": 0.6, "text_positions": 39, "audio_positions": 400, "video_positions": 55},
                 "train": {"batch_size": 64, "grad_accumulation": 1, "max_epochs": 200, "early_stop": 200}},
    }
    TEST_OVERRIDES = {**ALMT.TEST_OVERRIDES, "embedding_depth": 1, "correction_depth": 1, "correction_heads": 2, "discriminator_hidden": 8}

    def __init__(self, config: LNLNConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims, text_encoder)
        c, d, n = config, config.model_dim, config.token_length
        block = lambda positions, tokens: TokenTransformer(positions, tokens, d, c.correction_depth, c.correction_heads, c.head_dim, d)  # noqa: E731
        self.completeness = block(n, 1)
        self.completeness_head = nn.Sequential(nn.Linear(d, d // 2), nn.LeakyReLU(0.1), nn.Linear(d // 2, 1), nn.Sigmoid())
        self.proxy_input = nn.Parameter(torch.ones(1, n, d))
        self.proxy = block(n * (1 + len(self.sources)), n)
        self.discriminator = nn.Sequential(nn.Linear(d, c.discriminator_hidden), nn.LeakyReLU(0.1), nn.Linear(c.discriminator_hidden, 2))
        self.reconstructor = nn.ModuleDict({s: block(n, 0) for s in ("t",) + self.sources})

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        require_text_plus_audio_or_vision(modalities, "LNLN corrects language, its dominant modality, with audio/vision")

    def _extract(self, ids, mask, audio, vision, batch) -> dict[str, torch.Tensor]:
        """The feature extractors' 8 tokens per modality (ALMT's embedding)."""
        n = self.config.token_length
        inputs = {"t": (self.text_model.token_states(ids, mask), mask.sum(dim=1))}
        if "a" in self.sources:
            inputs["a"] = (audio, batch.audio_lengths)
        if "v" in self.sources:
            inputs["v"] = (vision, batch.vision_lengths)
        return {s: self.embed[s](self.project[s](x), lengths)[:, :n] for s, (x, lengths) in inputs.items()}

    def forward(self, batch) -> ModelOutput:
        c, n = self.config, self.config.token_length
        b = batch.text_ids.shape[0]
        ids, mask, audio, vision = batch.text_ids, batch.text_mask, batch.audio, batch.vision
        rates = None
        if self.training and c.train_missing:
            rates = {s: draw_missing_rates(b, ids.device) for s in ("t",) + self.sources}
            ids, mask = drop_tokens(ids, mask, rates["t"])
            if "a" in self.sources:
                audio = drop_frames(audio, batch.audio_lengths, rates["a"])
            if "v" in self.sources:
                vision = drop_frames(vision, batch.vision_lengths, rates["v"])
        tokens = self._extract(ids, mask, audio, vision, batch)
        # Dominance-modality correction: how complete is language, and a proxy from audio/vision.
        w = self.completeness_head(self.completeness(tokens["t"])[:, 0]).squeeze(-1)
        proxy_input = torch.cat([self.proxy_input.expand(b, -1, -1)] + [tokens[s] for s in self.sources], dim=1)
        proxy = reverse_gradient(self.proxy(proxy_input)[:, :n])
        dominant = proxy * (1.0 - w)[:, None, None] + tokens["t"] * w[:, None, None]
        # ALMT's hyper-modality learning and fusion, led by the corrected language.
        language = self.language(dominant, keep_states=True)
        hyper = self.hyper.expand(b, -1, -1)
        for layer, h_d in zip(self.ahl, language):
            hyper = layer(h_d, tokens, hyper)
        fused = self.fusion.encode(hyper, language[-1])[:, 1:].mean(dim=1)
        output = ModelOutput(predictions={"m": self.regressor(fused).squeeze(-1)}, features={"m": fused})
        if self.training:
            complete = tokens if rates is None else self._extract(batch.text_ids, batch.text_mask, batch.audio, batch.vision, batch)
            order = ("t",) + self.sources
            output.extras.update(
                completeness=w,
                dominant_missing_rate=torch.zeros_like(w) if rates is None else rates["t"],
                effectiveness_logits=self.discriminator(torch.cat([dominant, complete["t"]]).reshape(-1, dominant.shape[-1])),
                reconstructed=torch.cat([self.reconstructor[s](tokens[s]) for s in order], dim=1),
                complete=torch.cat([complete[s] for s in order], dim=1),
            )
        return output

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        c = self.config
        sentiment = RegressionMSE("m") if c.sentiment_weight == 1.0 else _Weighted(RegressionMSE("m"), c.sentiment_weight)
        return [sentiment, CompletenessEstimation(c.completeness_weight), EffectivenessAdversarial(c.adversarial_weight),
                CompleteReconstruction(c.reconstruction_weight)]


class _Weighted(nn.Module):
    """An objective's every term times ``weight``."""

    def __init__(self, objective: nn.Module, weight: float):
        super().__init__()
        self.objective, self.weight = objective, weight

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        return {k: self.weight * v for k, v in self.objective(output, batch, epoch).items()}


__all__ = ["LNLN", "LNLNConfig"]
