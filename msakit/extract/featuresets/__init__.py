"""Named feature sets, one module each, chosen per modality at extraction.

=========================  ========  =================================================================
set                        modality  module
=========================  ========  =================================================================
``descriptors`` (default)  audio     ``descriptors``: 21 frame descriptors (MFCC, level, YIN pitch, ...)
``egemaps_lld``            audio     ``egemaps``: openSMILE eGeMAPSv02, 25 low-level descriptors per 10 ms
``egemaps_functionals``    audio     ``egemaps``: openSMILE eGeMAPSv02, 88 functionals per clip
``compare_lld``            audio     ``compare``: openSMILE ComParE 2016, 65 low-level descriptors per 10 ms
``compare_functionals``    audio     ``compare``: openSMILE ComParE 2016, 6373 functionals per clip
``speech_encoder``         audio     ``speech_encoder``: hidden states of a local wav2vec 2.0 / HuBERT /
                                     WavLM / data2vec-audio directory (``audio_encoder``, ``audio_layer``)
``waveform``               audio     ``waveform``: the 16 kHz mono signal itself, one column, one row per
                                     sample (for models that read raw audio: ``mmml``)
``facemesh`` (default)     vision    ``facemesh``: MediaPipe face mesh measures and landmarks
``image_encoder``          vision    ``image_encoder``: a local ViT / CLIP vision / DINOv2 directory on the
                                     aligned face crop (``vision_encoder``, ``vision_layer``)
``none`` (default)         text      the transcript only (``raw_text``)
``text_encoder``           text      ``text_encoder``: hidden states of a local encoder directory
                                     (``text_encoder``, ``text_layer``) beside the transcript
=========================  ========  =================================================================

Every module offers ``check(settings)`` (refuse in one line before any clip: a missing package, a
directory that is not a model of the right kind), ``describe(settings)`` (the sidecar's
description: dim, rate, names, library, licence), ``fingerprint(settings)`` (what enters the cache
key beyond the settings: a model directory's content digest, a package version), and per modality
``featurizer(settings)`` (audio: ``push(chunk)`` / ``finish()``; vision: ``push(rgb)`` /
``finish()`` / ``close()``, column 0 = face present) or ``features(settings, text)`` (text).
Settings are read by attribute only (``msakit.extract.pipeline.ExtractSettings``), so this package
does not import the pipeline.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from msakit.errors import ConfigError

AUDIO = {"descriptors": "descriptors", "egemaps_lld": "egemaps", "egemaps_functionals": "egemaps", "compare_lld": "compare",
         "compare_functionals": "compare", "speech_encoder": "speech_encoder", "waveform": "waveform"}
VISION = {"facemesh": "facemesh", "image_encoder": "image_encoder"}
TEXT = {"none": None, "text_encoder": "text_encoder"}
REGISTRY = {"audio": AUDIO, "vision": VISION, "text": TEXT}
DEFAULTS = {"audio": "descriptors", "vision": "facemesh", "text": "none"}
# The settings each modality's set reads besides its name (empty for sets that need none).
MODEL_SETTINGS = {"audio": ("audio_encoder", "audio_layer"), "vision": ("vision_encoder", "vision_layer"), "text": ("text_encoder", "text_layer")}
ENCODER_SETS = {"audio": "speech_encoder", "vision": "image_encoder", "text": "text_encoder"}

__all__ = ["AUDIO", "DEFAULTS", "REGISTRY", "TEXT", "VISION", "check", "chosen", "describe", "fingerprint", "module"]


def chosen(settings, modality: str) -> str:
    return getattr(settings, f"{modality}_features")


def module(modality: str, name: str) -> ModuleType | None:
    """The module of feature set ``name`` of ``modality`` (None for text ``none``)."""
    sets = REGISTRY[modality]
    if name not in sets:
        raise ConfigError(f"{modality}_features={name!r}: no such {modality} feature set; choose from {', '.join(sets)}")
    return importlib.import_module(f"{__name__}.{sets[name]}") if sets[name] else None


def check(settings) -> None:
    """Refuse, in one line, a feature set that cannot run: an unknown name, a model setting given
    to a set that reads none, a missing package or model directory."""
    for modality in ("audio", "vision", "text"):
        name = chosen(settings, modality)
        found = module(modality, name)
        encoder, layer = MODEL_SETTINGS[modality]
        if name != ENCODER_SETS[modality]:
            for setting, default in ((encoder, ""), (layer, "last")):
                if getattr(settings, setting) != default:
                    raise ConfigError(f"extract.{setting}={getattr(settings, setting)!r}: only read by {modality}_features="
                                      f"{ENCODER_SETS[modality]}, but {modality}_features={name}; choose that set or drop the setting")
        if found is not None and modality[0] in settings.modalities:  # (text features: of the transcript, ``t``)
            found.check(settings)


def describe(settings, modality: str) -> dict | None:
    found = module(modality, chosen(settings, modality))
    return None if found is None else {"feature_set": chosen(settings, modality), **found.describe(settings)}


def fingerprint(settings) -> dict:
    """What enters the cache key beyond the settings, for sets other than the defaults."""
    out = {}
    for modality in ("audio", "vision", "text"):
        name = chosen(settings, modality)
        if name != DEFAULTS[modality] and modality[0] in settings.modalities:
            out[modality] = module(modality, name).fingerprint(settings)
    return out
