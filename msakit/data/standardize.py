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


@dataclass
class Standardizer:
    """Per-modality, per-column mean and std; ``apply`` z-scores a split with them."""

    stats: dict[str, dict[str, np.ndarray]]  # modality -> {"mean": (D,), "std": (D,)}
    clip: float = DEFAULT_CLIP

    @classmethod
    def fit(cls, split: Split, modalities: tuple[str, ...], clip: float = DEFAULT_CLIP) -> "Standardizer":
        """Statistics of ``split``'s valid frames for each of ``modalities`` that has frames."""
        stats = {}
        for m in modalities:
            if m not in _ARRAYS:
                continue
            frames_key, lengths_key = _ARRAYS[m]
            array = getattr(split, frames_key)
            if array is None:
                continue
            valid = array[_valid_mask(getattr(split, lengths_key), array.shape[1])].astype(np.float64)  # (frames, D)
            mean = valid.mean(axis=0)
            std = valid.std(axis=0)
            constant = ~(std > 1e-8 * np.maximum(1.0, np.abs(mean)))
            std = np.where(constant, 1.0, std)
            stats[m] = {"mean": mean, "std": std}
        return cls(stats, float(clip))

    def apply(self, split: Split) -> Split:
        """A new ``Split`` whose audio/vision are z-scored (valid frames) and 0 (padding)."""
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
            z = (array.astype(np.float64) - s["mean"]) / s["std"]
            np.clip(z, -self.clip, self.clip, out=z)
            z *= _valid_mask(getattr(split, lengths_key), array.shape[1])[:, :, None]
            changes[frames_key] = z.astype(np.float32)
        return dataclasses.replace(split, **changes) if changes else split

    def apply_data(self, data: FeatureData) -> FeatureData:
        """Every split of ``data`` standardised with these (training) statistics."""
        return dataclasses.replace(data, splits={name: self.apply(split) for name, split in data.splits.items()})

    # ---- stored as JSON in the run directory ----------------------------------------------
    def to_dict(self) -> dict:
        return {
            "clip": self.clip,
            "fitted_on": "train split, valid frames only",
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
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source}: not a standardizer file ({exc!r}); retrain the run or restore the file") from None
        for m, s in stats.items():
            if m not in _ARRAYS or s["mean"].shape != s["std"].shape or not (np.all(np.isfinite(s["mean"])) and np.all(s["std"] > 0)):
                raise DataError(f"{source}: invalid statistics for modality {m!r}; retrain the run or restore the file")
        return cls(stats, clip)

    def save(self, path: str | Path) -> Path:
        from msakit.training.checkpoint import write_json

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
        if used:
            raise RunDirError(
                f"{path}: missing, but {config_path} says the run standardised its audio/vision (data.standardize=true); "
                "restore the file or retrain"
            )
    return None
