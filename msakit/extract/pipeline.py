"""Clips in, an MMSA feature pickle out: listing, per-clip extraction, workers, resume, report.

``extract(source, output)``:

1. lists the clips: a folder (searched recursively for mp4/mkv/webm/avi/mov/mpg/mpeg) or a
   manifest CSV with a header row and columns ``path`` (relative to the CSV) and optionally
   ``label``, ``split``, ``text``, ``video_id``, ``id``;
2. extracts each clip not already done (``<output>.parts/<key>.npz``, keyed by the clip's path,
   size and modification time, in a folder keyed by the extractor settings) in ``workers``
   processes, each clip's result written atomically by the worker, so a killed extraction
   resumes where it stopped; a clip that cannot be used is recorded with a one-line reason
   (``<key>.fail.json``) and the others go on;
3. assembles the pickle (``write_mmsa_pickle``): splits from the manifest's ``split`` column, or
   from ``split_fractions`` assigned by video id (a speaker's clips never straddle splits), or
   every clip in ``test`` (for prediction); and the JSON sidecar ``<output stem>.extractor.json``
   (feature names, units, rates, dims, settings, package versions, the bad-clip report).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from msakit.errors import ConfigError, DataError, MissingFileError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".m4v")
EXTRACTOR_VERSION = 2  # 2: YIN pitch with hysteresis (v1 voiced noise)
SIDECAR_SUFFIX = ".extractor.json"


@dataclass(frozen=True)
class ExtractSettings:
    """Everything that changes the features. Saved in the sidecar; ``predict --video`` reuses it."""

    sample_rate: int = 16000  # Hz, audio is resampled to this, mono
    audio_hop: int = 640  # samples between audio frames: 25 frames/s at 16 kHz
    audio_win: int = 1024  # samples per audio frame (64 ms)
    video_fps: float = 10.0  # face frames per second of video
    max_side: int = 640  # frames are downscaled so the longer side is at most this (pixels)
    min_duration_s: float = 0.5  # shorter clips are reported as too short
    min_face_fraction: float = 0.05  # clips with a face in fewer sampled frames are reported
    asr_window_s: float = 30.0  # speech is recognised in windows of at most this many seconds
    modalities: str = "tav"

    def validate(self) -> "ExtractSettings":
        checks = [
            (self.sample_rate >= 8000, "sample_rate", ">= 8000"), (self.audio_hop >= 1, "audio_hop", ">= 1"),
            (self.audio_win >= self.audio_hop, "audio_win", ">= audio_hop"), (0 < self.video_fps <= 60, "video_fps", "in (0, 60]"),
            (self.max_side >= 64, "max_side", ">= 64"), (self.min_duration_s >= 0, "min_duration_s", ">= 0"),
            (0 <= self.min_face_fraction <= 1, "min_face_fraction", "in [0, 1]"), (self.asr_window_s >= 5, "asr_window_s", ">= 5"),
            (bool(self.modalities) and set(self.modalities) <= set("tav"), "modalities", "letters of 'tav'"),
        ]
        for ok, name, rule in checks:
            if not ok:
                raise ConfigError(f"extract.{name}={getattr(self, name)!r}: must be {rule}")
        return self

    @property
    def audio_rate_hz(self) -> float:
        return self.sample_rate / self.audio_hop

    def key(self) -> str:
        payload = json.dumps({"v": EXTRACTOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:10]


@dataclass
class Clip:
    path: Path
    id: str
    label: float | None = None
    split: str | None = None
    text: str | None = None
    group: str = ""

    def key(self) -> str:
        try:
            stat = self.path.stat()
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        return hashlib.sha1(f"{self.path.resolve()}|{stamp}|{self.text is not None}".encode()).hexdigest()[:16]


@dataclass
class ExtractResult:
    output: Path
    sidecar: Path
    extracted: list[str]
    failures: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}
    seconds: float = 0.0

    def report(self) -> str:
        lines = [f"{len(self.extracted)} clip(s) extracted to {self.output}; {len(self.failures)} could not be used"]
        lines += [f"  {f['path']}: {f['reason']}" for f in self.failures]
        return "\n".join(lines)


# ---- listing ----------------------------------------------------------------------------------
def _clip_id(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    return "$_$".join(parts[-2:]) if len(parts) > 1 else parts[0]


def list_clips(source: str | Path | Iterable[str | Path]) -> list[Clip]:
    """The clips of a folder, a manifest CSV, or a list of video files."""
    if not isinstance(source, (str, os.PathLike)):
        clips = []
        for item in source:
            path = Path(item)
            if not path.is_file():
                raise MissingFileError(f"{path}: no such video file")
            clips.append(Clip(path, path.stem, group=path.stem))
        seen: dict[str, int] = {}
        for clip in clips:  # distinct ids even for equal file names in different folders
            n = seen[clip.id] = seen.get(clip.id, 0) + 1
            if n > 1:
                clip.id = f"{clip.id}_{n}"
        return clips
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{source}: no video files ({', '.join(VIDEO_SUFFIXES)}) in this folder")
        return [Clip(p, _clip_id(p.relative_to(source)), group=_clip_id(p.relative_to(source)).split("$_$")[0]) for p in files]
    if not source.is_file():
        raise MissingFileError(f"{source}: no such folder or manifest file")
    if source.suffix.lower() in VIDEO_SUFFIXES:
        return list_clips([source])
    return _read_manifest(source)


def _read_manifest(path: Path) -> list[Clip]:
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the manifest ({exc})") from None
    if not rows or "path" not in (rows[0].keys() if rows else ()):
        raise DataError(f"{path}: a manifest is a CSV with a header row holding at least a 'path' column")
    clips = []
    for line, row in enumerate(rows, start=2):
        clip_path = (path.parent / row["path"].strip()) if not Path(row["path"].strip()).is_absolute() else Path(row["path"].strip())
        label = None
        if (row.get("label") or "").strip():
            try:
                label = float(row["label"])
            except ValueError:
                raise DataError(f"{path}:{line}: label {row['label']!r} is not a number") from None
        split = (row.get("split") or "").strip() or None
        if split is not None and split not in ("train", "valid", "test"):
            raise DataError(f"{path}:{line}: split {split!r}: use train, valid or test")
        clip_id = (row.get("id") or "").strip() or _clip_id(Path(row["path"].strip()))
        group = (row.get("video_id") or "").strip() or clip_id.split("$_$")[0]
        text = row.get("text")
        clips.append(Clip(clip_path, clip_id, label, split, text if text is not None and text.strip() else None, group))
    ids = [c.id for c in clips]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{path}: clip id {duplicate!r} appears twice; give an 'id' column with distinct ids")
    return clips


# ---- one clip ----------------------------------------------------------------------------------

def extract_clip(path: str | Path, settings: ExtractSettings, text: str | None = None, timings: dict | None = None) -> dict[str, Any]:
    """Features of one clip: ``{"audio": (Ta, 21), "vision": (Tv, D), "text": str, ...}``.

    Raises ``ClipError`` (one-line reason) for a clip that cannot be used.
    """
    from msakit.extract.decode import ClipError, _open, iter_audio, iter_frames

    path = Path(path)
    timings = timings if timings is not None else {}
    with _open(path) as container:  # fails early and clearly on a file that is not a video
        has_audio, has_video = bool(container.streams.audio), bool(container.streams.video)
    need_audio = "a" in settings.modalities or ("t" in settings.modalities and text is None)
    if need_audio and not has_audio:
        raise ClipError("no audio track" + (" (needed for speech recognition: give the transcript in a manifest 'text' column)" if "a" not in settings.modalities else ""))
    if "v" in settings.modalities and not has_video:
        raise ClipError("no video track")
    out: dict[str, Any] = {"text": text, "asr": False}
    audio_seconds = video_seconds = 0.0
    if need_audio:
        from msakit.extract.audio import AudioFeaturizer

        featurizer = AudioFeaturizer(settings.sample_rate, settings.audio_hop, settings.audio_win) if "a" in settings.modalities else None
        recogniser = None
        if text is None and "t" in settings.modalities:
            from msakit.extract.asr import Recogniser

            recogniser = Recogniser(settings.sample_rate, settings.asr_window_s)
        samples = 0
        clock = time.perf_counter()
        for chunk in iter_audio(path, settings.sample_rate):
            timings["decode_audio"] = timings.get("decode_audio", 0.0) + time.perf_counter() - clock
            samples += chunk.size
            if featurizer is not None:
                clock = time.perf_counter()
                featurizer.push(chunk)
                timings["audio"] = timings.get("audio", 0.0) + time.perf_counter() - clock
            if recogniser is not None:
                clock = time.perf_counter()
                recogniser.push(chunk)
                timings["asr"] = timings.get("asr", 0.0) + time.perf_counter() - clock
            clock = time.perf_counter()
        audio_seconds = samples / settings.sample_rate
        if audio_seconds < settings.min_duration_s:
            raise ClipError(f"too short ({audio_seconds:.2f} s of audio; the minimum is {settings.min_duration_s} s)")
        if featurizer is not None:
            clock = time.perf_counter()
            out["audio"] = featurizer.finish()
            timings["audio"] = timings.get("audio", 0.0) + time.perf_counter() - clock
        if recogniser is not None:
            clock = time.perf_counter()
            out["text"] = recogniser.finish()
            out["asr"] = True
            timings["asr"] = timings.get("asr", 0.0) + time.perf_counter() - clock
    if "v" in settings.modalities:
        from msakit.extract.face import FaceFeaturizer

        face = FaceFeaturizer()
        rows = []
        try:
            clock = time.perf_counter()
            for t, frame in iter_frames(path, settings.video_fps, settings.max_side):
                middle = time.perf_counter()
                rows.append(face(frame))
                video_seconds = t
                end = time.perf_counter()
                timings["decode_video"] = timings.get("decode_video", 0.0) + middle - clock
                timings["face"] = timings.get("face", 0.0) + end - middle
                clock = end
        finally:
            face.close()
        video_seconds += 1.0 / settings.video_fps if rows else 0.0
        if not need_audio and video_seconds < settings.min_duration_s:
            raise ClipError(f"too short ({video_seconds:.2f} s of video; the minimum is {settings.min_duration_s} s)")
        if not rows:
            raise ClipError("the video track holds no decodable frame")
        vision = np.stack(rows)
        found = float(vision[:, 0].mean())
        if found < settings.min_face_fraction or not found:
            raise ClipError(f"no face found (in {found:.0%} of {len(rows)} sampled frames; the minimum is {settings.min_face_fraction:.0%})")
        out["vision"], out["face_frames"] = vision, int(vision[:, 0].sum())
    out["duration_s"] = max(audio_seconds, video_seconds)
    return out


def _work(clip_path: str, text: str | None, settings_dict: dict, part: str) -> tuple[str, str | None, dict]:
    """Worker: extract one clip and write its part file (or its failure) atomically."""
    from msakit.extract.decode import ClipError

    settings = ExtractSettings(**settings_dict)
    part_path = Path(part)
    timings: dict = {}
    try:
        result = extract_clip(clip_path, settings, text, timings)
    except ClipError as exc:
        _atomic(part_path.with_suffix(".fail.json"), lambda p: p.write_text(json.dumps({"reason": str(exc)})))
        return clip_path, str(exc), timings
    except Exception as exc:  # a bug or an unforeseen file problem: report it for this clip, go on
        reason = f"unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())[:150]}"
        _atomic(part_path.with_suffix(".fail.json"), lambda p: p.write_text(json.dumps({"reason": reason})))
        return clip_path, reason, timings
    arrays = {k: result[k] for k in ("audio", "vision") if k in result}
    meta = {"text": result["text"], "asr": result["asr"], "duration_s": result["duration_s"], "face_frames": result.get("face_frames")}

    def write(p: Path) -> None:
        with open(p, "wb") as file:
            np.savez(file, meta=np.array(json.dumps(meta)), **arrays)

    _atomic(part_path, write)
    return clip_path, None, timings


def _atomic(path: Path, write) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(temp)
    os.replace(temp, path)


# ---- the whole extraction -----------------------------------------------------------------------
def extract(
    source: str | Path | Iterable[str | Path],
    output: str | Path,
    *,
    settings: ExtractSettings | None = None,
    workers: int = 1,
    split_fractions: tuple[float, float, float] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> ExtractResult:
    """Extract features of every clip in ``source`` into the MMSA pickle ``output``."""
    from tqdm.auto import tqdm

    from msakit.data.mmsa import write_mmsa_pickle

    settings = (settings or ExtractSettings()).validate()
    require_video_extra()
    if workers < 1:
        raise ConfigError(f"--workers {workers}: must be >= 1")
    output = Path(output)
    clips = list_clips(source)
    parts = output.parent / f"{output.name}.parts" / settings.key()
    parts.mkdir(parents=True, exist_ok=True)
    todo = []
    for clip in clips:
        part = parts / f"{clip.key()}.npz"
        if not part.exists() and not part.with_suffix(".fail.json").exists():
            todo.append((clip, part))
    start = time.perf_counter()
    timings: dict[str, float] = {}
    bar = tqdm(total=len(clips), initial=len(clips) - len(todo), unit="clip", desc="extract", disable=not progress, dynamic_ncols=True)
    settings_dict = dataclasses.asdict(settings)
    try:
        if workers == 1 or len(todo) <= 1:
            for clip, part in todo:
                _, _, t = _work(str(clip.path), clip.text, settings_dict, str(part))
                _add(timings, t)
                bar.update(1)
        else:
            import multiprocessing

            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(_work, str(c.path), c.text, settings_dict, str(p)) for c, p in todo]
                for future in as_completed(futures):
                    _add(timings, future.result()[2])
                    bar.update(1)
    finally:
        bar.close()
    return _assemble(clips, parts, output, settings, split_fractions, seed, time.perf_counter() - start, timings, write_mmsa_pickle)


def require_video_extra() -> None:
    """Refuse early, in one line, when the optional ``msakit[video]`` packages are missing."""
    from importlib.util import find_spec

    missing = [name for name in ("av", "librosa", "mediapipe", "moonshine_voice") if find_spec(name) is None]
    if missing:
        raise ConfigError(f"video extraction needs the optional extra: pip install 'msakit[video]' (missing: {', '.join(missing)})")


def _add(total: dict, more: dict) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0.0) + value


def _assign_splits(clips: list[Clip], fractions: tuple[float, float, float] | None, seed: int) -> list[str]:
    given = [c.split for c in clips]
    if all(s is not None for s in given):
        return given  # type: ignore[return-value]
    if any(s is not None for s in given):
        missing = next(c for c in clips if c.split is None)
        raise DataError(f"{missing.path}: the manifest's 'split' column is empty for this clip; fill it for every clip or for none")
    if fractions is None:
        return ["test"] * len(clips)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"--split-fractions {fractions}: give three non-negative fractions (train, valid, test) summing to 1")
    groups = sorted({c.group for c in clips}, key=lambda g: hashlib.sha1(f"{seed}|{g}".encode()).hexdigest())
    counts = {g: sum(c.group == g for c in clips) for g in groups}
    total, done, assignment = len(clips), 0, {}
    bounds = (fractions[0] * total, (fractions[0] + fractions[1]) * total)
    for group in groups:
        middle = done + counts[group] / 2
        assignment[group] = "train" if middle < bounds[0] else "valid" if middle < bounds[1] else "test"
        done += counts[group]
    return [assignment[c.group] for c in clips]


def _assemble(clips, parts, output, settings, fractions, seed, seconds, timings, write_mmsa_pickle) -> ExtractResult:
    splits_of = _assign_splits(clips, fractions, seed)
    failures, rows = [], {"train": [], "valid": [], "test": []}
    for clip, split in zip(clips, splits_of):
        part = parts / f"{clip.key()}.npz"
        fail = part.with_suffix(".fail.json")
        if fail.exists():
            failures.append({"path": str(clip.path), "id": clip.id, "reason": json.loads(fail.read_text())["reason"]})
            continue
        with np.load(part) as data:
            meta = json.loads(str(data["meta"]))
            rows[split].append((clip, meta, {k: data[k] for k in ("audio", "vision") if k in data.files}))
    extracted = [clip.id for split in rows.values() for clip, _, _ in split]
    if not extracted:
        raise DataError(f"no clip could be used ({len(failures)} failed); first: {failures[0]['path']}: {failures[0]['reason']}" if failures else "no clips")
    labelled = [clip.label is not None for split in rows.values() for clip, _, _ in split]
    if any(labelled) and not all(labelled):
        missing = next(clip for split in rows.values() for clip, _, _ in split if clip.label is None)
        raise DataError(f"{missing.path}: no label in the manifest; give every clip a label or none")
    payload = {}
    for name, items in rows.items():
        if not items:
            continue
        split: dict[str, Any] = {"id": [c.id for c, _, _ in items]}
        if "t" in settings.modalities:
            split["raw_text"] = [m["text"] or "" for _, m, _ in items]
        for key in ("audio", "vision"):
            if key[0] in settings.modalities:
                arrays = [a[key] for _, _, a in items]
                frames = max(1, max(len(a) for a in arrays))
                stacked = np.zeros((len(arrays), frames, arrays[0].shape[1]), np.float32)
                for i, a in enumerate(arrays):
                    stacked[i, : len(a)] = a
                split[key] = stacked
                split[f"{key}_lengths"] = np.array([max(1, len(a)) for a in arrays], np.int64)
        if all(labelled):
            split["regression_labels"] = np.array([c.label for c, _, _ in items], np.float32)
        payload[name] = split
    write_mmsa_pickle(output, payload)
    sidecar = sidecar_path(output)
    info = describe(settings)
    info["clips"] = {"extracted": len(extracted), "failed": failures, "splits": {k: len(v) for k, v in rows.items() if v},
                     "transcripts": {"asr": sum(m["asr"] for v in rows.values() for _, m, _ in v),
                                     "manifest": sum(not m["asr"] for v in rows.values() for _, m, _ in v)},
                     "face_frames_fraction": _face_fraction(rows)}
    info["timing_s"] = {"total": round(seconds, 3), **{k: round(v, 3) for k, v in timings.items()}}
    _atomic(sidecar, lambda p: p.write_text(json.dumps(info, indent=2)))
    return ExtractResult(output, sidecar, extracted, failures, seconds)


def _face_fraction(rows) -> float | None:
    frames = [(m["face_frames"], len(a["vision"])) for v in rows.values() for _, m, a in v if "vision" in a]
    return round(sum(f for f, _ in frames) / max(1, sum(n for _, n in frames)), 4) if frames else None


def sidecar_path(pickle_path: str | Path) -> Path:
    """``feats.pkl`` -> ``feats.extractor.json``."""
    path = Path(pickle_path)
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("msakit", "av", "librosa", "mediapipe", "moonshine-voice", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def describe(settings: ExtractSettings) -> dict[str, Any]:
    """The sidecar's description of the features these settings produce (no clip data)."""
    from msakit.extract import audio, face
    from msakit.extract.asr import MODEL_NAME

    features: dict[str, Any] = {}
    if "t" in settings.modalities:
        features["text"] = {"key": "raw_text", "source": f"manifest 'text' column, else speech recognition: {MODEL_NAME}"}
    if "a" in settings.modalities:
        features["audio"] = {"key": "audio", "dim": len(audio.FEATURE_NAMES), "rate_hz": settings.audio_rate_hz,
                             "window_s": settings.audio_win / settings.sample_rate, "names": audio.FEATURE_NAMES, "units": audio.UNITS,
                             "library": "librosa (mel filters) + numpy"}
    if "v" in settings.modalities:
        features["vision"] = {"key": "vision", "dim": len(face.FEATURE_NAMES), "rate_hz": settings.video_fps, "names": face.FEATURE_NAMES,
                              "units": face.UNITS, "library": "mediapipe face mesh (468 landmarks), tracking mode",
                              "no_face": "all features 0 (present = 0)"}
    return {"format": "msakit-extractor", "extractor_version": EXTRACTOR_VERSION, "settings": dataclasses.asdict(settings),
            "features": features, "versions": package_versions()}


def extract_features(source, output: str | Path, *, workers: int = 1, split_fractions: tuple[float, float, float] | None = None,
                     seed: int = 0, progress: bool = True, **settings: Any) -> "ExtractResult":
    """Extract features of clips (a folder, a manifest CSV or a list of files) into an MMSA pickle
    plus its ``.extractor.json`` sidecar. ``settings`` are fields of ``ExtractSettings`` (e.g.
    ``video_fps=5``), checked by name here. Returns an ``ExtractResult``. This is
    ``msakit.extract(...)``."""
    known = {f.name for f in dataclasses.fields(ExtractSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"extract.{unknown[0]}: no such extractor setting; choose from {sorted(known)}")
    return extract(source, output, settings=ExtractSettings(**settings), workers=workers, split_fractions=split_fractions,
                   seed=seed, progress=progress)
