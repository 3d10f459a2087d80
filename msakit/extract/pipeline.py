"""Clips in, an MMSA feature pickle out: per-clip extraction, workers, resume, report.

``extract(source, output)``:

1. lists and validates the clips (``msakit.extract.sources``: a folder of video or audio files,
   a manifest CSV, a list of files, or a raw dataset release, ``label.csv`` beside
   ``Raw/<video_id>/<clip_id>.mp4``), checks the split fractions and the output paths
   (``msakit.outputs.check_outputs``: never over an input, never over an existing pickle or
   sidecar without ``overwrite``): every input problem is refused here, before any clip is
   extracted;
2. extracts each clip not already done (``<output>.parts/<settings key>/<clip key>.npz``; the
   settings key covers the settings, the extractor version, the recogniser and the package
   versions, the clip key the file's content and the transcript given) in ``workers``
   processes, each clip's result written atomically, so a killed extraction resumes where it
   stopped; a clip that cannot be used is recorded with a one-line reason and the others go on.
   Third-party log lines (MediaPipe, TensorFlow Lite, ONNX Runtime) go to ``worker.log`` in the
   parts folder unless ``verbose``;
3. assembles the pickle: splits from the manifest's ``split`` column or ``label.csv``'s ``mode``,
   or from ``split_fractions`` assigned by video id (a speaker's clips never straddle splits), or
   every clip in ``test`` (for prediction); and the JSON sidecar ``<output stem>.extractor.json``
   (feature names, units, rates, dims, settings, versions, per-clip statistics, the report).

The pickle depends only on the clips and the settings: the same clips give a byte-identical
file with any number of workers, resumed or not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from msakit.errors import ConfigError, DataError
from msakit.extract.sources import (AUDIO_SUFFIXES, MEDIA_SUFFIXES, VIDEO_SUFFIXES, Clip, Listing, assign_splits, check_split_fractions,
                                    gather, list_clips)

EXTRACTOR_VERSION = 2  # 2: YIN pitch with hysteresis (v1 voiced noise), deterministic recogniser, channel
SIDECAR_SUFFIX = ".extractor.json"
CHANNELS = ("mix", "left", "right")
__all__ = ["AUDIO_SUFFIXES", "MEDIA_SUFFIXES", "VIDEO_SUFFIXES", "Clip", "ExtractResult", "ExtractSettings", "describe", "extract",
           "extract_clip", "extract_features", "list_clips", "sidecar_path"]


@dataclass(frozen=True)
class ExtractSettings:
    """Everything that changes the features. Saved in the sidecar; ``predict --video`` reuses it."""

    sample_rate: int = 16000  # Hz, audio is resampled to this
    audio_hop: int = 640  # samples between audio frames: 25 frames/s at 16 kHz
    audio_win: int = 1024  # samples per audio frame (64 ms)
    video_fps: float = 10.0  # face frames per second of video
    max_side: int = 640  # frames are downscaled so the longer side is at most this (pixels)
    min_duration_s: float = 0.5  # shorter clips are reported as too short
    min_face_fraction: float = 0.05  # clips with a face in fewer sampled frames are reported
    asr_window_s: float = 8.0  # speech is recognised in windows of at most this many seconds (cut at pauses)
    modalities: str = "tav"
    channel: str = "mix"  # audio channel: mix (mono downmix), left or right (the first / second channel)
    # Feature sets (msakit.extract.featuresets): one per modality, and the model directory and
    # hidden-state layer of the encoder sets.
    audio_features: str = "descriptors"  # descriptors, egemaps_lld, egemaps_functionals, compare_lld, compare_functionals, speech_encoder
    vision_features: str = "facemesh"  # facemesh, image_encoder
    text_features: str = "none"  # none (the transcript only), text_encoder
    audio_encoder: str = ""  # speech_encoder: a local wav2vec 2.0 / HuBERT / WavLM / data2vec-audio directory
    audio_layer: str = "last"  # last, N, mean, A-B (hidden states averaged)
    vision_encoder: str = ""  # image_encoder: a local ViT / DINOv2 / CLIP directory
    vision_layer: str = "last"
    text_encoder: str = ""  # text_encoder: a local BERT / RoBERTa / XLNet / ... directory
    text_layer: str = "last"

    def validate(self) -> "ExtractSettings":
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            want = {"int": int, "float": (int, float), "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            if isinstance(value, bool) or not isinstance(value, want):
                raise ConfigError(f"extract.{f.name}={value!r}: must be {'a number' if want != str else 'text'}")
        checks = [
            (self.sample_rate >= 8000, "sample_rate", ">= 8000"), (self.audio_hop >= 1, "audio_hop", ">= 1"),
            (self.audio_win >= self.audio_hop, "audio_win", ">= audio_hop"), (0 < self.video_fps <= 60, "video_fps", "in (0, 60]"),
            (self.max_side >= 64, "max_side", ">= 64"), (0 <= self.min_duration_s < 1e6, "min_duration_s", ">= 0"),
            (0 <= self.min_face_fraction <= 1, "min_face_fraction", "in [0, 1]"), (5 <= self.asr_window_s <= 600, "asr_window_s", "in [5, 600]"),
            (bool(self.modalities) and set(self.modalities) <= set("tav"), "modalities", "letters of 'tav'"),
            (self.channel in CHANNELS, "channel", "one of " + ", ".join(CHANNELS)),
        ]
        for ok, name, rule in checks:
            if not ok:
                raise ConfigError(f"extract.{name}={getattr(self, name)!r}: must be {rule}")
        from msakit.extract import featuresets

        featuresets.check(self)
        return self

    @property
    def audio_rate_hz(self) -> float:
        return self.sample_rate / self.audio_hop

    def key(self) -> str:
        """The cache folder of these settings: they, the extractor version, the recogniser and the
        package versions (any of them changes the features)."""
        from msakit.extract.asr import MODEL_NAME

        from msakit.extract import featuresets

        # Feature-set settings at their defaults stay out, so the default set's key (and cache) is as before.
        settings = {k: v for k, v in dataclasses.asdict(self).items() if k not in _SET_FIELDS or v != _SET_FIELDS[k]}
        extra = featuresets.fingerprint(self)
        payload = json.dumps({"v": EXTRACTOR_VERSION, "asr": MODEL_NAME, "versions": package_versions(), **settings,
                              **({"featuresets": extra} if extra else {})}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


_SET_FIELDS = {"audio_features": "descriptors", "vision_features": "facemesh", "text_features": "none", "audio_encoder": "",
               "audio_layer": "last", "vision_encoder": "", "vision_layer": "last", "text_encoder": "", "text_layer": "last"}
ENCODER_DIRS = ("audio_encoder", "vision_encoder", "text_encoder")


def coerce_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings from the command line (text) as the types ``ExtractSettings`` declares; one line
    naming the setting when a value does not fit."""
    types = {f.name: f.type for f in dataclasses.fields(ExtractSettings)}
    unknown = sorted(set(settings) - set(types))
    if unknown:
        raise ConfigError(f"extract.{unknown[0]}: no such extractor setting; choose from {sorted(types)}")
    out = {}
    for name, value in settings.items():
        kind = types[name] if isinstance(types[name], str) else types[name].__name__
        if kind in ("int", "float") and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"--set {name}={value!r}: must be a number") from None
            if kind == "int":
                if not number.is_integer():
                    raise ConfigError(f"--set {name}={value!r}: must be a whole number")
                number = int(number)
            value = number
        elif kind == "int" and isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"--set {name}={value!r}: must be a whole number")
            value = int(value)
        elif kind == "str" and not isinstance(value, str):
            value = str(value)
        if name in ENCODER_DIRS and value:
            value = str(Path(value).expanduser().resolve())  # recorded in the sidecar: the same directory from anywhere
        out[name] = value
    return out


@dataclass
class ExtractResult:
    output: Path
    sidecar: Path
    extracted: list[str]
    failures: list[dict[str, str]] = field(default_factory=list)  # {"path", "id", "reason"}
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # said once: the layout, the kind, absent vision
    missing: list[dict] = field(default_factory=list)  # listed in label.csv, not on disk
    unlisted: list[str] = field(default_factory=list)  # on disk, listed nowhere
    flagged: dict[str, list[str]] = field(default_factory=dict)  # clip id -> flags (degenerate transcript, ...)
    kind: str | None = None
    splits: dict[str, int] = field(default_factory=dict)  # samples per split, in train/valid/test order
    labelled: bool = False  # the splits hold labels (a small one is then warned about: its metrics measure nothing)

    def report(self, brief: bool = False) -> str:
        """What was extracted, the notes, each clip that could not be used, and the clips listed
        but missing on disk and the files listed nowhere: each path, or with ``brief`` (``msakit
        extract --quiet``) one line counting them and saying where their paths are."""
        from msakit.metrics import split_sizes

        lines = [f"{len(self.extracted)} clip(s) extracted to {self.output}; {len(self.failures)} could not be used"]
        if self.splits:
            sizes, warnings = split_sizes(self.splits)
            lines.append(f"  splits: {sizes}")
            lines += [f"  warning: {w}" for w in warnings if self.labelled]
        lines += [f"  {note}" for note in self.notes]
        lines += [f"  {f['path']}: {f['reason']}" for f in self.failures]
        if brief and (self.missing or self.unlisted):
            counts = ([f"{len(self.missing)} listed clip(s) have no media file"] if self.missing else []) + (
                [f"{len(self.unlisted)} media file(s) are not listed"] if self.unlisted else [])
            lines.append(f"  {', '.join(counts)}; their paths are in {self.sidecar} (clips.missing_on_disk, clips.unlisted_on_disk), "
                         "or run without --quiet")
        elif self.missing:
            lines.append(f"  {len(self.missing)} clip(s) listed in label.csv but missing on disk (not extracted):")
            lines += [f"    {m['path']}" for m in self.missing[:20]] + ([f"    ... and {len(self.missing) - 20} more"] if len(self.missing) > 20 else [])
        if self.unlisted and not brief:
            lines.append(f"  {len(self.unlisted)} media file(s) under Raw/ listed in no row of label.csv (ignored):")
            lines += [f"    {u}" for u in self.unlisted[:20]] + ([f"    ... and {len(self.unlisted) - 20} more"] if len(self.unlisted) > 20 else [])
        lines += [f"  {clip}: {'; '.join(flags)}" for clip, flags in self.flagged.items()]
        return "\n".join(lines)


# ---- one clip ----------------------------------------------------------------------------------

def extract_clip(path: str | Path, settings: ExtractSettings, text: str | None = None, timings: dict | None = None,
                 on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Features of one clip: ``{"audio": (Ta, 21), "vision": (Tv, D), "text": str, ...}``.

    An audio file (or a video file without a video track) gives no vision: ``vision`` is then
    absent from the result and ``vision_absent`` is True. ``on_stage(name)`` is called as each
    stage starts: ``"audio"`` (decoding, speech recognition, audio descriptors), ``"video"``
    (decoding, face features), ``"done"``. Raises ``ClipError`` (one-line reason) for a clip that
    cannot be used.

    The audio stages (decoding the sound, speech recognition, descriptors) and the video stages
    (decoding frames, face mesh) read the file separately and run at the same time, the video in a
    second thread (the recogniser, the face mesh and the decoder release Python's lock while they
    compute): on 2 cores speech recognition overlaps the face mesh. Each stream's features depend
    only on that stream, so the result is the same as one after the other; when both fail, the
    audio's reason is reported (as before the overlap).
    """
    import threading

    from msakit.extract.decode import ClipError, _open

    path = Path(path)
    timings = timings if timings is not None else {}
    stage = on_stage or (lambda name: None)
    clock = time.perf_counter()
    with _open(path) as container:  # fails early and clearly on a file that is not a media file
        has_audio, has_video = bool(container.streams.audio), bool(container.streams.video)
    timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - clock
    need_audio = "a" in settings.modalities or ("t" in settings.modalities and text is None)
    if need_audio and not has_audio:
        raise ClipError("no audio track" + (" (needed for speech recognition: give the transcript in a manifest 'text' column)" if "a" not in settings.modalities else ""), "no_audio_track")
    if settings.modalities == "v" and not has_video:
        raise ClipError("no video track (only vision was asked for)", "no_video_track")
    need_video = "v" in settings.modalities and has_video
    out: dict[str, Any] = {"text": text, "asr": False, "flags": [], "audio_set": settings.audio_features}
    if "v" in settings.modalities and not has_video:
        out["vision_absent"] = True
    video_out: dict[str, Any] = {}
    video_timings: dict[str, float] = {}
    stop = threading.Event()
    outcome: list[BaseException | None] = [None]

    def video() -> None:
        try:
            video_out.update(_video_stages(path, settings, video_timings, stop))
        except BaseException as exc:  # handed to the caller's thread
            outcome[0] = exc

    worker = None
    audio_seconds = 0.0
    try:
        if need_audio:
            stage("audio")
            if need_video:
                stage("video")
                worker = threading.Thread(target=video, name="msakit-video", daemon=True)
                worker.start()
            audio_seconds = _audio_stages(path, settings, text, timings, out)
        elif need_video:
            stage("video")
            video()
    except BaseException:
        stop.set()  # the audio failed: the video's result is not needed
        raise
    finally:
        if worker is not None:
            worker.join()
    _add(timings, video_timings)
    if outcome[0] is not None:
        raise outcome[0]
    video_seconds = video_out.pop("seconds", 0.0)
    if need_video:
        if not need_audio and video_seconds < settings.min_duration_s:
            raise ClipError(f"too short ({video_seconds:.2f} s of video; the minimum is {settings.min_duration_s} s)", "too_short")
        vision = video_out["vision"]
        if vision is None or not len(vision):
            raise ClipError("the video track holds no decodable frame", "no_frames")
        found = float(vision[:, 0].mean())
        if found < settings.min_face_fraction or not found:
            raise ClipError(f"no face found (in {found:.0%} of {len(vision)} sampled frames; the minimum is {settings.min_face_fraction:.0%})", "no_face")
        out["vision"], out["face_frames"] = vision, int(vision[:, 0].sum())
    out["duration_s"] = max(audio_seconds, video_seconds)
    if settings.text_features != "none" and "t" in settings.modalities:
        from msakit.extract import featuresets

        clock = time.perf_counter()
        out["text_features"] = featuresets.module("text", settings.text_features).features(settings, out["text"] or "")
        timings["text_features"] = timings.get("text_features", 0.0) + time.perf_counter() - clock
    stage("done")
    return out


def _audio_stages(path: Path, settings: ExtractSettings, text: str | None, timings: dict, out: dict) -> float:
    """Decode the sound once, feeding the audio descriptors and the recogniser; fills ``out``
    (``audio``, ``text``, ``asr``, ``flags``) and returns the seconds of audio."""
    from msakit.extract import featuresets
    from msakit.extract.decode import ClipError, iter_audio

    clock = time.perf_counter()
    featurizer = featuresets.module("audio", settings.audio_features).featurizer(settings) if "a" in settings.modalities else None
    recogniser = None
    if text is None and "t" in settings.modalities:
        from msakit.extract.asr import Recogniser, load_model

        load_model()  # once per process
        recogniser = Recogniser(settings.sample_rate, settings.asr_window_s)
    timings["setup"] = timings.get("setup", 0.0) + time.perf_counter() - clock
    samples = 0
    clock = time.perf_counter()
    for chunk in iter_audio(path, settings.sample_rate, channel=settings.channel):
        timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - clock
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
    seconds = samples / settings.sample_rate
    if seconds < settings.min_duration_s:
        raise ClipError(f"too short ({seconds:.2f} s of audio; the minimum is {settings.min_duration_s} s)", "too_short")
    if featurizer is not None:
        clock = time.perf_counter()
        out["audio"] = featurizer.finish()
        timings["audio"] = timings.get("audio", 0.0) + time.perf_counter() - clock
    if recogniser is not None:
        clock = time.perf_counter()
        out["text"] = recogniser.finish()
        out["asr"] = True
        out["flags"] += recogniser.flags
        timings["asr"] = timings.get("asr", 0.0) + time.perf_counter() - clock
    return seconds


def _video_stages(path: Path, settings: ExtractSettings, timings: dict, stop) -> dict[str, Any]:
    """Decode the sampled frames and run the face mesh on each: ``{"rows", "seconds"}``; stops
    early (with what it has) once ``stop`` is set."""
    from msakit.extract import featuresets
    from msakit.extract.decode import iter_frames

    clock = time.perf_counter()
    face = featuresets.module("vision", settings.vision_features).featurizer(settings)
    timings["setup"] = timings.get("setup", 0.0) + time.perf_counter() - clock
    frames = 0
    seconds = 0.0
    try:
        clock = time.perf_counter()
        for t, frame in iter_frames(path, settings.video_fps, settings.max_side):
            middle = time.perf_counter()
            face.push(frame)
            frames += 1
            seconds = t
            end = time.perf_counter()
            timings["decode"] = timings.get("decode", 0.0) + middle - clock
            timings["face"] = timings.get("face", 0.0) + end - middle
            clock = end
            if stop.is_set():
                break
        clock = time.perf_counter()
        vision = face.finish()  # (batched encoders: the frames not encoded yet)
        timings["face"] = timings.get("face", 0.0) + time.perf_counter() - clock
    finally:
        face.close()
    seconds += 1.0 / settings.video_fps if frames else 0.0
    return {"vision": vision, "seconds": seconds}


def clip_stats(result: dict[str, Any]) -> dict[str, Any]:
    """What the sidecar records per clip."""
    from msakit.extract.audio import FEATURE_NAMES as AUDIO_NAMES

    stats: dict[str, Any] = {"duration_s": round(float(result["duration_s"]), 3)}
    if "vision" in result:
        stats["face_frames"], stats["vision_frames"] = int(result["face_frames"]), int(len(result["vision"]))
    if result.get("vision_absent"):
        stats["vision"] = "absent (no video track)"
    if "audio" in result and len(result["audio"]) and result.get("audio_set", "descriptors") == "descriptors":
        stats["voiced_fraction"] = round(float(np.mean(result["audio"][:, AUDIO_NAMES.index("f0_hz")] > 0)), 4)
    if result.get("text") is not None:
        stats["transcript_words"] = len(result["text"].split())
        stats["transcript_source"] = "asr" if result["asr"] else "given"
    if result.get("flags"):
        stats["flags"] = list(result["flags"])
    return stats


@contextlib.contextmanager
def _quiet(log: Path | None):
    """Send what third-party C/C++ libraries print to file descriptors 1 and 2 (MediaPipe,
    TensorFlow Lite, ONNX Runtime log lines) and Python warnings into ``log``; None: leave them."""
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


CLIPS_IN_FLIGHT = 2  # clips extracted at once in one process (threads): benchmarks/results/extract_speed_quiet.md


def _part_payload(clip_path: str, text: str | None, settings_dict: dict, log: str | None = None) -> tuple[str | None, bytes, dict]:
    """Extract one clip: ``(None, the part file's bytes, timings)``, or ``(reason, the failure
    file's bytes, timings)`` when the clip cannot be used. Runs in any process (a Ray worker too)."""
    import io

    from msakit.extract.decode import ClipError

    settings = ExtractSettings(**settings_dict)
    timings: dict = {}
    start = time.perf_counter()
    with _quiet(Path(log) if log else None):
        try:
            result = extract_clip(clip_path, settings, text, timings)
            reason = None
        except ClipError as exc:
            reason = str(exc)
        except Exception as exc:  # a bug or an unforeseen file problem: report it for this clip, go on
            reason = f"unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())[:150]}"
    timings["clip_total"] = time.perf_counter() - start
    if reason is not None:
        return reason, failure_bytes(reason, timings), timings
    arrays = {k: result[k] for k in ("audio", "vision", "text_features") if k in result}
    meta = {"text": result["text"], "asr": result["asr"], "duration_s": result["duration_s"], "face_frames": result.get("face_frames"),
            "vision_absent": bool(result.get("vision_absent")), "stats": clip_stats(result), "timings": timings}
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
    return None, buffer.getvalue(), timings


def failure_bytes(reason: str, timings: dict) -> bytes:
    """A clip's ``.fail.json`` part: why it could not be used."""
    return json.dumps({"reason": reason, "timings": timings}).encode()


def write_part(part_path: Path, reason: str | None, payload: bytes) -> None:
    """A clip's part file (or its failure) written atomically beside the others."""
    from msakit.outputs import atomic_write

    target = part_path.with_suffix(".fail.json") if reason is not None else part_path
    atomic_write(target, lambda p: p.write_bytes(payload))


def _work(clip_path: str, text: str | None, settings_dict: dict, part: str, log: str | None = None) -> tuple[str, str | None, dict]:
    """Worker: extract one clip and write its part file (or its failure) atomically."""
    reason, payload, timings = _part_payload(clip_path, text, settings_dict, log)
    write_part(Path(part), reason, payload)
    return clip_path, reason, timings


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
    layout: str = "auto",
    kind: str | None = None,
    overwrite: bool = False,
    verbose: bool = False,
    on_clip: Callable[[str, str | None], None] | None = None,
    modalities_given: bool = False,
    engine: str = "local",
    address: str | None = None,
) -> ExtractResult:
    """Extract features of every clip in ``source`` into the MMSA pickle ``output``.

    Every check of the input (clips, manifest rows, labels, splits, fractions, workers,
    settings, output paths, modalities the clips cannot give) runs before any clip is
    extracted. ``on_clip(clip_id, reason)`` is called as each clip finishes (``reason`` None
    when it was extracted), for callers that show their own progress. ``modalities_given``:
    the caller named ``settings.modalities`` (then ``tav`` too is extracted exactly or refused;
    see ``check_modalities``). ``engine="ray"``: the clips are extracted on a Ray cluster
    (``msakit.extract.ray_engine``; ``address`` None: a local one), ``workers`` of them at once
    (None: one per CPU of the cluster); the pickle is the same, byte for byte.
    """
    from msakit.outputs import check_outputs

    settings = (settings or ExtractSettings()).validate()
    if engine not in ("local", "ray"):
        raise ConfigError(f"--engine {engine!r}: use local (this machine's processes) or ray (a Ray cluster)")
    if address and engine != "ray":
        raise ConfigError("--address: the address of a Ray cluster goes with --engine ray")
    if engine == "ray" and workers is None:
        pass  # one worker per CPU of the cluster
    elif isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers {workers!r}: must be a whole number >= 1")
    if engine == "ray":
        from msakit.extract.ray_engine import require_ray

        require_ray()  # before any work: refused at once when Ray is missing
    require_video_extra()
    output = Path(output)
    listing = gather(source, layout=layout, kind=kind)
    clips = listing.clips
    fractions = check_split_fractions(split_fractions, clips)
    splits = assign_splits(clips, fractions, seed)
    notes = [f"layout: raw dataset release (label.csv + Raw/), {len(clips)} clip(s) on disk" if listing.layout == "mmsa" else ""]
    if listing.kind is not None:
        notes.append(f"dataset kind: {listing.kind} ({listing.kind_reason}); train with --kind {listing.kind}")
    if fractions is not None and not any(c.label is not None for c in clips):
        notes.append("--split-fractions on unlabelled clips: the splits hold features for prediction only (no labels to train on)")
    inputs = list(listing.inputs) + ([Path(source)] if isinstance(source, (str, os.PathLike)) else [])
    sidecar = sidecar_path(output)
    check_outputs([("--output", output), ("--output (its .extractor.json sidecar)", sidecar)], inputs=inputs, overwrite=overwrite)
    settings, note = check_modalities(clips, settings, modalities_given)
    notes = [n for n in notes + [note] if n]
    parts = output.parent / f"{output.name}.parts" / settings.key()
    keys = [clip.key() for clip in clips]
    parts.mkdir(parents=True, exist_ok=True)
    log = None if verbose else parts.parent / "worker.log"
    todo, queued = [], set()
    for clip, key in zip(clips, keys):
        part = parts / f"{key}.npz"
        if part in queued or part.exists() or part.with_suffix(".fail.json").exists():
            continue  # done already (or the same content and transcript twice: extracted once)
        queued.add(part)
        todo.append((clip, part))
    start = time.perf_counter()
    bar = _progress_bar(len(clips), len(clips) - len(todo), progress)
    settings_dict = dataclasses.asdict(settings)

    def finished(clip: Clip, reason: str | None) -> None:
        bar.update(1)
        if on_clip is not None:
            on_clip(clip.id, reason)

    try:
        if engine == "ray" and todo:
            from msakit.extract.ray_engine import map_clips

            def arrived(i: int, result: tuple) -> None:  # on the driver: parts are written here, wherever the clip ran
                clip, part = todo[i]
                reason, payload, _ = result
                write_part(part, reason, payload)
                finished(clip, reason)

            map_clips(_part_payload, [(c.path, (c.text, settings_dict)) for c, _ in todo], address=address, workers=workers,
                      on_result=arrived, on_failure=lambda i, reason: (reason, failure_bytes(reason, {}), {}))
        elif len(todo) == 1:
            clip, part = todo[0]
            finished(clip, _work(str(clip.path), clip.text, settings_dict, str(part), str(log) if log else None)[1])
        elif workers == 1:
            # One process, CLIPS_IN_FLIGHT clips at a time in threads: the models are loaded once
            # and a clip's lighter side (often its audio) no longer leaves a core idle while the
            # other side finishes. Each clip's result depends on that clip alone.
            from concurrent.futures import ThreadPoolExecutor

            with _quiet(log), ThreadPoolExecutor(max_workers=CLIPS_IN_FLIGHT, thread_name_prefix="msakit-clip") as pool:
                futures = {pool.submit(_work, str(c.path), c.text, settings_dict, str(p), None): c for c, p in todo}
                for future in as_completed(futures):
                    finished(futures[future], future.result()[1])
        else:
            import multiprocessing

            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_init_worker, initargs=(str(log) if log else None,)) as pool:
                futures = {pool.submit(_work, str(c.path), c.text, settings_dict, str(p), None): c for c, p in todo}
                for future in as_completed(futures):
                    finished(futures[future], future.result()[1])
    finally:
        bar.close()
    return _assemble(clips, keys, splits, parts, output, settings, time.perf_counter() - start, listing, notes)


def check_modalities(clips: list[Clip], settings: ExtractSettings, given: bool = True) -> tuple[ExtractSettings, str]:
    """Refuse, before any extraction, modalities that no clip can give: vision needs a video
    track, audio an audio track, text a transcript (a manifest's or label.csv's ``text``) or an
    audio track. Each file's streams are probed (opening it, no decoding), stopping at the first
    clip that can give a modality. Where some clips can and others cannot, those are reported
    per clip as they are extracted. Not ``given`` (the default, all of ``tav``), vision is
    dropped with a note when no clip has a video track (a folder of audio files). Returns the
    settings to extract with and that note (or '')."""
    from msakit.extract.decode import ClipError, probe

    streams: dict[Path, tuple[bool, bool] | None] = {}

    def tracks(clip: Clip) -> tuple[bool, bool] | None:  # (audio, video); None: cannot be opened (reported per clip)
        if clip.path not in streams:
            try:
                info = probe(clip.path)
                streams[clip.path] = (info.has_audio, info.has_video)
            except ClipError:
                streams[clip.path] = None
        return streams[clip.path]

    def can(modality: str) -> bool:
        if modality == "t" and any(c.text is not None for c in clips):
            return True
        track, opened = (1 if modality == "v" else 0), False
        for clip in sorted(clips, key=lambda c: c.audio_only == (modality == "v")):  # likeliest first: video files for v
            found = tracks(clip)
            if found is not None:
                opened = True
                if found[track]:
                    return True
        return not opened  # none could be opened: each is reported per clip, as it is extracted

    asked = settings.modalities
    if not given and asked == "tav" and not can("v") and can("t") and can("a"):
        note = ("audio files only" if all(c.audio_only for c in clips) else "no clip has a video track") + \
            ": extracting text and audio; vision is absent"
        return dataclasses.replace(settings, modalities="ta"), note
    lacking = [m for m in asked if not can(m)]
    if not lacking:
        return settings, ""
    readable = [c for c in clips if tracks(c) is not None]
    count = f"{len(readable)} input(s)" + (f" that could be opened ({len(clips) - len(readable)} could not)" if len(readable) < len(clips) else "")
    if lacking == ["v"] and all(c.audio_only for c in readable):
        have = f"all {count} are audio files without a video track"
    else:
        missing = (["a video track"] if "v" in lacking else []) + (["an audio track"] if {"a", "t"} & set(lacking) else [])
        have = f"none of the {count} has {' or '.join(missing)}" + (" (nor a transcript in a manifest 'text' column)" if "t" in lacking else "")
    names = {"t": "text (t)", "a": "audio (a)", "v": "vision (v)"}
    possible = "".join(m for m in "tav" if m not in lacking and can(m))
    fix = (f"ask only for what they have (--modalities {possible})" if possible else "give clips with a video or an audio track") + \
        (", or give video files" if "v" in lacking else ", or give clips with sound")
    raise ConfigError(f"--modalities {asked}{'' if given else ' (the default)'}: {have}, so no clip can give "
                      f"{' or '.join(names[m] for m in lacking)}; {fix}")


def _init_worker(log: str | None) -> None:
    """A worker process sends third-party log lines to the log file for its whole life, and ends
    with its parent (``msakit.extract.workers.exit_with_parent``)."""
    from msakit.extract.workers import exit_with_parent

    exit_with_parent()
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if log:
        target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, 1)
        os.dup2(target, 2)
        os.close(target)
        warnings.simplefilter("ignore")


class _Terminal:
    """Writes to a duplicate of the stderr file descriptor taken when it was made, so the progress
    bar still reaches the terminal while ``_quiet`` points descriptor 2 at the log."""

    encoding = "utf-8"

    def __init__(self) -> None:
        sys.stderr.flush()
        self.fd = os.dup(2)

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self.fd, data):]
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    stream = None
    with contextlib.suppress(Exception):
        if enabled and sys.stderr.fileno() == 2:  # (not a test's captured stream)
            stream = _Terminal()
    bar = tqdm(total=total, initial=initial, unit="clip", desc="extract", disable=not enabled, dynamic_ncols=True, file=stream,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} clips [{elapsed}<{remaining}, {rate_fmt}]")
    if stream is not None:
        close = bar.close

        def close_both() -> None:
            close()
            stream.close()

        bar.close = close_both
    return bar


def require_video_extra() -> None:
    """Refuse early, in one line, when the optional ``msakit[video]`` packages are missing."""
    from importlib.util import find_spec

    missing = [name for name in ("av", "mediapipe", "moonshine_voice", "onnxruntime") if find_spec(name) is None]
    if missing:
        raise ConfigError(f"video extraction needs the optional extra: pip install 'msakit[video]' (missing: {', '.join(missing)})")


def _assign_splits(clips: list[Clip], fractions, seed: int) -> list[str]:
    """Kept for callers of the former name; see ``sources.assign_splits``."""
    return assign_splits(clips, check_split_fractions(fractions, clips) if fractions is not None else None, seed)


def _assemble(clips: list[Clip], keys: list[str], splits_of: list[str], parts: Path, output: Path, settings: ExtractSettings,
              seconds: float, listing: Listing, notes: list[str]) -> ExtractResult:
    from msakit.data.mmsa import write_mmsa_pickle
    from msakit.outputs import write_json

    description = describe(settings)
    vision_dim = description["features"].get("vision", {}).get("dim", 0)

    failures, rows = [], {"train": [], "valid": [], "test": []}
    timings: dict[str, float] = {}
    per_clip: dict[str, dict] = {}
    flagged: dict[str, list[str]] = {}
    absent = 0
    for clip, key, split in zip(clips, keys, splits_of):
        part = parts / f"{key}.npz"
        fail = part.with_suffix(".fail.json")
        if fail.exists():
            info = json.loads(fail.read_text())
            failures.append({"path": str(clip.path), "id": clip.id, "reason": info["reason"]})
            _add(timings, info.get("timings", {}))
            continue
        with np.load(part) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in ("audio", "vision", "text_features") if k in data.files}
        if "v" in settings.modalities and "vision" not in arrays:
            arrays["vision"] = np.zeros((1, vision_dim), np.float32)  # no video track: one all-zero frame (present = 0)
            absent += 1
        rows[split].append((clip, meta, arrays))
        _add(timings, meta.get("timings", {}))
        per_clip[clip.id] = meta.get("stats", {})
        if meta.get("stats", {}).get("flags"):
            flagged[clip.id] = meta["stats"]["flags"]
    extracted = [clip.id for split in rows.values() for clip, _, _ in split]
    if not extracted:
        raise DataError(f"no clip could be used ({len(failures)} failed); first: {failures[0]['path']}: {failures[0]['reason']}" if failures else "no clips")
    if absent:
        notes.append(f"{absent} clip(s) without a video track (audio files): vision absent, one all-zero frame (present = 0)")
    labelled = any(clip.label is not None for split in rows.values() for clip, _, _ in split)
    unimodal = labelled and all(clip.unimodal for split in rows.values() for clip, _, _ in split)
    annotated = all(clip.annotation for split in rows.values() for clip, _, _ in split)
    payload = {}
    for name, items in rows.items():
        if not items:
            continue
        split: dict[str, Any] = {"id": [c.id for c, _, _ in items]}
        if "t" in settings.modalities:
            split["raw_text"] = [m["text"] or "" for _, m, _ in items]
        for key, source in (("audio", "audio"), ("vision", "vision"), ("text", "text_features")):
            if key[0] in settings.modalities and (key != "text" or settings.text_features != "none"):
                arrays = [a[source] for _, _, a in items]
                frames = max(1, max(len(a) for a in arrays))
                stacked = np.zeros((len(arrays), frames, arrays[0].shape[1]), np.float32)
                for i, a in enumerate(arrays):
                    stacked[i, : len(a)] = a
                split[key] = stacked
                split[f"{key}_lengths"] = np.array([max(1, len(a)) for a in arrays], np.int64)
        if labelled:
            split["regression_labels"] = np.array([c.label for c, _, _ in items], np.float32)
        if unimodal:
            for m in "TAV":
                split[f"regression_labels_{m}"] = np.array([c.unimodal[m] for c, _, _ in items], np.float32)
        if annotated:
            split["annotations"] = [c.annotation for c, _, _ in items]
        payload[name] = split
    write_mmsa_pickle(output, payload)
    sidecar = sidecar_path(output)
    info = description
    info["dataset"] = {"layout": listing.layout, "kind": listing.kind, "kind_reason": listing.kind_reason}
    info["clips"] = {"extracted": len(extracted), "failed": failures, "splits": {k: len(v) for k, v in rows.items() if v},
                     "missing_on_disk": listing.missing, "unlisted_on_disk": listing.unlisted, "flagged": flagged,
                     "transcripts": {"asr": sum(m["asr"] for v in rows.values() for _, m, _ in v),
                                     "given": sum(not m["asr"] for v in rows.values() for _, m, _ in v)},
                     "face_frames_fraction": _face_fraction(rows), "per_clip": per_clip}
    media_s = sum(s.get("duration_s", 0.0) for s in per_clip.values())
    info["timing_s"] = {"summed_over_clips": {k: round(v, 3) for k, v in sorted(timings.items())},
                        "media_s": round(media_s, 3), "this_run_wall_s": round(seconds, 3),
                        "note": "per-stage seconds summed over every clip's own extraction (survives a resume); wall time of this run only"}
    info["notes"] = notes
    write_json(sidecar, info)
    return ExtractResult(output, sidecar, extracted, failures, seconds, notes, listing.missing, listing.unlisted, flagged, listing.kind,
                         splits={k: len(v) for k, v in rows.items() if v}, labelled=labelled)


def _add(total: dict, more: dict) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0.0) + value


def _face_fraction(rows) -> float | None:
    frames = [(m["face_frames"], len(a["vision"])) for v in rows.values() for _, m, a in v if m.get("face_frames") is not None]
    return round(sum(f for f, _ in frames) / max(1, sum(n for _, n in frames)), 4) if frames else None


def sidecar_path(pickle_path: str | Path) -> Path:
    """``feats.pkl`` -> ``feats.extractor.json``."""
    path = Path(pickle_path)
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("msakit", "av", "librosa", "mediapipe", "moonshine-voice", "onnxruntime", "numpy", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def describe(settings: ExtractSettings) -> dict[str, Any]:
    """The sidecar's description of the features these settings produce (no clip data)."""
    from msakit.extract import featuresets
    from msakit.extract.asr import MODEL_NAME

    features: dict[str, Any] = {}
    if "t" in settings.modalities:
        features["text"] = {"key": "raw_text", "source": f"manifest 'text' column / label.csv, else speech recognition: {MODEL_NAME}"}
        if settings.text_features != "none":
            features["text"].update(featuresets.describe(settings, "text"))
    if "a" in settings.modalities:
        features["audio"] = {"key": "audio", **featuresets.describe(settings, "audio"), "channel": settings.channel}
    if "v" in settings.modalities:
        features["vision"] = {"key": "vision", **featuresets.describe(settings, "vision")}
    return {"format": "msakit-extractor", "extractor_version": EXTRACTOR_VERSION, "settings": dataclasses.asdict(settings),
            "features": features, "versions": package_versions()}


def extract_features(source, output: str | Path, *, workers: int = 1, split_fractions: tuple[float, float, float] | None = None,
                     seed: int = 0, progress: bool = True, layout: str = "auto", kind: str | None = None, overwrite: bool = False,
                     verbose: bool = False, on_clip: Callable[[str, str | None], None] | None = None, engine: str = "local",
                     address: str | None = None, **settings: Any) -> "ExtractResult":
    """Extract features of clips (a folder, a manifest CSV, a raw dataset release or a list of
    files) into an MMSA pickle plus its ``.extractor.json`` sidecar. ``settings`` are fields of
    ``ExtractSettings`` (e.g. ``video_fps=5``, ``channel="left"``), checked by name and type here.
    Returns an ``ExtractResult``. This is ``msakit.extract(...)``."""
    return extract(source, output, settings=ExtractSettings(**coerce_settings(settings)), workers=workers, split_fractions=split_fractions,
                   seed=seed, progress=progress, layout=layout, kind=kind, overwrite=overwrite, verbose=verbose, on_clip=on_clip,
                   modalities_given="modalities" in settings, engine=engine, address=address)
