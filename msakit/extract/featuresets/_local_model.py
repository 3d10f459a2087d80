"""Shared by the encoder feature sets: a local ``transformers`` model directory, checked, digested
and loaded once per process; the hidden-state layer choice.

Nothing downloads (``local_files_only``) and no code from the directory runs: a directory whose
``config.json`` maps classes to its own files (``auto_map``) or that holds Python files is refused,
as is one whose ``model_type`` is not of the kinds the set accepts.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np

from msakit.errors import ConfigError

WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
_MODELS: dict = {}
_DIGESTS: dict = {}
_LOCK = threading.Lock()


def config_of(directory: str, setting: str, kinds: dict[str, str], what: str) -> dict:
    """The directory's ``config.json`` after every check, in one line each: ``setting`` names the
    extractor setting (e.g. ``audio_encoder``) or, dotted, another setting (``model.speech_encoder_dir``:
    a model that loads the directory itself), ``kinds`` the accepted ``model_type`` values."""
    name = setting if "." in setting else f"extract.{setting}"
    where = f"{name}={directory!r}"
    if not directory:
        user = "" if "." in setting else " feature set"
        raise ConfigError(f"{name}: {what}{user} needs a local model directory; give --set {setting}=DIR "
                          "(a transformers directory: config.json and weights)")
    path = Path(directory)
    if not path.is_dir():
        raise ConfigError(f"{where}: no such directory; give a local transformers model directory (config.json and weights)")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{where}: no config.json; not a transformers model directory (save one with save_pretrained)")
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: config.json unreadable ({exc})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: config.json is not a JSON object")
    code = sorted(p.name for p in path.glob("*.py"))
    if config.get("auto_map") or code:
        raise ConfigError(f"{where}: the model asks to run its own code ({'auto_map in config.json' if config.get('auto_map') else code[0]}); "
                          "msakit loads only transformers' built-in model classes")
    kind = config.get("model_type")
    if kind not in kinds:
        raise ConfigError(f"{where}: a {kind or 'untyped'} model, not {what} ({', '.join(sorted(set(kinds.values())))}); "
                          f"give a directory of one of those (model_type {', '.join(sorted(kinds))})")
    if not any((path / name).is_file() for name in WEIGHTS):
        raise ConfigError(f"{where}: no weights ({' or '.join(WEIGHTS[:2])}); save the model with save_pretrained")
    return config


def digest(directory: str) -> str:
    """sha256 of every file's name and bytes at the directory's top level (a changed file changes
    the cache key); remembered per process by (path, size, mtime)."""
    path = Path(directory)
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    stamp = (str(path.resolve()), tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    with _LOCK:
        if stamp in _DIGESTS:
            return _DIGESTS[stamp]
    hasher = hashlib.sha256()
    for p in files:
        hasher.update(p.name.encode() + b"\0")
        with open(p, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                hasher.update(block)
        hasher.update(b"\0")
    value = hasher.hexdigest()
    with _LOCK:
        _DIGESTS[stamp] = value
    return value


def load(directory: str, loader) -> object:
    """``loader(directory)`` once per process and directory content, in eval mode."""
    key = (str(Path(directory).resolve()), digest(directory))
    with _LOCK:
        if key not in _MODELS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import torch

            torch.manual_seed(0)  # nothing random at inference; any stray initialisation is the same each run
            model = loader(directory)
            model.eval()
            _MODELS[key] = model
        return _MODELS[key]


def layer_count(config: dict) -> int:
    count = config.get("num_hidden_layers") or (config.get("vision_config") or {}).get("num_hidden_layers") or config.get("n_layer")
    return int(count or 0)


def parse_layer(text: str, layers: int, setting: str) -> tuple[int, int]:
    """``last`` | ``N`` (0 = the embeddings, 1..layers) | ``mean`` (1..layers averaged) | ``A-B``
    (layers A..B averaged): the inclusive range of hidden states to average."""
    text = str(text).strip()
    if text == "last":
        return layers, layers
    if text == "mean":
        return 1, layers
    try:
        if "-" in text:
            low, high = (int(x) for x in text.split("-", 1))
        else:
            low = high = int(text)
    except ValueError:
        raise ConfigError(f"extract.{setting}={text!r}: give last, mean, a layer number (0..{layers}) or a range A-B") from None
    if not 0 <= low <= high <= layers:
        raise ConfigError(f"extract.{setting}={text!r}: the model has hidden states 0..{layers} (0 = embeddings); "
                          f"give a layer or a range A-B within them")
    return low, high


def pick(hidden_states, span: tuple[int, int]):
    """The chosen hidden states averaged (a torch tensor)."""
    low, high = span
    chosen = hidden_states[low : high + 1]
    return chosen[0] if len(chosen) == 1 else sum(chosen[1:], chosen[0]) / len(chosen)


def model_description(directory: str, config: dict, layer: str, span: tuple[int, int]) -> dict:
    return {"model_dir": str(directory), "model_type": config.get("model_type"), "model_sha256": digest(directory),
            "layer": layer, "layers_averaged": list(span), "hidden_states": layer_count(config) + 1}


def version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed(name)
    except PackageNotFoundError:
        return "absent"


def as_float32(tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().float().cpu().numpy(), dtype=np.float32)
