"""Graph-MFN, MFN with a Dynamic Fusion Graph (Zadeh et al., ACL 2018, "Multimodal Language
Analysis in the Wild: CMU-MOSEI Dataset and Interpretable Dynamic Fusion Graph").

Structure follows MMSA 2.2.1 ``src/MMSA/models/singleTask/Graph_MFN.py`` (classes
``DynamicFusionGraph`` and ``Graph_MFN``), trained as ``trains/singleTask/Graph_MFN.py`` does
(L1 loss, one Adam at ``learning_rate``/``weight_decay``, a step per batch); per-dataset values
from the ``graph_mfn`` section of ``config_regression.json``.

MFN (``msakit/models/mfn.py``) with its delta-memory attention replaced by the **dynamic fusion
graph**. At each word-aligned step every modality's LSTM gives a singleton vertex
``ReLU(W_s [h_{t-1}; h_t])``; the graph has a vertex for every subset of two or more
modalities, each computed (Linear -> Linear, as the reference) from the vertices of its proper
subsets, each input scaled by an **efficacy** that a small network predicts from the singletons;
a top vertex ``τ`` reads every vertex, again scaled by efficacies. ``τ`` is what the multi-view
gated memory stores (the same ``GatedMemory`` as MFN's). The last hidden state of each LSTM
and the last memory go through Linear-ReLU-dropout-Linear to the prediction.

Modalities: two or three of t, a, v (the graph fuses modalities); word-aligned data only,
unaligned files are refused with the file to use.

Parameters, checked in tests/test_aligned_models.py against a count built from the
reference's layer list: MOSI configuration (hidden 256/32/256, memory 300, vertices 64) with
MOSI's aligned feature sizes (text 768, audio 5, vision 20): the reference has 2,319,280
trainable parameters, and this model without its text encoder has the same 2,319,280.

Deliberate differences from the reference:
- Text comes from a BERT-family encoder's token states (the packaged MiniLM by default),
  frozen by default as the reference's features; ``text_finetune=true`` fine-tunes it.
- Each sample stops at its last real token (the reference steps through the padding to 50).
- The graph and the parts of the memory that do not depend on the memory are computed for all
  steps at once (the same function as the reference's per-step loop); the efficacies are not
  copied to the CPU at every step (the reference records them for inspection).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, combinations

import torch
import torch.nn.functional as F
from torch import nn

from msakit.settings import setting
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.encoders.aligned import aligned_sequences, at_last_step, refuse_unaligned
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel
from msakit.models.mfn import GatedMemory, input_dims, mlp
from msakit.objectives import RegressionL1

PATTERN_WIDTH = 100  # the reference's fixed nn.Linear(100, inner_node_dim) core of every vertex


@dataclass
class GraphMFNConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    text_finetune: bool = setting(False, doc="False: the text encoder is a fixed feature extractor, as in the reference; True: fine-tune it at lr_text")
    text_hidden: int = setting(256, min=1)  # hidden_dims (l, a, v); also the singleton vertex sizes
    audio_hidden: int = setting(32, min=1)
    video_hidden: int = setting(256, min=1)
    memory_dim: int = setting(300, min=1)  # memsize
    node_dim: int = setting(64, min=1, doc="inner_node_dim: width of every fusion-graph vertex")
    proposal_hidden: int = setting(32, min=1)  # NNConfig
    proposal_dropout: float = 0.0
    gamma1_hidden: int = setting(128, min=1)
    gamma1_dropout: float = 0.5
    gamma2_hidden: int = setting(64, min=1)
    gamma2_dropout: float = 0.5
    out_hidden: int = setting(256, min=1)
    out_dropout: float = 0.0
    lr_text: float = 5e-5
    lr_other: float = 2e-3  # learning_rate
    weight_decay: float = 5e-3


def _vertex(in_dim: int, node_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, PATTERN_WIDTH), nn.Linear(PATTERN_WIDTH, node_dim))


def _proper_subsets(key: tuple[int, ...]) -> list[tuple[int, ...]]:
    return list(chain.from_iterable(combinations(key, r) for r in range(1, len(key))))


class DynamicFusionGraph(nn.Module):
    """Singleton vertices ``[(B, ..., d_i)]`` -> the top vertex ``τ`` ``(B, ..., node_dim)`` and
    the efficacies ``(B, ..., E)`` (19 for three modalities)."""

    def __init__(self, in_dims: list[int], node_dim: int):
        super().__init__()
        n = len(in_dims)
        self.keys = [k for r in range(2, n + 1) for k in combinations(range(n), r)]
        vertices, efficacies = {}, 0
        for key in self.keys:
            unimodal = sum(in_dims[m] for m in key)
            multimodal = (2 ** len(key) - 2 - len(key)) * node_dim
            vertices["_".join(map(str, key))] = _vertex(unimodal + multimodal, node_dim)
            efficacies += 2 ** len(key) - 2
        efficacies += 2**n - 1
        self.vertices = nn.ModuleDict(vertices)
        self.top = _vertex(sum(in_dims) + (2**n - n - 1) * node_dim, node_dim)
        self.efficacy = nn.Sequential(nn.Linear(sum(in_dims), PATTERN_WIDTH), nn.Linear(PATTERN_WIDTH, node_dim), nn.Linear(node_dim, efficacies))

    def forward(self, singletons: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = {(i,): x for i, x in enumerate(singletons)}
        efficacies = self.efficacy(torch.cat(singletons, dim=-1))
        index = 0

        def weighted(keys):
            nonlocal index
            parts = [outputs[k] * efficacies[..., index + j : index + j + 1] for j, k in enumerate(keys)]
            index += len(keys)
            return torch.cat(parts, dim=-1)

        for key in self.keys:
            outputs[key] = self.vertices["_".join(map(str, key))](weighted(_proper_subsets(key)))
        full = self.keys[-1]
        return self.top(weighted(_proper_subsets(full) + [full])), efficacies


@register_model
class GraphMFN(MSAModel):
    name = "graph_mfn"
    config_class = GraphMFNConfig
    FEATURE_DIM_FIELDS = {"t": "text_hidden", "a": "audio_hidden", "v": "video_hidden"}
    # MMSA config_regression.json, "graph_mfn" (early stop 8, one step per batch).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 32, "grad_accumulation": 1}},
        "mosei": {
            "model": {"text_hidden": 64, "audio_hidden": 16, "video_hidden": 64, "node_dim": 128, "proposal_dropout": 0.5, "gamma1_hidden": 64,
                      "gamma1_dropout": 0.0, "gamma2_hidden": 256, "gamma2_dropout": 0.7, "out_hidden": 128, "out_dropout": 0.7, "weight_decay": 1e-3},
            "train": {"batch_size": 64, "grad_accumulation": 1},
        },
        "sims": {
            "model": {"memory_dim": 64, "node_dim": 128, "proposal_hidden": 256, "proposal_dropout": 0.5, "gamma1_hidden": 32, "gamma1_dropout": 0.2,
                      "gamma2_hidden": 32, "gamma2_dropout": 0.7, "out_dropout": 0.2, "lr_other": 5e-4, "weight_decay": 1e-3},
            "train": {"batch_size": 64, "grad_accumulation": 1},
        },
    }
    TEST_OVERRIDES = {"text_hidden": 16, "audio_hidden": 8, "video_hidden": 8, "memory_dim": 16, "node_dim": 16, "proposal_hidden": 16,
                      "gamma1_hidden": 16, "gamma1_dropout": 0.0, "gamma2_hidden": 16, "gamma2_dropout": 0.0, "out_hidden": 16, "weight_decay": 0.0, "lr_other": 5e-3}

    def __init__(self, config: GraphMFNConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c = config
        self._check_modalities(dims.modalities)
        widths = input_dims(self, text_encoder, c.text_finetune)
        hidden = {"t": c.text_hidden, "a": c.audio_hidden, "v": c.video_hidden}
        self.order = tuple(s for s in ("t", "a", "v") if s in dims.modalities)
        self.lstms = nn.ModuleDict({s: nn.LSTM(widths[s], hidden[s], batch_first=True) for s in self.order})
        self.singletons = nn.ModuleDict({s: nn.Linear(2 * hidden[s], hidden[s]) for s in self.order})
        self.graph = DynamicFusionGraph([hidden[s] for s in self.order], c.node_dim)
        self.memory = GatedMemory(c.node_dim, c.memory_dim, (c.proposal_hidden, c.proposal_dropout), (c.gamma1_hidden, c.gamma1_dropout), (c.gamma2_hidden, c.gamma2_dropout))
        fused = sum(hidden[s] for s in self.order) + c.memory_dim
        self.head = mlp(fused, c.out_hidden, 1, c.out_dropout)
        self.feature_dims = {"m": fused, **{s: hidden[s] for s in self.order}}

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        if len(set(modalities) & {"t", "a", "v"}) < 2:
            raise ConfigError(f"graph_mfn: data.modalities={','.join(modalities) or 'none'}: the fusion graph joins two or three modalities; use t,a,v or two of them")

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        cls._check_modalities(modalities)
        refuse_unaligned(data, modalities, "Graph-MFN")

    def forward(self, batch) -> ModelOutput:
        sequences, lengths = aligned_sequences(self, batch)
        steps = int(lengths.max())
        hs = {s: self.lstms[s](sequences[s][:, :steps])[0] for s in self.order}
        singletons = [F.relu(self.singletons[s](torch.cat([F.pad(hs[s], (0, 0, 1, 0))[:, :-1], hs[s]], dim=-1))) for s in self.order]
        top, _ = self.graph(singletons)
        memory = at_last_step(self.memory(top, steps), lengths)
        last = {s: at_last_step(hs[s], lengths) for s in self.order}
        fused = torch.cat([last[s] for s in self.order] + [memory], dim=-1)
        return ModelOutput(predictions={"m": self.head(fused).squeeze(-1)}, features={"m": fused, **last})

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return self.text_and_other_groups(c.lr_text, c.lr_other, c.weight_decay)

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return [RegressionL1("m")]
