"""Shared by the openSMILE feature sets (``egemaps``, ``compare``): audEERING's ``opensmile``
package (its wheel carries ``libSMILEapi`` and the configuration files; nothing downloads).

The clip's sound, resampled to ``sample_rate`` and mixed as the extractor's ``channel`` says, is
quantised to 16-bit PCM (rounded, clipped; openSMILE's Python interface passes 16-bit samples to
the library) and processed whole with the package's own configuration: the low-level descriptors
(LLD, one row per 10 ms frame) or the functionals (one row per clip). The same numbers as
openSMILE's file interface (``SMILExtract -C <config> -I clip.wav``) on that 16-bit WAV file:
``tests/test_featuresets_opensmile.py`` compares them.

Licence: audEERING's research licence (free for private, research and educational use only;
commercial use needs a licence from audEERING GmbH); see the package's licence text.
"""

from __future__ import annotations

import threading

import numpy as np

from msakit.errors import ConfigError

LICENCE = ("openSMILE research licence (audEERING GmbH): free for non-commercial use (research, teaching, personal); "
           "commercial use needs a licence from audEERING")
HOP_S = 0.01  # both sets' low-level descriptors: one frame every 10 ms
_SMILES: dict = {}
_LOCK = threading.Lock()


def check(settings, name: str) -> None:
    from importlib.util import find_spec

    if find_spec("opensmile") is None:
        raise ConfigError(f"audio_features={name}: needs audEERING's opensmile package: pip install opensmile "
                          "(research licence: non-commercial use only)")


def smile(feature_set: str, level: str):
    """One ``opensmile.Smile`` per process and set (it reads its configuration once)."""
    key = (feature_set, level)
    with _LOCK:
        if key not in _SMILES:
            import opensmile

            _SMILES[key] = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                                           feature_level=getattr(opensmile.FeatureLevel, level))
        return _SMILES[key]


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed("opensmile")
    except PackageNotFoundError:
        return "absent"


def quantise(signal: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] as 16-bit PCM."""
    return np.clip(np.round(np.asarray(signal, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def process(feature_set: str, level: str, signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """``float32 (frames, dim)`` of a whole signal (float, [-1, 1])."""
    pcm = quantise(signal)
    # Exact in float32: the package multiplies by 32768 and casts to int16, giving back ``pcm``.
    values = smile(feature_set, level).process_signal(pcm.astype(np.float32) / np.float32(32768.0), sample_rate)
    return np.ascontiguousarray(values.to_numpy(np.float32))


def names(feature_set: str, level: str) -> list[str]:
    return list(smile(feature_set, level).feature_names)


class Featurizer:
    """Collects the decoded chunks; ``finish`` runs openSMILE on the whole clip."""

    def __init__(self, feature_set: str, level: str, sample_rate: int):
        self.feature_set, self.level, self.sr = feature_set, level, sample_rate
        self.chunks: list[np.ndarray] = []
        smile(feature_set, level)  # loaded now: counts as setup

    def push(self, chunk: np.ndarray) -> None:
        self.chunks.append(np.asarray(chunk, np.float32))

    def finish(self) -> np.ndarray:
        signal = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        self.chunks = []
        return process(self.feature_set, self.level, signal, self.sr)


def describe(settings, feature_set: str, level: str, title: str) -> dict:
    lld = level == "LowLevelDescriptors"
    feature_names = names(feature_set, level)
    return {"dim": len(feature_names), "rate_hz": 1.0 / HOP_S if lld else 0.0,
            "frames": "one row per 10 ms frame (low-level descriptors)" if lld else "one row per clip (functionals; rate_hz 0)",
            "names": feature_names, "library": f"opensmile {version()} ({title}, {'low-level descriptors' if lld else 'functionals'}), "
            "16-bit PCM input", "licence": LICENCE}


def fingerprint(settings) -> dict:
    return {"opensmile": version()}
