"""MMML (Wu et al., NAACL 2024, "Multimodal Multi-loss Fusion Network for Sentiment Analysis"):
a text encoder and a speech encoder fine-tuned end to end on the transcript and the raw 16 kHz
waveform, fused by cross-attention, trained with a fused loss plus one loss per modality.

Structure followed: github:zehuiwu/MMML ``utils/context_model.py`` (class
``rob_d2v_cme_context``: RoBERTa-large + data2vec-audio, ``CMELayer`` stack), ``utils/cross_attn_encoder.py``
(``CMELayer``: text queries audio and audio queries text, then self-attention, then a feed-forward
block, each BERT-style post-LayerNorm with a residual), ``utils/en_train.py`` (L1 loss on the fused
output ``M`` and on the text-only ``T`` and audio-only ``A`` outputs, weights 1, 1, 1, every output
against the multimodal label; one optimiser at 5e-6, batch 8) and ``utils/data_loader.py`` (the
waveform normalised per clip, cut to 96,000 samples = 6 s).

Per utterance, with the text encoder's last hidden states ``T`` (the transcript, and its
neighbours of the same video with ``data.context``) and the speech encoder's ``A`` (the clip's
waveform, cut to ``max_audio_seconds``)::

    ŷ_t = Linear(Dropout(T[CLS]))                  ŷ_a = Linear(Dropout(mean of valid A))
    T' = [c_t; P_t T],  A' = [c_a; P_a A]            (c_*: learned tokens, P_*: to fusion_dim)
    per layer:  T', A' = CME(T', A')                 (T' ← attend(T', A'), A' ← attend(A', T'), self-attention, FFN)
    ŷ_m = Linear(ReLU(Linear(Dropout([T'_0; A'_0]))))
    loss = |ŷ_m − y| + |ŷ_t − y| + |ŷ_a − y|        (model.tasks=mta; m: the fused loss alone; model.loss=mse: squared)

Inputs: text (the run's ``model.text_encoder``, any local BERT-family directory) and audio as a
waveform: features made with ``msakit extract --audio-features waveform`` (one column, one row per
sample). Any other audio (descriptors, COVAREP, an aligned file) is refused in one line; so is a
missing or invalid ``model.speech_encoder_dir`` (a local wav2vec 2.0 / HuBERT / WavLM /
data2vec-audio directory, checked as the ``speech_encoder`` feature set checks its directory).
The waveform is not z-scored by ``data.standardize`` (``UNSTANDARDIZED``): the model normalises
each clip to zero mean and unit variance, as the encoder's feature extractor does, and the
standardiser's clipping at ±``data.standardize_clip`` would cut a loud clip's peaks.

Memory: ``model.gradient_checkpointing`` (default on) recomputes both encoders' layers in the
backward pass; on CUDA the trainer's ``train.precision`` gives mixed precision. Waveforms are cut
to their first ``max_audio_seconds`` (6 s, the reference's 96,000 samples) in the model; training
batches hold clips of similar length (``length_buckets``: windows of 50 batches of the shuffled
order sorted by length, the window's batches shuffled; deterministic given the seed and epoch), so
each is padded little (to its longest clip, at most the cut).

Parameter count at the published size (roberta-large + data2vec-audio-large, both 1024 wide, 5 CME
layers, the reference's run.py default; built from those configurations): msakit 837,131,779,
reference 839,756,291. The 2,624,512 more are RoBERTa's pooler (1,049,600; msakit's encoders drop
it), the second input half of the reference's unimodal heads (2 × 1,024: they read the utterance's
and its context's pooled vectors) and of its fused head's first layer (1,572,864: four CLS vectors
where msakit has two). Each CME layer has the reference's 33,593,344. Tiny configuration of the
tests (fusion width 32, one CME layer, FFN 64, head 32): fusion and heads 27,907, the tiny
wav2vec 2.0 28,304, the tiny BERT about 22k (``tests/test_mmml.py``).

Deliberate differences from the reference:
- Text context through msakit's ``data.context`` (the neighbours tokenised with the utterance as a
  pair, one encoder pass) instead of a second encoder pass over the previous utterances and a second
  CME pass; no audio context (the reference's ``audio_context_len=1``): the waveform of the
  utterance alone.
- The text's unimodal head reads the encoder's first-token state (msakit's encoders drop BERT's
  pooler); the fused head has one hidden layer of ``head_hidden`` (768 as the reference).
- Encoders of different widths are projected to ``fusion_dim`` (the reference's two encoders are
  both 1024 wide and need none); ``fusion_heads``/``fusion_ff`` default to BERT-large's 16 and 4096.
- SpecAugment masking and LayerDrop of the speech encoder are off (both draw from numpy's global
  generator or leave layers unused under DDP; runs are reproducible and DDP-safe).
- Adam (the trainer's) with three learning rates (text, speech, fusion; all 5e-6 by default as
  the reference's single AdamW rate) instead of AdamW with weight decay 0.01.
- Training batches of similar waveform length (``length_buckets``; the reference shuffles freely,
  padding every clip to 96,000 samples).
- A speech encoder with group normalisation in its feature encoder (wav2vec 2.0 base) encodes each
  clip unpadded, one at a time (padding would change its group-norm statistics, and such models take no attention mask);
  layer-norm encoders (large models, HuBERT, WavLM, data2vec-audio) encode the batch with an
  attention mask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from msakit.data.types import Split
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError, DataError, RunDirError
from msakit.models._registry import register_model
from msakit.models.base import InputDims, ModelOutput, MSAModel
from msakit.objectives import RegressionL1, RegressionMSE
from msakit.settings import setting

WAVEFORM_SET = "waveform"


@dataclass
class MMMLConfig:
    text_encoder: str = "minilm"  # "minilm" (packaged) or a local BERT-family directory
    speech_encoder_dir: str = ""  # a local wav2vec 2.0 / HuBERT / WavLM / data2vec-audio directory (required)
    gradient_checkpointing: bool = True
    max_audio_seconds: float = setting(6.0, gt=0.0, doc="each waveform is cut to its first this many seconds (reference: 96,000 samples)")
    fusion_dim: int = setting(0, min=0, doc="width of the cross-attention layers (0: the text encoder's hidden size)")
    fusion_layers: int = setting(5, min=1, doc="CME layers (reference run.py: 5)")
    fusion_heads: int = 16
    fusion_ff: int = setting(4096, min=1, doc="feed-forward width in each CME layer")
    fusion_dropout: float = 0.1
    head_hidden: int = setting(768, min=1, doc="hidden units of the fused head")
    dropout: float = 0.3  # reference config.dropout (before every head)
    length_buckets: int = setting(50, min=0, doc="training batches of similar waveform length: windows of this many batches sorted by length (0: off)")
    tasks: str = setting("mta", choices=("mta", "m"), doc="losses: fused + text + audio (mta) or the fused alone (m)")
    loss: str = setting("l1", choices=("l1", "mse"), doc="each task's loss")
    lr_text: float = 5e-6
    lr_audio: float = 5e-6
    lr_other: float = 5e-6
    weight_decay: float = 0.0


def _speech_kinds() -> dict[str, str]:
    from msakit.extract.featuresets.speech_encoder import KINDS

    return KINDS


def speech_encoder_from_dir(directory: str) -> tuple[nn.Module, dict]:
    """The speech encoder at ``directory`` with its pretrained weights (checked as the
    ``speech_encoder`` feature set checks its directory) and the architecture a checkpoint keeps."""
    from transformers import AutoModel

    from msakit.extract.featuresets import _local_model
    from msakit.extract.featuresets.speech_encoder import _preprocessing

    _local_model.config_of(directory, "model.speech_encoder_dir", _speech_kinds(), "a speech encoder")
    rate, normalise = _preprocessing(directory)
    from transformers.utils import logging as hf_logging

    previous, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the load report and its progress bar stay out of the user's terminal
    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(directory, local_files_only=True, trust_remote_code=False,
                                          apply_spec_augment=False, layerdrop=0.0)
    except (OSError, ValueError, KeyError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"model.speech_encoder_dir={directory!r}: cannot load the speech encoder ({first})") from None
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()
    config = model.config.to_diff_dict() | {"model_type": model.config.model_type}
    return model, {"speech_encoder_config": config, "sample_rate": rate, "normalise": normalise}


def speech_encoder_from_config(architecture: dict, source: str = "model.json") -> nn.Module:
    """The architecture alone (random weights; a checkpoint supplies them), built-in classes only."""
    from transformers import AutoConfig, AutoModel

    config = dict((architecture or {}).get("speech_encoder_config") or {})
    if config.get("model_type") not in _speech_kinds() or "auto_map" in config:
        raise RunDirError(f"{source}: 'model_architecture' holds no speech encoder msakit builds; the file is damaged")
    kind = config.pop("model_type")
    try:
        return AutoModel.from_config(AutoConfig.for_model(kind, **config), trust_remote_code=False)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise RunDirError(f"{source}: cannot build speech encoder {kind!r} ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None


class CrossModalLayer(nn.Module):
    """MMML's ``CMELayer``: each stream attends to the other (queries its own, keys/values the
    other's), then to itself, then a feed-forward block; residual + LayerNorm after each (BERT)."""

    def __init__(self, dim: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.cross = nn.ModuleDict({s: nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True) for s in ("t", "a")})
        self.self_attention = nn.ModuleDict({s: nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True) for s in ("t", "a")})
        self.ff = nn.ModuleDict({s: nn.Sequential(nn.Linear(dim, ff), nn.GELU(), nn.Linear(ff, dim)) for s in ("t", "a")})
        self.norms = nn.ModuleDict({f"{s}{k}": nn.LayerNorm(dim, eps=1e-12) for s in ("t", "a") for k in range(3)})
        self.drop = nn.Dropout(dropout)

    def _block(self, s: str, k: int, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return self.norms[f"{s}{k}"](x + self.drop(out))

    def forward(self, t, t_pad, a, a_pad):
        """``*_pad``: True at padding positions (never attended to)."""
        t2 = self._block("t", 0, t, self.cross["t"](t, a, a, key_padding_mask=a_pad, need_weights=False)[0])
        a2 = self._block("a", 0, a, self.cross["a"](a, t, t, key_padding_mask=t_pad, need_weights=False)[0])
        t2 = self._block("t", 1, t2, self.self_attention["t"](t2, t2, t2, key_padding_mask=t_pad, need_weights=False)[0])
        a2 = self._block("a", 1, a2, self.self_attention["a"](a2, a2, a2, key_padding_mask=a_pad, need_weights=False)[0])
        return self._block("t", 2, t2, self.ff["t"](t2)), self._block("a", 2, a2, self.ff["a"](a2))


def _check_waveform(data, modalities: tuple[str, ...]) -> None:
    """Refuse data whose audio is not a waveform, in one line saying what to extract instead."""
    if "t" not in modalities or "a" not in modalities or "v" in modalities:
        raise ConfigError(f"mmml reads text and the audio waveform (t,a), got data.modalities={','.join(modalities) or 'none'}; "
                          "set data.modalities=t,a (a video's frames are not used)")
    fix = "extract the clips with `msakit extract SRC --audio-features waveform` and train on that file"
    if getattr(data, "aligned", False):
        raise DataError(f"{data.source}: an aligned file (one audio frame per word) holds no waveform, and mmml reads the raw "
                        f"waveform: use an unaligned file; {fix}")
    source = str(getattr(data, "source", ""))
    try:
        from msakit.extract.pipeline import sidecar_path

        sidecar = sidecar_path(source) if source and source != "synthetic" else None
    except Exception:  # noqa: BLE001 - a source that is not a path has no sidecar
        sidecar = None
    if sidecar is not None and Path(sidecar).is_file():
        try:
            described = json.loads(Path(sidecar).read_text())
            audio_set = described.get("settings", {}).get("audio_features", "descriptors")
        except (OSError, ValueError, AttributeError):
            audio_set = None
        if audio_set is not None and audio_set != WAVEFORM_SET:
            raise DataError(f"{source}: its audio is the {audio_set!r} feature set ({sidecar.name}), but mmml reads the raw waveform; {fix}")
    for split in data.splits.values():
        if split.audio is not None and (split.audio.shape[2] != 1 or split.audio.shape[1] < 400):
            raise DataError(f"{source}: split {split.name!r} has {split.audio.shape[2]}-column audio of {split.audio.shape[1]} frames, "
                            f"not a waveform (one column, one row per sample), and mmml reads the raw waveform; {fix}")


@register_model
class MMML(MSAModel):
    name = "mmml"
    config_class = MMMLConfig
    DATASET_DEFAULTS = {
        "mosi": {"train": {"batch_size": 8}},
        "mosei": {"train": {"batch_size": 8}},
        "sims": {"model": {"lr_text": 1e-5, "lr_audio": 1e-5, "lr_other": 1e-5}, "train": {"batch_size": 8}},
    }
    # The waveform is read as it is: each clip is normalised in the model, and data.standardize's
    # clipping at ±standardize_clip training-split deviations would cut a loud clip's peaks.
    UNSTANDARDIZED = ("a",)
    # Tiny sizes for the every-model test (its synthetic data carries a waveform: see TEST_SETUP).
    TEST_OVERRIDES = {"fusion_layers": 1, "fusion_heads": 2, "fusion_ff": 64, "head_hidden": 32, "dropout": 0.0, "fusion_dropout": 0.0,
                      "lr_text": 1e-3, "lr_audio": 1e-3, "lr_other": 1e-3}
    TEST_SETUP = {"synthetic": {"waveform_rate": 16000, "waveform_seconds": 0.1}, "data": {"modalities": "t,a"},
                  "fixtures": {"speech_encoder_dir": "tiny_speech_encoder_dir"}}

    def __init__(self, config: MMMLConfig, dims: InputDims, text_encoder: TextEncoder | None = None, architecture: dict | None = None):
        super().__init__(config, dims)
        if text_encoder is None:
            raise ConfigError("mmml needs a text encoder (model.text_encoder)")
        if dims.audio_dim != 1:
            raise ConfigError(f"mmml reads the audio waveform alone (one column), but its audio has {dims.audio_dim} columns; "
                              "data.context_modalities must not include a (text context only: data.context_modalities=t)")
        if architecture is None:  # training: the pretrained weights
            self.speech, architecture = speech_encoder_from_dir(config.speech_encoder_dir)
        else:  # a checkpoint: its architecture, the weights come with it
            self.speech = speech_encoder_from_config(architecture)
        self.architecture = architecture
        self.text_model = text_encoder
        speech_config = self.speech.config
        self.group_norm = getattr(speech_config, "feat_extract_norm", "layer") == "group"
        from msakit.extract.featuresets.speech_encoder import geometry

        self.receptive_field = geometry(speech_config.to_dict())[1]
        if config.gradient_checkpointing:
            for backbone in (self.speech, self.text_model.backbone):
                if not getattr(backbone, "supports_gradient_checkpointing", False):
                    continue
                if getattr(backbone.config, "use_cache", None):
                    backbone.config.use_cache = False  # no key/value cache while recomputing (an encoder needs none)
                if hasattr(backbone, "activation_checkpointing_enable"):  # transformers >= 5.2's name
                    backbone.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
                else:
                    backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        h_t, h_a = text_encoder.hidden_size, int(speech_config.hidden_size)
        d = config.fusion_dim or h_t
        if d % config.fusion_heads:
            raise ConfigError(f"model.fusion_heads={config.fusion_heads} must divide the fusion width {d} (model.fusion_dim, 0: the text encoder's {h_t})")
        self.project = nn.ModuleDict({s: nn.Linear(h, d) if h != d else nn.Identity() for s, h in (("t", h_t), ("a", h_a))})
        self.cls = nn.ParameterDict({s: nn.Parameter(torch.randn(1, 1, d) * 0.02) for s in ("t", "a")})
        self.layers = nn.ModuleList(CrossModalLayer(d, config.fusion_heads, config.fusion_ff, config.fusion_dropout) for _ in range(config.fusion_layers))
        self.heads = nn.ModuleDict({
            "t": nn.Sequential(nn.Dropout(config.dropout), nn.Linear(h_t, 1)),
            "a": nn.Sequential(nn.Dropout(config.dropout), nn.Linear(h_a, 1)),
            "m": nn.Sequential(nn.Dropout(config.dropout), nn.Linear(2 * d, config.head_hidden), nn.ReLU(), nn.Linear(config.head_hidden, 1)),
        })
        self.feature_dims = {"m": 2 * d, "t": h_t, "a": h_a}

    @classmethod
    def check_data(cls, data, modalities: tuple[str, ...]) -> None:
        _check_waveform(data, modalities)

    def _encode_audio(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The speech encoder's last hidden states ``(B, F, H)`` and a padding mask ``(B, F)``."""
        limit = max(1, int(round(self.config.max_audio_seconds * self.architecture["sample_rate"])))
        lengths = lengths.clamp(min=1, max=limit)
        width = max(int(lengths.max()), self.receptive_field)
        x = audio[:, : int(lengths.max()), 0].float()
        if x.shape[1] < width:
            x = F.pad(x, (0, width - x.shape[1]))
        valid = torch.arange(width, device=x.device)[None, :] < lengths[:, None]
        if self.architecture.get("normalise", True):  # zero mean, unit variance over each clip's samples
            n = lengths[:, None].to(x.dtype)
            mean = (x * valid).sum(1, keepdim=True) / n
            var = (((x - mean) * valid) ** 2).sum(1, keepdim=True) / n
            x = (x - mean) / torch.sqrt(var + 1e-7)
        x = x * valid
        frames = self.speech._get_feat_extract_output_lengths(torch.clamp(lengths, min=self.receptive_field)).long()
        if self.group_norm:  # one clip at a time, unpadded (group norm sees no padding)
            states = [self.speech(x[i : i + 1, : max(int(lengths[i]), self.receptive_field)]).last_hidden_state[0] for i in range(len(x))]
            longest = max(s.shape[0] for s in states)
            hidden = torch.stack([F.pad(s, (0, 0, 0, longest - s.shape[0])) for s in states])
        else:  # a clip shorter than the receptive field is read as zero-padded to it (one frame)
            seen = torch.arange(width, device=x.device)[None, :] < torch.clamp(lengths, min=self.receptive_field)[:, None]
            hidden = self.speech(x, attention_mask=seen.long()).last_hidden_state
        frames = frames.clamp(max=hidden.shape[1])
        pad = torch.arange(hidden.shape[1], device=x.device)[None, :] >= frames[:, None]
        return hidden, pad

    def forward(self, batch) -> ModelOutput:
        text_states = self.text_model.token_states(batch.text_ids, batch.text_mask)  # (B, L, H_t)
        audio_states, audio_pad = self._encode_audio(batch.audio, batch.audio_lengths)
        text_pad = batch.text_mask == 0
        keep = (~audio_pad).unsqueeze(-1).to(audio_states.dtype)
        audio_vector = (audio_states * keep).sum(1) / keep.sum(1).clamp(min=1)
        text_vector = text_states[:, 0]
        b = text_states.shape[0]
        t = torch.cat([self.cls["t"].expand(b, -1, -1).to(text_states.dtype), self.project["t"](text_states)], dim=1)
        a = torch.cat([self.cls["a"].expand(b, -1, -1).to(audio_states.dtype), self.project["a"](audio_states)], dim=1)
        no_pad = torch.zeros(b, 1, dtype=torch.bool, device=t.device)
        t_pad, a_pad = torch.cat([no_pad, text_pad], 1), torch.cat([no_pad, audio_pad], 1)
        for layer in self.layers:
            t, a = layer(t, t_pad, a, a_pad)
        fused = torch.cat([t[:, 0], a[:, 0]], dim=-1)
        predictions = {"m": self.heads["m"](fused).squeeze(-1), "t": self.heads["t"](text_vector).squeeze(-1),
                       "a": self.heads["a"](audio_vector).squeeze(-1)}
        return ModelOutput(predictions=predictions, features={"m": fused, "t": text_vector, "a": audio_vector})

    def parameter_groups(self) -> list[dict]:
        c = self.config
        text = [p for p in self.text_model.parameters() if p.requires_grad]
        speech = [p for p in self.speech.parameters() if p.requires_grad]
        taken = {id(p) for p in text + speech}
        rest = [p for p in self.parameters() if id(p) not in taken and p.requires_grad]
        groups = [{"name": "text", "params": text, "lr": c.lr_text, "weight_decay": c.weight_decay},
                  {"name": "speech", "params": speech, "lr": c.lr_audio, "weight_decay": c.weight_decay},
                  {"name": "other", "params": rest, "lr": c.lr_other, "weight_decay": c.weight_decay}]
        return [g for g in groups if g["params"]]

    def build_objectives(self, train_split: Split, kind: str) -> list[nn.Module]:
        loss = RegressionL1 if self.config.loss == "l1" else RegressionMSE
        return [loss(target) for target in ("m", "t", "a")] if self.config.tasks == "mta" else [loss("m")]

    def length_buckets(self, batch_size: int) -> tuple[str, int, int] | None:
        """Training batches of similar waveform length (``msakit.data.batching``): less padding."""
        return ("a", batch_size, self.config.length_buckets) if self.config.length_buckets else None

    def checkpoint_architecture(self) -> dict:
        """What ``best/model.json`` keeps to rebuild the speech encoder without its directory."""
        return self.architecture
