"""Score video (or audio) files with a trained run: extract them the way the run's training
features were extracted, predict, and write a CSV and a JSON of per-clip results.

One code path for ``msakit predict --video`` and ``msakit serve``: a ``VideoScorer`` holds the
loaded run and the extractor settings its features need; ``extract_one`` extracts one clip (in
any process: it is what the serving pool runs) and ``VideoScorer.score`` turns extracted clips
into the rows both write.

A run trained on text alone (a text table, an MMSA pickle's raw_text) needs no extractor
sidecar: its clips only need a transcript, given or recognised from the audio.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msakit.training.runs import predict_split, seed_dirs

# Scores within +-threshold of 0 are "neutral": MOSI/MOSEI round to the nearest integer class
# (Acc-3 style), CH-SIMS's [-1, 1] scale uses its 0.1 band.
_NEUTRAL_BAND = {"mosi": 0.5, "mosei": 0.5, "sims": 0.1}
_SCALE = {"mosi": (-3.0, 3.0), "mosei": (-3.0, 3.0), "sims": (-1.0, 1.0)}
TIMELINE_POINTS = 150  # at most this many points per timeline series


def sentiment_class(score: float, kind: str = "mosi") -> str:
    band = _NEUTRAL_BAND.get(kind, 0.5)
    return "negative" if score < -band else "positive" if score > band else "neutral"


@dataclass
class ClipInput:
    """One clip to score: the file to read, the name shown for it, an optional transcript."""

    path: Path
    name: str
    transcript: str | None = None


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


class VideoScorer:
    """A trained run ready to score clips: its model loaded once, the extractor settings its
    features need (its sidecar's; for a text-only run speech recognition alone)."""

    def __init__(self, run_dir: str | Path, *, kind: str | None = None, device: str = "auto"):
        from msakit.errors import RunDirError
        from msakit.extract import ExtractSettings, check_compatible, describe, run_sidecar
        from msakit.training.runs import load_run
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
        self.recogniser = speech_recogniser() if "t" in self.modalities and "t" in self.settings.modalities else None

    @property
    def note(self) -> str | None:
        """Said once where a run leaves parts of a clip unused."""
        if self.text_only:
            return (f"run {self.seed_dir} uses text alone: the clips' audio and vision are not used, only their transcript "
                    f"(given, or recognised by {self.recogniser['name']} {self.recogniser['version']})")
        return None

    @property
    def scale(self) -> tuple[float, float]:
        return _SCALE.get(self.kind, (-3.0, 3.0))

    def settings_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    def extract(self, clips: list[ClipInput], *, workers: int = 1, progress: bool = False, timeline: bool = False) -> list[dict]:
        """``extract_one`` for every clip, in ``workers`` processes when more than one."""
        from tqdm.auto import tqdm

        from msakit.extract.pipeline import require_video_extra

        require_video_extra()
        settings = self.settings_dict()
        with tqdm(total=len(clips), unit="clip", desc="extract", disable=not progress, dynamic_ncols=True) as bar:
            if workers <= 1 or len(clips) <= 1:
                results = []
                for clip in clips:
                    results.append(extract_one(str(clip.path), clip.transcript, settings, timeline))
                    bar.update(1)
                return results
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=min(workers, len(clips)), mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(extract_one, str(c.path), c.transcript, settings, timeline) for c in clips]
                results = []
                for future in futures:
                    results.append(future.result())
                    bar.update(1)
                return results

    def score(self, clips: list[ClipInput], extracted: list[dict], work_dir: str | Path) -> dict:
        """Predict the clips ``extract_one`` could use; ``work_dir`` (private, the caller's to
        delete) holds the small feature file in between. The payload ``predict --video``
        writes as JSON and ``/api/predict`` returns: ``{"run", "model", "kind", "modalities",
        "speech_recognition", "predictions": [...], "failures": [{"path", "reason"}]}``."""
        from msakit.data.mmsa import write_mmsa_pickle

        used = [(i, clip, out) for i, (clip, out) in enumerate(zip(clips, extracted)) if "error" not in out]
        failures = [{"path": clip.name, "reason": out["error"]} for clip, out in zip(clips, extracted) if "error" in out]
        rows, used_kind = [], self.kind
        if used:
            split: dict[str, Any] = {"id": [f"clip{i}" for i, _, _ in used]}
            if "t" in self.settings.modalities:
                split["raw_text"] = [out["text"] or "" for _, _, out in used]
            for key in ("audio", "vision"):
                if key[0] in self.settings.modalities:
                    split.update(_stack([out[key] for _, _, out in used], key))
            path = write_mmsa_pickle(Path(work_dir) / "clips.pkl", {"test": split})
            predictions, target, used_kind = predict_split(self.seed_dir, path, self.kind, "test", self.device, require_labels=False,
                                                           loaded=self.loaded)
            for row_index, (_, clip, out) in enumerate(used):
                score = float(predictions["m"][row_index])
                row = {"video": clip.name, "score": round(score, 4), "class": sentiment_class(score, used_kind)}
                row.update({f"score_{m}": round(float(predictions[m][row_index]), 4) for m in ("t", "a", "v") if m in predictions})
                row["transcript"] = out["text"] or ""
                row["transcript_source"] = "given" if not out["asr"] else "speech recognition"
                if "timeline" in out:
                    row["timeline"] = out["timeline"]
                rows.append(row)
        return {"run": str(self.seed_dir), "model": self.model_name, "kind": used_kind, "modalities": self.modalities,
                "speech_recognition": self.recogniser, "predictions": rows, "failures": failures}


def _stack(arrays: list, key: str) -> dict:
    """Zero-padded ``(clips, frames, dim)`` float32 and lengths, as ``msakit extract`` writes them."""
    import numpy as np

    frames = max(1, max(len(a) for a in arrays))
    stacked = np.zeros((len(arrays), frames, arrays[0].shape[1]), np.float32)
    for i, a in enumerate(arrays):
        stacked[i, : len(a)] = a
    return {key: stacked, f"{key}_lengths": np.array([max(1, len(a)) for a in arrays], np.int64)}


def extract_one(path: str, transcript: str | None, settings: dict, timeline: bool = False) -> dict:
    """Extract one clip with ``settings`` (an ``ExtractSettings`` as a dict): ``{"text", "asr",
    "duration_s", "audio"/"vision" (those the settings extract), "timeline" (if asked)}``, or
    ``{"error": one-line reason}``. Runs in a worker process as well as here.

    With ``timeline`` and settings that extract text alone, audio and face are extracted too
    (for the timeline only; a clip without a face or sound still scores on its transcript)."""
    from msakit.extract import ExtractSettings, extract_clip
    from msakit.extract.decode import ClipError

    wanted = ExtractSettings(**settings)
    attempts = [wanted]
    if timeline and wanted.modalities == "t":
        attempts = [dataclasses.replace(wanted, modalities="tav"), dataclasses.replace(wanted, modalities="ta"), wanted]
    for n, attempt in enumerate(attempts, 1):
        try:
            out = extract_clip(path, attempt, transcript)
            break
        except ClipError as exc:
            if n == len(attempts):
                return {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - an unforeseen file problem: this clip's reason, the others go on
            return {"error": f"unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())[:150]}"}
    result = {"text": out["text"], "asr": bool(out["asr"]), "duration_s": float(out["duration_s"])}
    for key in ("audio", "vision"):
        if key[0] in wanted.modalities:
            result[key] = out[key]
    if timeline:
        result["timeline"] = clip_timeline(out, attempt)
    return result


def _series(values, rate_hz: float) -> dict:
    """At most TIMELINE_POINTS block means of ``values`` and the rate of the result."""
    import numpy as np

    values = np.asarray(values, np.float64)
    step = max(1, int(np.ceil(len(values) / TIMELINE_POINTS)))
    if step > 1:
        cut = len(values) // step * step
        head = values[:cut].reshape(-1, step).mean(axis=1)
        values = np.concatenate([head, values[cut:].mean(keepdims=True)]) if cut < len(values) else head
    return {"rate_hz": rate_hz / step, "values": [round(float(v), 4) for v in values]}


def clip_timeline(out: dict, settings) -> dict:
    """What the page draws under a clip, from its extracted (raw, unstandardised) features:
    face present, mouth opening, smile, brow raise, eye opening (per face frame), audio level
    in dBFS and voiced frames (per audio frame)."""
    import numpy as np

    timeline: dict[str, Any] = {"duration_s": round(float(out["duration_s"]), 3), "series": {}}
    if out.get("audio") is not None and len(out["audio"]):
        from msakit.extract.audio import FEATURE_NAMES as AUDIO

        audio = out["audio"]
        timeline["series"]["audio level (dBFS)"] = _series(audio[:, AUDIO.index("level_db")], settings.audio_rate_hz)
        timeline["series"]["voiced"] = _series(audio[:, AUDIO.index("f0_hz")] > 0, settings.audio_rate_hz)
    if out.get("vision") is not None and len(out["vision"]):
        from msakit.extract.face import FEATURE_NAMES as FACE

        vision = out["vision"]
        column = lambda name: vision[:, FACE.index(name)]  # noqa: E731
        timeline["series"]["face present"] = _series(column("present"), settings.video_fps)
        timeline["series"]["mouth open"] = _series(column("mouth_open"), settings.video_fps)
        timeline["series"]["smile"] = _series(column("smile"), settings.video_fps)
        timeline["series"]["brow raise"] = _series((column("brow_raise_l") + column("brow_raise_r")) / 2, settings.video_fps)
        timeline["series"]["eye open"] = _series((column("eye_open_l") + column("eye_open_r")) / 2, settings.video_fps)
    if out.get("vision") is None:
        timeline["note"] = "no face measures: no face found, or no video track"
    for values in timeline["series"].values():
        values["values"] = [v if np.isfinite(v) else None for v in values["values"]]
    return timeline


def predict_video(run_dir: str | Path, videos, output: str | Path, *, kind: str | None = None, device: str = "auto",
                  workers: int = 1, progress: bool = True, transcripts: list[str | None] | None = None,
                  overwrite: bool = False) -> dict:
    """Extract ``videos`` with the run's extractor settings, predict, and write ``output`` as CSV
    and JSON (same stem): per clip the score, its class, unimodal scores (models that have
    them) and the transcript; clips that could not be used are listed with the reason.
    ``transcripts`` (one per video, ``None`` or ``""`` to recognise) are used instead of speech
    recognition. A text-only run needs no extractor sidecar. Existing output files are refused
    unless ``overwrite``. Returns the JSON payload plus ``"csv"`` and ``"json"`` paths."""
    import csv
    import tempfile

    from msakit.errors import ConfigError, DataError, MissingFileError
    from msakit.outputs import atomic_write, check_outputs, write_json

    output = Path(output)
    if output.is_dir():
        raise ConfigError(f"--output {output}: is a directory; give the path of the CSV file to write (e.g. {output / 'predictions.csv'})")
    videos = [Path(v) for v in videos]
    if transcripts is not None and len(transcripts) != len(videos):
        raise ConfigError(f"--transcript: given {len(transcripts)} time(s) for {len(videos)} video(s); give one per video, in order, or none")
    for video in videos:
        if not video.is_file():
            raise MissingFileError(f"{video}: no such video file")
    csv_path, json_path = check_outputs([("--output", output.with_suffix(".csv")), ("--output (its .json)", output.with_suffix(".json"))],
                                        inputs=videos, overwrite=overwrite)
    scorer = VideoScorer(run_dir, kind=kind, device=device)
    if scorer.note:
        print(f"note: {scorer.note}", file=sys.stderr)
    clips = [ClipInput(v, str(v), (transcripts[i] or None) if transcripts else None) for i, v in enumerate(videos)]
    extracted = scorer.extract(clips, workers=workers, progress=progress)
    if all("error" in e for e in extracted):
        first = next(zip(clips, extracted))
        raise DataError(f"no video could be used ({len(clips)} failed); first: {first[0].name}: {first[1]['error']}")
    with tempfile.TemporaryDirectory(prefix="msakit-video-") as temp:
        payload = scorer.score(clips, extracted, temp)
    rows = payload["predictions"]
    columns = list(rows[0])

    def write_csv(p: Path) -> None:
        with open(p, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=columns + ["error"])
            writer.writeheader()
            writer.writerows(rows)
            writer.writerows({"video": f["path"], "error": f["reason"]} for f in payload["failures"])

    atomic_write(csv_path, write_csv)
    write_json(json_path, payload)
    return {**payload, "csv": csv_path, "json": json_path}


__all__ = ["ClipInput", "VideoScorer", "clip_timeline", "extract_one", "predict_video", "sentiment_class", "speech_recogniser"]
