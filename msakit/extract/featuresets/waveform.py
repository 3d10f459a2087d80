"""Audio feature set ``waveform``: the clip's sound itself, for models that read raw audio
(``mmml`` fine-tunes a speech encoder on it).

One column, one row per sample: the decoded mono signal at ``sample_rate`` (16 kHz by default,
what wav2vec 2.0 / HuBERT / WavLM / data2vec-audio take), float32, as decoded (no normalisation:
the model normalises each clip as its encoder expects). The pickle pads every clip to the longest
one's samples, so a split of long clips is large (a minute of audio is 3.8 MB); a model reads at
most its own crop of each clip (``mmml``: ``model.max_audio_seconds``).

Licence: msakit's own (MIT); decoding as for every set (PyAV / FFmpeg).
"""

from __future__ import annotations

import numpy as np


def check(settings) -> None:
    pass


def describe(settings) -> dict:
    return {"dim": 1, "rate_hz": float(settings.sample_rate), "window_s": 1.0 / settings.sample_rate, "names": ["waveform"],
            "frames": "one row per sample (mono, float32, as decoded)", "library": "numpy (the decoded signal itself)",
            "licence": "msakit's own (MIT)"}


def fingerprint(settings) -> dict:
    return {"layout": "mono float32, one row per sample"}


class Featurizer:
    def __init__(self):
        self.chunks: list[np.ndarray] = []

    def push(self, chunk: np.ndarray) -> None:
        self.chunks.append(np.asarray(chunk, np.float32).reshape(-1))

    def finish(self) -> np.ndarray:
        x = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        self.chunks = []
        return np.ascontiguousarray(x, dtype=np.float32)[:, None]


def featurizer(settings) -> Featurizer:
    return Featurizer()
