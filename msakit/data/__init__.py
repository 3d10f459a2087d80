"""Data: readers (MMSA pickle, text table, synthetic) -> validated ``FeatureData`` -> batches."""

from __future__ import annotations

from pathlib import Path

from msakit.data.locations import cache_dir
from msakit.data.types import LABEL_RANGE, MODALITIES, SPLITS, FeatureData, Split
from msakit.errors import ConfigError

SYNTHETIC = "synthetic"


def synthetic_path() -> Path:
    """The default synthetic pickle, written on first use (version-stamped, so a changed
    generator never silently reuses an old file)."""
    from msakit.data.synthetic import GENERATOR_VERSION, write_synthetic

    path = cache_dir() / f"synthetic-v{GENERATOR_VERSION}.pkl"
    if not path.exists():
        write_synthetic(path)
    return path


def load_dataset(
    path: str | Path,
    kind: str = "mosi",
    modalities: tuple[str, ...] | None = None,
    *,
    splits: tuple[str, ...] = SPLITS,
    require_labels: bool = True,
    cache: bool = True,
) -> FeatureData:
    """Read any supported input: an MMSA pickle, a directory of text tables, or ``"synthetic"``.

    ``splits``/``require_labels`` relax what an MMSA pickle must hold (see ``read_mmsa_pickle``).
    ``cache=False``: a pickle is read directly, nothing is written to the feature cache (for a
    temporary file that is deleted after one read).
    """
    from msakit.data.mmsa import read_mmsa_pickle
    from msakit.data.text_table import read_text_dataset

    if str(path) == SYNTHETIC:
        path = synthetic_path()
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in (".tsv", ".csv"):
        data = read_text_dataset(path, kind=kind)
        if modalities and set(modalities) - {"t"}:
            raise ConfigError(f"{path}: a text table has only the text modality; got modalities={modalities}")
        return data
    if not cache:
        return read_mmsa_pickle(path, kind=kind, modalities=modalities, splits=splits, require_labels=require_labels)
    # Parsed once: later reads open a memory-mapped cache of the result (feature_cache.py).
    from msakit.data.feature_cache import cached_read

    return cached_read(path, kind=kind, modalities=modalities, splits=splits, require_labels=require_labels, reader=read_mmsa_pickle)


__all__ = ["FeatureData", "Split", "MODALITIES", "SPLITS", "LABEL_RANGE", "load_dataset", "synthetic_path", "cache_dir"]
