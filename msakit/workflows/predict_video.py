"""Score video (or audio) files with a trained run: extract them the way the run's training
features were extracted, predict, and write a CSV and a JSON of per-clip results.

One code path for ``msakit predict --video`` and ``msakit serve``: a ``VideoScorer`` holds the
loaded run and the extractor settings its features need; ``extract_one`` extracts one clip (in
any process: it is what the serving pool runs) and ``VideoScorer.score`` turns extracted clips
into the rows both write.

Every clip ends as a score or as its own error (``{"code", "message"}``); one clip never stops
the others. What a clip lacks is decided once, here, for every front end:

- a modality the run uses is missing from the clip (an audio file or a video without a face on a
  run that uses vision; a video without sound on a run that uses audio with the transcript given):
  when the run was trained with that modality withheld (``train.modality_dropout``, the default
  of Self-MM and the flagship for audio and vision) the clip is scored without it, by the same
  absent-modality convention training used, with a warning naming it; otherwise the clip is
  refused with the reason (the model never saw such an input, so its score would mean nothing);
- no speech recognised and no transcript given, on a run that reads text: refused (``no_speech``)
  unless the run was trained with text withheld and has another modality to go on.

A run trained on text alone (a text table, an MMSA pickle's raw_text) needs no extractor
sidecar: its clips only need a transcript, given or recognised from the audio.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msakit.training.runs import predict_split, run_root, seed_dirs

# Scores within +-threshold of 0 are "neutral": MOSI/MOSEI round to the nearest integer class
# (Acc-3 style), CH-SIMS's [-1, 1] scale uses its 0.1 band.
_NEUTRAL_BAND = {"mosi": 0.5, "mosei": 0.5, "sims": 0.1}
_SCALE = {"mosi": (-3.0, 3.0), "mosei": (-3.0, 3.0), "sims": (-1.0, 1.0)}
_DATASET = {"mosi": "CMU-MOSI", "mosei": "CMU-MOSEI", "sims": "CH-SIMS"}
TIMELINE_POINTS = 150  # at most this many points per timeline series
NAMES = {"t": "text", "a": "audio", "v": "vision"}
MODEL_TITLES = {
    "almt": "ALMT", "cenet": "CENet", "dma": "the msakit flagship (Self-MM with covariance alignment)", "late_fusion": "late fusion",
    "lmf": "LMF", "mag_bert": "MAG-BERT", "misa": "MISA", "mmim": "MMIM", "mmmie": "MMMIE", "mult": "MulT", "self_mm": "Self-MM",
    "tetfn": "TETFN", "tfn": "TFN", "mmml": "MMML",
}
# Clip errors that mean "this clip has no such modality" (so a run trained without it can go on).
_LACKS = {"no_video_track": "v", "no_face": "v", "no_frames": "v", "no_audio_track": "a"}


def sentiment_class(score: float, kind: str = "mosi") -> str:
    band = _NEUTRAL_BAND.get(kind, 0.5)
    return "negative" if score < -band else "positive" if score > band else "neutral"


def _joined(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass
class ClipInput:
    """One clip to score: the file to read, the name shown for it, an optional transcript, and
    optionally the video it was cut from (clips of one video, in the order given, are each other's
    context for a run trained with ``data.context``)."""

    path: Path
    name: str
    transcript: str | None = None
    video_id: str | None = None


def speech_recogniser() -> dict[str, str]:
    """The speech recogniser's name and version, as recorded in every output that used it."""
    from importlib.metadata import PackageNotFoundError, version

    from msakit.extract.asr import MODEL_NAME

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    return {"name": MODEL_NAME.split(" (")[0], "package": "moonshine-voice", "version": installed("moonshine-voice"),
            "runtime": f"onnxruntime {installed('onnxruntime')}"}


def clip_error(code: str, message: str) -> dict:
    """A clip's error as every front end reports it."""
    return {"error": {"code": code, "message": message}}


class VideoScorer:
    """A trained run ready to score clips: its model loaded once, the extractor settings its
    features need (its sidecar's; for a text-only run speech recognition alone)."""

    def __init__(self, run_dir: str | Path, *, kind: str | None = None, device: str = "auto"):
        from msakit.errors import RunDirError
        from msakit.extract import ExtractSettings, check_compatible, describe, run_sidecar
        from msakit.training.runs import load_run, run_context
        from msakit.training.trainer import resolve_device

        self.run_dir = Path(run_dir)
        self.seed_dir = seed_dirs(self.run_dir)[0]
        self.device = str(resolve_device(device))
        self.loaded = load_run(self.seed_dir, self.device)
        meta = self.loaded[2]
        self.model_name = meta["model"]
        self.kind = kind or meta["kind"]
        self.modalities = "".join(m for m in "tav" if m in meta["input_dims"]["modalities"])
        self.text_only = self.modalities == "t"
        self.withheld = self._withheld_in_training()
        self.context = run_context(self.seed_dir)  # neighbours: the other clips of the same video in a request
        self.reads_context = self.context.on and bool(set(self.context.modalities) & set(self.modalities))
        trained = run_sidecar(self.seed_dir)
        self.extractor = trained
        if self.text_only:
            base = ExtractSettings()
            if trained is not None:
                try:
                    base = ExtractSettings(**trained["settings"])
                except (TypeError, KeyError):
                    pass  # only the speech recogniser matters here; its defaults do
            self.settings = dataclasses.replace(base, modalities="t").validate()
        else:
            if trained is None:
                raise RunDirError(f"{self.seed_dir}: no extractor description (best/extractor.json); this run uses "
                                  f"{'+'.join(self.modalities)}, so predict --video needs it trained on features made by `msakit extract`")
            try:
                self.settings = ExtractSettings(**trained["settings"]).validate()
            except (TypeError, KeyError) as exc:
                raise RunDirError(f"{self.seed_dir}/best/extractor.json: settings this msakit does not know ({exc}); "
                                  "use the msakit release that trained it") from None
            check_compatible(trained, describe(self.settings), str(self.seed_dir))
            # Only what the run reads is extracted (a t+a run on t+a+v features never needs a face, an a+v run no speech).
            used = "".join(m for m in self.settings.modalities if m in self.modalities)
            # Precomputed text features (``text_features``) are not what msakit's models read (they encode the transcript themselves).
            self.settings = dataclasses.replace(self.settings, modalities=used, text_features="none", text_encoder="", text_layer="last").validate()
        self.recogniser = speech_recogniser() if "t" in self.modalities and "t" in self.settings.modalities else None

    def _withheld_in_training(self) -> dict[str, float]:
        """Modalities the run was trained to do without (``train.modality_dropout``) and the
        probability each was withheld; only where the run has another modality to go on."""
        from msakit.data.corruption import parse_modality_dropout
        from msakit.errors import MsakitError
        from msakit.outputs import read_json

        if len(self.modalities) < 2 or not (self.seed_dir / "config.json").is_file():
            return {}
        try:
            dropout = parse_modality_dropout(read_json(self.seed_dir / "config.json", "run config").get("train", {}).get("modality_dropout"))
        except (MsakitError, AttributeError):
            return {}
        return {m: p for m, p in dropout.items() if m in self.modalities and p > 0}

    @property
    def absent_ok(self) -> str:
        """The modalities a clip may lack and still be scored (``"av"`` for the Self-MM default)."""
        return "".join(m for m in "tav" if m in self.withheld)

    @property
    def note(self) -> str | None:
        """Said once where a run leaves parts of a clip unused."""
        if self.text_only:
            return (f"this run uses text alone: the clips' audio and vision are not used, only their transcript "
                    f"(given, or recognised by {self.recogniser['name']} {self.recogniser['version']})")
        return None

    @property
    def scale(self) -> tuple[float, float]:
        return _SCALE.get(self.kind, (-3.0, 3.0))

    @property
    def title(self) -> str:
        return MODEL_TITLES.get(self.model_name, self.model_name)

    def description(self) -> str:
        """The run in plain words, for a page header: no paths, no option names."""
        low, high = self.scale
        reads = _joined([NAMES[m] for m in self.modalities])
        text = (f"{self.title[:1].upper() + self.title[1:]} reading {reads}; scores on the {_DATASET.get(self.kind, self.kind)} scale, "
                f"{low:g} (negative) to {high:g} (positive)")
        if self.reads_context:
            text += f". It reads each utterance with its neighbours ({self.context.describe()} of the same video)"
        if self.absent_ok:
            text += f". A clip without {' or '.join(NAMES[m] for m in self.absent_ok)} is scored without it, as the model was trained to"
        return text + "."

    def quality(self) -> dict | None:
        """Acc-2, MAE and Corr the run recorded on its evaluation split (fractions), or None."""
        from msakit.errors import MsakitError
        from msakit.outputs import read_json

        path = self.seed_dir / "results.json"
        try:
            done = read_json(path, "results file") if path.is_file() else None
        except MsakitError:
            done = None
        metrics = (done or {}).get("metrics") if isinstance(done, dict) else None
        if not isinstance(metrics, dict) or "MAE" not in metrics:
            return None
        acc2_name = "Acc-2 (non-0)" if "Acc-2 (non-0)" in metrics else "Acc-2"
        number = lambda key: float(metrics[key]) if isinstance(metrics.get(key), (int, float)) else None  # noqa: E731
        samples = done.get("test_samples") or done.get("samples")
        return {"split": done.get("evaluated_split") or "test", "acc2": number(acc2_name), "acc2_name": acc2_name,
                "mae": number("MAE"), "corr": number("Corr"), "samples": samples if isinstance(samples, int) else None}

    def settings_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    def extract(self, clips: list[ClipInput], *, workers: int | None = 1, progress: bool = False, timeline: bool = False,
                engine: str = "local", address: str | None = None) -> list[dict]:
        """``extract_one`` for every clip, in ``workers`` processes when more than one; a clip
        whose worker fails gets its own error, the others go on. ``engine="ray"``: on the actors
        of a Ray cluster (``msakit.extract.ray_engine``; ``workers`` None: one per CPU of it)."""
        from tqdm.auto import tqdm

        from msakit.extract.pipeline import require_video_extra

        require_video_extra()
        settings = self.settings_dict()
        if engine == "ray":
            from msakit.extract.ray_engine import map_clips

            with tqdm(total=len(clips), unit="clip", desc="extract (ray)", disable=not progress, dynamic_ncols=True) as bar:
                results, _ = map_clips(extract_one, [(c.path, (c.transcript, settings, timeline, self.absent_ok)) for c in clips],
                                       address=address, workers=workers, on_result=lambda i, r: bar.update(1),
                                       on_failure=lambda i, reason: clip_error("worker_stopped", reason))
            return results
        workers = workers or 1
        if workers <= 1 or len(clips) <= 1:
            import os

            from msakit.extract.pipeline import _progress_bar, _quiet

            results = []
            bar = _progress_bar(len(clips), 0, progress)  # made first: it keeps the terminal while _quiet silences descriptor 2
            try:
                with _quiet(Path(os.devnull)):
                    for clip in clips:
                        results.append(extract_one(str(clip.path), clip.transcript, settings, timeline, self.absent_ok))
                        bar.update(1)
            finally:
                bar.close()
            return results
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        from msakit.extract.workers import exit_reasons

        def pool(n: int) -> ProcessPoolExecutor:
            return ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"), initializer=silence_native_output)

        def job(executor, clip):
            return executor.submit(extract_one, str(clip.path), clip.transcript, settings, timeline, self.absent_ok)

        results: list[dict | None] = [None] * len(clips)
        suspects = []  # clips in the pool when one of its workers died: innocent until they kill one alone
        with tqdm(total=len(clips), unit="clip", desc="extract", disable=not progress, dynamic_ncols=True) as bar:
            with pool(min(workers, len(clips))) as executor:
                futures = [job(executor, c) for c in clips]
                for i, future in enumerate(futures):
                    try:
                        results[i] = future.result()
                        bar.update(1)
                    except BrokenProcessPool:
                        suspects.append(i)
            for i in suspects:  # each alone, in a fresh process
                with pool(1) as executor:
                    try:
                        results[i] = job(executor, clips[i]).result()
                    except BrokenProcessPool:
                        results[i] = clip_error("worker_stopped", f"the extraction process stopped while extracting this clip, twice "
                                                                  f"({exit_reasons(executor)}); try a shorter or smaller file")
                bar.update(1)
        return results

    def _vetted(self, out: dict) -> tuple[dict | None, dict, list[dict]]:
        """``(error or None, absent modalities {m: reason}, warnings)`` of one extracted clip."""
        absent = dict(out.get("absent", {}))
        text = (out.get("text") or "").strip()
        if "t" in self.modalities and not any(c.isalnum() for c in text):  # control characters, punctuation: no words
            others = [m for m in self.modalities if m != "t" and m not in absent]
            what = "the given transcript has no words" if text and not out.get("asr") else "no speech recognised and no transcript given"
            if "t" in self.withheld and others:
                absent["t"] = what
            else:
                uses = _joined([NAMES[m] for m in self.modalities])
                return clip_error("no_speech", f"{what}; this run reads the words "
                                  f"({'text alone' if self.text_only else 'it uses ' + uses}) and cannot score the clip without them: "
                                  "give its transcript, or a clip with audible speech"), {}, []
        warnings = []
        for m, reason in absent.items():
            rest = _joined([NAMES[k] for k in self.modalities if k not in absent])
            warnings.append({"code": "no_speech" if m == "t" else f"{NAMES[m]}_absent",
                             "message": f"{reason}: scored from {rest} alone, as the model was trained to "
                                        f"(its {NAMES[m]} withheld from {self.withheld[m]:.0%} of training samples)"})
        for flag in out.get("flags") or []:
            warnings.append({"code": "transcript_repaired", "message": f"speech recognition: {flag}"})
        if out.get("truncated"):
            warnings.append({"code": "truncated", "message": out["truncated"]})
        return None, absent, warnings

    def score(self, clips: list[ClipInput], extracted: list[dict], work_dir: str | Path) -> dict:
        """Predict the clips ``extract_one`` could use; ``work_dir`` (private, the caller's to
        delete) holds the small feature file in between, read without the feature cache. The
        payload ``predict --video`` writes as JSON and ``/api/predict`` returns: ``{"model",
        "model_title", "kind", "modalities", "speech_recognition", "predictions": [...],
        "failures": [{"index", "video", "error": {"code", "message"}}]}``."""
        import numpy as np

        from msakit.data.mmsa import write_mmsa_pickle

        failures, used = [], []
        for i, (clip, out) in enumerate(zip(clips, extracted)):
            error, absent, warnings = (out, {}, []) if "error" in out else self._vetted(out)
            if error is not None:
                failures.append({"index": i, "video": clip.name, "error": _error_of(error)})
            else:
                used.append((i, clip, out, absent, warnings))
        rows, used_kind = [], self.kind
        ids = _clip_ids(clips)
        if used and self.reads_context:
            members = {}
            for i, clip, *_ in used:
                members.setdefault(clip.video_id, []).append(i)
            for i, clip, _, _, warnings in used:
                if clip.video_id is None or len(members[clip.video_id]) < 2:
                    warnings.append({"code": "no_context", "message": (
                        f"this run reads each utterance with its neighbours ({self.context.describe()} of the same video) and "
                        + ("this clip names no video" if clip.video_id is None else f"no other clip of video {clip.video_id!r} came with it")
                        + ": scored with empty context; send the video's clips together with the same video_id")})
        if used:
            split: dict[str, Any] = {"id": [ids[i] for i, *_ in used]}
            if "t" in self.modalities:
                split["raw_text"] = [(out.get("text") or "").strip() if "t" not in absent else "" for _, _, out, absent, _ in used]
            dims = {k: int(v.get("dim")) for k, v in (self.extractor or {}).get("features", {}).items() if isinstance(v, dict) and v.get("dim")}
            for m, key in (("a", "audio"), ("v", "vision")):
                if m in self.modalities:
                    dim = dims.get(key) or next(out[key].shape[1] for _, _, out, absent, _ in used if m not in absent)
                    split.update(_stack([out[key] if m not in absent else np.zeros((0, dim), np.float32) for _, _, out, absent, _ in used], key))
            absent_rows = {m: np.array([m in absent for *_, absent, _ in used]) for m in self.modalities}
            path = write_mmsa_pickle(Path(work_dir) / "clips.pkl", {"test": split})
            predictions, _, used_kind = predict_split(self.seed_dir, path, self.kind, "test", self.device, require_labels=False,
                                                      loaded=self.loaded, absent={m: a for m, a in absent_rows.items() if a.any()},
                                                      cache=False)
            for row_index, (i, clip, out, absent, warnings) in enumerate(used):
                score = float(predictions["m"][row_index])
                row = {"index": i, "video": clip.name, "score": round(score, 4), "class": sentiment_class(score, used_kind)}
                unimodal = {NAMES[m]: round(float(predictions[m][row_index]), 4) for m in self.modalities
                            if m in predictions and m not in absent}
                if unimodal and len(self.modalities) > 1:  # a one-modality run's own head only repeats its score
                    row["unimodal"] = unimodal
                text = (out.get("text") or "").strip()
                row["transcript"] = text
                row["transcript_source"] = "none" if not text else "given" if not out.get("asr") else "speech recognition"
                row["used"] = [NAMES[m] for m in self.modalities if m not in absent]
                row["warnings"] = warnings
                if "timeline" in out:
                    row["timeline"] = out["timeline"]
                rows.append(row)
        return {"model": self.model_name, "model_title": self.title, "kind": used_kind, "modalities": self.modalities,
                "speech_recognition": self.recogniser, "predictions": rows, "failures": failures}


def _clip_ids(clips: list[ClipInput]) -> list[str]:
    """An id per clip: ``<video_id>$_$<n>`` (n: its position among that video's clips, in the
    order given) where it names a video, ``clip<i>`` (a video of its own) where it does not."""
    from msakit.data.context import SEPARATOR

    counts: dict[str, int] = {}
    ids = []
    for i, clip in enumerate(clips):
        if clip.video_id is None:
            ids.append(f"{SEPARATOR}clip{i}{SEPARATOR}1")  # a video of its own: no video id a user gives holds the separator
        else:
            counts[clip.video_id] = counts.get(clip.video_id, 0) + 1
            ids.append(f"{clip.video_id}{SEPARATOR}{counts[clip.video_id]}")
    return ids


def check_video_id(value: str | None, where: str) -> str | None:
    """A clip's video id as given (stripped), ``None`` for none; refused with one line when it
    holds the id separator or control characters."""
    from msakit.data.context import SEPARATOR
    from msakit.errors import ConfigError

    value = (value or "").strip()
    if not value:
        return None
    if SEPARATOR in value or not value.isprintable() or len(value) > 200:
        raise ConfigError(f"{where} {value[:40]!r}: a video id is printable text of at most 200 characters without {SEPARATOR!r}")
    return value


def _error_of(out: dict) -> dict:
    """``{"code", "message"}`` of a failed clip (also from an older worker's plain string)."""
    error = out["error"]
    if isinstance(error, dict):
        return {"code": str(error.get("code") or "internal"), "message": str(error.get("message") or "")}
    return {"code": "unusable", "message": str(error)}


def _stack(arrays: list, key: str) -> dict:
    """Zero-padded ``(clips, frames, dim)`` float32 and lengths, as ``msakit extract`` writes them."""
    import numpy as np

    frames = max(1, max(len(a) for a in arrays))
    stacked = np.zeros((len(arrays), frames, arrays[0].shape[1]), np.float32)
    for i, a in enumerate(arrays):
        stacked[i, : len(a)] = a
    return {key: stacked, f"{key}_lengths": np.array([max(1, len(a)) for a in arrays], np.int64)}


def silence_native_output() -> None:
    """A worker process's initializer: what native libraries (MediaPipe's glog, TensorFlow Lite,
    ffmpeg) write to file descriptors 1 and 2 goes to the null device, and the worker ends with
    its parent; ``msakit extract``'s own worker start (``msakit.extract.pipeline._init_worker``)."""
    import os

    from msakit.extract.pipeline import _init_worker

    _init_worker(os.devnull)


def extract_one(path: str, transcript: str | None, settings: dict, timeline: bool = False, optional: str = "") -> dict:
    """Extract one clip with ``settings`` (an ``ExtractSettings`` as a dict): ``{"text", "asr",
    "duration_s", "audio"/"vision" (those extracted), "absent" ({m: reason} for modalities in
    ``optional`` the clip lacks), "flags", "timeline" (if asked)}``, or ``{"error": {"code",
    "message"}}``. Runs in a worker process as well as here.

    ``optional``: the modalities the run can score without; a clip lacking any other of the
    settings' modalities is an error naming what it lacks and why it matters."""
    from msakit.extract import ExtractSettings, extract_clip
    from msakit.extract.decode import ClipError

    wanted = ExtractSettings(**settings)
    modalities, absent = wanted.modalities, {}
    uses = _joined([NAMES[m] for m in wanted.modalities])

    def lacking(m: str, code: str, reason: str) -> dict:
        return clip_error(code, f"{reason}: this run uses {uses} and was not trained to score a clip without {NAMES[m]}; "
                          f"send a clip with {'the speaker’s face on video' if m == 'v' else 'its sound'}")

    while True:
        try:
            out = extract_clip(path, dataclasses.replace(wanted, modalities=modalities), transcript)
        except ClipError as exc:
            m = _LACKS.get(exc.code)
            needs_sound = m == "a" and "t" in modalities and transcript is None  # the words come from the sound
            if m and m in modalities and len(modalities) > 1 and not needs_sound:
                if m in optional:
                    absent[m] = str(exc)
                    modalities = modalities.replace(m, "")
                    continue
                return lacking(m, exc.code, str(exc))
            if needs_sound:
                return clip_error(exc.code, "no audio track, so no speech to recognise: give the clip's transcript "
                                            "(predict --transcript, or the transcript field of the page and API), or a clip with sound")
            return clip_error(exc.code, str(exc))
        except Exception as exc:  # noqa: BLE001 - an unforeseen file problem: this clip's reason, the others go on
            return clip_error("internal", f"unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())[:150]}")
        break
    if out.get("vision_absent") and "v" in modalities:
        if "v" not in optional:
            return lacking("v", "no_video_track", "no video track (an audio file)")
        absent["v"] = "no video track (an audio file)"
    duration, truncated = float(out["duration_s"]), None
    decoded = [kind for kind, yes in (("audio", out.get("audio") is not None or out.get("asr")), ("video", out.get("vision") is not None)) if yes]
    declared = _declared_seconds(path, decoded)
    if not duration:  # nothing was decoded (a given transcript on a text-only run): the container's own duration
        duration = declared
    elif declared - duration > max(0.5, 0.1 * declared):  # the file says longer than what could be decoded: cut short
        truncated = (f"the file declares {declared:.1f} s but only {duration:.1f} s could be decoded (truncated or damaged?): "
                     "the score rests on that part")
    result = {"text": out["text"], "asr": bool(out["asr"]), "duration_s": duration, "absent": absent,
              "flags": list(out.get("flags") or []), "truncated": truncated}
    for key in ("audio", "vision"):
        if key[0] in modalities and out.get(key) is not None:
            result[key] = out[key]
    if timeline:
        result["timeline"] = clip_timeline({**out, "duration_s": duration}, wanted, wanted.modalities)
    return result


def _declared_seconds(path: str, streams: list[str]) -> float:
    """The longest duration the file declares for the ``streams`` (``audio``, ``video``) that were
    decoded (a stream without one: the container's); 0 when it declares none. With no stream
    decoded, the container's duration."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            whole = container.duration / 1e6 if container.duration else 0.0
            if not streams:
                return whole
            seconds = []
            for kind in streams:
                found = getattr(container.streams, kind)
                if found:
                    stream = found[0]
                    own = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
                    seconds.append(own or whole)
            return max(seconds, default=0.0)
    except (av.FFmpegError, OSError, ValueError):
        return 0.0


def _series(values, rate_hz: float, label: str, unit: str) -> dict:
    """At most TIMELINE_POINTS block means of ``values`` and the rate of the result."""
    import numpy as np

    values = np.asarray(values, np.float64)
    step = max(1, int(np.ceil(len(values) / TIMELINE_POINTS)))
    if step > 1:
        cut = len(values) // step * step
        head = values[:cut].reshape(-1, step).mean(axis=1)
        values = np.concatenate([head, values[cut:].mean(keepdims=True)]) if cut < len(values) else head
    return {"label": label, "unit": unit, "rate_hz": rate_hz / step,
            "values": [round(float(v), 4) if np.isfinite(v) else None for v in values]}


def clip_timeline(out: dict, settings, modalities: str = "tav") -> dict:
    """What the page draws under a clip, from its extracted (raw, unstandardised) features, for
    the ``modalities`` the run uses only: audio level in dBFS and voiced frames (per audio frame);
    face found, mouth opening, smile, brow raise, eye opening (per face frame). Keys are stable
    snake_case names; each series has its display ``label`` and ``unit``."""
    timeline: dict[str, Any] = {"duration_s": round(float(out.get("duration_s") or 0.0), 3), "series": {}}
    series = timeline["series"]
    if "a" in modalities and out.get("audio") is not None and len(out["audio"]) and getattr(settings, "audio_features", "descriptors") == "descriptors":
        from msakit.extract.audio import FEATURE_NAMES as AUDIO

        audio = out["audio"]
        series["audio_level"] = _series(audio[:, AUDIO.index("level_db")], settings.audio_rate_hz, "audio level", "dBFS")
        series["voiced"] = _series(audio[:, AUDIO.index("f0_hz")] > 0, settings.audio_rate_hz, "voiced", "fraction of frames")
    if "v" in modalities and out.get("vision") is not None and len(out["vision"]) and getattr(settings, "vision_features", "facemesh") == "facemesh":
        from msakit.extract.face import FEATURE_NAMES as FACE

        vision = out["vision"]
        column = lambda name: vision[:, FACE.index(name)]  # noqa: E731
        rate = settings.video_fps
        series["face_present"] = _series(column("present"), rate, "face found", "fraction of frames")
        series["mouth_open"] = _series(column("mouth_open"), rate, "mouth opening", "lip gap / eye distance")
        series["smile"] = _series(column("smile"), rate, "smile", "mouth-corner lift / eye distance")
        series["brow_raise"] = _series((column("brow_raise_l") + column("brow_raise_r")) / 2, rate, "brow raise", "brow height / eye distance")
        series["eye_open"] = _series((column("eye_open_l") + column("eye_open_r")) / 2, rate, "eye opening", "lid gap / eye width")
    if modalities == "t":
        timeline["note"] = "this run reads the words alone: no audio or face measures are drawn"
    elif "v" in modalities and out.get("vision") is None:
        timeline["note"] = "no face measures: no face found, or no video track"
    return timeline


def _csv_rows(payload: dict) -> tuple[list[str], list[dict]]:
    """The CSV's columns and rows, in the clips' order: scored clips and failed ones."""
    unimodal = [m for m in ("text", "audio", "vision") if any(m in r.get("unimodal", {}) for r in payload["predictions"])]
    columns = ["video", "score", "class"] + [f"unimodal_{m}" for m in unimodal] + ["transcript", "transcript_source", "used", "warnings",
                                                                                  "error_code", "error"]
    rows = []
    for row in payload["predictions"]:
        flat = {k: row[k] for k in ("video", "score", "class", "transcript", "transcript_source")}
        flat.update({f"unimodal_{m}": v for m, v in row.get("unimodal", {}).items()})
        flat["used"] = "+".join(row["used"])
        flat["warnings"] = "; ".join(w["message"] for w in row["warnings"])
        rows.append((row["index"], flat))
    rows += [(f["index"], {"video": f["video"], "error_code": f["error"]["code"], "error": f["error"]["message"]}) for f in payload["failures"]]
    return columns, [r for _, r in sorted(rows, key=lambda pair: pair[0])]


def predict_video(run_dir: str | Path, videos, output: str | Path, *, kind: str | None = None, device: str = "auto",
                  workers: int | None = 1, progress: bool = True, transcripts: list[str | None] | None = None,
                  overwrite: bool = False, video_ids: list[str | None] | None = None, engine: str = "local", address: str | None = None) -> dict:
    """Extract ``videos`` with the run's extractor settings, predict, and write ``output`` as CSV
    and JSON (same stem): per clip the score, its class, the modalities it rests on, warnings,
    unimodal scores (models that have them) and the transcript; clips that could not be used are
    listed with an error code and reason, and the others are written all the same.
    ``transcripts`` (one per video, ``None`` or ``""`` to recognise) are used instead of speech
    recognition. ``video_ids`` (one per video, ``None`` or ``""`` for none): the video each clip
    was cut from; for a run trained with ``data.context`` the clips of one video, in the order
    given, are read as each other's neighbours (a clip alone is scored with empty context, with a
    warning). A text-only run needs no extractor sidecar. Existing output files are refused
    unless ``overwrite``; an output inside the run being read, or onto an input, always is.
    ``engine="ray"`` extracts the clips on a Ray cluster (``address``; None: a local one), with
    the same results as this machine. Returns the JSON payload plus ``"csv"`` and ``"json"`` paths."""
    import csv
    import tempfile

    from msakit.errors import ConfigError, MissingFileError
    from msakit.outputs import atomic_write, check_outputs, write_json

    if engine not in ("local", "ray"):
        raise ConfigError(f"--engine {engine!r}: use local (this machine's processes) or ray (a Ray cluster)")
    if address and engine != "ray":
        raise ConfigError("--address: the address of a Ray cluster goes with --engine ray")
    if engine == "ray":
        from msakit.extract.ray_engine import require_ray

        require_ray()
    output = Path(output)
    if output.is_dir():
        raise ConfigError(f"--output {output}: is a directory; give the path of the CSV file to write (e.g. {output / 'predictions.csv'})")
    videos = [Path(v) for v in videos]
    if transcripts is not None and len(transcripts) != len(videos):
        raise ConfigError(f"--transcript: given {len(transcripts)} time(s) for {len(videos)} video(s); give one per video, in order, or none")
    if video_ids is not None and len(video_ids) != len(videos):
        raise ConfigError(f"--video-id: given {len(video_ids)} time(s) for {len(videos)} video(s); give one per video, in order, or none")
    video_ids = [check_video_id(v, "--video-id") for v in video_ids] if video_ids is not None else [None] * len(videos)
    for video in videos:
        if video.is_dir():
            raise ConfigError(f"--video {video}: is a folder, not a video file; give the files in it (e.g. {video}/*.mp4)")
        if not video.is_file():
            raise MissingFileError(f"{video}: no such video file")
    csv_path, json_path = check_outputs([("--output", output.with_suffix(".csv")), ("--output (its .json)", output.with_suffix(".json"))],
                                        inputs=videos, overwrite=overwrite, protected=[("the run being read", run_root(run_dir))])
    scorer = VideoScorer(run_dir, kind=kind, device=device)
    if scorer.note:
        print(f"note: {scorer.note}", file=sys.stderr)
    # '' or blank: recognise the speech (as the API does)
    clips = [ClipInput(v, str(v), ((transcripts[i] or "").strip() or None) if transcripts else None, video_ids[i])
             for i, v in enumerate(videos)]
    extracted = scorer.extract(clips, workers=workers, progress=progress, engine=engine, address=address)
    with tempfile.TemporaryDirectory(prefix="msakit-video-") as temp:
        payload = {"run": str(scorer.seed_dir), **scorer.score(clips, extracted, temp)}
    columns, rows = _csv_rows(payload)

    def write_csv(p: Path) -> None:
        with open(p, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(csv_path, write_csv)
    write_json(json_path, payload)
    return {**payload, "csv": csv_path, "json": json_path}


__all__ = ["ClipInput", "VideoScorer", "clip_error", "clip_timeline", "extract_one", "predict_video", "sentiment_class", "speech_recogniser"]
