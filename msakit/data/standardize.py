"""Per-feature standardisation of audio and vision frames, fitted on the training split.

Real extractors emit raw values: openSMILE columns with standard deviations from 1e-3 to 50,
landmark coordinates in pixels, CNN activations in the hundreds. An LSTM fed such frames is
dominated by its few largest columns and saturates; z-scoring each column puts every feature
on the same footing. The statistics are fitted once, on the **training split only** and on
**valid frames only** (the right padding beyond each sample's length is excluded), and are
applied unchanged to validation, test, ``evaluate`` and ``predict``:

    z = clip((x − mean) / std, −clip, clip)       for valid frames; padding stays 0.

* A constant (or numerically constant: ``std <= 1e-8 · max(1, |mean|)``) column gets
  ``std = 1``, so it becomes 0 everywhere instead of NaN or inf.
* ``clip`` (``data.standardize_clip``, default 10) bounds extreme z-scores: a heavy-tailed
  column's rare outliers cannot blow up the recurrent state. Values are clipped, not dropped.

The fitted statistics are data, not code: ``best/standardizer.json`` in the run directory
(``{"clip": c, "modalities": {"a": {"mean": [...], "std": [...]}, ...}}``). ``data.standardize
= false`` turns the whole step off, for files whose features are already normalised.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msakit.data.types import FeatureData, Split
from msakit.errors import DataError

FILE_NAME = "standardizer.json"
DEFAULT_CLIP = 10.0
_ARRAYS = {"a": ("audio", "audio_lengths"), "v": ("vision", "vision_lengths")}


def _valid_mask(lengths: np.ndarray, frames: int) -> np.ndarray:
    """``(N, T)`` bool: True on each sample's valid frames (the first ``length``)."""
    return np.arange(frames)[None, :] < np.asarray(lengths)[:, None]


_CHUNK_ROWS = 256  # samples per chunk when fitting or materialising: memory stays bounded


def _valid_frames(array: np.ndarray, lengths: np.ndarray):
    """The valid frames of ``array`` as float64 ``(frames, D)`` blocks, a chunk of rows at a time."""
    for start in range(0, array.shape[0], _CHUNK_ROWS):
        chunk = np.asarray(array[start : start + _CHUNK_ROWS], dtype=np.float64)
        yield chunk[_valid_mask(lengths[start : start + _CHUNK_ROWS], array.shape[1])]


def empty_rows(array: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``bool (N,)``: samples whose valid frames are all exactly zero, what an extractor writes
    when it found nothing (no face in the clip, no voice): no feature value, but no feature."""
    out = np.zeros(array.shape[0], dtype=bool)
    for start in range(0, array.shape[0], _CHUNK_ROWS):
        chunk = np.asarray(array[start : start + _CHUNK_ROWS])
        valid = _valid_mask(lengths[start : start + _CHUNK_ROWS], array.shape[1])
        out[start : start + len(chunk)] = ~np.any((chunk != 0) & valid[:, :, None], axis=(1, 2))
    return out


def _column_stats(array: np.ndarray, lengths: np.ndarray, skip_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std per column over valid frames, two passes over row chunks in
    float64, so a memory-mapped MOSEI-sized array is never copied whole. ``skip_empty``: the
    samples whose frames are all zero (``empty_rows``) do not count."""
    if skip_empty:
        lengths = np.where(empty_rows(array, lengths), 0, lengths)
    total, count = np.zeros(array.shape[2]), 0
    for valid in _valid_frames(array, lengths):
        total += valid.sum(axis=0)
        count += valid.shape[0]
    mean = total / max(count, 1)
    squares = np.zeros(array.shape[2])
    for valid in _valid_frames(array, lengths):
        squares += ((valid - mean) ** 2).sum(axis=0)
    return mean, np.sqrt(squares / max(count, 1))


class StandardizedFrames:
    """A read-only ``(N, T, D)`` view of frames, z-scored when read: ``view[rows, :t]`` (what
    batching reads) standardises just those rows, so training never holds a standardised copy
    of a (possibly memory-mapped) split. ``np.asarray(view)`` materialises it, chunk by chunk."""

    def __init__(self, array, lengths: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float, keep_empty: bool = False):
        self.array, self.lengths, self.mean, self.std, self.clip = array, np.asarray(lengths), mean, std, clip
        self.keep_empty = keep_empty  # all-zero samples stay all zero (the absent convention)
        self.shape = tuple(array.shape)
        self.ndim = 3
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def _standardise(self, raw: np.ndarray, lengths: np.ndarray, frame_index: np.ndarray) -> np.ndarray:
        z = (raw.astype(np.float64) - self.mean) / self.std
        np.clip(z, -self.clip, self.clip, out=z)
        z *= (frame_index[None, :] < lengths[:, None])[:, :, None]
        if self.keep_empty:
            z[~np.any(raw != 0, axis=(1, 2))] = 0.0
        return z.astype(np.float32)

    def __getitem__(self, key):
        rows, frames = (key if isinstance(key, tuple) and len(key) == 2 else (key, slice(None)))
        if isinstance(rows, (int, np.integer)) or not isinstance(frames, slice):
            return np.asarray(self)[key]
        rows = np.arange(self.shape[0])[rows]
        frame_index = np.arange(self.shape[1])[frames]
        return self._standardise(np.asarray(self.array[rows][:, frames]), self.lengths[rows], frame_index)

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, dtype=np.float32)
        for start in range(0, self.shape[0], _CHUNK_ROWS):
            out[start : start + _CHUNK_ROWS] = self[start : start + _CHUNK_ROWS, :]
        return out if dtype is None else out.astype(dtype)

    def copy(self) -> np.ndarray:
        return np.asarray(self)


@dataclass
class Standardizer:
    """Per-modality, per-column mean and std; ``apply`` z-scores a split with them."""

    stats: dict[str, dict[str, np.ndarray]]  # modality -> {"mean": (D,), "std": (D,)}
    clip: float = DEFAULT_CLIP
    # True (data.empty_as_absent): all-zero samples are left out of the statistics and stay all
    # zero, i.e. absent, instead of becoming the constant vector −mean/std.
    empty_as_absent: bool = False

    @classmethod
    def fit(cls, split: Split, modalities: tuple[str, ...], clip: float = DEFAULT_CLIP, empty_as_absent: bool = False) -> "Standardizer":
        """Statistics of ``split``'s valid frames for each of ``modalities`` that has frames."""
        stats = {}
        for m in modalities:
            if m not in _ARRAYS:
                continue
            frames_key, lengths_key = _ARRAYS[m]
            array = getattr(split, frames_key)
            if array is None:
                continue
            mean, std = _column_stats(array, getattr(split, lengths_key), skip_empty=empty_as_absent)
            constant = ~(std > 1e-8 * np.maximum(1.0, np.abs(mean)))
            std = np.where(constant, 1.0, std)
            stats[m] = {"mean": mean, "std": std}
        return cls(stats, float(clip), bool(empty_as_absent))

    def apply(self, split: Split, lazy: bool = False) -> Split:
        """A new ``Split`` whose audio/vision are z-scored (valid frames) and 0 (padding);
        ``lazy=True`` gives ``StandardizedFrames`` views that standardise batch by batch."""
        changes = {}
        for m, s in self.stats.items():
            frames_key, lengths_key = _ARRAYS[m]
            array = getattr(split, frames_key)
            if array is None:
                continue
            if array.shape[2] != len(s["mean"]):
                raise DataError(
                    f"split {split.name!r}: {frames_key} has {array.shape[2]} features but the standardizer was fitted "
                    f"on {len(s['mean'])}; use data from the same feature extractor"
                )
            view = StandardizedFrames(array, getattr(split, lengths_key), s["mean"], s["std"], self.clip, self.empty_as_absent)
            changes[frames_key] = view if lazy else np.asarray(view)
        return dataclasses.replace(split, **changes) if changes else split

    def apply_data(self, data: FeatureData, lazy: bool = False) -> FeatureData:
        """Every split of ``data`` standardised with these (training) statistics."""
        return dataclasses.replace(data, splits={name: self.apply(split, lazy) for name, split in data.splits.items()})

    # ---- stored as JSON in the run directory ----------------------------------------------
    def to_dict(self) -> dict:
        extra = {"empty_as_absent": True} if self.empty_as_absent else {}  # files without it: False
        return {
            "clip": self.clip,
            "fitted_on": "train split, valid frames only" + (", all-zero samples left out" if self.empty_as_absent else ""),
            **extra,
            "modalities": {m: {"mean": s["mean"].tolist(), "std": s["std"].tolist()} for m, s in self.stats.items()},
        }

    @classmethod
    def from_dict(cls, payload: dict, source: str = "standardizer") -> "Standardizer":
        try:
            stats = {
                m: {"mean": np.asarray(s["mean"], dtype=np.float64), "std": np.asarray(s["std"], dtype=np.float64)}
                for m, s in payload["modalities"].items()
            }
            clip = float(payload["clip"])
            empty_as_absent = payload.get("empty_as_absent", False)
            if not isinstance(empty_as_absent, bool):
                raise TypeError("empty_as_absent must be true or false")
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source}: not a standardizer file ({exc!r}); retrain the run or restore the file") from None
        for m, s in stats.items():
            if m not in _ARRAYS or s["mean"].shape != s["std"].shape or not (np.all(np.isfinite(s["mean"])) and np.all(s["std"] > 0)):
                raise DataError(f"{source}: invalid statistics for modality {m!r}; retrain the run or restore the file")
        return cls(stats, clip, empty_as_absent)

    def save(self, path: str | Path) -> Path:
        from msakit.outputs import write_json

        path = Path(path)
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Standardizer":
        path = Path(path)
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read the standardizer ({exc}); retrain the run or restore the file") from None
        return cls.from_dict(payload, str(path))


def load_run_standardizer(model_dir: str | Path) -> Standardizer | None:
    """The standardizer a trained run used (``<run>/best/standardizer.json``), or None if the
    run was trained without one. A run whose config says it standardised but whose file is
    missing is refused: its predictions would silently be wrong."""
    from msakit.errors import RunDirError

    model_dir = Path(model_dir)
    best = model_dir / "best" if (model_dir / "best").is_dir() else model_dir
    path = best / FILE_NAME
    if path.is_file():
        return Standardizer.load(path)
    config_path = best.parent / "config.json"
    if config_path.is_file():
        try:
            used = json.loads(config_path.read_text()).get("data", {}).get("standardize", False)
        except (OSError, json.JSONDecodeError):
            used = False
        try:  # a run on text alone has nothing to standardise, whatever the setting says
            modalities = json.loads((best / "model.json").read_text())["input_dims"]["modalities"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            modalities = "av"
        if used and set(modalities) & {"a", "v"}:
            raise RunDirError(
                f"{path}: missing, but {config_path} says the run standardised its audio/vision (data.standardize=true); "
                "restore the file or retrain"
            )
    return None
