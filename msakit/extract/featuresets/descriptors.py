"""Audio feature set ``descriptors`` (the default): 21 frame-level descriptors (13 MFCC, level,
YIN pitch, voicing, zero crossings, spectral shape) at ``sample_rate / audio_hop`` frames per
second; see ``msakit.extract.audio``. numpy only (librosa's mel filters, reproduced; ISC)."""

from __future__ import annotations


def check(settings) -> None:
    pass


def describe(settings) -> dict:
    from msakit.extract import audio

    return {"dim": len(audio.FEATURE_NAMES), "rate_hz": settings.sample_rate / settings.audio_hop,
            "window_s": settings.audio_win / settings.sample_rate, "names": audio.FEATURE_NAMES, "units": audio.UNITS,
            "library": "numpy (librosa's mel filters, same values; YIN pitch)", "licence": "msakit's own (MIT)"}


def fingerprint(settings) -> dict:
    return {}


def featurizer(settings):
    from msakit.extract.audio import AudioFeaturizer

    return AudioFeaturizer(settings.sample_rate, settings.audio_hop, settings.audio_win)
