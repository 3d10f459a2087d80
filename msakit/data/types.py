"""In-memory form of a multimodal sentiment dataset, after reading and validation.

Every reader (MMSA pickle, text table, synthetic generator) produces a ``FeatureData``;
everything downstream (batching, training, evaluation) consumes only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from msakit.errors import UnknownNameError

MODALITIES = ("t", "a", "v")
SPLITS = ("train", "valid", "test")

# Label range per dataset kind: MOSI/MOSEI are annotated on [-3, 3], CH-SIMS on [-1, 1].
LABEL_RANGE = {"mosi": 3.0, "mosei": 3.0, "sims": 1.0}


@dataclass
class Split:
    """One split of a dataset; arrays are validated, finite, and row-aligned.

    ``audio``/``vision`` are ``float32 (N, T, D)`` padded on the right; their lengths are
    ``int64 (N,)`` counts of valid frames, each in ``[1, T]``. ``labels["m"]`` is the
    multimodal label (``float32 (N,)``); ``labels`` may also hold human unimodal labels
    ``"t"``, ``"a"``, ``"v"`` (CH-SIMS, or the synthetic data's planted truth).
    """

    name: str
    ids: list[str]
    labels: dict[str, np.ndarray]
    raw_text: list[str] | None = None
    audio: np.ndarray | None = None
    audio_lengths: np.ndarray | None = None
    vision: np.ndarray | None = None
    vision_lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def modalities(self) -> tuple[str, ...]:
        present = {"t": self.raw_text is not None, "a": self.audio is not None, "v": self.vision is not None}
        return tuple(m for m in MODALITIES if present[m])

    def feature_dim(self, modality: str) -> int:
        array = {"a": self.audio, "v": self.vision}[modality]
        if array is None:
            raise UnknownNameError(f"split {self.name!r} has no {modality!r} features")
        return int(array.shape[2])

    def subset(self, indices) -> "Split":
        """A new Split holding the given rows (used for slices in tests and benchmarks)."""
        idx = np.asarray(indices, dtype=np.int64)

        def take(x):
            return None if x is None else x[idx]

        return Split(
            name=self.name,
            ids=[self.ids[i] for i in idx],
            labels={k: v[idx] for k, v in self.labels.items()},
            raw_text=None if self.raw_text is None else [self.raw_text[i] for i in idx],
            audio=take(self.audio),
            audio_lengths=take(self.audio_lengths),
            vision=take(self.vision),
            vision_lengths=take(self.vision_lengths),
        )


@dataclass
class FeatureData:
    """A dataset: its splits, where it came from, and what the reader had to repair."""

    source: str
    splits: dict[str, Split]
    aligned: bool = False
    # (split, key) -> number of NaN/inf values that were replaced with 0.
    nonfinite_replaced: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities present in every split."""
        sets = [set(s.modalities) for s in self.splits.values()]
        common = set.intersection(*sets) if sets else set()
        return tuple(m for m in MODALITIES if m in common)

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise UnknownNameError(
                f"{self.source}: no split {split!r}; the file has {sorted(self.splits)}"
            )
        return self.splits[split]
