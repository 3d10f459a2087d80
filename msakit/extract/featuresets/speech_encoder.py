"""Audio feature set ``speech_encoder``: hidden states of a local self-supervised speech encoder
directory (``transformers`` format: wav2vec 2.0, HuBERT, WavLM, data2vec-audio), the layer or
layer average chosen by ``audio_layer``.

- ``audio_encoder``: the model directory (``config.json``, weights; ``preprocessor_config.json``
  if present says ``sampling_rate`` and ``do_normalize``, else 16 kHz and normalised).
- ``audio_layer``: ``last`` (default), ``N`` (0 = the feature projection's output fed to the
  transformer, 1..L), ``mean`` (layers 1..L averaged) or ``A-B`` (layers A..B averaged).
- Frame rate: ``sample_rate / prod(conv_stride)`` (50 frames/s for the usual 320-sample stride at
  16 kHz); frame ``i`` covers samples ``[i * stride, i * stride + receptive field)``.
- The clip's sound (at ``sample_rate``, which must be the model's) is normalised to zero mean and
  unit variance over the whole clip when the model asks for it, then encoded in windows of
  ``WINDOW_S`` seconds (overlapping by the receptive field less one stride, so every frame is
  computed once and frames line up across windows); attention sees one window. Windows of the same
  length are encoded together in batches of ``BATCH`` (1: a 20 s window is already 1000 frames,
  and four windows at once took 2.6 GB on a 10-minute clip).

Licence: that of the model the user gives (wav2vec 2.0 / HuBERT / data2vec: MIT or Apache-2.0 as
released; WavLM: MIT); ``transformers`` is Apache-2.0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from msakit.errors import ConfigError
from msakit.extract.featuresets import _local_model

KINDS = {"wav2vec2": "wav2vec 2.0", "wav2vec2-conformer": "wav2vec 2.0", "hubert": "HuBERT", "wavlm": "WavLM",
         "data2vec-audio": "data2vec-audio"}
WINDOW_S = 20.0
BATCH = 1


def _config(settings) -> dict:
    return _local_model.config_of(settings.audio_encoder, "audio_encoder", KINDS, "a speech encoder")


def _preprocessing(directory: str) -> tuple[int, bool]:
    path = Path(directory) / "preprocessor_config.json"
    spec = json.loads(path.read_text()) if path.is_file() else {}
    return int(spec.get("sampling_rate", 16000)), bool(spec.get("do_normalize", True))


def geometry(config: dict) -> tuple[int, int]:
    """(stride, receptive field) in samples of the convolutional feature encoder."""
    stride, field = 1, 1
    for kernel, step in zip(config.get("conv_kernel", [10, 3, 3, 3, 3, 2, 2]), config.get("conv_stride", [5, 2, 2, 2, 2, 2, 2])):
        field += (kernel - 1) * stride
        stride *= step
    return stride, field


def check(settings) -> None:
    config = _config(settings)
    rate, _ = _preprocessing(settings.audio_encoder)
    if rate != settings.sample_rate:
        raise ConfigError(f"extract.audio_encoder={settings.audio_encoder!r}: the model takes {rate} Hz audio, the extractor's "
                          f"sample_rate is {settings.sample_rate}; --set sample_rate={rate}")
    _local_model.parse_layer(settings.audio_layer, _local_model.layer_count(config), "audio_layer")


def describe(settings) -> dict:
    config = _config(settings)
    span = _local_model.parse_layer(settings.audio_layer, _local_model.layer_count(config), "audio_layer")
    stride, field = geometry(config)
    return {"dim": int(config["hidden_size"]), "rate_hz": settings.sample_rate / stride, "window_s": field / settings.sample_rate,
            "names": None, "frames": f"one row per {stride} samples, each covering {field} samples",
            "library": f"transformers {_local_model.version('transformers')}, torch {_local_model.version('torch')}: "
                       f"{KINDS[config['model_type']]} hidden states, encoded in {WINDOW_S:g} s windows",
            "licence": "the model's own (see its directory); transformers: Apache-2.0",
            **_local_model.model_description(settings.audio_encoder, config, settings.audio_layer, span)}


def fingerprint(settings) -> dict:
    return {"model_sha256": _local_model.digest(settings.audio_encoder), "transformers": _local_model.version("transformers"),
            "torch": _local_model.version("torch"), "window_s": WINDOW_S}


def _load(directory: str):
    from transformers import AutoModel

    return AutoModel.from_pretrained(directory, local_files_only=True, trust_remote_code=False)


class Featurizer:
    def __init__(self, settings):
        self.config = _config(settings)
        self.model = _local_model.load(settings.audio_encoder, _load)
        self.span = _local_model.parse_layer(settings.audio_layer, _local_model.layer_count(self.config), "audio_layer")
        self.stride, self.field = geometry(self.config)
        self.normalise = _preprocessing(settings.audio_encoder)[1]
        self.sr = settings.sample_rate
        self.chunks: list[np.ndarray] = []

    def push(self, chunk: np.ndarray) -> None:
        self.chunks.append(np.asarray(chunk, np.float32))

    def finish(self) -> np.ndarray:
        import torch

        x = np.concatenate(self.chunks).astype(np.float64) if self.chunks else np.zeros(0)
        self.chunks = []
        if self.normalise and x.size:
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        x = x.astype(np.float32)
        if x.size < self.field:
            x = np.pad(x, (0, self.field - x.size))
        frames = (x.size - self.field) // self.stride + 1
        per_window = max(1, int(WINDOW_S * self.sr) // self.stride)  # frames per window
        span = per_window * self.stride + self.field - self.stride  # samples per full window
        starts = list(range(0, frames, per_window))
        pieces = [x[s * self.stride : s * self.stride + span] for s in starts]
        out: list[np.ndarray] = []
        with torch.inference_mode():
            i = 0
            while i < len(pieces):
                group = [pieces[i]]
                while len(group) < BATCH and i + len(group) < len(pieces) and len(pieces[i + len(group)]) == len(group[0]):
                    group.append(pieces[i + len(group)])
                batch = torch.from_numpy(np.stack(group))
                hidden = self.model(batch, output_hidden_states=True).hidden_states
                out.extend(_local_model.as_float32(_local_model.pick(hidden, self.span)))
                i += len(group)
        return np.concatenate(out)[:frames] if out else np.zeros((0, int(self.config["hidden_size"])), np.float32)


def featurizer(settings) -> Featurizer:
    return Featurizer(settings)
