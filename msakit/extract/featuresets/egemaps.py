"""Audio feature sets ``egemaps_lld`` and ``egemaps_functionals``: openSMILE's extended Geneva
Minimalistic Acoustic Parameter Set v02 (Eyben et al. 2016, IEEE Trans. Affective Computing):
25 low-level descriptors every 10 ms (pitch, jitter, shimmer, loudness, HNR, formants, spectral
slopes, ...) or the 88 functionals over the clip. Through audEERING's ``opensmile`` package
(research licence: non-commercial use only); see ``_opensmile``."""

from __future__ import annotations

from msakit.extract.featuresets import _opensmile

FEATURE_SET = "eGeMAPSv02"
LEVELS = {"egemaps_lld": "LowLevelDescriptors", "egemaps_functionals": "Functionals"}


def check(settings) -> None:
    _opensmile.check(settings, settings.audio_features)


def describe(settings) -> dict:
    return _opensmile.describe(settings, FEATURE_SET, LEVELS[settings.audio_features], "eGeMAPS v02")


def fingerprint(settings) -> dict:
    return _opensmile.fingerprint(settings)


def featurizer(settings) -> _opensmile.Featurizer:
    return _opensmile.Featurizer(FEATURE_SET, LEVELS[settings.audio_features], settings.sample_rate)
