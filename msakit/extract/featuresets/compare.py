"""Audio feature sets ``compare_lld`` and ``compare_functionals``: openSMILE's ComParE 2016 set
(the Interspeech Computational Paralinguistics Challenge set, Schuller et al. 2016): 65
low-level descriptors every 10 ms (loudness, MFCC, RASTA auditory bands, spectral measures,
voicing, jitter, shimmer, ...) or 6373 functionals over the clip. Through audEERING's
``opensmile`` package (research licence: non-commercial use only); see ``_opensmile``."""

from __future__ import annotations

from msakit.extract.featuresets import _opensmile

FEATURE_SET = "ComParE_2016"
LEVELS = {"compare_lld": "LowLevelDescriptors", "compare_functionals": "Functionals"}


def check(settings) -> None:
    _opensmile.check(settings, settings.audio_features)


def describe(settings) -> dict:
    return _opensmile.describe(settings, FEATURE_SET, LEVELS[settings.audio_features], "ComParE 2016")


def fingerprint(settings) -> dict:
    return _opensmile.fingerprint(settings)


def featurizer(settings) -> _opensmile.Featurizer:
    return _opensmile.Featurizer(FEATURE_SET, LEVELS[settings.audio_features], settings.sample_rate)
