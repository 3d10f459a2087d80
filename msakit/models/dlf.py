"""DLF, Disentangled-Language-Focused multimodal representation learning (Wang, Zhou, Liang,
Zhao, Yu, Song, Liang, Lv; AAAI 2025, "DLF: Disentangled-Language-Focused Multimodal Sentiment
Analysis").

Structure follows the authors' repository pwang322/DLF: ``trains/singleTask/model/DLF.py`` (the
network), ``trains/singleTask/DLF.py`` (the loss composition), ``trains/singleTask/HingeLoss.py``
and the ``DLF`` section of ``config/config.json``. DLF is built on DMD's code (``dmd.py`` here),
whose input stage and decoupling losses it shares.

1. Each modality's sequence (text: the text encoder's token states after ``text_dropout``) is
   zero-padded or cut to a fixed length and projected to ``d`` by a bias-free 1-D convolution:
   ``X_s`` ``(L_s, d)``.
2. Disentanglement: a modality-specific code ``s_s = E^s_s(X_s)`` (a MulT self-attention
   transformer of ``layers`` levels per modality) and a modality-shared code ``c_s = E^c(X_s)``
   (one such transformer shared by all). A decoder (1x1 convolution) reconstructs ``X_s`` from
   ``[s_s; c_s]``, ``E^s_s`` re-encodes the reconstruction (cycle); ``c_s`` flattened ->
   ``Linear(d·L_s → d)`` gives the label-margin hinge's vectors.
3. Shared space: each ``c_s`` through its own self-attention transformer, the last positions
   concatenated (``3d``) -> a residual head with its own prediction.
4. Language-Focused Attractor (LFA), in the specific space: language attends to itself
   (``s_t`` through a ``layers``-level transformer) and queries each of audio and vision
   (crossmodal transformer, text queries, audio/vision keys and values, then a 3-level
   transformer); the last position of each is the language-focused vector of t, a and v, each
   into a residual head with a prediction.
5. Fusion: ``σ(W_s h_s)`` of the three heads' hidden vectors and ``σ(W_c c)`` of the shared one,
   concatenated (``6d``), a residual head -> ``ŷ``.

Loss (the reference's ``DLF.do_train``): L1 of ``ŷ`` + L1 of the shared prediction + 3·L1 of the
language-focused text prediction + L1 of the audio and vision ones;
``0.1·(reconstruction + cycle MSE) + 0.01·(label-margin hinge + orthogonality)``
(``msakit/objectives/decoupling.py``). One Adam for every parameter (``lr`` 1e-4, the text
encoder included), gradients value-clipped to 0.6 after every backward, a step per 10 batches.

Modalities: text, audio and vision (the attractor's queries are text, its keys audio and
vision; the hinge and fusion are over the three); other sets are refused. Layouts: aligned and
unaligned files (sequences are padded or cut to their fixed lengths; for MMSA's unaligned MOSI
files set ``audio_length=375 video_length=500``).

Parameters (``tests/test_models_2024a.py`` rebuilds the reference's count from its layer list):
MOSI configuration (d = 50, 10 heads, 2 levels, kernels 5, 50 positions) with MOSI's sizes (text
768, audio 5, vision 20): the reference without BERT has 2,923,308 trainable parameters, this
model without its text encoder 1,628,605. The difference, 1,294,703, is exactly what the
reference builds and never uses: the crossmodal transformers ``trans_a_with_l``,
``trans_a_with_v``, ``trans_v_with_l``, ``trans_v_with_a`` (DMD's, not used by the attractor), the
three ``proj_cosine_*`` layers, and the homogeneous branch ``proj1/proj2/out_layer_*_low`` whose
predictions the reference computes and returns to no loss. Output ``(B,)`` (reference ``(B, 1)``).

Deliberate differences from the reference:
- Text comes from any BERT-family encoder (the packaged MiniLM by default), fine-tuned at
  ``lr``; the projection reads its hidden size. Token states past a sample's text are zeroed
  before padding to ``text_length`` (the reference feeds BERT's states of padding tokens).
- The unused modules above are not built nor run.
- The reference's ``ReduceLROnPlateau`` schedule is not used (one learning rate, early stopping
  and best-epoch selection on validation MAE); its config's ``weight_decay`` never reaches its
  optimiser, so it is 0 here.
- CH-SIMS: the reference has no configuration for it; MOSI's is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput
from msakit.models.dmd import ORDER, DecoupledBase, ResidualHead, require_text_audio_vision
from msakit.models.mult import CrossmodalTransformer
from msakit.objectives import RegressionL1
from msakit.objectives.decoupling import AuxiliaryL1, CosineOrthogonality, ExtrasMSE, LabelMarginHinge
from msakit.settings import setting


@dataclass
class DLFConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    model_dim: int = 50  # d (dst_feature_dim_nheads[0])
    heads: int = 10
    layers: int = setting(2, min=1, doc="levels of the encoders and of the attractor's language transformers (nlevels)")
    conv_kernel_t: int = setting(5, min=1, doc="text projection kernel")
    conv_kernel_a: int = setting(5, min=1, doc="audio projection kernel")
    conv_kernel_v: int = setting(5, min=1, doc="vision projection kernel")
    text_length: int = setting(50, min=1, doc="text positions: token states are zero-padded or cut to this many")
    audio_length: int = setting(50, min=1, doc="audio frames kept (zero-padded or cut); 375 for MMSA's unaligned MOSI")
    video_length: int = setting(50, min=1, doc="vision frames kept (zero-padded or cut); 500 for MMSA's unaligned MOSI")
    text_dropout: float = 0.5
    attn_dropout: float = 0.3
    attn_dropout_a: float = 0.2
    attn_dropout_v: float = 0.0
    relu_dropout: float = 0.0
    embed_dropout: float = 0.2
    res_dropout: float = 0.0
    output_dropout: float = 0.5
    attn_mask: bool = True
    language_weight: float = setting(3.0, min=0.0, doc="weight of the language-focused text prediction's L1")
    decoupling_weight: float = setting(0.1, min=0.0, doc="weight of the reconstruction and cycle MSE")
    margin_weight: float = setting(0.01, min=0.0, doc="weight of the label-margin hinge and the orthogonality loss")
    orthogonality_width: int = setting(0, min=0, doc="features per cosine in the orthogonality loss; 0 = model_dim (MOSEI's reference: 10)")
    grad_clip: float = setting(0.6, min=0.0, doc="clip every gradient value to [-v, v] after each backward; 0 = off")
    lr: float = 1e-4
    weight_decay: float = 0.0

    def validate(self) -> None:
        if self.model_dim % self.heads:
            raise ConfigError(f"model.model_dim={self.model_dim} must be divisible by model.heads={self.heads}")
        if self.orthogonality_width and self.model_dim % self.orthogonality_width:
            raise ConfigError(f"model.model_dim={self.model_dim} must be divisible by model.orthogonality_width={self.orthogonality_width}")
        for s, name in (("t", "text"), ("a", "audio"), ("v", "video")):
            if getattr(self, f"{name}_length") < getattr(self, f"conv_kernel_{s}"):
                raise ConfigError(
                    f"model.{name}_length={getattr(self, f'{name}_length')} is shorter than model.conv_kernel_{s}="
                    f"{getattr(self, f'conv_kernel_{s}')}; raise the length or lower the kernel"
                )


@register_model
class DLF(DecoupledBase):
    name = "dlf"
    config_class = DLFConfig
    # pwang322/DLF config.json, "DLF" (update_epochs 10 -> one optimiser step per 10 batches).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 16, "grad_accumulation": 10, "early_stop": 10}},
        "mosei": {
            "model": {
                "conv_kernel_t": 3, "conv_kernel_a": 3, "conv_kernel_v": 3, "text_dropout": 0.1, "attn_dropout": 0.5,
                "attn_dropout_a": 0.0, "embed_dropout": 0.0, "orthogonality_width": 10,
            },
            "train": {"batch_size": 16, "grad_accumulation": 10, "early_stop": 10},
        },
        "sims": {"train": {"batch_size": 16, "grad_accumulation": 10, "early_stop": 10}},
    }
    TEST_OVERRIDES = {"model_dim": 8, "heads": 2, "layers": 1, "conv_kernel_t": 1, "conv_kernel_a": 3, "conv_kernel_v": 3,
                      "text_length": 16, "audio_length": 24, "video_length": 24, "text_dropout": 0.1, "embed_dropout": 0.0,
                      "output_dropout": 0.0, "lr": 3e-3}

    def __init__(self, config: DLFConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        self._check_modalities(dims.modalities)
        c, d = config, config.model_dim
        self._build_projections(text_encoder)
        key_dropout = {"t": c.attn_dropout, "a": c.attn_dropout_a, "v": c.attn_dropout_v}
        transformer = lambda dropout, layers: CrossmodalTransformer(  # noqa: E731
            d, c.heads, layers, dropout, c.relu_dropout, c.res_dropout, c.embed_dropout, c.attn_mask
        )
        self.specific = nn.ModuleDict({s: transformer(key_dropout[s], c.layers) for s in ORDER})
        self.shared = transformer(c.attn_dropout, c.layers)
        self.shared_attention = nn.ModuleDict({s: transformer(key_dropout[s], c.layers) for s in ORDER})
        self.shared_head = ResidualHead(3 * d, 3 * d, c.output_dropout)
        # The attractor: text queries audio / vision; then memory transformers (t: layers, a/v: max(layers, 3)).
        self.language_with = nn.ModuleDict({s: transformer(key_dropout[s], c.layers) for s in ("a", "v")})
        self.memory = nn.ModuleDict({"t": transformer(c.attn_dropout, c.layers), **{s: transformer(c.attn_dropout, max(c.layers, 3)) for s in ("v", "a")}})
        self.focused_heads = nn.ModuleDict({s: ResidualHead(d, d, c.output_dropout) for s in ORDER})
        self.gates = nn.ModuleDict({**{s: nn.Linear(d, d) for s in ORDER}, "c": nn.Linear(3 * d, 3 * d)})
        self.fusion_head = ResidualHead(6 * d, 6 * d, c.output_dropout)
        self.feature_dims = {"m": 6 * d, "t": d, "a": d, "v": d}

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        require_text_audio_vision("DLF", modalities, "focuses text on audio and vision (its attractor queries both with text)")

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        cls._check_modalities(modalities)

    def forward(self, batch) -> ModelOutput:
        projected = self._project(batch)  # (B, d, L_s)
        sequences = {s: projected[s].transpose(1, 2) for s in ORDER}  # (B, L_s, d)
        specific = {s: self.specific[s](sequences[s], self._full(sequences[s])) for s in ORDER}
        shared = {s: self.shared(sequences[s], self._full(sequences[s])) for s in ORDER}
        logits = {}
        attended = [self.shared_attention[s](shared[s], self._full(shared[s]))[:, -1] for s in ORDER]
        shared_fused = torch.cat(attended, dim=-1)
        _, _, logits["c"] = self.shared_head(shared_fused)
        # Language-focused attractor: text attends to itself and queries audio and vision.
        s_t = specific["t"]
        streams = {"t": s_t}
        for s in ("a", "v"):
            streams[s] = self.language_with[s](s_t, self._full(s_t), specific[s], self._full(specific[s]))
        focused, hidden = {}, {}
        for s in ORDER:
            focused[s] = self.memory[s](streams[s], self._full(streams[s]))[:, -1]
            _, hidden[s], logits[f"{s}_focused"] = self.focused_heads[s](focused[s])
        gated = [torch.sigmoid(self.gates[s](hidden[s])) for s in ORDER] + [torch.sigmoid(self.gates["c"](shared_fused))]
        fused = torch.cat(gated, dim=-1)
        _, _, prediction = self.fusion_head(fused)
        features = {"m": fused, **focused}
        if not self.training:  # what only the losses read is not computed for predictions
            return ModelOutput(predictions={"m": prediction}, features=features)
        reconstructed = {s: self.decoders[s](torch.cat([specific[s], shared[s]], dim=-1).transpose(1, 2)).transpose(1, 2) for s in ORDER}
        cycled = {s: self.specific[s](reconstructed[s], self._full(reconstructed[s])) for s in ORDER}
        vectors = {s: self.align[s](shared[s].transpose(1, 2).flatten(1)) for s in ORDER}
        return ModelOutput(
            predictions={"m": prediction},
            features=features,
            extras={
                "logits": logits, "projected": sequences, "reconstructed": reconstructed, "specific": specific, "invariant": shared,
                "cycled": cycled, "invariant_vectors": vectors,
            },
        )

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        c = self.config
        objectives: list[nn.Module] = [
            RegressionL1("m"),
            AuxiliaryL1({"c": 1.0, "t_focused": c.language_weight, "v_focused": 1.0, "a_focused": 1.0}),
        ]
        if c.decoupling_weight > 0:
            objectives.append(ExtrasMSE(ORDER, "reconstructed", "projected", c.decoupling_weight, "recon"))
            objectives.append(ExtrasMSE(ORDER, "cycled", "specific", c.decoupling_weight, "cycle"))
        if c.margin_weight > 0:
            objectives.append(LabelMarginHinge(ORDER, c.margin_weight))
            objectives.append(CosineOrthogonality(ORDER, c.margin_weight, c.orthogonality_width))
        return objectives


__all__ = ["DLF", "DLFConfig"]
