"""Read (and write) MMSA feature pickles: the files most MOSI/MOSEI/SIMS users already hold.

The layout is documented in the user guide (``docs/data.md``). Real files are not always clean: aligned
files carry no ``*_lengths``, feature arrays contain NaN/inf, labels come in ``(N,)`` or
``(N, 1)``, ids may be object arrays. This reader turns all of that into a validated
``FeatureData`` (float32 features, int64 lengths in ``[1, T]``, finite float32 labels) so
nothing downstream has to re-check, and every problem it cannot repair is reported with the
file, split and key involved. Repairs it does make (NaN/inf -> 0, zero lengths -> 1) are
counted and announced in one warning per file, never silently.

Loading goes through ``safe_load``: a pickle that tries to run code is refused.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from msakit.data.safe_pickle import safe_load
from msakit.data.types import LABEL_RANGE, MODALITIES, SPLITS, FeatureData, Split
from msakit.errors import ConfigError, DataError

__all__ = ["read_mmsa_pickle", "write_mmsa_pickle", "label_bound", "out_of_range"]

# The key holding each modality's data in a split dict.
_MODALITY_KEY = {"t": "raw_text", "a": "audio", "v": "vision"}
_UNIMODAL_LABEL_KEYS = {"t": "regression_labels_T", "a": "regression_labels_A", "v": "regression_labels_V"}
# Rows per chunk when scanning features for NaN/inf (bounds the temporary mask's memory).
_CHUNK_ROWS = 512
_LABEL_TOLERANCE = 1e-4


def label_bound(kind: str | None) -> float:
    """H such that labels of this dataset kind lie in ``[-H, H]`` (None: MOSI's 3.0)."""
    if kind is None:
        return 3.0
    key = kind.lower()
    if key not in LABEL_RANGE:
        raise ConfigError(f"unknown dataset kind {kind!r}: use one of {sorted(LABEL_RANGE)} or None (labels in [-3, 3])")
    return LABEL_RANGE[key]


def out_of_range(labels: np.ndarray, bound: float) -> np.ndarray:
    """Indices of labels outside ``[-bound, bound]`` (with a 1e-4 tolerance for float noise)."""
    return np.flatnonzero(np.abs(labels) > bound + _LABEL_TOLERANCE)


def range_hint(kind: str | None) -> str:
    """What to try when labels fall outside the range of ``kind``."""
    if kind is not None and kind.lower() == "sims":
        return "labels beyond [-1, 1] suggest a MOSI/MOSEI file: pass --kind mosi (kind=\"mosi\" in Python; range [-3, 3])"
    return (
        "MOSI/MOSEI labels lie in [-3, 3] and CH-SIMS labels in [-1, 1] (a SIMS file needs --kind sims, "
        "kind=\"sims\" in Python); check this is a regression-label file of the dataset you meant"
    )


def _parse_modalities(modalities: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if modalities is None:
        return None
    if isinstance(modalities, str):
        # "a,v", "a v", "av" and "t+a" all mean the same.
        modalities = [c for token in modalities.replace(",", " ").replace("+", " ").split() for c in token]
    requested = tuple(dict.fromkeys(m.strip().lower() for m in modalities))
    unknown = [m for m in requested if m not in MODALITIES]
    if unknown:
        raise ConfigError(f"unknown modalities {unknown}: use any of {list(MODALITIES)} (t=text, a=audio, v=vision)")
    if not requested:
        raise ConfigError("modalities is empty: ask for at least one of 't', 'a', 'v' (or None for all in the file)")
    return tuple(m for m in MODALITIES if m in requested)


def _numeric_array(value: Any, where: str, key: str, allowed_kinds: str = "biuf") -> np.ndarray:
    array = value if isinstance(value, np.ndarray) else None
    if array is None:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as error:
            raise DataError(f"{where}: {key!r} is not a numeric array ({error})") from error
    if array.dtype.kind not in allowed_kinds:
        raise DataError(
            f"{where}: {key!r} must be a numeric array, got dtype {array.dtype} "
            f"({type(value).__name__}); re-export it as a float numpy array"
        )
    return array


def _str_list(value: Any, where: str, key: str, n: int | None, allow_ints: bool = False) -> list[str]:
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise DataError(f"{where}: {key!r} must be 1-D (one entry per sample), got shape {value.shape}")
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{where}: {key!r} must be a list of str, got {type(value).__name__}")
    out: list[str] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append(item)
        elif allow_ints and isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            out.append(str(item))
        else:
            raise DataError(
                f"{where}: {key!r}[{i}] is {type(item).__name__} ({item!r:.60}), expected str; "
                f"{key!r} must be a list of str"
            )
    if n is not None and len(out) != n:
        raise DataError(f"{where}: {key!r} has {len(out)} entries but 'id' has {n}; every key needs one entry per sample")
    return out


def _replace_nonfinite(array: np.ndarray) -> int:
    """Set NaN/±inf in a float array to 0 in place, chunk by chunk; return how many."""
    replaced = 0
    for start in range(0, len(array), _CHUNK_ROWS):
        chunk = array[start : start + _CHUNK_ROWS]
        bad = ~np.isfinite(chunk)
        count = int(np.count_nonzero(bad))
        if count:
            chunk[bad] = 0.0
            replaced += count
    return replaced


def _labels(value: Any, where: str, key: str, n: int, bound: float, kind: str | None) -> np.ndarray:
    labels = _numeric_array(value, where, key, allowed_kinds="iuf")
    if labels.shape == (n, 1):
        labels = labels[:, 0]
    if labels.shape != (n,):
        raise DataError(f"{where}: {key!r} must have shape (N,) or (N, 1) with N={n} (len of 'id'), got shape {labels.shape}")
    labels = np.array(labels, dtype=np.float32)  # a copy: never alias the caller's array
    bad = np.flatnonzero(~np.isfinite(labels))
    if len(bad):
        first = ", ".join(f"{i} ({labels[i]})" for i in bad[:5])
        raise DataError(
            f"{where}: {key!r} has {len(bad)} NaN/inf label(s), first at index {first}; "
            "a missing label cannot be invented: drop those samples or fix the labels, then re-export"
        )
    outside = out_of_range(labels, bound)
    if len(outside):
        i = int(outside[0])
        raise DataError(
            f"{where}: {key!r} has {len(outside)} label(s) outside the allowed range [-{bound:g}, {bound:g}] "
            f"(kind={kind!r}); first at index {i}: {float(labels[i]):g}. {range_hint(kind)}"
        )
    return labels


def _features(value: Any, where: str, key: str, n: int) -> np.ndarray:
    array = _numeric_array(value, where, key)
    if array.ndim != 3 or array.shape[0] != n:
        raise DataError(
            f"{where}: {key!r} must be a 3-D array (N, T, D) with N={n} (len of 'id'), got shape {array.shape}"
        )
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise DataError(f"{where}: {key!r} has shape {array.shape}: it needs at least one frame and one feature")
    array = array.astype(np.float32, copy=False)
    if not array.flags.writeable:
        array = array.copy()
    return array


def _given_lengths(value: Any, where: str, key: str, n: int, frames: int) -> tuple[np.ndarray, int]:
    """Validate explicit lengths; return them (int64, zeros raised to 1) and how many were raised."""
    lengths = _numeric_array(value, where, key, allowed_kinds="iuf")
    if lengths.shape == (n, 1):
        lengths = lengths[:, 0]
    if lengths.shape != (n,):
        raise DataError(f"{where}: {key!r} must have shape (N,) with N={n} (len of 'id'), got shape {lengths.shape}")
    if lengths.dtype.kind == "f":
        fractional = np.flatnonzero(~np.isfinite(lengths) | (lengths != np.round(lengths)))
        if len(fractional):
            i = int(fractional[0])
            raise DataError(f"{where}: {key!r} must hold whole frame counts; index {i} is {lengths[i]}")
    lengths = lengths.astype(np.int64)
    bad = np.flatnonzero((lengths < 0) | (lengths > frames))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{where}: {key!r} has {len(bad)} value(s) outside [0, T={frames}] (T = frames in the features); "
            f"first at index {i}: {int(lengths[i])}. The lengths do not match the feature array"
        )
    zero = lengths == 0
    lengths[zero] = 1  # an all-padding sequence still feeds one (zero) frame
    return lengths, int(np.count_nonzero(zero))


def _mask_lengths(split: dict, where: str, n: int, frames: int) -> np.ndarray:
    """Lengths for aligned files: tokens in the text_bert attention mask, or all T frames."""
    if "text_bert" not in split:
        return np.full(n, frames, dtype=np.int64)
    text_bert = _numeric_array(split["text_bert"], where, "text_bert")
    if text_bert.ndim != 3 or text_bert.shape[0] != n or text_bert.shape[1] < 2:
        raise DataError(
            f"{where}: 'text_bert' must have shape (N, 3, L) with N={n} (rows: ids, mask, segments), "
            f"got shape {text_bert.shape}"
        )
    mask = np.nan_to_num(text_bert[:, 1, :].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(mask.sum(axis=1)), 1, frames).astype(np.int64)


def _has_modality(split: dict, modality: str) -> bool:
    return split.get(_MODALITY_KEY[modality]) is not None


def read_mmsa_pickle(
    path: str | os.PathLike[str],
    *,
    kind: str | None = None,
    modalities: tuple[str, ...] | None = None,
    splits: tuple[str, ...] = SPLITS,
    require_labels: bool = True,
) -> FeatureData:
    """Read an MMSA feature pickle into a validated ``FeatureData``.

    ``kind`` ("mosi", "mosei", "sims" or None = [-3, 3]) sets the allowed label range.
    ``modalities`` (subset of "t", "a", "v") selects what to keep; None keeps every modality
    present in all three splits. Arrays of modalities not asked for are dropped. ``aligned``
    is True when a requested audio/vision array had no ``*_lengths`` key, so its lengths came
    from the ``text_bert`` mask (or are the full T when that is absent too).
    ``splits`` names the splits that must be present and are read (prediction on one's own
    clips needs only one); with ``require_labels=False`` a split may lack
    ``regression_labels`` (its ``labels`` dict is then empty).
    """
    wanted = tuple(splits)
    unknown_splits = [s for s in wanted if s not in SPLITS]
    if unknown_splits or not wanted:
        raise DataError(f"splits={splits!r}: choose from {list(SPLITS)}")
    shown = str(path)
    bound = label_bound(kind)
    requested = _parse_modalities(modalities)
    data = safe_load(path)
    if not isinstance(data, dict):
        raise DataError(
            f"{shown}: expected a dict with 'train', 'valid', 'test' at the top level, got {type(data).__name__}; "
            "is this an MMSA feature pickle?"
        )
    missing = [s for s in wanted if s not in data]
    if missing:
        raise DataError(
            f"{shown}: missing split(s) {missing}; this use needs {list(wanted)}. "
            f"Keys found: {sorted(map(str, data))}"
        )
    for name in wanted:
        if not isinstance(data[name], dict):
            raise DataError(f"{shown}: split {name!r} must be a dict of arrays, got {type(data[name]).__name__}")

    if requested is None:
        found = [m for m in MODALITIES if any(_has_modality(data[s], m) for s in wanted)]
        if not found:
            raise DataError(
                f"{shown}: no modality found: no split has 'raw_text' (t), 'audio' (a) or 'vision' (v)"
            )
        requested = tuple(found)
    for name in wanted:
        for m in requested:
            if not _has_modality(data[name], m):
                raise DataError(
                    f"{shown}: split {name!r} has no {_MODALITY_KEY[m]!r} key, needed for modality {m!r} "
                    f"(expected {_describe(m)}). Keys found: {sorted(map(str, data[name]))}. "
                    "Ask only for the modalities the file has (modalities=...)."
                )

    splits: dict[str, Split] = {}
    nonfinite: dict[tuple[str, str], int] = {}
    clamped: dict[tuple[str, str], int] = {}
    aligned = False
    dims: dict[str, dict[str, int]] = {"audio": {}, "vision": {}}
    for name in wanted:
        split = data[name]
        where = f"{shown}, split {name!r}"
        for key in ("id", "regression_labels") if require_labels else ("id",):
            if key not in split:
                raise DataError(f"{where}: missing required key {key!r}. Keys found: {sorted(map(str, split))}")
        ids = _str_list(split["id"], where, "id", None, allow_ints=True)
        n = len(ids)
        if n == 0:
            raise DataError(f"{where}: 'id' is empty; every split needs at least one sample")
        labels = {}
        if split.get("regression_labels") is not None:
            labels["m"] = _labels(split["regression_labels"], where, "regression_labels", n, bound, kind)
        for m, key in _UNIMODAL_LABEL_KEYS.items():
            if split.get(key) is not None:
                labels[m] = _labels(split[key], where, key, n, bound, kind)

        raw_text = _str_list(split["raw_text"], where, "raw_text", n) if "t" in requested else None
        arrays: dict[str, np.ndarray | None] = {"audio": None, "vision": None}
        lengths: dict[str, np.ndarray | None] = {"audio": None, "vision": None}
        for m, key in (("a", "audio"), ("v", "vision")):
            if m not in requested:
                continue
            array = _features(split[key], where, key, n)
            count = _replace_nonfinite(array)
            if count:
                nonfinite[(name, key)] = count
            dims[key][name] = int(array.shape[2])
            length_key = f"{key}_lengths"
            if split.get(length_key) is not None:
                lengths[key], raised = _given_lengths(split[length_key], where, length_key, n, array.shape[1])
                if raised:
                    clamped[(name, length_key)] = raised
            else:
                lengths[key] = _mask_lengths(split, where, n, array.shape[1])
                aligned = True
            arrays[key] = array
        splits[name] = Split(
            name=name,
            ids=ids,
            labels=labels,
            raw_text=raw_text,
            audio=arrays["audio"],
            audio_lengths=lengths["audio"],
            vision=arrays["vision"],
            vision_lengths=lengths["vision"],
        )
    del data

    for key, per_split in dims.items():
        if len(set(per_split.values())) > 1:
            detail = ", ".join(f"{s}: D={d}" for s, d in per_split.items())
            raise DataError(
                f"{shown}: {key!r} feature dimension D differs between splits ({detail}); all splits "
                "must come from the same feature extractor"
            )
    if nonfinite:
        total = sum(nonfinite.values())
        detail = ", ".join(f"{s}/{k}: {c}" for (s, k), c in nonfinite.items())
        warnings.warn(f"{shown}: replaced {total} NaN/inf values with 0 ({detail})", UserWarning, stacklevel=2)
    if clamped:
        total = sum(clamped.values())
        detail = ", ".join(f"{s}/{k}: {c}" for (s, k), c in clamped.items())
        warnings.warn(
            f"{shown}: {total} sequence length(s) of 0 raised to 1 (the sequence is all padding; "
            f"it feeds one zero frame) ({detail})",
            UserWarning,
            stacklevel=2,
        )
    return FeatureData(source=shown, splits=splits, aligned=aligned, nonfinite_replaced=nonfinite)


def _describe(modality: str) -> str:
    return {
        "t": "'raw_text': a list of N transcripts (str)",
        "a": "'audio': a float array (N, T, D)",
        "v": "'vision': a float array (N, T, D)",
    }[modality]


def write_mmsa_pickle(path: str | os.PathLike[str], data: dict) -> Path:
    """Write ``data`` (a plain dict in the MMSA layout) as a pickle, atomically.

    The file appears complete or not at all: it is written to a temporary file in the same
    directory and moved into place with ``os.replace``, so an interrupted write never leaves
    a truncated pickle where a cache lookup would find it.
    """
    if not isinstance(data, dict):
        raise TypeError(f"write_mmsa_pickle: data must be a dict of splits, got {type(data).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            pickle.dump(data, file, protocol=4)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o644)  # mkstemp makes it owner-only; a data file is ordinary
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    return path
