"""What to extract: the clips of a folder, a manifest CSV, a list of files, or a raw dataset
release (``label.csv`` beside ``Raw/<video_id>/<clip_id>.mp4``: CMU-MOSI, CMU-MOSEI, CH-SIMS,
CH-SIMS v2, the layout MMSA-FET reads), each validated here, before any clip is extracted.

Every problem with the input is one line naming the file (and line) and what to do.
"""

from __future__ import annotations

import codecs
import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from msakit.errors import ConfigError, DataError, MissingFileError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".m4v")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus")
MEDIA_SUFFIXES = VIDEO_SUFFIXES + AUDIO_SUFFIXES
SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "dev": "valid", "validation": "valid", "test": "test"}
LAYOUTS = ("auto", "mmsa", "files")
KIND_RANGE = {"mosi": 3.0, "mosei": 3.0, "sims": 1.0}


@dataclass
class Clip:
    path: Path
    id: str
    label: float | None = None
    split: str | None = None
    text: str | None = None
    group: str = ""
    unimodal: dict[str, float] | None = None  # SIMS: {"T": .., "A": .., "V": ..}
    annotation: str | None = None

    @property
    def audio_only(self) -> bool:
        return self.path.suffix.lower() in AUDIO_SUFFIXES

    def content_hash(self) -> str:
        """SHA-256 of the file's bytes (an edit in place that keeps size and time is seen)."""
        digest = hashlib.sha256()
        try:
            with open(self.path, "rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            return "unreadable"
        return digest.hexdigest()

    def key(self) -> str:
        """The cache key of this clip's features: its content and the transcript given (the
        settings, versions and channel key the folder the part lies in)."""
        text = "\0none" if self.text is None else self.text
        return hashlib.sha256(f"{self.content_hash()}|{text}".encode()).hexdigest()[:24]


@dataclass
class Listing:
    clips: list[Clip]
    layout: str = "files"
    kind: str | None = None  # inferred or given; None for unlabelled clips
    kind_reason: str = ""
    missing: list[dict] = field(default_factory=list)  # listed but not on disk: {"id", "path", "reason"}
    unlisted: list[str] = field(default_factory=list)  # media files on disk that no row names
    inputs: list[Path] = field(default_factory=list)  # files read (manifest / label.csv) plus the clips


def _clip_id(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    return "$_$".join(parts[-2:]) if len(parts) > 1 else parts[0]


def _dedupe(clips: list[Clip]) -> list[Clip]:
    seen: dict[str, int] = {}
    for clip in clips:  # distinct ids even for equal file names in different folders
        n = seen[clip.id] = seen.get(clip.id, 0) + 1
        if n > 1:
            clip.id = f"{clip.id}_{n}"
    return clips


def list_clips(source: str | Path | Iterable[str | Path]) -> list[Clip]:
    """The clips of a folder, a manifest CSV, a raw dataset folder, or a list of media files."""
    return gather(source).clips


def gather(source, *, layout: str = "auto", kind: str | None = None) -> Listing:
    """List and validate the clips of ``source``: a folder (media files, searched recursively,
    or a raw release with ``label.csv`` and ``Raw/``), a manifest CSV, one media file, or a list
    of media files. ``layout``: ``auto``, ``mmsa`` (the raw release) or ``files``."""
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if kind is not None and kind not in KIND_RANGE:
        raise ConfigError(f"--kind {kind!r}: choose one of {', '.join(KIND_RANGE)}")
    if not isinstance(source, (str, os.PathLike)):
        clips = []
        for item in source:
            path = Path(item)
            if path.is_dir():
                raise DataError(f"{path}: is a folder; give media files here (msakit extract takes a folder of clips)")
            if not path.is_file():
                raise MissingFileError(f"{path}: no such media file")
            if path.suffix.lower() not in MEDIA_SUFFIXES:
                raise DataError(f"{path}: not a media file ({', '.join(MEDIA_SUFFIXES)})")
            clips.append(Clip(path, path.stem, group=path.stem))
        if not clips:
            raise DataError("no media files given")
        return Listing(_dedupe(clips), inputs=[c.path for c in clips])
    source = Path(source)
    if source.is_dir():
        label_csv = source / "label.csv"
        if layout == "mmsa" or (layout == "auto" and label_csv.is_file() and (source / "Raw").is_dir()):
            return read_raw_release(source, kind)
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in MEDIA_SUFFIXES and p.is_file())
        if not files and label_csv.is_file():
            raise MissingFileError(_no_raw(source))
        if not files:
            raise DataError(f"{source}: no media files ({', '.join(MEDIA_SUFFIXES)}) in this folder")
        clips = [Clip(p, _clip_id(p.relative_to(source)), group=_clip_id(p.relative_to(source)).split("$_$")[0]) for p in files]
        return Listing(_dedupe(clips), inputs=files)
    if not source.is_file():
        raise MissingFileError(f"{source}: no such folder or manifest file")
    if source.suffix.lower() in MEDIA_SUFFIXES:
        return gather([source])
    if layout == "mmsa" or (layout == "auto" and source.name == "label.csv" and (source.parent / "Raw").is_dir()):
        return read_raw_release(source.parent, kind)
    return read_manifest(source, kind)


# ---- CSV reading, shared by manifests and label.csv ---------------------------------------------
_PLAIN = re.compile(r'[^,\r\n]*')  # an unquoted field runs to a comma or the line's end (a quote inside it is kept)
_QUOTED = re.compile(r'[^"\r\n]*')  # inside quotes: up to the next quote or line break


def _csv_text(path: Path) -> str:
    """The file's text; a NUL byte, UTF-16 or bytes that are not UTF-8 are refused at their line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"{path}: encoded as UTF-16; save it as UTF-8 (CSV UTF-8 in a spreadsheet's Save As)")
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    nul = data.find(b"\0", start)
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DataError(f"{path}:{line}: a NUL byte (\\0), which no text CSV holds; the file is binary, damaged or UTF-16: "
                        "check it is the right file and save it as UTF-8 text")
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        line = data.count(b"\n", 0, at) + 1
        raise DataError(f"{path}:{line}: byte 0x{data[at]:02x} is not UTF-8 (a file saved as Latin-1 or Windows-1252?); "
                        "save it as UTF-8, e.g. iconv -f latin1 -t utf-8") from None


def _runs_on(path: Path, opened: int, line: int) -> DataError:
    return DataError(f"{path}:{opened}: unclosed quote (a field opened with \" on this line runs on to line {line}); close it "
                     "(a field may hold a line break only inside a quoted field that closes: write a quote inside one as \"\")")


def _csv_records(path: Path, text: str) -> list[tuple[int, list[str], int | None]]:
    """The rows of a CSV text (comma-separated, fields quoted with ``"`` and ``""`` for a quote
    inside them, as Python's ``csv`` and spreadsheets write), each with its line number and, for
    a row with a quoted field over several lines (a multi-line transcript, RFC 4180), the line
    that field opened on. A quote that never closes is refused at the line where it opened; text
    after a closing quote at its line, or, where a quoted field ran over line breaks, at the line
    that field opened on (most likely a quote left open that swallowed the rows after it)."""
    records, i, n, line = [], 0, len(text), 1
    while i < n:
        record: tuple[int, list[str], int | None] = (line, [], None)
        while True:  # one field per turn
            if text.startswith('"', i):
                opened, parts = line, []
                i += 1
                while True:
                    match = _QUOTED.match(text, i)
                    parts.append(match.group())
                    i = match.end()
                    if i >= n:
                        raise DataError(f"{path}:{opened}: unclosed quote (a field opened with \" never closes); close it, "
                                        "or write a quote inside a quoted field as \"\"")
                    if text[i] == '"':
                        if text.startswith('"', i + 1):
                            parts.append('"')
                            i += 2
                            continue
                        i += 1
                        break
                    newline = "\r\n" if text.startswith("\r\n", i) else text[i]
                    parts.append(newline)
                    i += len(newline)
                    line += 1
                if opened < line and record[2] is None:
                    record = (record[0], record[1], opened)
                if i < n and text[i] not in ",\r\n":
                    if record[2] is not None:
                        raise _runs_on(path, record[2], line)
                    raise DataError(f"{path}:{line}: text after the closing quote of a quoted field ({text[i:i + 20]!r}); "
                                    "quote the whole field, with a quote inside it written as \"\"")
                record[1].append("".join(parts))
            else:
                match = _PLAIN.match(text, i)
                record[1].append(match.group())
                i = match.end()
            if text.startswith(",", i):
                i += 1
                continue
            break
        if i < n:  # a line break ends the row
            i += 2 if text.startswith("\r\n", i) else 1
            line += 1
        records.append(record)
    return records


def _read_rows(path: Path, multiline: bool = True) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """``(normalised header, [(line number, row)])``: header names stripped of whitespace and a
    byte-order mark, lower-cased; rows keyed by those names, values stripped; blank rows
    skipped. A syntax error (an unclosed quote, a row with more or fewer fields than the header,
    a NUL byte, text that is not UTF-8) is refused at the line where it starts. ``multiline``
    False (a dataset's ``label.csv``, whose transcripts are one line each): a quoted field over
    several lines is refused too, as the quote left open it is there."""
    records = _csv_records(path, _csv_text(path))
    header = records[0][1] if records else None
    if header is None or not any(h.strip() for h in header):
        raise DataError(f"{path}: empty; a manifest is a CSV with a header row (at least a 'path' column) and one row per clip")
    names = [h.strip().lstrip("\ufeff").strip().lower() for h in header]
    duplicates = sorted({n for n in names if n and names.count(n) > 1})
    if duplicates:
        raise DataError(f"{path}:1: column {duplicates[0]!r} appears twice in the header")
    out = []
    for line, row, opened in records[1:]:
        if not any(cell.strip() for cell in row):
            continue
        if opened is not None and (len(row) != len(names) or not multiline):
            raise _runs_on(path, opened, line + sum(cell.count("\n") for cell in row))
        if len(row) != len(names) and not (len(row) < len(names) and not any(names[len(row):])):
            fix = "quote fields that hold commas" if len(row) > len(names) else "give every column, an empty one as nothing between two commas"
            raise DataError(f"{path}:{line}: {len(row)} field(s) but the header has {len(names)} "
                            f"({', '.join(h.strip() for h in header)[:80]}); {fix}")
        out.append((line, {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(names) if name}))
    return names, out


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {column} {text!r} is not a finite number")
    return value


def _split(text: str, where: str) -> str | None:
    if not text:
        return None
    split = _SPLIT_ALIASES.get(text.lower())
    if split is None:
        raise DataError(f"{where}: split {text!r}: use train, valid or test")
    return split


def _settle_kind(clips: list[Clip], kind: str | None, path: Path, lines: dict[str, int], unimodal: bool) -> tuple[str | None, str]:
    """Check the labels (and the unimodal labels ``label_T/A/V``) lie in the range of ``kind``;
    infer the kind when not given. Unimodal labels are CH-SIMS's: without ``kind`` their
    presence makes the kind ``sims``, and every label is checked against its [-1, 1]."""
    labelled = [c for c in clips if c.label is not None]
    if not labelled:
        return kind, ""
    sims_by_columns = kind is None and any(c.unimodal for c in labelled)
    checked = kind or ("sims" if sims_by_columns else None)
    bound = KIND_RANGE[checked] if checked else 3.0
    for clip in labelled:
        for column, value in [("label", clip.label)] + [(f"label_{m}", v) for m, v in (clip.unimodal or {}).items()]:
            if abs(value) <= bound:
                continue
            if sims_by_columns:
                what = "sims (rows with unimodal labels label_T/A/V are CH-SIMS)"
            else:
                what = kind or "sentiment labels"
            fix = "; correct it, or pass --kind mosi if these labels are on the [-3, 3] scale" if checked == "sims" else "; correct it"
            raise DataError(f"{path}:{lines[clip.id]}: {column} {value:g} is outside [-{bound:g}, {bound:g}], the range of {what}{fix}")
    if kind:
        return kind, "given"
    if sims_by_columns:
        return "sims", "unimodal labels (label_T/A/V) and labels inside [-1, 1]: the CH-SIMS scale (--kind to override)"
    largest = max(abs(c.label) for c in labelled)
    if largest > 1.0:
        return "mosi", f"labels reach {largest:g}, beyond [-1, 1]: the [-3, 3] scale of MOSI/MOSEI (--kind mosei for MOSEI)"
    return "sims", "labels inside [-1, 1]" + (" with unimodal labels" if unimodal else "") + ": the CH-SIMS scale (--kind to override)"


def read_manifest(path: Path, kind: str | None = None) -> Listing:
    """A manifest CSV: ``path`` (relative to the CSV) and optional ``label``, ``split``,
    ``text``, ``video_id``, ``id``, ``label_t``/``label_a``/``label_v``. A clip's id is its ``id``,
    else ``<video_id>$_$<file stem>`` where the row names its video, else made from its path."""
    names, rows = _read_rows(path)
    if "path" not in names and {"video_id", "clip_id"} <= set(names):
        raise MissingFileError(_no_raw(path.parent))
    if "path" not in names:
        raise DataError(f"{path}:1: no 'path' column in the header ({', '.join(n for n in names if n)[:80]}); "
                        "a manifest names each clip's file in a 'path' column")
    if not rows:
        raise DataError(f"{path}: the manifest has a header and no rows; add one row per clip")
    clips, lines, inputs = [], {}, [path]
    for line, row in rows:
        where = f"{path}:{line}"
        raw = row["path"]
        if not raw:
            raise DataError(f"{where}: empty path")
        clip_path = Path(raw) if Path(raw).is_absolute() else path.parent / raw
        if clip_path.is_dir():
            raise DataError(f"{where}: path {raw!r} is a folder, not a media file; name one clip per row")
        if clip_path.exists() and clip_path.suffix.lower() not in MEDIA_SUFFIXES:
            raise DataError(f"{where}: path {raw!r} is not a media file ({', '.join(MEDIA_SUFFIXES)})")
        label = _number(row["label"], where, "label") if row.get("label") else None
        unimodal = {m: _number(row[f"label_{m.lower()}"], where, f"label_{m}") for m in "TAV" if row.get(f"label_{m.lower()}")} or None
        video = row.get("video_id")
        if video and "$_$" in video:
            raise DataError(f"{where}: video_id {video!r} holds '$_$', the separator of <video_id>$_$<clip_id> ids; rename it")
        # With a video_id the id names the video, as a release's label.csv does: data.context reads neighbours from it.
        clip_id = row.get("id") or (f"{video}$_${Path(raw).stem}" if video else _clip_id(Path(raw)))
        group = video or clip_id.split("$_$")[0]
        clips.append(Clip(clip_path, clip_id, label, _split(row.get("split", ""), where), row.get("text") or None, group, unimodal,
                          row.get("annotation") or None))
        lines[clip_id] = line
        inputs.append(clip_path)
    _check_ids(clips, path, lines)
    _check_consistent(clips, path, lines)
    kind, reason = _settle_kind(clips, kind, path, lines, any(c.unimodal for c in clips))
    return Listing(clips, "files", kind if any(c.label is not None for c in clips) else None, reason, inputs=inputs)


def read_raw_release(folder: Path, kind: str | None = None) -> Listing:
    """A raw release: ``label.csv`` (video_id, clip_id, text, label[, label_T, label_A, label_V],
    annotation, mode) beside ``Raw/<video_id>/<clip_id>.<ext>``."""
    path = folder / "label.csv"
    if not path.is_file():
        raise MissingFileError(f"{folder}: no label.csv; a raw dataset release holds label.csv beside Raw/<video_id>/<clip_id>.mp4")
    raw_dir = folder / "Raw"
    if not raw_dir.is_dir():
        raise MissingFileError(_no_raw(folder))
    names, rows = _read_rows(path, multiline=False)
    required = [c for c in ("video_id", "clip_id", "label", "mode") if c not in names]
    if required:
        raise DataError(f"{path}:1: no {required[0]!r} column; a raw release's label.csv has video_id, clip_id, text, label, "
                        "annotation, mode (and label_T/A/V on SIMS)")
    if not rows:
        raise DataError(f"{path}: label.csv has a header and no rows")
    on_disk: dict[tuple[str, str], Path] = {}
    for media in sorted(raw_dir.rglob("*")):
        if media.is_file() and media.suffix.lower() in MEDIA_SUFFIXES:
            relative = media.relative_to(raw_dir)
            if len(relative.parts) == 2:
                on_disk.setdefault((relative.parts[0], media.stem), media)
            else:
                on_disk.setdefault(("", str(relative)), media)
    unimodal_columns = all(f"label_{m}" in names for m in "tav")
    clips, missing, absent, lines, listed, inputs = [], [], [], {}, set(), [path]
    for line, row in rows:
        where = f"{path}:{line}"
        video_id, clip_id = row["video_id"], row["clip_id"]
        if not video_id or not clip_id:
            raise DataError(f"{where}: empty video_id or clip_id")
        if any(sep in video_id + clip_id for sep in ("/", "\\")) or video_id in (".", "..") or clip_id in (".", ".."):
            raise DataError(f"{where}: video_id {video_id!r} / clip_id {clip_id!r} must be plain names, not paths")
        if not row["label"]:
            raise DataError(f"{where}: empty label")
        label = _number(row["label"], where, "label")
        unimodal = None
        if unimodal_columns:
            values = {m: row[f"label_{m.lower()}"] for m in "TAV"}
            if all(values.values()):
                unimodal = {m: _number(v, where, f"label_{m}") for m, v in values.items()}
            elif any(values.values()):
                raise DataError(f"{where}: label_T, label_A and label_V must all be given or all be empty")
        split = _split(row["mode"], where)
        if split is None:
            raise DataError(f"{where}: empty mode; every row of label.csv names its split (train, valid or test)")
        clip_key = f"{video_id}$_${clip_id}"
        lines[clip_key] = line
        listed.add((video_id, clip_id))
        media = on_disk.get((video_id, clip_id))
        clip = Clip(media or raw_dir / video_id / f"{clip_id}.mp4", clip_key, label, split, row.get("text") or None, video_id, unimodal,
                    row.get("annotation") or None)
        if media is None:
            missing.append({"id": clip_key, "path": str(clip.path), "reason": f"listed in label.csv (line {line}) but not on disk"})
            absent.append(clip)
            continue
        clips.append(clip)
        inputs.append(media)
    everything = clips + absent  # every row's labels are checked, its clip on disk or not
    _check_ids(everything, path, lines)
    if not clips:
        elsewhere = [p for (video_id, _), p in on_disk.items() if not video_id]
        found = (f"; {len(elsewhere)} media file(s) under Raw/ are elsewhere (e.g. {elsewhere[0].relative_to(folder)})" if elsewhere
                 else "; Raw/ holds no media file" if not on_disk else "")
        raise DataError(f"{path}: none of its {len(rows)} clips is on disk under {raw_dir} (first: {missing[0]['path']}){found}; "
                        "a raw release keeps each clip as Raw/<video_id>/<clip_id>.<ext>")
    if unimodal_columns and any(c.unimodal for c in clips) and not all(c.unimodal for c in clips):
        first = next(c for c in clips if not c.unimodal)
        raise DataError(f"{path}:{lines[first.id]}: no unimodal labels, but other rows have them; give them for every clip or none")
    kind, reason = _settle_kind(everything, kind, path, lines, unimodal_columns)
    unlisted = [str(p) for key, p in sorted(on_disk.items()) if key not in listed]
    return Listing(clips, "mmsa", kind, reason, missing, unlisted, inputs)


def _no_raw(folder: Path) -> str:
    return (f"{folder}: has label.csv but no Raw/ folder (looked for {folder / 'Raw'}); a raw dataset release keeps each clip listed in "
            "label.csv as Raw/<video_id>/<clip_id>.<ext> (e.g. Raw/abc123/0001.mp4): put the clips there")


def _check_ids(clips: list[Clip], path: Path, lines: dict[str, int]) -> None:
    seen: set[str] = set()
    for clip in clips:
        if clip.id in seen:
            raise DataError(f"{path}:{lines.get(clip.id, '?')}: clip id {clip.id!r} appears twice; give distinct ids")
        seen.add(clip.id)


def _check_consistent(clips: list[Clip], path: Path, lines: dict[str, int]) -> None:
    """Labels and splits are given for every clip or for none."""
    for attribute, what in (("label", "label"), ("split", "split")):
        given = [getattr(c, attribute) is not None for c in clips]
        if any(given) and not all(given):
            clip = clips[given.index(False)]
            raise DataError(f"{path}:{lines[clip.id]}: no {what} for this clip, but other rows have one; fill the {what} column for every row or for none")
    given = [c.unimodal is not None for c in clips]
    if any(given) and not all(given):
        clip = clips[given.index(False)]
        raise DataError(f"{path}:{lines[clip.id]}: no unimodal labels (label_T/A/V), but other rows have them")


def check_split_fractions(fractions, clips: list[Clip]) -> tuple[float, float, float] | None:
    """Validate ``--split-fractions`` against the clips (before any extraction)."""
    if fractions is None:
        return None
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or not all(math.isfinite(f) and f >= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"--split-fractions {','.join(f'{f:g}' for f in fractions)}: give three finite, non-negative fractions "
                          "(train, valid, test) summing to 1, e.g. 0.7,0.15,0.15")
    if any(c.split is not None for c in clips):
        raise ConfigError("--split-fractions: the clips already name their split (manifest 'split' column / label.csv 'mode'); "
                          "drop --split-fractions to keep them, or remove the column")
    return fractions  # type: ignore[return-value]


def assign_splits(clips: list[Clip], fractions: tuple[float, float, float] | None, seed: int) -> list[str]:
    """Each clip's split: as given, else by ``fractions`` over video ids (a speaker's clips never
    straddle splits), else ``test`` for every clip. Refuses fractions that leave a split with a
    positive fraction empty."""
    given = [c.split for c in clips]
    if all(s is not None for s in given):
        return given  # type: ignore[return-value]
    if any(s is not None for s in given):
        missing = next(c for c in clips if c.split is None)
        raise DataError(f"{missing.path}: the 'split' column is empty for this clip; fill it for every clip or for none")
    if fractions is None:
        return ["test"] * len(clips)
    groups = sorted({c.group for c in clips}, key=lambda g: hashlib.sha1(f"{seed}|{g}".encode()).hexdigest())
    counts = {g: sum(c.group == g for c in clips) for g in groups}
    total, done, assignment = len(clips), 0, {}
    bounds = (fractions[0] * total, (fractions[0] + fractions[1]) * total)
    for group in groups:
        middle = done + counts[group] / 2
        assignment[group] = "train" if middle < bounds[0] else "valid" if middle < bounds[1] else "test"
        done += counts[group]
    used = set(assignment.values())
    empty = [name for name, f in zip(SPLITS, fractions) if f > 0 and name not in used]
    if empty:
        raise ConfigError(f"--split-fractions {','.join(f'{f:g}' for f in fractions)}: {len(groups)} video id(s) leave the {empty[0]} split "
                          f"empty; extract more videos, or set its fraction to 0")
    return [assignment[c.group] for c in clips]
