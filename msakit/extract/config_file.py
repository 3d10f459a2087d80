"""An extraction config file (TOML or JSON) naming the feature sets and any other extractor
setting, as the incumbent extractor's JSON configs do; ``msakit extract --config FILE``.

TOML::

    [extract]
    audio_features = "speech_encoder"
    audio_encoder = "models/wavlm-base-plus"   # relative to the config file's folder
    audio_layer = "mean"
    vision_features = "image_encoder"
    vision_encoder = "models/dinov2-small"
    text_features = "text_encoder"
    text_encoder = "models/roberta-base"
    video_fps = 5

JSON: the same keys, in an ``"extract"`` object or at the top level. The command line's
``--set`` and ``--audio-features`` / ``--vision-features`` / ``--text-features`` override the
file's values. Unknown keys are refused by the extractor's settings check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msakit.errors import ConfigError

ENCODER_DIRS = ("audio_encoder", "vision_encoder", "text_encoder")


def read_extract_config(path: str | Path) -> dict[str, Any]:
    """The settings the file names; model directories resolved against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file; give a TOML or JSON file with an [extract] table")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except (ValueError, TypeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ConfigError(f"--config {path}: not valid {kind} ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a table of settings, got {type(data).__name__}")
    settings = data.get("extract", data)
    if not isinstance(settings, dict):
        raise ConfigError(f"--config {path}: 'extract' must be a table of settings")
    nested = [key for key, value in settings.items() if isinstance(value, (dict, list))]
    if nested:
        raise ConfigError(f"--config {path}: extract.{nested[0]} must be a single value, not a {type(settings[nested[0]]).__name__}")
    out = dict(settings)
    for key in ENCODER_DIRS:
        if isinstance(out.get(key), str) and out[key]:
            directory = Path(out[key]).expanduser()
            out[key] = str(directory if directory.is_absolute() else (path.parent / directory).resolve())
    return out
