"""EF-LSTM, early fusion with an LSTM (the early-fusion baseline of "Benchmarking Multimodal
Sentiment Analysis", Cambria et al., CICLing 2017; MMSA's version after Williams et al.,
"Recognizing Emotions in Video Using Multimodal DNN Feature Fusion", 2018).

Structure follows MMSA 2.2.1 ``src/MMSA/models/singleTask/EF_LSTM.py`` (class ``EF_LSTM``),
trained as ``trains/singleTask/EF_LSTM.py`` does (L1 loss, one Adam over every parameter with
``weight_decay``, a step per batch); per-dataset values from ``config_regression.json``
(``ef_lstm``: ``hidden_dims``, ``num_layers``, ``dropout``, ``batch_size``, ``learning_rate``,
``weight_decay``; early stop 8). At every word position the text state and the word-aligned
audio and vision frames are concatenated (``[t_i; a_i; v_i]``), batch-normalised, and read by
one ``layers``-deep LSTM (dropout between layers); its last state -> dropout -> Linear+ReLU
(``hidden``) -> dropout -> Linear(1).

Aligned data only (the reference's ``need_data_aligned: true``; early fusion needs one frame of
each modality per position): unaligned files are refused with the file to use
(``aligned_50.pkl``); text alone needs no alignment. The pairing of re-tokenised text positions with the file's frames is
MAG-BERT's (``msakit/encoders/aligned.py``).

Modalities: any non-empty subset of t, a, v (the concatenation holds the ones used).

Parameters, checked in tests/test_classic_models.py against a count built from the reference's
layer list: MOSI configuration (hidden 128, 4 layers) with MOSI's aligned feature sizes (text
768, audio 5, vision 20, 50 positions): the reference has 885,605 trainable parameters, this
model without its text encoder 887,091. The difference is the batch norm: the reference's
``BatchNorm1d(seq_lens)`` normalises each of the 50 *positions* (100 parameters); here each of
the 793 input *features* is normalised (1,586 parameters), see below.

Deliberate differences from the reference:
- Text comes from a BERT-family encoder's token states (frozen by default, as the reference's
  fixed features; ``text_finetune=true`` fine-tunes it at ``lr_text``) instead of the file's
  768-d ``text_bert`` features.
- The batch norm is over features, from valid positions only (``MaskedBatchNorm``): the
  reference's per-position norm needs every sequence padded to the same 50 positions and mixes
  padding into its statistics; here batches are as wide as their longest transcript.
- The LSTM's state is the one at each sample's last real position (the reference runs over the
  padding to position 50).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.encoders.aligned import MaskedBatchNorm, StackedLSTM, aligned_sequences, attach_text_encoder, refuse_unaligned, valid_positions
from msakit.errors import ConfigError
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel
from msakit.objectives import RegressionL1
from msakit.settings import setting


@dataclass
class EFLSTMConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    text_finetune: bool = setting(False, doc="False: the text encoder is a fixed feature extractor, as in the reference; True: fine-tune it at lr_text")
    hidden: int = setting(128, min=1, doc="LSTM and post-LSTM layer width (the reference's hidden_dims)")
    layers: int = setting(4, min=1, doc="LSTM depth (num_layers)")
    dropout: float = setting(0.5, min=0.0, max=1.0, doc="between LSTM layers and before both linear layers")
    lr_text: float = 5e-5
    lr_other: float = 1e-3
    weight_decay: float = 5e-3


@register_model
class EFLSTM(MSAModel):
    name = "ef_lstm"
    config_class = EFLSTMConfig
    FEATURE_DIM_FIELDS = {"m": "hidden"}
    # MMSA config_regression.json, "ef_lstm" (early stop 8).
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 32, "grad_accumulation": 1, "early_stop": 8}},
        "mosei": {
            "model": {"hidden": 256, "layers": 2, "dropout": 0.4, "lr_other": 5e-3, "weight_decay": 1e-4},
            "train": {"batch_size": 128, "grad_accumulation": 1, "early_stop": 8},
        },
        "sims": {
            "model": {"hidden": 32, "layers": 3, "dropout": 0.5, "lr_other": 5e-4, "weight_decay": 1e-3},
            "train": {"batch_size": 128, "grad_accumulation": 1, "early_stop": 8},
        },
    }
    TEST_OVERRIDES = {"hidden": 16, "layers": 2, "dropout": 0.1, "lr_other": 5e-3, "weight_decay": 0.0}

    def __init__(self, config: EFLSTMConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c = config
        if not dims.modalities:
            raise ConfigError(f"{self.name}: data.modalities is empty; use any of t, a, v")
        width = attach_text_encoder(self, text_encoder, c.text_finetune) if "t" in dims.modalities else 0
        width += (dims.audio_dim or 0) if "a" in dims.modalities else 0
        width += (dims.vision_dim or 0) if "v" in dims.modalities else 0
        self.norm = MaskedBatchNorm(width)
        self.lstm = StackedLSTM(width, c.hidden, c.layers, c.dropout)
        self.dropout = nn.Dropout(c.dropout)
        self.linear = nn.Linear(c.hidden, c.hidden)
        self.out = nn.Linear(c.hidden, 1)
        self.feature_dims = {"m": c.hidden}

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        refuse_unaligned(data, modalities, "EF-LSTM")

    def forward(self, batch) -> ModelOutput:
        parts, lengths = aligned_sequences(self, batch)
        x = torch.cat([parts[s] for s in ("t", "a", "v") if s in parts], dim=-1)
        x = self.norm(x, valid_positions(lengths, x.shape[1]))
        h = self.dropout(self.lstm(x, lengths))
        hidden = torch.relu(self.linear(h))
        prediction = self.out(self.dropout(hidden)).squeeze(-1)
        return ModelOutput(predictions={"m": prediction}, features={"m": hidden})

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return self.text_and_other_groups(c.lr_text, c.lr_other, c.weight_decay)

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        return [RegressionL1("m")]
