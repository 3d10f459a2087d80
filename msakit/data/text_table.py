"""Read text-only sentiment data from TSV/CSV tables (e.g. the CM-BERT MOSI transcripts).

Not everyone has the MMSA feature pickles, but transcripts with labels are easy to come by
(``shared/data/mosi_text`` is one). A table with a ``text`` and a ``label`` column per
split is enough to train and evaluate the text branch, so this reader turns such a
directory into the same ``FeatureData`` the pickle reader produces, with only the text
modality. Labels are checked against the dataset's range like the pickle reader does, and
errors point at the file and line to fix.

TSV files are read without quote processing (as the CM-BERT/GLUE-style files are written:
a ``"`` in a transcript is just a character); CSV files use standard CSV quoting.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path

import numpy as np

from msakit.data.mmsa import label_bound, out_of_range, range_hint
from msakit.data.types import FeatureData, Split
from msakit.errors import DataError, MissingFileError

__all__ = ["read_text_table", "read_text_dataset"]

_EXTENSIONS = (".tsv", ".csv")
# File stem (lower case) -> split name. "dev" and "valid" both mean the validation split.
_STEMS = {"train": "train", "dev": "valid", "valid": "valid", "test": "test"}


def _reader(file, suffix: str):
    if suffix == ".tsv":
        return csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader(file, delimiter=",")


def read_text_table(path: str | os.PathLike[str], *, split_name: str, kind: str | None = None) -> Split:
    """Read one TSV/CSV table with ``text`` and ``label`` columns into a text-only ``Split``.

    Column names are matched case-insensitively; other columns are ignored. ``ids`` are
    ``f"{stem}_{row}"`` with ``row`` the 0-based data row, or, where the table has a
    ``video_id`` column, ``<video_id>$_$<clip_id>`` (``clip_id`` from its column, else the row's
    position among its video's rows), as in the MMSA pickles: what ``data.context`` reads an
    utterance's neighbours from. Texts are kept exactly as written.
    """
    path = Path(path)
    shown = str(path)
    suffix = path.suffix.lower()
    if suffix not in _EXTENSIONS:
        raise DataError(f"{shown}: unsupported table extension {path.suffix!r}; use .tsv (tab-separated) or .csv")
    if not path.is_file():
        raise MissingFileError(f"{shown}: no such file")
    bound = label_bound(kind)
    try:
        texts, labels, lines, videos = _read_rows(path, shown, suffix)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{shown}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start}); "
            "save the table as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    except csv.Error as error:
        raise DataError(f"{shown}: not a readable {suffix[1:].upper()} table ({error})") from None
    if not texts:
        raise DataError(f"{shown}: no data rows after the header")
    array = np.asarray(labels, dtype=np.float32)
    outside = out_of_range(array, bound)
    if len(outside):
        i = int(outside[0])
        raise DataError(
            f"{shown}: {len(outside)} label(s) outside the allowed range [-{bound:g}, {bound:g}] (kind={kind!r}); "
            f"first on line {lines[i]}: {labels[i]:g}. {range_hint(kind)}"
        )
    empty = [lines[i] for i, text in enumerate(texts) if not text.strip()]
    if empty:
        warnings.warn(
            f"{shown}: {len(empty)} row(s) with empty text (lines {', '.join(map(str, empty[:5]))}"
            f"{', ...' if len(empty) > 5 else ''}); they are kept, and the model sees only [CLS]/[SEP] for them",
            UserWarning,
            stacklevel=2,
        )
    return Split(
        name=split_name,
        ids=_video_ids(videos, lines, shown) if videos is not None else [f"{path.stem}_{row}" for row in range(len(texts))],
        labels={"m": array},
        raw_text=texts,
    )


def read_text_dataset(directory_or_file: str | os.PathLike[str], *, kind: str | None = None) -> FeatureData:
    """Read a directory of split tables into a text-only ``FeatureData``.

    The directory needs ``train.tsv``/``train.csv`` and ``dev.*`` or ``valid.*``; ``test.*``
    is optional. Without a test file the result has only the ``train`` and ``valid`` splits
    (training then evaluates on ``valid`` and reports no test score).
    """
    directory = Path(directory_or_file)
    shown = str(directory)
    if not directory.exists():
        raise MissingFileError(f"{shown}: no such file or directory")
    if not directory.is_dir():
        raise DataError(
            f"{shown}: a text dataset is a directory holding train.tsv (or .csv) and dev.tsv or valid.tsv "
            "(test.tsv optional), not a single file; put the table(s) in a directory with those names "
            "and pass the directory"
        )
    found: dict[str, list[Path]] = {}
    for entry in sorted(directory.iterdir()):
        split = _STEMS.get(entry.stem.lower())
        if split and entry.suffix.lower() in _EXTENSIONS and entry.is_file():
            found.setdefault(split, []).append(entry)
    for split, paths in found.items():
        if len(paths) > 1:
            raise DataError(
                f"{shown}: more than one table for the {split!r} split ({', '.join(p.name for p in paths)}); keep one"
            )
    missing = [name for name, label in (("train", "train.*"), ("valid", "dev.* or valid.*")) if name not in found]
    if missing:
        present = sorted(p.name for p in directory.iterdir())
        raise DataError(
            f"{shown}: no table for the {' and '.join(missing)} split(s); the directory needs train.tsv (or .csv) "
            f"and dev.tsv or valid.tsv (test.tsv optional). Files found: {present[:20]}"
        )
    splits = {
        name: read_text_table(found[name][0], split_name=name, kind=kind)
        for name in ("train", "valid", "test")
        if name in found
    }
    return FeatureData(source=shown, splits=splits, aligned=False)


def _video_ids(videos: list[tuple[str, str | None]], lines: list[int], shown: str) -> list[str]:
    """``<video_id>$_$<clip_id>`` per row; a row without a clip id is numbered by its position
    among its video's rows. An empty video id or a repeated (video, clip) is refused at its line."""
    from msakit.data.context import SEPARATOR

    counts: dict[str, int] = {}
    ids, seen = [], {}
    for (video, clip), line in zip(videos, lines):
        video = video.strip()
        if not video or SEPARATOR in video:
            raise DataError(f"{shown}, line {line}: video_id {video!r} is {'empty' if not video else f'holding {SEPARATOR!r}'}; "
                            "give every row its video's id (or remove the video_id column)")
        counts[video] = counts.get(video, 0) + 1
        clip = clip.strip() if clip is not None and clip.strip() else str(counts[video])
        sample_id = f"{video}{SEPARATOR}{clip}"
        if sample_id in seen:
            raise DataError(f"{shown}, line {line}: video_id {video!r} with clip_id {clip!r} again (first on line {seen[sample_id]}); "
                            "each utterance needs its own clip_id")
        seen[sample_id] = line
        ids.append(sample_id)
    return ids


def _read_rows(path: Path, shown: str, suffix: str) -> tuple[list[str], list[float], list[int], list | None]:
    texts: list[str] = []
    labels: list[float] = []
    lines: list[int] = []  # the line each row came from, for error messages
    with path.open("r", encoding="utf-8-sig", newline="") as file:
        rows = _reader(file, suffix)
        try:
            header = next(rows)
        except StopIteration:
            raise DataError(f"{shown}: the file is empty; expected a header line with 'text' and 'label' columns") from None
        columns = [name.strip().lower() for name in header]
        missing = [c for c in ("text", "label") if c not in columns]
        if missing:
            raise DataError(
                f"{shown}: no {' or '.join(repr(c) for c in missing)} column in the header; columns found: {header}. "
                f"The first line must name the columns, including 'text' and 'label'"
            )
        text_at, label_at = columns.index("text"), columns.index("label")
        video_at = columns.index("video_id") if "video_id" in columns else None
        clip_at = columns.index("clip_id") if "clip_id" in columns and video_at is not None else None
        videos: list | None = [] if video_at is not None else None
        for row in rows:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            line = rows.line_num
            if len(row) > len(header) and any(field.strip() for field in row[len(header):]):
                raise DataError(
                    f"{shown}, line {line}: {len(row)} fields, but the header has {len(header)}; "
                    + ("quote a field that holds a comma, e.g. \"good, really\"" if suffix == ".csv" else "a tab inside a field splits it: remove it")
                )
            if len(row) <= max(c for c in (text_at, label_at, video_at, clip_at) if c is not None):
                raise DataError(
                    f"{shown}, line {line}: {len(row)} field(s), but the header has {len(header)}; "
                    f"is the delimiter right ({'tab' if suffix == '.tsv' else 'comma'})?"
                )
            raw = row[label_at]
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise DataError(f"{shown}, line {line}: label {raw!r} is not a number; fix or remove that row")
            texts.append(row[text_at])
            labels.append(value)
            lines.append(line)
            if videos is not None:
                videos.append((row[video_at], row[clip_at] if clip_at is not None else None))
    return texts, labels, lines, videos
