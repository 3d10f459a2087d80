"""Video-grouped folds of a split, for ``train.select=kfold:K``.

Utterances of one video share a speaker: a fold that held some of a video's utterances while
the others trained would measure how well the model remembers the speaker. Every fold here
holds whole videos (the ``<video_id>$_$<clip_id>`` ids); a sample naming no video is a group
of its own.
"""

from __future__ import annotations

import numpy as np

from msakit.data.context import video_of
from msakit.errors import ConfigError


def parse_select(text: str) -> int | None:
    """``"valid"`` -> None; ``"kfold:K"`` -> K (at least 2); anything else refused in one line."""
    value = str(text).strip()
    if value == "valid":
        return None
    head, _, count = value.partition(":")
    if head == "kfold" and count.strip().isdigit() and int(count) >= 2:
        return int(count)
    raise ConfigError(f"train.select={text!r}: use 'valid' (the validation split) or 'kfold:K' with K >= 2 (e.g. kfold:5)")


def video_folds(ids: list[str], folds: int, seed: int, where: str) -> tuple[list[np.ndarray], str]:
    """Row indices of each of ``folds`` folds (whole videos, shuffled by ``seed``, dealt in turn
    so fold sizes differ by at most one video), and what was grouped: ``"videos"`` or ``"samples"``."""
    groups: dict[str, list[int]] = {}
    for row, sample_id in enumerate(ids):
        video = video_of(sample_id)
        groups.setdefault(video[0] if video else f"\0{row}", []).append(row)
    by = "videos" if any(not key.startswith("\0") for key in groups) else "samples"
    if len(groups) < folds:
        raise ConfigError(f"train.select=kfold:{folds}: {where} has only {len(groups)} {by}; use a K of at most {len(groups)}, "
                          "or train.select=valid")
    keys = list(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    return [np.sort(np.concatenate([groups[keys[i]] for i in order[k::folds]])).astype(np.int64) for k in range(folds)], by
