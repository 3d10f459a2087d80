"""MCTN, the Multimodal Cyclic Translation Network (Pham et al., AAAI 2019, "Found in
Translation: Learning Robust Joint Representations by Cyclic Translations Between
Modalities").

Structure follows MMSA 2.2.1 ``src/MMSA/models/singleTask/MCTN.py`` (classes ``Encoder``,
``Attention``, ``Decoder``, ``Seq2Seq``, ``Regression``), trained as
``trains/singleTask/MCTN.py`` does (one Adam at ``init_lr`` over every trainable parameter,
the total L2 gradient norm clipped to ``grad_clip`` before each step); per-dataset values from
the ``mctn`` section of ``config_regression.json`` (which has MOSI only).

Every modality's word-aligned sequence (``msakit/encoders/aligned.py``) is zero-padded in its
feature dimension to one common width ``d`` (the widest modality; the reference pads audio and
vision to the 768 of its text features), so one encoder and one decoder serve both directions
of a cycle. An encoder is a bidirectional LSTM whose two directions' outputs are summed (the
joint representation, one vector per word) and whose final states give the decoder's first
state ``s = tanh(W(h→ + h←))``; a decoder step attends over the joint representation
(``softmax(v · tanh(W[s; j_i]))``), feeds ``[previous target frame; context]`` to a one-step
bidirectional LSTM and predicts the next frame from ``[output; context]`` (teacher forcing).

With t, a and v (the paper's hierarchical MCTN): text is translated into vision and the
translation back into text (the **cycle**, through the same encoder and decoder); a second
encoder-decoder translates the text's joint representation into audio; an LSTM with attention
pooling over the second joint representation gives the prediction. With t and one of a/v, the
cycle runs between text and that modality and the prediction reads the first joint
representation. Loss: ``L1(ŷ, y) + 0.1·MSE(v̂, v) + 0.1·MSE(t̂, t) + 0.1·MSE(â, a)``
(``msakit/objectives/sequence_reconstruction.py``).

**Text alone at test time**: the prediction depends only on the encoders' reading of the
text; the decoders (and with them audio and vision) are run in training only, so a trained
MCTN is unaffected by missing or noisy audio/vision (``msakit robustness``).

Modalities: text plus audio and/or vision; word-aligned data only (the translation pairs word
i of the source with frame i of the target); unaligned files are refused with the file to use.

Parameters, checked in tests/test_aligned_models.py against a count built from the
reference's layer list: MOSI configuration (hidden 32, text 768, audio 5, vision 20, so
``d = 768``): the reference has 763,778 trainable parameters and this model without its text
encoder the same 763,778.

Deliberate differences from the reference:
- Text comes from a BERT-family encoder's token states (the packaged MiniLM by default),
  frozen by default as the reference's features (``use_bert: false``); ``text_finetune=true``
  fine-tunes it at ``lr_text``.
- The reference hands batch-first tensors to sequence-first LSTMs (its encoders and
  regression LSTM run across the batch instead of across the words); here every LSTM runs
  along the words, the encoders over each sample's valid steps (packed), and the attention
  and the pooling ignore padded steps. The translation losses are means over valid steps.
- The reference's trainer uses half of MOSEI's training batches per epoch; here every batch.
- Sequences are cut at ``data.max_text_tokens`` instead of the reference's ``max_seq_len``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from msakit.settings import setting
from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.encoders.aligned import aligned_sequences, attach_text_encoder, refuse_unaligned, valid_positions
from msakit.models._registry import register_model
from msakit.models.base import GradientClipping, InputDims, ModelOutput, MSAModel, require_text_plus_audio_or_vision
from msakit.objectives import RegressionL1
from msakit.objectives.sequence_reconstruction import SequenceReconstruction


@dataclass
class MCTNConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    text_finetune: bool = setting(False, doc="False: the text encoder is a fixed feature extractor, as in the reference; True: fine-tune it at lr_text")
    hidden: int = setting(32, min=1, doc="hid_dim: width of the encoders, decoders and regression LSTM")
    translation_weight: float = setting(0.1, min=0.0, doc="weight of each translation loss (text->v, text->a) in the total")
    cycle_weight: float = setting(0.1, min=0.0, doc="weight of the back-translation (cycle) loss")
    grad_clip: float = setting(1.0, gt=0.0, doc="total gradient L2 norm clipped to this before each step")
    lr_text: float = 5e-5
    lr_other: float = 1e-4  # init_lr
    weight_decay: float = 0.0


class TranslationEncoder(nn.Module):
    """Bidirectional LSTM: the joint representation ``(B, L, h)`` (directions summed) and the
    decoder's first state ``(B, h)``."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.rnn = nn.LSTM(in_dim, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(hidden, hidden, bias=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        joint = out[..., : self.hidden] + out[..., self.hidden :]
        return joint, torch.tanh(self.fc(h_n[0] + h_n[1]))


class TranslationDecoder(nn.Module):
    """Attention over the joint representation, a one-step bidirectional LSTM (from a zero
    state, as the reference's) and a linear map to the target frame."""

    def __init__(self, out_dim: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.attn = nn.Linear(2 * hidden, hidden, bias=False)  # on [s; j_i]
        self.v = nn.Linear(hidden, 1, bias=False)
        self.rnn = nn.LSTM(out_dim + hidden, hidden, batch_first=True, bidirectional=True)
        self.fc_out = nn.Linear(2 * hidden, out_dim)

    def forward(self, joint: torch.Tensor, state: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Teacher-forced translation ``(B, L, out)``: step i reads target frame i-1; step 0 is zeros.

        The one-step LSTM from a zero state is computed from its input weights directly
        (``c = σ(i)·tanh(g)``, ``h = σ(o)·tanh(c)`` per direction: the recurrent weights
        meet a zero state), and the target frames' share of the gates for every step at once."""
        h, width = self.hidden, target.shape[2]
        rnn = self.rnn
        weight = torch.cat([rnn.weight_ih_l0, rnn.weight_ih_l0_reverse])  # (8h, out + h): both directions
        bias = torch.cat([rnn.bias_ih_l0 + rnn.bias_hh_l0, rnn.bias_ih_l0_reverse + rnn.bias_hh_l0_reverse])
        from_target = F.linear(target[:, :-1], weight[:, :width], bias)  # step i reads frame i-1
        from_joint = F.linear(joint, self.attn.weight[:, h:])  # the joint's part of W[s; j_i], for every i at once
        outputs = [target.new_zeros(target.shape[0], width)]
        for i in range(1, target.shape[1]):
            energy = torch.tanh(from_joint + F.linear(state, self.attn.weight[:, :h])[:, None])
            weights = torch.softmax(self.v(energy).squeeze(-1).masked_fill(~valid, float("-inf")), dim=-1)
            context = torch.bmm(weights[:, None], joint).squeeze(1)
            gates = (from_target[:, i - 1] + F.linear(context, weight[:, width:])).view(-1, 2, 4, h)
            cell = torch.sigmoid(gates[:, :, 0]) * torch.tanh(gates[:, :, 2])
            state = (torch.sigmoid(gates[:, :, 3]) * torch.tanh(cell)).sum(dim=1)  # forward + backward output
            outputs.append(self.fc_out(torch.cat([state, context], dim=-1)))
        return torch.stack(outputs, dim=1)


class AttentionRegression(nn.Module):
    """LSTM over the joint representation, attention pooling over the valid steps, Linear(1)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.rnn = nn.LSTM(hidden, hidden, batch_first=True)
        self.linear = nn.Linear(hidden, 1)
        self.linear2 = nn.Linear(hidden, 1)

    def forward(self, joint: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        activations, _ = self.rnn(joint)  # padding comes after the valid steps: it cannot reach them
        scores = torch.tanh(self.linear(activations)).squeeze(-1).masked_fill(~valid, float("-inf"))
        pooled = (activations * torch.softmax(scores, dim=-1)[..., None]).sum(dim=1)
        return self.linear2(pooled).squeeze(-1), pooled


@register_model
class MCTN(MSAModel):
    name = "mctn"
    config_class = MCTNConfig
    FEATURE_DIM_FIELDS = {"m": "hidden"}
    # MMSA config_regression.json, "mctn": MOSI only (early stop 8, one step per batch).
    DATASET_DEFAULTS = {"mosi": {"train": {"batch_size": 32, "grad_accumulation": 1}}}
    # Tiny sizes; the tiny random test encoder fine-tuned, since the prediction reads text alone;
    # lighter translation losses and no clipping, so 12 epochs of 192 samples learn the text.
    TEST_OVERRIDES = {"hidden": 16, "lr_other": 1e-2, "text_finetune": True, "lr_text": 3e-3, "grad_clip": 100.0, "translation_weight": 0.02, "cycle_weight": 0.02}

    def __init__(self, config: MCTNConfig, dims: InputDims, text_encoder: TextEncoder | None = None):
        super().__init__(config, dims)
        c = config
        self._check_modalities(dims.modalities)
        widths = {"t": attach_text_encoder(self, text_encoder, c.text_finetune)}
        if "a" in dims.modalities:
            widths["a"] = dims.audio_dim
        if "v" in dims.modalities:
            widths["v"] = dims.vision_dim
        self.width = max(widths.values())
        # The cycle pairs text with vision (or audio, without vision); audio, with both, is
        # the second translation, from the first joint representation.
        self.first = "v" if "v" in dims.modalities else "a"
        self.second = "a" if self.first == "v" and "a" in dims.modalities else None
        self.encoder1 = TranslationEncoder(self.width, c.hidden)
        self.decoder1 = TranslationDecoder(self.width, c.hidden)
        if self.second:
            self.encoder2 = TranslationEncoder(c.hidden, c.hidden)
            self.decoder2 = TranslationDecoder(self.width, c.hidden)
        self.regression = AttentionRegression(c.hidden)
        self.feature_dims = {"m": c.hidden}

    @staticmethod
    def _check_modalities(modalities: tuple[str, ...]) -> None:
        require_text_plus_audio_or_vision(modalities, "MCTN translates text into audio and/or vision")

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        cls._check_modalities(modalities)
        refuse_unaligned(data, modalities, "MCTN")

    def forward(self, batch) -> ModelOutput:
        sequences, lengths = aligned_sequences(self, batch)
        steps = int(lengths.max())
        padded = {s: F.pad(x[:, :steps], (0, self.width - x.shape[-1])) for s, x in sequences.items()}
        valid = valid_positions(lengths, steps)
        joint, state = self.encoder1(padded["t"], lengths)
        extras = {}
        if self.training:
            translated = self.decoder1(joint, state, padded[self.first], valid)
            back_joint, back_state = self.encoder1(translated, lengths)
            reconstructed = {self.first: translated, "t": self.decoder1(back_joint, back_state, padded["t"], valid)}
        if self.second:
            joint, state = self.encoder2(joint, lengths)
            if self.training:
                reconstructed[self.second] = self.decoder2(joint, state, padded[self.second], valid)
        if self.training:
            extras = {"reconstructed": reconstructed, "reconstruction_targets": {s: padded[s] for s in reconstructed}, "valid_steps": valid}
        prediction, pooled = self.regression(joint, valid)
        return ModelOutput(predictions={"m": prediction}, features={"m": pooled}, extras=extras)

    def parameter_groups(self) -> list[dict]:
        c = self.config
        return self.text_and_other_groups(c.lr_text, c.lr_other, c.weight_decay)

    def gradient_clipping(self) -> GradientClipping:
        return GradientClipping("norm", self.config.grad_clip, "step")

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        c = self.config
        weights = {self.first: c.translation_weight, "t": c.cycle_weight}
        if self.second:
            weights[self.second] = c.translation_weight
        return [RegressionL1("m"), SequenceReconstruction(weights)]
