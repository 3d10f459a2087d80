"""DMD, Decoupled Multimodal Distilling (Li, Wang, Cui; CVPR 2023, "Decoupled Multimodal
Distilling for Emotion Recognition").

Structure follows the authors' repository mdswyz/DMD: ``trains/singleTask/model/dmd.py`` (the
network), ``trains/singleTask/DMD.py`` (the loss composition), ``trains/singleTask/distillnets/``
(the two graph-distillation units, built in ``run.py`` with their priors and sizes),
``trains/singleTask/HingeLoss.py`` and the ``dmd`` section of ``config/config.json``.

1. Each modality's sequence (text: the text encoder's token states after dropout
   ``text_dropout``; audio, vision: the frames) is zero-padded or cut to a fixed length
   (``text_length``/``audio_length``/``video_length``: the reference's files hold 50 positions)
   and projected to ``d`` (``model_dim``) by a bias-free 1-D convolution (kernel ``conv_kernel_*``,
   no padding): ``X_s`` ``(d, L_s)`` with ``L_s = length − kernel + 1``.
2. Decoupling: a modality-exclusive code ``s_s = E^s_s X_s`` (one bias-free 1x1 convolution per
   modality) and a modality-irrelevant code ``c_s = E^c X_s`` (one shared by all); a decoder
   ``D_s([s_s; c_s])`` reconstructs ``X_s`` and ``E^s_s`` re-encodes the reconstruction (cycle).
   ``c_s`` flattened -> ``Linear(d·L_s → d)`` gives the vectors of the label-margin hinge.
3. Homogeneous space (``c``): per modality, the flattened ``c_s`` -> ``Linear(d·L_s → d)``
   (its output is the modality's representation in the homogeneous graph), ReLU, dropout,
   ``Linear(d → d·L_s)`` plus the input, ``Linear(d·L_s → 1)`` = a prediction. Each ``c_s`` also
   runs through its own self-attention transformer (MulT's, ``layers`` levels); the last
   positions, concatenated (``3d``), feed a residual head with its own prediction.
4. Heterogeneous space (``s``): MulT's crossmodal transformers on the exclusive codes (each
   target attends to each other modality, a memory transformer of ``max(layers, 3)`` levels over
   the ``2d`` concatenation), last position, a residual head per modality with a prediction.
5. Fusion: ``σ(W_s h_s)`` of each modality's heterogeneous vector and ``σ(W_c c)`` of the
   homogeneous one, concatenated (``9d``), a residual head -> ``ŷ``.
6. Two graph-distillation units (``msakit/objectives/graph_distillation.py``) over the
   modalities' predictions and representations in each space: homogeneous (``g = 64``, prior
   favouring text -> vision and text -> audio), heterogeneous (``g = 32``, prior adding vision ->
   audio).

Loss (the reference's ``DMD.do_train``): the L1 of the fused prediction and of the seven
auxiliary predictions (3 homogeneous, 3 heterogeneous, the homogeneous fusion), each weight 1;
``0.05·(homogeneous GD prediction distillation + regulariser)``; ``0.05·(heterogeneous GD
prediction + cosine representation distillation + regulariser)``; ``0.1·(reconstruction + cycle
MSE)``; ``0.01·(label-margin hinge + orthogonality)`` (``msakit/objectives/decoupling.py``). One
Adam for every parameter (text encoder and graph units included, ``lr`` 1e-4), gradients
value-clipped to 0.6 after every backward, one step per 10 batches (``update_epochs`` ->
``train.grad_accumulation``).

Modalities: text, audio and vision (the graphs, priors and fusion are over the three); other
sets are refused. Layouts: aligned and unaligned files both work, since every sequence is padded
or cut to its fixed length (as the reference's files are); for MMSA's unaligned files set the
reference's unaligned lengths (``audio_length=375 video_length=500``, MOSEI 500/500).

Parameters (``tests/test_models_2024a.py`` rebuilds the reference's count from its layer list):
MOSI configuration (d = 50, 10 heads, 4 levels, kernels 5, 50 positions) with MOSI's sizes (text
768, audio 5, vision 20): the reference, without BERT and with its two graph units, has 4,750,732
trainable parameters; this model without its text encoder 4,405,582. The difference, 345,150, is
exactly the reference's three ``proj_cosine_*`` layers (``Linear(2300 → 50)`` each), whose
outputs enter no loss; they are not built. Output ``(B,)`` (the reference ``(B, 1)``).

Deliberate differences from the reference:
- Text comes from any BERT-family encoder (the packaged MiniLM by default), fine-tuned at ``lr``
  as the reference fine-tunes BERT; the projection reads its hidden size instead of 768. Token
  states past a sample's text are zeroed before padding to ``text_length`` (the reference feeds
  BERT's states of the padding tokens), so a prediction does not depend on the batch.
- The orthogonality loss takes the cosine between ``s_s`` and ``c_s`` over the ``d`` features at
  each frame of each sample (as DLF's trainer, built on this code, does). DMD's trainer passes
  ``(L, B, d)`` tensors to ``CosineEmbeddingLoss``, whose reduction axis for 3-D inputs is not
  the feature axis and which current PyTorch refuses.
- The homogeneous unit's representation-distillation term, computed and never added by the
  reference, is not computed (its edge network still reads the representations).
- The reference's ``ReduceLROnPlateau`` schedule is not used (the shared trainer keeps one
  learning rate, early stopping and best-epoch selection on validation MAE, the reference's
  validation L1 ``Loss``); its config's ``weight_decay`` is never passed to its optimiser, so it is
  0 here.
- CH-SIMS: the reference has no configuration for it; MOSI's is used.
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
from msakit.models.base import GradientClipping, InputDims, ModelOutput, MSAModel
from msakit.models.mult import CrossmodalTransformer
from msakit.objectives import RegressionL1
from msakit.objectives.decoupling import AuxiliaryL1, CosineOrthogonality, ExtrasMSE, LabelMarginHinge
from msakit.objectives.graph_distillation import GraphDistillationLoss, GraphDistillationUnit, edge_prior
from msakit.settings import setting

ORDER = ("t", "v", "a")  # the reference's order (l, v, a) of graph vertices and fused parts
CROSS_ORDER = {"t": ("a", "v"), "a": ("t", "v"), "v": ("t", "a")}  # sources of each target, as the reference


@dataclass
class DMDConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    model_dim: int = 50  # d (dst_feature_dim_nheads[0])
    heads: int = 10
    layers: int = setting(4, min=1, doc="crossmodal/self-attention levels (nlevels); memory transformers use max(layers, 3)")
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
    gd_size_homo: int = setting(64, min=1, doc="hidden size of the homogeneous graph-distillation unit")
    gd_size_hetero: int = setting(32, min=1, doc="hidden size of the heterogeneous graph-distillation unit")
    distill_weight: float = setting(0.05, min=0.0, doc="weight of each graph-distillation loss")
    decoupling_weight: float = setting(0.1, min=0.0, doc="weight of the reconstruction and cycle MSE")
    margin_weight: float = setting(0.01, min=0.0, doc="weight of the label-margin hinge and the orthogonality loss")
    grad_clip: float = setting(0.6, min=0.0, doc="clip every gradient value to [-v, v] after each backward; 0 = off")
    lr: float = 1e-4
    weight_decay: float = 0.0

    def validate(self) -> None:
        if self.model_dim % self.heads:
            raise ConfigError(f"model.model_dim={self.model_dim} must be divisible by model.heads={self.heads}")
        for s, name in (("t", "text"), ("a", "audio"), ("v", "video")):
            if getattr(self, f"{name}_length") < getattr(self, f"conv_kernel_{s}"):
                raise ConfigError(
                    f"model.{name}_length={getattr(self, f'{name}_length')} is shorter than model.conv_kernel_{s}="
                    f"{getattr(self, f'conv_kernel_{s}')}; raise the length or lower the kernel"
                )


def fixed_length(x: torch.Tensor, lengths: torch.Tensor, length: int) -> torch.Tensor:
    """``(B, T, D)`` -> ``(B, length, D)``: positions past each row's length zeroed, then the
    sequence cut or zero-padded to ``length`` (the reference's fixed-length files)."""
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
    x = (x * valid[..., None].to(x.dtype))[:, :length]
    return F.pad(x, (0, 0, 0, length - x.shape[1])) if x.shape[1] < length else x


def fixed_length_inputs(model: MSAModel, batch, text_dropout: float) -> dict[str, torch.Tensor]:
    """Each modality's sequence at its fixed length, ``(B, L, D)``; text after dropout."""
    c = model.config
    states = model.text_model.token_states(batch.text_ids, batch.text_mask)
    states = F.dropout(states, text_dropout, model.training)
    return {
        "t": fixed_length(states, batch.text_mask.sum(dim=1), c.text_length),
        "a": fixed_length(batch.audio, batch.audio_lengths, c.audio_length),
        "v": fixed_length(batch.vision, batch.vision_lengths, c.video_length),
    }


class ResidualHead(nn.Module):
    """``h = W_2 dropout(ReLU(W_1 x)) + x``, ``ŷ = W_o h``; returns ``(W_1 x, h, ŷ)``."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.proj1, self.proj2, self.out = nn.Linear(dim, hidden), nn.Linear(hidden, dim), nn.Linear(dim, 1)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        first = self.proj1(x)
        h = self.proj2(F.dropout(F.relu(first), self.dropout, self.training)) + x
        return first, h, self.out(h).squeeze(-1)


def require_text_audio_vision(name: str, modalities: tuple[str, ...], why: str) -> None:
    if set(modalities) != {"t", "a", "v"}:
        raise ConfigError(f"{name} {why}: it needs data.modalities=t,a,v, got {','.join(modalities) or 'none'}")


class DecoupledBase(MSAModel):
    """What DMD and DLF share: fixed-length inputs, convolutional projections, the decoders and
    the invariant-code vectors of the hinge; subclasses build the encoders and heads."""

    def _build_projections(self, text_encoder: TextEncoder | None) -> dict[str, int]:
        c, d = self.config, self.config.model_dim
        if text_encoder is None:
            raise ValueError(f"{type(self).__name__} needs a text encoder")
        self.text_model = text_encoder
        in_dims = {"t": text_encoder.hidden_size, "a": self.dims.audio_dim, "v": self.dims.vision_dim}
        kernels = {"t": c.conv_kernel_t, "a": c.conv_kernel_a, "v": c.conv_kernel_v}
        lengths = {"t": c.text_length, "a": c.audio_length, "v": c.video_length}
        # As the reference: no projection where a modality already has d features.
        self.projections = nn.ModuleDict({s: nn.Conv1d(k, d, kernels[s], bias=False) for s, k in in_dims.items() if k != d})
        self.steps = {s: lengths[s] - (kernels[s] if s in self.projections else 1) + 1 for s in ORDER}
        self.decoders = nn.ModuleDict({s: nn.Conv1d(2 * d, d, 1, bias=False) for s in ORDER})
        self.align = nn.ModuleDict({s: nn.Linear(d * self.steps[s], d) for s in ORDER})
        return self.steps

    def _project(self, batch) -> dict[str, torch.Tensor]:
        """Each modality projected, channel-first ``(B, d, L_s)`` as the reference."""
        inputs = fixed_length_inputs(self, batch, self.config.text_dropout)
        return {s: self.projections[s](inputs[s].transpose(1, 2)) if s in self.projections else inputs[s].transpose(1, 2) for s in ORDER}

    def _full(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return [{"name": "all", "params": [p for p in self.parameters() if p.requires_grad], "lr": c.lr, "weight_decay": c.weight_decay}]

    def gradient_clipping(self) -> GradientClipping | None:
        # The reference clips gradient values after every backward, inside its accumulation loop.
        return GradientClipping("value", self.config.grad_clip, when="backward") if self.config.grad_clip > 0 else None


@register_model
class DMD(DecoupledBase):
    name = "dmd"
    config_class = DMDConfig
    # mdswyz/DMD config.json, "dmd" (update_epochs 10 -> one optimiser step per 10 batches).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 16, "grad_accumulation": 10, "early_stop": 10}},
        "mosei": {
            "model": {
                "model_dim": 30, "heads": 6, "conv_kernel_a": 1, "conv_kernel_v": 3, "text_dropout": 0.3, "attn_dropout": 0.4,
                "attn_dropout_a": 0.0, "embed_dropout": 0.0,
            },
            "train": {"batch_size": 16, "grad_accumulation": 10, "early_stop": 10},
        },
        "sims": {"train": {"batch_size": 16, "grad_accumulation": 10, "early_stop": 10}},
    }
    TEST_OVERRIDES = {"model_dim": 8, "heads": 2, "layers": 1, "conv_kernel_t": 1, "conv_kernel_a": 3, "conv_kernel_v": 3,
                      "text_length": 16, "audio_length": 24, "video_length": 24, "text_dropout": 0.1, "embed_dropout": 0.0,
                      "output_dropout": 0.0, "gd_size_homo": 8, "gd_size_hetero": 8, "lr": 3e-3}

    def __init__(self, config: DMDConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        self._check_modalities(dims.modalities)
        c, d = config, config.model_dim
        steps = self._build_projections(text_encoder)
        self.specific = nn.ModuleDict({s: nn.Conv1d(d, d, 1, bias=False) for s in ORDER})
        self.invariant = nn.Conv1d(d, d, 1, bias=False)
        key_dropout = {"t": c.attn_dropout, "a": c.attn_dropout_a, "v": c.attn_dropout_v}
        transformer = lambda dim, dropout, layers: CrossmodalTransformer(  # noqa: E731
            dim, c.heads, layers, dropout, c.relu_dropout, c.res_dropout, c.embed_dropout, c.attn_mask
        )
        self.invariant_attention = nn.ModuleDict({s: transformer(d, key_dropout[s], c.layers) for s in ORDER})
        self.invariant_head = ResidualHead(3 * d, 3 * d, c.output_dropout)
        self.crossmodal = nn.ModuleDict({f"{s}_with_{o}": transformer(d, key_dropout[o], c.layers) for s in ORDER for o in CROSS_ORDER[s]})
        self.memory = nn.ModuleDict({s: transformer(2 * d, c.attn_dropout, max(c.layers, 3)) for s in ORDER})
        self.homo_heads = nn.ModuleDict({s: ResidualHead(d * steps[s], d, c.output_dropout) for s in ORDER})
        self.hetero_heads = nn.ModuleDict({s: ResidualHead(2 * d, 2 * d, c.output_dropout) for s in ORDER})
        self.gates = nn.ModuleDict({**{s: nn.Linear(2 * d, 2 * d) for s in ORDER}, "c": nn.Linear(3 * d, 3 * d)})
        self.fusion_head = ResidualHead(9 * d, 9 * d, c.output_dropout)
        self.graph_homo = GraphDistillationUnit(3, d, c.gd_size_homo)
        self.graph_hetero = GraphDistillationUnit(3, 2 * d, c.gd_size_hetero)
        self.feature_dims = {"m": 9 * d, "t": 2 * d, "a": 2 * d, "v": 2 * d}

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        require_text_audio_vision("DMD", modalities, "distils between text, audio and vision over graphs of the three")

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        cls._check_modalities(modalities)

    def forward(self, batch) -> ModelOutput:
        projected = self._project(batch)  # (B, d, L_s)
        specific = {s: self.specific[s](projected[s]) for s in ORDER}
        invariant = {s: self.invariant(projected[s]) for s in ORDER}
        seq_s = {s: specific[s].transpose(1, 2) for s in ORDER}  # (B, L_s, d)
        seq_c = {s: invariant[s].transpose(1, 2) for s in ORDER}
        logits, homo_repr, hetero_repr = {}, {}, {}
        attended = [self.invariant_attention[s](seq_c[s], self._full(seq_c[s]))[:, -1] for s in ORDER]
        invariant_fused = torch.cat(attended, dim=-1)
        _, _, logits["c"] = self.invariant_head(invariant_fused)
        # Heterogeneous space: crossmodal transformers on the exclusive codes.
        last = {}
        for s in ORDER:
            x = seq_s[s]
            h = torch.cat([self.crossmodal[f"{s}_with_{o}"](x, self._full(x), seq_s[o], self._full(seq_s[o])) for o in CROSS_ORDER[s]], dim=-1)
            last[s] = self.memory[s](h, self._full(h))[:, -1]
            _, hetero_repr[s], logits[f"{s}_hetero"] = self.hetero_heads[s](last[s])
        gated = [torch.sigmoid(self.gates[s](last[s])) for s in ORDER] + [torch.sigmoid(self.gates["c"](invariant_fused))]
        fused = torch.cat(gated, dim=-1)
        _, _, prediction = self.fusion_head(fused)
        features = {"m": fused, **{s: last[s] for s in ORDER}}
        if not self.training:  # what only the losses read is not computed for predictions
            return ModelOutput(predictions={"m": prediction}, features=features)
        # Homogeneous space: a residual head on each flattened invariant sequence.
        for s in ORDER:
            homo_repr[s], _, logits[f"{s}_homo"] = self.homo_heads[s](seq_c[s].flatten(1))
        reconstructed = {s: self.decoders[s](torch.cat([specific[s], invariant[s]], dim=1)) for s in ORDER}
        cycled = {s: self.specific[s](reconstructed[s]) for s in ORDER}
        vectors = {s: self.align[s](invariant[s].flatten(1)) for s in ORDER}
        homo = self.graph_homo(torch.stack([logits[f"{s}_homo"] for s in ORDER]), torch.stack([homo_repr[s] for s in ORDER]))
        hetero = self.graph_hetero(torch.stack([logits[f"{s}_hetero"] for s in ORDER]), torch.stack([hetero_repr[s] for s in ORDER]))
        return ModelOutput(
            predictions={"m": prediction},
            features=features,
            extras={
                "logits": logits, "projected": projected, "reconstructed": reconstructed, "specific": seq_s, "invariant": seq_c,
                "specific_channels": specific, "cycled": cycled, "invariant_vectors": vectors, "graph_homo": homo, "graph_hetero": hetero,
            },
        )

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        c = self.config
        objectives: list[nn.Module] = [
            RegressionL1("m"),
            AuxiliaryL1({k: 1.0 for k in ("t_homo", "v_homo", "a_homo", "t_hetero", "v_hetero", "a_hetero", "c")}),
        ]
        if c.distill_weight > 0:
            # run.py: homogeneous prior softmax([0,0,1,0,1,0]/0.25), heterogeneous softmax([0,0,1,0,1,1]/0.25),
            # loss weights [logit 1, repr 10], L1 metric; the homogeneous representation term is not added.
            objectives.append(GraphDistillationLoss("graph_homo", edge_prior([0, 0, 1, 0, 1, 0]), c.distill_weight, repr_metric=None, name="gd_homo"))
            objectives.append(GraphDistillationLoss("graph_hetero", edge_prior([0, 0, 1, 0, 1, 1]), c.distill_weight, repr_metric="cosine", name="gd_hetero"))
        if c.decoupling_weight > 0:
            objectives.append(ExtrasMSE(ORDER, "reconstructed", "projected", c.decoupling_weight, "recon"))
            objectives.append(ExtrasMSE(ORDER, "cycled", "specific_channels", c.decoupling_weight, "cycle"))
        if c.margin_weight > 0:
            objectives.append(LabelMarginHinge(ORDER, c.margin_weight))
            objectives.append(CosineOrthogonality(ORDER, c.margin_weight))
        return objectives


__all__ = ["DMD", "DMDConfig", "DecoupledBase", "ResidualHead", "fixed_length", "fixed_length_inputs"]
