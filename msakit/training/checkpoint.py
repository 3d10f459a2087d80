"""The run directory: everything a finished (or interrupted) run leaves behind.

```
run_dir/
  config.json            resolved RunConfig
  metrics.jsonl          one line per epoch: train loss terms, validation metrics
  last.pt                resume state after the latest epoch (weights, optimiser, ULGM, RNG);
                         deleted when the run finishes
  best/model.safetensors best weights by validation MAE
  best/model.json        model name, config, input dims, text-encoder architecture
  best/tokenizer/        the tokenizer, so the run needs nothing outside its folder
  test_predictions.csv   id, label, prediction (and unimodal predictions)
  results.json           test (or validation) metrics, best epoch, timings
```
``best/`` loads with ``load_model`` alone: no training code, no original encoder path.
Every file is written to a temporary name and renamed, so a killed run never leaves a
half-written checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n"))


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def save_best_model(directory: Path, model, kind: str, tokenizer=None) -> None:
    from safetensors.torch import save_file

    from msakit import __version__

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(directory / "model.safetensors", lambda p: save_file(state, str(p), metadata={"model": model.name}))
    meta = {
        "format_version": FORMAT_VERSION,
        "msakit_version": __version__,
        "model": model.name,
        "kind": kind,
        "model_config": dataclasses.asdict(model.config),
        "input_dims": dataclasses.asdict(model.dims),
        "text_encoder_config": model.text_model.config_dict() if hasattr(model, "text_model") else None,
    }
    write_json(directory / "model.json", meta)
    if tokenizer is not None and not (directory / "tokenizer").exists():
        tokenizer.save_pretrained(str(directory / "tokenizer"))


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a trained model from a run directory (or its ``best/`` folder).

    Returns ``(model, tokenizer, meta)``; the model is in eval mode on ``device``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from msakit.config import apply_overrides
    from msakit.encoders import TextEncoder, load_tokenizer
    from msakit.models import InputDims, get_model_class

    path = Path(path)
    directory = path / "best" if (path / "best").is_dir() else path
    meta_path = directory / "model.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path}: no trained model here (expected {meta_path}); was training finished?")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{meta_path}: checkpoint format {meta.get('format_version')} is not supported (expected {FORMAT_VERSION})")
    model_class = get_model_class(meta["model"])
    saved = {**getattr(model_class, "LEGACY_DEFAULTS", {}), **meta["model_config"]}  # older runs lack newer settings
    config = apply_overrides(model_class.config_class(), saved, "model")
    dims_payload = dict(meta["input_dims"])
    dims = InputDims(**(dims_payload | {"modalities": tuple(dims_payload["modalities"])}))
    kwargs = {}
    tokenizer = None
    if meta.get("text_encoder_config") is not None:
        kwargs["text_encoder"] = TextEncoder.from_config_dict(meta["text_encoder_config"])
        tokenizer = load_tokenizer(directory / "tokenizer")
    model = model_class(config, dims, **kwargs)
    try:
        state = load_file(str(directory / "model.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{directory / 'model.safetensors'}: unreadable weights ({exc}); the run may be incomplete") from None
    check_state_matches(model, state, str(directory / "model.safetensors"))
    model.load_state_dict(state)
    return model.to(device).eval(), tokenizer, meta


def check_state_matches(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights written by a different model or shape, naming what differs."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(expected[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with other shapes (e.g. {k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)})")
        raise ValueError(
            f"{source}: these weights do not fit {type(module).__name__}: {'; '.join(parts)}. "
            "The checkpoint was written by another model or configuration."
        )
