"""From video (or audio) files and raw dataset releases to MMSA features: decoding (PyAV), speech recognition (Moonshine), audio
descriptors (librosa), face features (MediaPipe Face Mesh), and the pipeline that runs them
over many clips. Needs the optional extra: ``pip install "msakit[video]"``.

Importing this package is cheap; the heavy libraries load when a clip is extracted.
"""

from __future__ import annotations

import sys
import types

from msakit.extract.pipeline import ExtractResult, ExtractSettings, describe, extract, extract_clip, extract_features, sidecar_path
from msakit.extract.sources import gather, list_clips
from msakit.extract.sidecar import check_compatible, copy_sidecar_into, run_sidecar

__all__ = ["ExtractResult", "ExtractSettings", "check_compatible", "copy_sidecar_into", "describe", "extract", "extract_clip", "extract_features",
           "gather", "list_clips", "run_sidecar", "sidecar_path"]


class _CallableModule(types.ModuleType):
    """``msakit.extract(...)`` calls ``extract_features``; ``msakit.extract.<name>`` is this package."""

    def __call__(self, *args, **kwargs):
        return extract_features(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
