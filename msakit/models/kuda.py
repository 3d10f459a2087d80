"""KuDA, the Knowledge-guided Dynamic modality Attention fusion framework (Feng, Lin, Wang, Yang,
Ye, Huang, Zhang; Findings of EMNLP 2024, "Knowledge-Guided Dynamic Modality Attention Fusion
Framework for Multimodal Sentiment Analysis").

Structure follows the authors' repository github:MKMaS-GUET/KuDA: ``models/Encoder_KIAdapter.py``
(unimodal encoders with knowledge-inject adapters and their sentiment decoders),
``models/DyRoutFusion_CLS.py`` (the dynamic-attention fusion, its NCE terms and the output
head), ``models/OverallModal.py`` and ``train.py`` / ``pretrain.py`` (the two stages), settings
from ``opts.py`` and ``pretrain.py``.

1. Unimodal encoders. Text: the text encoder (fine-tuned) with every layer's hidden states;
   four adapters read the embeddings plus the states of layers ``N/4, N/2, 3N/4, N−1`` (3, 6, 9,
   11 of BERT-base's 12), each input LayerNorm-ed and added to the previous adapter's output;
   the encoding is ``[last states; adapter output]`` (2H wide). Audio, vision: Linear to
   ``encoder_dim`` (128) + a learned position table -> a post-norm transformer
   (``encoder_layers`` = 4, 8 heads, feed-forward ``encoder_dim/2``, GELU, dropout 0.2) keeping
   each layer's input and output; ``encoder_layers − 1`` adapters read those states the same way;
   the encoding is ``[LN(last); adapter output]``. An adapter: Linear down to half, a 2-layer
   transformer (4 heads, feed-forward a quarter, dropout 0.1), Linear up, plus its input.
   Each modality has a sentiment decoder: mean over positions -> MLP (2k -> k/2 -> k/4 -> k/8
   -> 1, GELU) = the unimodal sentiment ``u_s``.
2. Knowledge-inject pretraining (stage 1, ``knowledge_pretraining``): each unimodal encoder and
   its decoder trained alone to predict sentiment from its modality (MSE), as runs of their own
   inside the one ``msakit train`` (``RUN/stage_knowledge_{t,a,v}``, resumable; each stage's
   results in ``results.json["stages"]``). Stage 2 loads them and freezes the adapters and
   decoders (as ``OverallModal.preprocess_model``); the rest trains.
3. Dynamic attention fusion: every modality's sequence is brought to the text's length
   (a Linear over positions) and to ``fusion_dim`` (256; a Linear over features); the source
   starts as their sum and passes ``fusion_layers`` (3) blocks. In a block, one cross-modal
   transformer per modality (source queries that modality; post-norm, 8 heads of 64,
   feed-forward ``fusion_ff_dim`` = 512, dropout 0.3) gives ``c_s``; during training they are
   combined as ``LN(Σ_s LN_s(c_s + r_s·c_s))`` with the per-sample sentiment ratio
   ``r_s = exp(−k(u_s − y)²) / Σ_s' exp(−k(u_s' − y)²)`` (k = 0.1): the modality whose own
   sentiment is nearest the sample's gets the largest share (the dynamic choice of the dominant
   modality); at evaluation, where no label exists, ``LN(Σ_s c_s)``, as the reference. Then
   self-attention and a pre-norm feed-forward, each with a residual and LayerNorm.
   Note (kept as the reference has it, tested): ``LN_s((1 + r_s)·c_s) = LN_s(c_s)`` up to the
   LayerNorm's eps, so the ratio barely changes the forward pass; what the training path adds
   over the evaluation path is the per-modality LayerNorms' learned affine, which evaluation
   skips. ``extras["ratio"]`` holds the ratios for inspection.
4. Output: mean over positions -> 256 -> 64 -> 32 -> 1 (GELU). Loss: ``MSE + 0.1·Σ_s NCE_s``,
   ``NCE_s`` the CPC score between each modality's mean aligned sequence and the mean fused
   source (``msakit.objectives.infomax.cpc_nce``, shared with MMIM; KuDA's has no predictor
   network).

Modalities: text plus audio and/or vision (the fusion is sized to the text's length; the
ratio is normalised over the modalities used). Layouts: aligned and unaligned files. Every
sequence is padded with zeros (or cut) to its fixed length (``text_positions``,
``audio_positions``, ``video_positions``, the reference's ``seq_lens``), as the reference's
fixed-length files are, so a sample's prediction does not depend on its batch.

Parameters, checked in tests/test_models_2024b.py against a count built from the reference's
layer list: MOSI's configuration (lengths 50/375/500 for text/audio/vision; hidden 256,
feed-forward 512, 3 fusion layers) with MOSI's feature sizes (text 768, audio 5, vision 20),
without BERT: the reference has 20,212,932 parameters and this model the same 20,212,932; in
stage 2, 9,364,739 of them (the adapters and decoders) are frozen and 10,848,193 train, in
both; output shape ``(B,)`` (the reference ``(B, 1)``).

Deliberate differences from the reference:
- Knowledge comes from the run's own training split, not an external knowledge base: the
  reference pretrains on CH-SIMS v2 (and its English translation for MOSI/MOSEI) with its
  unimodal labels; here each stage learns the training split's unimodal label of its modality
  where every split has one (CH-SIMS, msakit's synthetic data) and the multimodal label
  otherwise (MOSI, MOSEI). Each stage keeps its best validation epoch (the reference saves the
  last). msakit is offline and one data path: a user with another annotated corpus trains on
  it by pointing ``--data`` at it.
- Text comes from any BERT-family encoder (default: the packaged MiniLM); the adapter layers
  are placed at the same fractions of its depth. Token type ids are not passed (all zero).
- The reference's AdamW + warm-up/cosine schedule: the shared trainer's Adam with L2 weight
  decay per group, no schedule, early stopping on validation MAE (off by the defaults: 50
  epochs, as the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.almt import Attention
from msakit.models.base import InputDims, ModelOutput, MSAModel, PretrainingStage, require_text_plus_audio_or_vision
from msakit.objectives import RegressionMSE
from msakit.objectives.infomax import CPCObjective, cpc_nce
from msakit.settings import setting


@dataclass
class KuDAConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    encoder_dim: int = 128  # proj_fea_dim of the audio/vision encoders
    encoder_layers: int = setting(4, min=2, doc="layers of the audio/vision encoders (their adapters: one fewer)")
    encoder_heads: int = setting(8, min=1)
    encoder_dropout: float = 0.2
    adapter_layers: int = setting(2, min=1, doc="transformer layers inside each knowledge adapter")
    adapter_heads: int = setting(4, min=1)
    adapter_dropout: float = 0.1
    fusion_dim: int = 256  # hidden_size
    fusion_ff_dim: int = 512  # ffn_size
    fusion_layers: int = setting(3, min=1)
    fusion_heads: int = setting(8, min=1)
    fusion_head_dim: int = 64
    fusion_dropout: float = 0.3
    ratio_sharpness: float = setting(0.1, gt=0.0, doc="k in the sentiment ratio exp(-k (u_s - y)^2)")
    nce_weight: float = 0.1
    text_positions: int = setting(50, min=2, doc="text length (seq_lens[0]): shorter padded, longer cut")
    audio_positions: int = setting(375, min=1, doc="audio length: shorter padded with zeros, longer cut")
    video_positions: int = setting(500, min=1, doc="vision length: shorter padded with zeros, longer cut")
    knowledge_pretraining: bool = setting(True, doc="stage 1: pretrain each unimodal encoder on sentiment, then freeze its adapters and decoder")
    knowledge_epochs_t: int = setting(100, min=1, doc="epochs of the text knowledge stage (pretrain.py n_epochs)")
    knowledge_epochs_a: int = setting(50, min=1)
    knowledge_epochs_v: int = setting(100, min=1)
    knowledge_lr: float = 1e-4
    knowledge_weight_decay: float = setting(1e-3, min=0.0)
    lr: float = 3e-5
    weight_decay: float = setting(1e-5, min=0.0)
    stage: str = setting("", choices=("", "t", "a", "v"), doc="set by the trainer: the unimodal knowledge model of one modality")

    def validate(self) -> None:
        if self.encoder_dim % 2 or self.encoder_dim % self.encoder_heads or (self.encoder_dim // 2) % self.adapter_heads:
            raise ConfigError(f"model.encoder_dim={self.encoder_dim} must be even and divisible by model.encoder_heads={self.encoder_heads}, "
                              f"its half by model.adapter_heads={self.adapter_heads}")


class Adapter(nn.Module):
    """MixDomainAdapter: ``x + up(T(down(x)))`` with a small post-norm transformer ``T``."""

    def __init__(self, dim: int, heads: int, layers: int, dropout: float):
        super().__init__()
        half = dim // 2
        self.down, self.up = nn.Linear(dim, half), nn.Linear(half, dim)
        self.layers = nn.ModuleList(
            [nn.TransformerEncoderLayer(half, heads, half // 2, dropout, activation="gelu", batch_first=True) for _ in range(layers)])

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        hidden = self.down(x)
        for layer in self.layers:
            hidden = layer(hidden, src_key_padding_mask=padding)
        return self.up(hidden) + x


class KnowledgeAdapters(nn.Module):
    """Adapters reading a chain of hidden states: ``h = A_1(LN(s_0 + s_{i_1}))``, then
    ``h = A_k(LN(h + s_{i_k}))``; one LayerNorm shared, as the reference."""

    def __init__(self, dim: int, count: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.adapters = nn.ModuleList([Adapter(dim, heads, layers, dropout) for _ in range(count)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, states: list[torch.Tensor], picks: list[int], padding: torch.Tensor) -> torch.Tensor:
        hidden = states[0]
        for adapter, i in zip(self.adapters, picks):
            hidden = adapter(self.norm(hidden + states[i]), padding)
        return hidden


class FrameKnowledgeEncoder(nn.Module):
    """Audio/vision: projection + positions + post-norm transformer, adapters on its states."""

    def __init__(self, in_dim: int, positions: int, c: KuDAConfig):
        super().__init__()
        d = c.encoder_dim
        self.project = nn.Linear(in_dim, d)
        self.position = nn.Parameter(torch.zeros(1, positions, d))
        self.layers = nn.ModuleList(
            [nn.TransformerEncoderLayer(d, c.encoder_heads, d // 2, c.encoder_dropout, activation="gelu", batch_first=True) for _ in range(c.encoder_layers)])
        self.knowledge = KnowledgeAdapters(d, c.encoder_layers - 1, c.adapter_heads, c.adapter_layers, c.adapter_dropout)
        self.width = 2 * d

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.project(x) + self.position
        states = [x]
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=padding)
            states.append(x)
        specific = self.knowledge.norm(x)
        general = self.knowledge(states, list(range(1, len(self.layers))), padding)
        return torch.cat([specific, general], dim=-1)


class TextKnowledgeAdapters(nn.Module):
    """Text: four adapters on the text encoder's hidden states at layers N/4, N/2, 3N/4, N−1."""

    def __init__(self, hidden: int, num_layers: int, c: KuDAConfig):
        super().__init__()
        self.picks = [max(1, num_layers // 4), max(1, num_layers // 2), max(1, 3 * num_layers // 4), max(1, num_layers - 1)]
        self.knowledge = KnowledgeAdapters(hidden, 4, c.adapter_heads, c.adapter_layers, c.adapter_dropout)
        self.width = 2 * hidden

    def forward(self, states: tuple[torch.Tensor, ...], padding: torch.Tensor) -> torch.Tensor:
        return torch.cat([states[-1], self.knowledge(list(states), self.picks, padding)], dim=-1)


def sentiment_decoder(width: int) -> nn.Sequential:
    """Classifier: (mean over positions) 2k -> k/2 -> k/4 -> k/8 -> 1 with GELU, k = width/2."""
    k = width // 2
    sizes = [width, k // 2, k // 4, k // 8]
    layers: list[nn.Module] = []
    for i, o in zip(sizes, sizes[1:]):
        layers += [nn.Linear(i, o), nn.GELU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 1))


class CrossTransformer(nn.Module):
    """Post-norm: ``t = LN(t + Attn(t, s, s))``, ``t = LN(t + FF(LN(t)))``."""

    def __init__(self, dim: int, ff_dim: int, heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.attention = Attention(dim, heads, head_dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = FeedForward(dim, ff_dim, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = self.norm1(self.dropout(self.attention(target, source, source)) + target)
        return self.norm2(self.ff(target) + target)


class FeedForward(nn.Module):
    def __init__(self, dim: int, ff_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.net = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x))


class DynamicAttentionBlock(nn.Module):
    """One fusion layer: per-modality cross-attention combined by the sentiment ratio, then
    self-attention and a feed-forward, each ``LN(x + f(x))`` (eps 1e-6)."""

    def __init__(self, modalities: tuple[str, ...], c: KuDAConfig):
        super().__init__()
        d = c.fusion_dim
        self.cross = nn.ModuleDict({s: CrossTransformer(d, c.fusion_ff_dim, c.fusion_heads, c.fusion_head_dim, c.fusion_dropout) for s in modalities})
        self.norms = nn.ModuleDict({s: nn.LayerNorm(d) for s in modalities})
        self.norm = nn.LayerNorm(d)
        self.self_attention = Attention(d, c.fusion_heads, c.fusion_head_dim)
        self.ff = FeedForward(d, c.fusion_ff_dim, 0.0)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d, eps=1e-6) for _ in range(3))

    def forward(self, source: torch.Tensor, hidden: dict[str, torch.Tensor], ratio: dict[str, torch.Tensor] | None) -> torch.Tensor:
        cross = {s: f(hidden[s], source) for s, f in self.cross.items()}
        if ratio is not None:
            routed = self.norm(sum(self.norms[s](c + ratio[s][:, None, None] * c) for s, c in cross.items()))
        else:
            routed = self.norm(sum(cross.values()))
        source = self.norm1(source + routed)
        source = self.norm2(source + self.self_attention(source, source, source))
        return self.norm3(source + self.ff(source))


def sentiment_ratio(unimodal: dict[str, torch.Tensor], target: torch.Tensor, k: float) -> dict[str, torch.Tensor]:
    """``r_s = exp(−k(u_s − y)²) / Σ_s' exp(−k(u_s' − y)²)`` per sample (``calculate_ratio_senti``)."""
    closeness = {s: torch.exp(-k * (u - target).pow(2)) for s, u in unimodal.items()}
    total = sum(closeness.values())
    return {s: v / total for s, v in closeness.items()}


def fixed_length(x: torch.Tensor, lengths: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, T, D)`` padded with zeros or cut to ``n`` positions; padding mask ``(B, n)`` (True = pad)."""
    x = x[:, :n] if x.shape[1] >= n else F.pad(x, (0, 0, 0, n - x.shape[1]))
    return x, torch.arange(n, device=x.device)[None, :] >= lengths.to(x.device).clamp(max=n)[:, None]


@register_model
class KuDA(MSAModel):
    name = "kuda"
    config_class = KuDAConfig
    # opts.py (main stage: batch 32, lr 3e-5, weight decay 1e-5, 50 epochs) and pretrain.py
    # (knowledge stage: lr 1e-4, weight decay 1e-3, epochs 100/100/50 for T/V/A); seq_lens:
    # SIMS [39, 55, 400] (T, V, A); MOSI/MOSEI: MMSA's unaligned_50 lengths.
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 32, "grad_accumulation": 1, "max_epochs": 50, "early_stop": 50}},
        "mosei": {"model": {"audio_positions": 500}, "train": {"batch_size": 32, "grad_accumulation": 1, "max_epochs": 50, "early_stop": 50}},
        "sims": {"model": {"text_positions": 39, "audio_positions": 400, "video_positions": 55},
                 "train": {"batch_size": 32, "grad_accumulation": 1, "max_epochs": 50, "early_stop": 50}},
    }
    TEST_OVERRIDES = {"encoder_dim": 16, "encoder_layers": 2, "encoder_heads": 2, "adapter_layers": 1, "adapter_heads": 2, "fusion_dim": 16,
                      "fusion_ff_dim": 32, "fusion_layers": 1, "fusion_heads": 2, "fusion_head_dim": 8, "text_positions": 16,
                      "audio_positions": 20, "video_positions": 24, "knowledge_epochs_t": 1, "knowledge_epochs_a": 1, "knowledge_epochs_v": 1,
                      "lr": 2e-3, "knowledge_lr": 2e-3}

    def __init__(self, config: KuDAConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c = config
        if c.stage:
            if dims.modalities != (c.stage,):
                raise ConfigError(f"model.stage={c.stage}: the knowledge model of one modality needs data.modalities={c.stage}, got {','.join(dims.modalities)}")
        else:
            require_text_plus_audio_or_vision(dims.modalities, "KuDA fuses audio/vision into the text's sequence")
        self.modalities = dims.modalities
        positions = {"t": c.text_positions, "a": c.audio_positions, "v": c.video_positions}
        self.positions = positions
        self.encoders = nn.ModuleDict()
        if "t" in self.modalities:
            if text_encoder is None:
                raise ValueError("KuDA with text needs a text encoder")
            self.text_model = text_encoder
            self.encoders["t"] = TextKnowledgeAdapters(text_encoder.hidden_size, int(text_encoder.backbone.config.num_hidden_layers), c)
        for s, in_dim in (("a", dims.audio_dim), ("v", dims.vision_dim)):
            if s in self.modalities:
                self.encoders[s] = FrameKnowledgeEncoder(in_dim, positions[s], c)
        self.decoders = nn.ModuleDict({s: sentiment_decoder(e.width) for s, e in self.encoders.items()})
        self.feature_dims = {s: e.width for s, e in self.encoders.items()}
        if c.stage:
            return
        d, length = c.fusion_dim, c.text_positions
        self.align_length = nn.ModuleDict({s: nn.Linear(positions[s], length) for s in self.modalities})
        self.align_dim = nn.ModuleDict({s: nn.Linear(e.width, d) for s, e in self.encoders.items()})
        self.fusion = nn.ModuleList([DynamicAttentionBlock(self.modalities, c) for _ in range(c.fusion_layers)])
        self.head = nn.Sequential(nn.Linear(d, 64), nn.GELU(), nn.Linear(64, 32), nn.GELU(), nn.Linear(32, 1))
        self.feature_dims["m"] = d
        if c.knowledge_pretraining:  # stage 2 trains with the injected knowledge frozen (preprocess_model)
            for p in list(self.decoders.parameters()) + [p for e in self.encoders.values() for p in e.knowledge.adapters.parameters()]:
                p.requires_grad_(False)

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        if not modalities:
            raise ConfigError("KuDA needs text plus audio and/or vision")

    # ---- encoding ------------------------------------------------------------------------
    def _encode(self, batch) -> dict[str, torch.Tensor]:
        encoded = {}
        if "t" in self.modalities:
            n = self.positions["t"]
            ids, mask = batch.text_ids[:, :n], batch.text_mask[:, :n]
            if ids.shape[1] < n:
                pad = int(getattr(self.text_model.backbone.config, "pad_token_id", 0) or 0)
                ids = F.pad(ids, (0, n - ids.shape[1]), value=pad)
                mask = F.pad(mask, (0, n - mask.shape[1]), value=0)
            states = self.text_model.backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            encoded["t"] = self.encoders["t"](states, ~mask.bool())
        for s, frames, lengths in (("a", batch.audio, batch.audio_lengths), ("v", batch.vision, batch.vision_lengths)):
            if s in self.modalities:
                x, padding = fixed_length(frames, lengths, self.positions[s])
                encoded[s] = self.encoders[s](x, padding)
        return encoded

    def forward(self, batch) -> ModelOutput:
        encoded = self._encode(batch)
        unimodal = {s: self.decoders[s](h.mean(dim=1)).squeeze(-1) for s, h in encoded.items()}
        features = {s: h.mean(dim=1) for s, h in encoded.items()}
        if self.config.stage:
            s = self.config.stage
            return ModelOutput(predictions={"m": unimodal[s]}, features={"m": features[s]})
        hidden = {s: self.align_length[s](self.align_dim[s](h).transpose(1, 2)).transpose(1, 2) for s, h in encoded.items()}
        ratio = sentiment_ratio(unimodal, batch.labels["m"], self.config.ratio_sharpness) if self.training else None
        source = sum(hidden.values())
        for block in self.fusion:
            source = block(source, hidden, ratio)
        fused = source.mean(dim=1)
        output = ModelOutput(predictions={"m": self.head(fused).squeeze(-1), **unimodal}, features={"m": fused, **features})
        if self.training:
            output.extras["cpc"] = {s: cpc_nce(h.mean(dim=1), fused) for s, h in hidden.items()}
            output.extras["ratio"] = ratio
        return output

    # ---- training ------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict]:
        c = self.config
        lr, decay = (c.knowledge_lr, c.knowledge_weight_decay) if c.stage else (c.lr, c.weight_decay)
        return [{"name": "all", "params": [p for p in self.parameters() if p.requires_grad], "lr": lr, "weight_decay": decay}]

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        if self.config.stage or self.config.nce_weight == 0:
            return [RegressionMSE("m")]
        return [RegressionMSE("m"), CPCObjective(self.config.nce_weight)]

    def pretraining_stages(self) -> list[PretrainingStage]:
        c = self.config
        if c.stage or not c.knowledge_pretraining:
            return []
        epochs = {"t": c.knowledge_epochs_t, "a": c.knowledge_epochs_a, "v": c.knowledge_epochs_v}
        # The reference pretrains T, V, A in that order.
        return [PretrainingStage(f"knowledge_{s}", (s,), model={"stage": s}, train={"max_epochs": epochs[s], "early_stop": epochs[s]}, label=s)
                for s in ("t", "v", "a") if s in self.modalities]

    def adopt_pretrained(self, name: str, model: MSAModel) -> None:
        s = model.config.stage
        if not isinstance(model, KuDA) or name != f"knowledge_{s}" or s not in self.modalities:
            raise ValueError(f"adopt_pretrained({name!r}): expected KuDA's knowledge model of one of {self.modalities}")
        self.encoders[s].load_state_dict(model.encoders[s].state_dict())
        self.decoders[s].load_state_dict(model.decoders[s].state_dict())
        if s == "t":
            self.text_model.load_state_dict(model.text_model.state_dict())


__all__ = ["KuDA", "KuDAConfig"]
