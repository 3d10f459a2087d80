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
from pathlib import Path

import torch

from msakit.errors import MissingFileError, MsakitError, RunDirError

from msakit.outputs import TMP_SUFFIX, atomic_write, finite_json, read_json, remove_partial_files, write_json  # noqa: F401  (re-exported)

FORMAT_VERSION = 1


def save_best_model(directory: Path, model, kind: str, tokenizer=None, absent_frames: dict | None = None,
                    data_settings: dict | None = None) -> None:
    """``absent_frames``: the training split's padded frame count per audio/vision modality, the
    length training's modality dropout gave a withheld modality (scoring a clip without it
    gives it the same). ``data_settings``: the ``data`` settings that say how the model reads
    its input (truncation, ``data.context``), so ``best/`` alone reads it as trained."""
    from safetensors.torch import save_file

    from msakit._version import __version__

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
    if hasattr(model, "utterance_context"):  # data.context_encoder=lstm: its sizes, to rebuild it before the weights load
        meta["utterance_context"] = model.utterance_context.architecture()
    if hasattr(model, "checkpoint_architecture"):  # encoders a model builds itself (mmml's speech encoder)
        meta["model_architecture"] = model.checkpoint_architecture()
    if absent_frames:
        meta["absent_frames"] = {m: int(n) for m, n in absent_frames.items()}
    if data_settings:
        meta["data"] = dict(data_settings)
    write_json(directory / "model.json", meta)
    if tokenizer is not None and not (directory / "tokenizer").exists():
        tokenizer.save_pretrained(str(directory / "tokenizer"))


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a trained model from a run directory (or its ``best/`` folder).

    Returns ``(model, tokenizer, meta)``; the model is in eval mode on ``device``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from msakit.config import apply_overrides, validate_section
    from msakit.encoders import TextEncoder, load_tokenizer
    from msakit.models import InputDims, get_model_class

    path = Path(path)
    directory = path / "best" if (path / "best").is_dir() else path
    meta_path = directory / "model.json"
    if not meta_path.is_file():
        raise MissingFileError(f"{path}: no trained model here (expected {meta_path}); was training finished?")
    check_run_files(directory)
    meta = read_json(meta_path, "model description")
    if not isinstance(meta, dict):
        raise RunDirError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}; the file is damaged")
    missing = [k for k in ("format_version", "model", "model_config", "input_dims") if k not in meta]
    if missing:
        raise RunDirError(f"{meta_path}: missing key(s) {missing}; the file is damaged or was not written by msakit")
    if meta.get("format_version") != FORMAT_VERSION:
        raise RunDirError(f"{meta_path}: checkpoint format {meta.get('format_version')} is not supported (expected {FORMAT_VERSION})")
    try:
        model_class = get_model_class(meta["model"])
        saved = {**getattr(model_class, "LEGACY_DEFAULTS", {}), **meta["model_config"]}  # older runs lack newer settings
        config = apply_overrides(model_class.config_class(), saved, "model")
        validate_section(config, "model")
        dims_payload = dict(meta["input_dims"])
        dims = InputDims(**(dims_payload | {"modalities": tuple(dims_payload["modalities"])}))
    except (MsakitError, TypeError, KeyError, ValueError) as error:
        raise RunDirError(f"{meta_path}: {error}; the file is damaged or was written by another msakit version") from None
    kwargs = {}
    tokenizer = None
    if meta.get("text_encoder_config") is not None:
        if not (directory / "tokenizer").is_dir():
            raise RunDirError(f"{directory / 'tokenizer'}: missing; the run's tokenizer is part of the run: copy the whole run directory")
        kwargs["text_encoder"] = TextEncoder.from_config_dict(meta["text_encoder_config"], source=str(meta_path))
        tokenizer = load_tokenizer(directory / "tokenizer")
    if meta.get("model_architecture") is not None:
        kwargs["architecture"] = meta["model_architecture"]
    model = model_class(config, dims, **kwargs)
    if meta.get("utterance_context") is not None:
        from msakit.encoders.context import attach_utterance_context

        context = meta["utterance_context"]
        try:
            attach_utterance_context(model, {str(m): int(d) for m, d in dict(context["sizes"]).items()}, int(context["hidden"]))
        except (MsakitError, TypeError, KeyError, ValueError) as error:
            raise RunDirError(f"{meta_path}: 'utterance_context' {error}; the file is damaged or was written by another msakit version") from None
    weights = directory / "model.safetensors"
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise RunDirError(f"{weights}: unreadable weights ({exc}); the run may be incomplete") from None
    check_state_matches(model, state, str(weights))
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise RunDirError(f"{weights}: {bad} non-finite value(s) in {key!r}; the weights are damaged: restore the file or re-train")
    model.load_state_dict(state)
    return model.to(device).eval(), tokenizer, meta


# What a run's best/ folder may hold: weights as safetensors, descriptions as JSON, and the
# tokenizer's data files. Anything else (Python files, pickles, libraries) is refused unread.
_RUN_FILE_SUFFIXES = {".json", ".safetensors"}
_TOKENIZER_FILE_SUFFIXES = {".json", ".txt", ".model"}


def check_run_files(directory: Path) -> None:
    """Refuse a run folder holding anything but the files a run is made of."""
    for entry in sorted(directory.iterdir()):
        if entry.name == "tokenizer" and entry.is_dir():
            for item in sorted(entry.iterdir()):
                if not item.is_file() or item.suffix.lower() not in _TOKENIZER_FILE_SUFFIXES:
                    raise RunDirError(
                        f"{item}: not a tokenizer data file (allowed: {', '.join(sorted(_TOKENIZER_FILE_SUFFIXES))}); "
                        "msakit never loads code from a run directory: remove it or re-train"
                    )
        elif entry.name.endswith(TMP_SUFFIX) or entry.name.startswith("."):
            continue  # a partial write from a killed run: never read
        elif not entry.is_file() or entry.suffix.lower() not in _RUN_FILE_SUFFIXES:
            raise RunDirError(
                f"{entry}: not part of a msakit run (a run folder holds model.safetensors, *.json and tokenizer/); "
                "msakit never loads code from a run directory: remove it or re-train"
            )


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
        raise RunDirError(
            f"{source}: these weights do not fit {type(module).__name__}: {'; '.join(parts)}. "
            "The checkpoint was written by another model or configuration."
        )


def has_progress(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` (one seed's run) holds anything worth resuming: a finished epoch's
    checkpoint or a finished stage, at its top or in a stage of its own (``text_stage/``,
    ``fusion_<name>/``)."""
    run_dir = Path(run_dir)
    return any(run_dir.rglob("last.pt")) or any(run_dir.rglob("results.json"))
