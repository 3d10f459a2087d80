"""Hostile and careless inputs through the scoring path: ``msakit predict RUN --video`` and the
HTTP API (``POST /api/predict`` of ``msakit serve``), on two runs this script trains itself.

The scoring path promises: every clip ends as a score (possibly with ``warnings``) or as its own
error ``{"code", "message"}``; a bad request is one 4xx JSON ``{"detail", "code"}``; the CLI exits
0 (all scored), 1 (written, some clips not scored) or 2 (one stderr line, nothing written), never
70 or a traceback; no clip gets a score with no basis and no warning.

Runs, built in a temporary folder (nothing is downloaded):

- ``tav``: Self-MM on text, audio and vision features that ``msakit extract`` made from eight
  generated clips (the recipe of the ``clip_run`` test fixture), one epoch, a tiny random BERT;
- ``text``: Self-MM on a small text table (the ``text_only_run`` fixture), one epoch.

Every case (a generated file, a name, a transcript, a request or a command line) goes through
the CLI (``msakit.cli.main`` in-process, stdout/stderr captured; a few also as a subprocess) and
the API (``fastapi.testclient.TestClient``, one app per run; a few also with ``?progress=true``).
Each (case, front end, run) gets an outcome class: ``scored``, ``scored_with_warning``,
``clip_error:<code>``, ``refused_4xx:<code>``, ``refused_exit2``; and BAD flags: exit 70, HTTP
500, an exception, a traceback anywhere, a good clip of the batch not scored, a silent score
(no transcript and no ``no_speech`` warning; on a vision run no vision and no ``vision_absent``
warning, or vision used on a clip known to have no face), a message over more than one line, a
server temp path or ``[Errno`` in a message, an exit status that does not match what was
written, a 4xx body that is not ``{"detail", "code"}``. Observations that break no stated
promise (raw control characters printed, speech "recognised" in noise) are listed as notes.

Writes ``benchmarks/results/scoring_bad_inputs.json`` and ``.md``; exits 1 if any outcome is BAD.

    .venv/bin/python benchmarks/scoring_bad_inputs.py            # about 2 minutes on 2 cores (runs built included)
    .venv/bin/python benchmarks/scoring_bad_inputs.py --only truncated,name_  # cases whose name contains these
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the msakit of this tree, not another checkout's installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, command_line, write_result  # noqa: E402

TRANSCRIPT = "this movie is great and wonderful"
MAX_CLIPS = 16  # the server's default --max-clips
DOCUMENTED_CLIP_CODES = {"unreadable", "corrupt_stream", "too_short", "no_audio_track", "no_video_track", "no_frames", "no_face",
                         "no_speech", "worker_stopped", "internal"}
DOCUMENTED_WARNINGS = {"vision_absent", "audio_absent", "no_speech", "transcript_repaired"}
DOCUMENTED_REFUSALS = {"bad_request", "no_clip", "empty_file", "bad_multipart", "unauthorized", "too_large", "too_many_clips",
                       "unsupported_media", "busy", "not_found", "method_not_allowed"}


# ---- the two runs ----------------------------------------------------------------------------------

def tiny_bert(directory: Path) -> Path:
    """A 2-layer, 32-wide random BERT saved like any local model directory (tests/conftest.py)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from msakit.data.synthetic import _FILLERS, _LEVELS, _OPENERS, _SUBJECTS

    directory.mkdir(parents=True, exist_ok=True)
    words = set()
    for phrase in [*_FILLERS, *_OPENERS, *_SUBJECTS, *(w for ws in _LEVELS.values() for w in ws)]:
        words.update(phrase.split())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words), *"abcdefghijklmnopqrstuvwxyz"]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(str(directory))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(str(directory))
    return directory


def overrides(bert: Path) -> dict:
    return {"model": {"text_encoder": str(bert)}, "train": {"batch_size": 16, "max_epochs": 1, "progress": False}}


def tav_run(root: Path, bert: Path) -> Path:
    """Self-MM on t+a+v features extracted from eight generated clips (tests/conftest.py clip_run)."""
    import msakit
    from msakit.extract.media import voice, write_clip

    words = {1.5: "this movie is great and wonderful", -1.5: "this movie is terrible and boring"}
    rows = []
    for i in range(8):
        label = 1.5 if i % 2 else -1.5
        write_clip(root / "clips" / f"clip{i}.mp4", seconds=1.0, size=(160, 120), audio=voice(1.0, f0=200 if label > 0 else 110, seed=i),
                   scale=lambda t, label=label: 0.8 if label > 0 else 0.55)
        rows.append({"path": f"clips/clip{i}.mp4", "label": label, "split": "train" if i < 4 else "valid" if i < 6 else "test",
                     "text": words[label], "video_id": f"v{i}"})
    with open(root / "manifest.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    msakit.extract(root / "manifest.csv", root / "feats.pkl", workers=1, progress=False)
    return msakit.train("self_mm", root / "feats.pkl", run_dir=root / "run", overrides=overrides(bert)).run_dir


def text_run(root: Path, bert: Path) -> Path:
    """Self-MM on a small text table (tests/conftest.py write_text_table, text_only_run)."""
    import numpy as np

    import msakit

    rng = np.random.default_rng(0)
    table = root / "table"
    table.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 32), ("dev", 12), ("test", 12)):
        labels = rng.uniform(-3, 3, n)
        lines = [f"{'a great film' if y > 0 else 'a terrible film'} {i}\t{y:.2f}" for i, y in enumerate(labels)]
        (table / f"{split}.tsv").write_text("text\tlabel\n" + "\n".join(lines) + "\n")
    return msakit.train("self_mm", table, run_dir=root / "run", overrides=overrides(bert)).run_dir


# ---- the media -------------------------------------------------------------------------------------

def write_audio(path: Path, samples, *, fmt: str, codec: str, rate: int = 16000) -> Path:
    """An audio-only file encoded by PyAV (``fmt`` the container, ``codec`` the encoder)."""
    from fractions import Fraction

    import av
    import numpy as np

    if rate != 16000:  # e.g. Opus only takes 48 kHz: resample by repetition (the content does not matter)
        samples = np.repeat(samples, rate // 16000)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        step = 1024
        for start in range(0, len(samples), step):
            chunk = np.clip(samples[start:start + step], -1, 1).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def header_only_wav(path: Path) -> Path:
    """A valid WAV header (16 kHz mono, 16-bit) and no samples."""
    import wave

    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(16000)
    return path


def faststart(source: Path, target: Path) -> Path:
    """``source`` remuxed with its index (moov) before the data, as web-ready MP4s are: a cut
    copy of it still opens."""
    import av

    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    return target


def make_media(folder: Path) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    from msakit.extract.media import face_photo, render_frame, voice, write_clip

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    clip = lambda name, **kw: write_clip(folder / name, size=(160, 120), **kw)  # noqa: E731
    speech = voice(1.0, f0=200, seed=3)
    media = {
        "good": clip("good.mp4", seconds=1.0, audio=speech),
        "good2": clip("good2.mp4", seconds=1.0, audio=voice(1.0, f0=120, seed=9)),
        "wav": write_audio(folder / "speech.wav", voice(1.0, f0=180, seed=4), fmt="wav", codec="pcm_s16le"),
        "flac": write_audio(folder / "speech.flac", voice(1.0, f0=180, seed=4), fmt="flac", codec="flac"),
        "mp3": write_audio(folder / "speech.mp3", voice(1.0, f0=180, seed=4), fmt="mp3", codec="libmp3lame"),
        "ogg": write_audio(folder / "speech.ogg", voice(1.0, f0=180, seed=4), fmt="ogg", codec="libopus", rate=48000),
        "wav_empty": header_only_wav(folder / "header_only.wav"),
        "no_audio": clip("no_audio.mp4", seconds=1.0, audio=None),
        "no_face": clip("no_face.mp4", seconds=1.0, face=False, audio=speech),
        "single_frame": clip("single_frame.mp4", seconds=0.04, audio=speech),
        "single_frame_silent": clip("single_frame_no_audio.mp4", seconds=0.04, audio=None),
        "silence": clip("silence.mp4", seconds=1.0, audio=np.zeros(16000, np.float32)),
        "noise": clip("noise.mp4", seconds=1.0, audio=(0.3 * rng.standard_normal(16000)).astype(np.float32)),
        "short": clip("short.mp4", seconds=0.1, audio=speech[:1600]),
    }
    media["long"] = clip("long.mp4", seconds=3.0, audio=voice(3.0, f0=200, seed=5))
    fast = faststart(media["long"], folder / "long_faststart.mp4").read_bytes()
    for p in (30, 60, 90):
        media[f"truncated_faststart_{p}"] = folder / f"truncated_faststart_{p}.mp4"
        media[f"truncated_faststart_{p}"].write_bytes(fast[: len(fast) * p // 100])
    good = media["good"].read_bytes()
    for p in (5, 30, 60, 90):
        media[f"truncated_{p}"] = folder / f"truncated_{p}.mp4"
        media[f"truncated_{p}"].write_bytes(good[: len(good) * p // 100])
    (folder / "zero.mp4").write_bytes(b"")
    media["zero"] = folder / "zero.mp4"
    (folder / "random.mp4").write_bytes(rng.integers(0, 256, 8192, dtype=np.uint8).tobytes())
    media["random"] = folder / "random.mp4"
    (folder / "text.mp4").write_text("this is a text file, not a video\n" * 40)
    media["text"] = folder / "text.mp4"
    Image.fromarray(render_frame(face_photo(), (160, 120), 0.8, (0.5, 0.5))).save(folder / "image.png", format="PNG")
    media["png"] = folder / "image.mp4"
    shutil.copyfile(folder / "image.png", media["png"])
    media["garbage_tail"] = folder / "garbage_tail.mp4"
    media["garbage_tail"].write_bytes(good + rng.integers(0, 256, 65536, dtype=np.uint8).tobytes())
    names = {"name_spaces": "a clip with  spaces .mp4", "name_unicode": "клип-日本語-é-😀.mp4", "name_newline": "new\nline\r.mp4",
             "name_escape": "esc\x1b[31mred\x1b[0m\x07.mp4", "output_is_input_csv": "clip_named.csv"}
    for key, name in names.items():
        media[key] = folder / "names" / name
        media[key].parent.mkdir(exist_ok=True)
        shutil.copyfile(media["good"], media[key])
    media["directory"] = folder / "a_directory.mp4"
    media["directory"].mkdir(exist_ok=True)
    for key, sub in (("real_grid", "media/grid/bbaf2n.mpg"), ("real_speech", "media/speech/librivox_0870.wav")):
        if (SHARED_DATA / sub).is_file():
            media[key] = SHARED_DATA / sub
    return media


# ---- the cases -------------------------------------------------------------------------------------

@dataclass
class Clip:
    path: Path | None  # the file (CLI path; the API sends its bytes)
    transcript: str | None = TRANSCRIPT  # None: speech recognition
    api_name: str | None = None  # the multipart file name (default: the file's name)
    lacks_face: bool = False  # known to have no face (audio-only, a face-less video)
    good: bool = False  # must be scored whatever else is in the batch


@dataclass
class Case:
    name: str
    what: str
    clips: list[Clip] = field(default_factory=list)
    fronts: tuple[str, ...] = ("cli", "api")
    subject: int = 0  # the clip whose outcome is the case's
    cli_argv: Callable[[Path, Path], list[str]] | None = None  # (run, output) -> the argv after "predict RUN" (custom command lines)
    api_request: Callable[[Any], Any] | None = None  # client -> response (custom requests)
    refusal_ok: tuple[str, ...] = ()  # front ends ("cli", "api") whose documented answer is to refuse the whole request
    expect: dict[str, str] = field(default_factory=dict)  # what the docs lead one to expect: {"front/run", "front", "run" or "*": outcome
    # or outcome prefix ending in ":"}; a mismatch is a note (not BAD)

    def refusal_allowed(self, front: str) -> bool:
        return any(front.split("-")[0] == f for f in self.refusal_ok)

    def expected(self, front: str, run: str) -> str | None:
        base = front.split("-")[0]
        for key in (f"{base}/{run}", base, run, "*"):
            if key in self.expect:
                return self.expect[key]
        return None


def cases(media: dict[str, Path], work: Path) -> list[Case]:
    """The cases; ``expect`` says what docs/guide/serve.md leads one to expect (``clip_error:`` any code)."""
    good = lambda **kw: Clip(media["good"], **kw)  # noqa: E731
    api_415 = dict(refusal_ok=("api",), expect={"api": "refused_4xx:unsupported_media"})
    scored = {"*": "scored"}
    audio_only = {"tav": "scored_with_warning", "text": "scored"}  # tav: vision_absent (trained with vision withheld)
    unusable = {"cli/tav": "clip_error:", "api": "clip_error:"}
    raw = lambda fields: multipart(fields)  # noqa: E731
    multipart_headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    out: list[Case] = [
        Case("good_mp4", "a good 1 s mp4 (face, voice), transcript given", [good(good=True)], expect=scored),
        Case("good_mp4_asr", "the good mp4 without a transcript (its voice is a hum, not words)", [good(transcript=None)]),
        Case("audio_wav", "audio only: WAV", [Clip(media["wav"], lacks_face=True)], expect=audio_only),
        Case("audio_flac", "audio only: FLAC", [Clip(media["flac"], lacks_face=True)], expect=audio_only),
        Case("audio_mp3", "audio only: MP3", [Clip(media["mp3"], lacks_face=True)], expect=audio_only),
        Case("audio_ogg", "audio only: Ogg Opus (48 kHz)", [Clip(media["ogg"], lacks_face=True)], expect=audio_only),
        Case("audio_wav_header_only", "a WAV with a header and no samples", [Clip(media["wav_empty"], lacks_face=True)],
             expect={"tav": "clip_error:"}),
        Case("video_no_audio", "video without an audio track, transcript given", [Clip(media["no_audio"])],
             expect={"tav": "scored_with_warning", "text": "scored"}),
        Case("video_no_audio_asr", "video without an audio track, no transcript", [Clip(media["no_audio"], transcript=None)],
             expect={"*": "clip_error:no_audio_track"}),
        Case("video_no_face", "video without a face (grey frames), transcript given", [Clip(media["no_face"], lacks_face=True)],
             expect=audio_only),
        Case("single_frame", "one video frame (with a face) and 1 s of sound", [Clip(media["single_frame"])]),
        Case("single_frame_no_audio", "one video frame, no sound, transcript given", [Clip(media["single_frame_silent"])]),
        Case("silence", "a face and a silent audio track, transcript given", [Clip(media["silence"])], expect=scored),
        Case("silence_asr", "a face and a silent audio track, no transcript", [Clip(media["silence"], transcript=None)],
             expect={"*": "clip_error:no_speech"}),
        Case("white_noise_asr", "a face and white noise, no transcript", [Clip(media["noise"], transcript=None)],
             expect={"*": "clip_error:no_speech"}),
        Case("white_noise", "a face and white noise, transcript given", [Clip(media["noise"])], expect=scored),
        Case("short_0.1s", "a 0.1 s clip", [Clip(media["short"])], expect={"tav": "clip_error:too_short"}),
        *[Case(f"truncated_{p}", f"the good mp4 cut at {p} % of its bytes (its index, at the end, lost)", [Clip(media[f"truncated_{p}"])],
               expect=unusable) for p in (5, 30, 60, 90)],
        *[Case(f"truncated_faststart_{p}", f"a 3 s mp4 with its index first (faststart), cut at {p} % of its bytes",
               [Clip(media[f"truncated_faststart_{p}"])], expect={"tav": "clip_error:"}) for p in (30, 60, 90)],
        Case("zero_bytes", "an empty file named .mp4", [Clip(media["zero"])], refusal_ok=("api",),
             expect={"cli/tav": "clip_error:unreadable", "api": "refused_4xx:empty_file"}),
        Case("random_bytes", "8 KiB of random bytes named .mp4", [Clip(media["random"])], **api_415),
        Case("text_named_mp4", "a text file named .mp4", [Clip(media["text"])], **api_415),
        Case("png_named_mp4", "a PNG (a face) named .mp4, transcript given", [Clip(media["png"])], **api_415),
        Case("png_named_mp4_asr", "a PNG (a face) named .mp4, no transcript", [Clip(media["png"], transcript=None)], **api_415),
        Case("garbage_tail", "the good mp4 with 64 KiB of random bytes appended", [Clip(media["garbage_tail"])], expect=scored),
        Case("name_spaces", "a file name with spaces", [Clip(media["name_spaces"])], expect=scored),
        Case("name_unicode", "a file name in Cyrillic, Japanese, an accent and an emoji", [Clip(media["name_unicode"])], expect=scored),
        Case("name_newline", "a file name with a newline and a carriage return", [Clip(media["name_newline"])], expect=scored),
        Case("name_escape", "a file name with terminal escape sequences and a bell", [Clip(media["name_escape"])], expect=scored),
        Case("name_20000_chars", "a 20,000-character multipart file name", [good(api_name="x" * 20000 + ".mp4")], fronts=("api",),
             refusal_ok=("api",), expect={"api": "refused_4xx:bad_multipart"}),
        Case("name_path_like", "the multipart file name ../../x.mp4", [good(api_name="../../x.mp4")], fronts=("api",), expect=scored),
        Case("name_absolute_windows", "the multipart file name C:\\Windows\\x.mp4", [good(api_name="C:\\Windows\\x.mp4")],
             fronts=("api",), expect=scored),
        Case("transcript_empty", "the good mp4, transcript '' (recognise)", [good(transcript="")]),
        Case("transcript_whitespace", "the good mp4, a transcript of spaces, tabs and newlines", [good(transcript=" \t \n  ")]),
        Case("transcript_100_words", "the good mp4, a transcript of 100 words (over the tiny encoder's 64 positions, under "
             "data.max_text_tokens=128)", [good(transcript=" ".join(["great"] * 100))], expect=scored),
        Case("transcript_10000_words", "the good mp4, a transcript of 10,000 words", [good(transcript=" ".join(["great"] * 10000))],
             expect=scored),
        Case("transcript_control_chars", "the good mp4, a transcript with words and NUL, ESC, BEL, CR, LF",
             [good(transcript="great\x00 film\x1b[2J\x07\r\nforged line\x1b[31m")], expect=scored),
        Case("transcript_only_control_chars", "the good mp4, a transcript of control characters only (no word)",
             [good(transcript="\x00\x01\x1b\x07")]),
        Case("too_many_clips", f"{MAX_CLIPS + 1} copies of the good mp4 (the server's --max-clips is {MAX_CLIPS}; predict has no limit)",
             [good(good=True) for _ in range(MAX_CLIPS + 1)], refusal_ok=("api",),
             expect={"api": "refused_4xx:too_many_clips", "cli": "scored"}),
        Case("mixed_batch", "bad clips (truncated 30 %, silence without transcript, no face, 0.1 s, garbage tail, audio only) "
             "and one good clip in one batch",
             [Clip(media["truncated_30"]), Clip(media["silence"], transcript=None), Clip(media["no_face"], lacks_face=True),
              Clip(media["short"]), good(good=True), Clip(media["garbage_tail"]), Clip(media["wav"], lacks_face=True)], subject=4,
             expect=scored),
        Case("mixed_batch_unsniffable", "clips whose content is no media (zero bytes, random, text, PNG) and one good clip",
             [Clip(media["zero"]), Clip(media["random"]), good(good=True), Clip(media["text"]), Clip(media["png"])], subject=2,
             refusal_ok=("api",), expect={"cli": "scored", "api": "refused_4xx:"}),
        Case("transcript_count_mismatch", "one clip, two transcripts", [good()], refusal_ok=("cli", "api"),
             expect={"cli": "refused_exit2", "api": "refused_4xx:bad_request"},
             cli_argv=lambda run, output: ["--video", str(media["good"]), "--transcript", "a", "--transcript", "b", "--output", str(output)],
             api_request=lambda client: client.post("/api/predict", files=[("file", ("good.mp4", media["good"].read_bytes()))],
                                                    data={"transcript": ["a", "b"]})),
        Case("no_clip", "no clip at all (CLI: --video with nothing after it; API: only a transcript field)", [], refusal_ok=("cli", "api"),
             expect={"cli": "refused_exit2", "api": "refused_4xx:no_clip"},
             cli_argv=lambda run, output: ["--video", "--output", str(output)],
             api_request=lambda client: client.post("/api/predict", content=raw([("transcript", None, b"great")]), headers=multipart_headers)),
        Case("api_not_multipart", "a JSON body instead of multipart", [], fronts=("api",), refusal_ok=("api",),
             expect={"api": "refused_4xx:bad_request"},
             api_request=lambda client: client.post("/api/predict", json={"file": "good.mp4"})),
        Case("api_file_as_text_field", "the form field 'file' holding text (a path), not a file", [], fronts=("api",), refusal_ok=("api",),
             expect={"api": "refused_4xx:bad_request"},
             api_request=lambda client: client.post("/api/predict", content=raw([("file", None, b"/etc/passwd")]), headers=multipart_headers)),
        Case("api_multipart_cut_short", "a multipart body cut in the middle of the clip (no closing boundary)", [], fronts=("api",),
             refusal_ok=("api",), expect={"api": "refused_4xx:bad_multipart"},
             api_request=lambda client: client.post("/api/predict", content=raw([("file", "good.mp4", media["good"].read_bytes())])[:20000],
                                                    headers=multipart_headers)),
        Case("api_no_boundary", "multipart/form-data without a boundary parameter", [], fronts=("api",), refusal_ok=("api",),
             expect={"api": "refused_4xx:bad_multipart"},
             api_request=lambda client: client.post("/api/predict", content=raw([("file", "good.mp4", media["good"].read_bytes())]),
                                                    headers={"content-type": "multipart/form-data"})),
        Case("cli_output_inside_run", "--output inside the run being read (its model.json), with --overwrite", [good()], fronts=("cli",),
             refusal_ok=("cli",), expect={"cli": "refused_exit2"},
             cli_argv=lambda run, output: ["--video", str(media["good"]), "--transcript", TRANSCRIPT, "--output",
                                           str(run / "seed_1111" / "best" / "model.json"), "--overwrite"]),
        Case("cli_output_is_input_mp4", "--output equal to the input clip (input.mp4)", [good()], fronts=("cli",), refusal_ok=("cli",),
             cli_argv=lambda run, output: ["--video", str(output.parent / "input.mp4"), "--transcript", TRANSCRIPT,
                                           "--output", str(output.parent / "input.mp4")]),
        Case("cli_output_is_input_csv", "--output equal to the input clip, a video named clip_named.csv, with --overwrite", [good()],
             fronts=("cli",), refusal_ok=("cli",), expect={"cli": "refused_exit2"},
             cli_argv=lambda run, output: ["--video", str(media["output_is_input_csv"]), "--transcript", TRANSCRIPT,
                                           "--output", str(media["output_is_input_csv"]), "--overwrite"]),
        Case("cli_missing_clip", "a clip path that does not exist, beside a good one", [good()], fronts=("cli",), refusal_ok=("cli",),
             expect={"cli": "refused_exit2"},
             cli_argv=lambda run, output: ["--video", str(media["good"]), str(work / "nowhere" / "missing.mp4"), "--output", str(output)]),
        Case("cli_directory_clip", "a directory given as a clip, beside a good one", [good()], fronts=("cli",), refusal_ok=("cli",),
             expect={"cli": "refused_exit2"},
             cli_argv=lambda run, output: ["--video", str(media["good"]), str(media["directory"]), "--output", str(output)]),
    ]
    if "real_grid" in media:
        out.append(Case("real_grid_mpg", "a real GRID recording (MPEG-1/MP2, a face, speech), no transcript",
                        [Clip(media["real_grid"], transcript=None)], expect=scored))
    if "real_speech" in media:
        out.append(Case("real_speech_wav", "a real LibriVox sentence (16 kHz WAV), no transcript",
                        [Clip(media["real_speech"], transcript=None, lacks_face=True)], expect=audio_only))
    return out


BOUNDARY = "msakitbenchboundary"


def multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """A multipart/form-data body of ``(field, filename or None, content)`` parts."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        body += (b"Content-Type: application/octet-stream\r\n" if filename is not None else b"") + b"\r\n" + content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


# ---- judging one outcome ---------------------------------------------------------------------------

TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*File \".*\", line \d+", re.M)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Judge:
    """Outcome class, BAD flags and notes of one (case, front end, run)."""

    def __init__(self, case: Case, run_modalities: str, secret_paths: list[str]):
        self.case, self.modalities, self.secret_paths = case, run_modalities, secret_paths
        self.front = ""
        self.bad: list[str] = []
        self.notes: list[str] = []

    def texts(self, *texts: str) -> None:
        """Anything shown to the user: tracebacks, server paths, errno texts."""
        for text in texts:
            if not text:
                continue
            if TRACEBACK.search(text):
                self.flag("traceback in the output")
            if "[Errno" in text:
                self.flag("'[Errno' in a message")
            for secret in self.secret_paths:
                if secret in text:
                    self.flag(f"server temporary path ({secret}...) in a message")

    def flag(self, what: str) -> None:
        if what not in self.bad:
            self.bad.append(what)

    def note(self, what: str) -> None:
        if what not in self.notes:
            self.notes.append(what)

    def refused(self, front: str) -> None:
        """The whole request refused (exit 2 / 4xx): documented for this case, or a batch lost."""
        if self.case.refusal_allowed(front):
            return
        if any(c.good for c in self.case.clips):
            self.flag("batch crash: the whole batch refused, its good clip not scored")
        else:
            self.note("refused as a whole where a clip-level result was expected")

    def expectation(self, front: str, run: str, outcome: str) -> None:
        want = self.case.expected(front, run)
        if want and not (outcome == want or (want.endswith(":") and outcome.startswith(want))):
            self.note(f"expected {want}{'*' if want.endswith(':') else ''} (docs/guide/serve.md), got {outcome}")

    def one_line(self, where: str, text: str) -> None:
        if "\n" in text or "\r" in text:
            self.flag(f"{where} is not one line")

    def payload(self, payload: dict, clip_count: int) -> list[dict]:
        """Per-clip outcomes of a scoring payload (``predictions`` / ``failures``)."""
        clips: list[dict | None] = [None] * clip_count
        for row in payload.get("predictions", []):
            warnings = row.get("warnings") or []
            outcome = "scored_with_warning" if warnings else "scored"
            message = "; ".join(f"{w.get('code')}: {w.get('message')}" for w in warnings) or f"transcript: {row.get('transcript', '')[:80]!r}"
            entry = {"index": row.get("index"), "video": row.get("video"), "outcome": outcome, "score": row.get("score"),
                     "used": row.get("used"), "transcript": (row.get("transcript") or "")[:200],
                     "transcript_source": row.get("transcript_source"), "warnings": [w.get("code") for w in warnings], "message": message}
            self._silent(row, warnings)
            for w in warnings:
                self.one_line(f"warning {w.get('code')}", str(w.get("message")))
                if w.get("code") not in DOCUMENTED_WARNINGS:
                    self.note(f"undocumented warning code {w.get('code')!r}")
            if (row.get("transcript_source") == "speech recognition" and row.get("transcript")
                    and self.case.name.startswith(("white_noise", "silence", "good_mp4_asr", "png", "transcript_empty", "transcript_white"))):
                self.note(f"speech recognition gave {row.get('transcript')[:60]!r} for a clip without words, and it was scored on it")
            self._place(clips, entry)
        for failure in payload.get("failures", []):
            error = failure.get("error") or {}
            code, message = str(error.get("code")), str(error.get("message"))
            if set(error) != {"code", "message"}:
                self.flag(f"clip error is not {{code, message}}: {sorted(error)}")
            if code not in DOCUMENTED_CLIP_CODES:
                self.note(f"undocumented clip error code {code!r}")
            if code == "internal":
                self.flag("clip error 'internal' (a bug by the contract's own words)")
            self.one_line(f"clip error {code}", message)
            if not message.strip():
                self.flag(f"clip error {code} with an empty message")
            self._place(clips, {"index": failure.get("index"), "video": failure.get("video"), "outcome": f"clip_error:{code}", "message": message})
        for i, clip in enumerate(clips):
            if clip is None:
                self.flag(f"clip {i} is neither in predictions nor in failures")
                clips[i] = {"index": i, "outcome": "missing", "message": ""}
        for i, spec in enumerate(self.case.clips):
            if spec.good and not clips[i]["outcome"].startswith("scored"):
                self.flag(f"a good clip of the batch (index {i}) was not scored: {clips[i]['outcome']}")
        return clips  # type: ignore[return-value]

    def _place(self, clips: list, entry: dict) -> None:
        i = entry.get("index")
        if not isinstance(i, int) or not 0 <= i < len(clips):
            self.flag(f"a result with index {i!r}, outside the batch")
        elif clips[i] is not None:
            self.flag(f"clip {i} reported twice")
        else:
            clips[i] = entry

    def _silent(self, row: dict, warnings: list[dict]) -> None:
        codes = {w.get("code") for w in warnings}
        used = row.get("used") or []
        spec = self.case.clips[row["index"]] if isinstance(row.get("index"), int) and row["index"] < len(self.case.clips) else None
        transcript = row.get("transcript") or ""
        if "t" in self.modalities and not transcript.strip() and "no_speech" not in codes:
            self.flag("silent_score: scored from an empty transcript without a no_speech warning")
        elif "t" in self.modalities and not re.search(r"\w", transcript) and "no_speech" not in codes:
            self.flag("silent_score: scored from a transcript without a single word character (what the text encoder reads is "
                      "the empty transcript's) without a no_speech warning")
        if "v" in self.modalities and "vision" not in used and "vision_absent" not in codes:
            self.flag("silent_score: scored without vision and without a vision_absent warning")
        if "a" in self.modalities and "audio" not in used and "audio_absent" not in codes:
            self.flag("silent_score: scored without audio and without an audio_absent warning")
        if "v" in self.modalities and spec is not None and spec.lacks_face and "vision" in used:
            self.flag("silent_score: a clip without a face scored with vision")
        if row.get("score") is None or not isinstance(row.get("score"), (int, float)) or row["score"] != row["score"]:
            self.flag(f"score is not a number: {row.get('score')!r}")


# ---- the CLI ---------------------------------------------------------------------------------------

def cli_argv(case: Case, run: Path, output: Path) -> list[str]:
    if case.cli_argv is not None:
        return ["predict", str(run), *case.cli_argv(run, output)]
    argv = ["predict", str(run), "--video", *[str(c.path) for c in case.clips]]
    if any(c.transcript is not None for c in case.clips):
        for c in case.clips:
            argv += ["--transcript", c.transcript or ""]
    return argv + ["--output", str(output)]


def printed_raw(text: str, output: str) -> bool:
    """Whether a control character of ``text`` reached ``output`` unescaped (with its neighbours)."""
    return any(text[max(0, m.start() - 3): m.end() + 2] in output for m in re.finditer(r"[\x00-\x1f\x7f]", text))


def snapshot(paths: list[Path]) -> dict[str, bytes | None]:
    files = {}
    for root in paths:
        if root.is_dir():
            for p in root.rglob("*"):
                if p.is_file():
                    files[str(p)] = p.read_bytes()
        elif root.is_file():
            files[str(root)] = root.read_bytes()
    return files


def run_cli(case: Case, run: Path, run_name: str, modalities: str, work: Path, subprocess_mode: bool) -> dict:
    from msakit.cli import main

    outdir = work / "out" / f"{case.name}-{run_name}-{'sub' if subprocess_mode else 'cli'}"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    output = outdir / "predictions.csv"
    if case.name == "cli_output_is_input_mp4":
        shutil.copyfile(case.clips[0].path, outdir / "input.mp4")
    argv = cli_argv(case, run, output)
    inputs = [Path(a) for a in argv if os.path.sep in a and Path(a).exists()]
    before = snapshot([run, *inputs])
    start = time.perf_counter()
    if subprocess_mode:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", "import sys; from msakit.cli import main; sys.exit(main())", *argv],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 2 if exit_.code else 0
            except BaseException:  # noqa: BLE001 - recorded as a BAD outcome
                code = "exception"
                err.write(traceback.format_exc())
        stdout, stderr = out.getvalue(), err.getvalue()
    seconds = time.perf_counter() - start
    judge = Judge(case, modalities, [])
    front = "cli-subprocess" if subprocess_mode else "cli"
    judge.texts(stdout, stderr)
    messages = [line for line in re.split(r"[\r\n]", stderr) if line.strip() and not line.lstrip().startswith("extract:")]
    record: dict[str, Any] = {"exit": code, "seconds": round(seconds, 2)}
    written = [p for p in (output, output.with_suffix(".json")) if p.exists()]
    changed = [p for p, content in before.items() if not Path(p).is_file() or Path(p).read_bytes() != content]
    new_in_run = sorted(str(p) for p in run.rglob("*") if p.is_file() and str(p) not in before)
    if changed or new_in_run:
        judge.flag(f"an input or the run was written: {[*changed, *new_in_run][:3]}")
    if code == 70:
        judge.flag("exit 70 (internal error)")
    if code == "exception":
        judge.flag("exception out of msakit.cli.main")
    if code not in (0, 1, 2, 70, "exception"):
        judge.flag(f"exit status {code}")
    if code == 2:
        record["outcome"] = "refused_exit2"
        lines = [line for line in stderr.splitlines() if line.strip()]
        record["message"] = stderr.strip()
        if len(lines) != 1:
            judge.flag(f"exit 2 with {len(lines)} stderr lines, not one")
        if written:
            judge.flag("exit 2 but files were written")
        judge.refused(front)
    elif code in (0, 1):
        json_path = output.with_suffix(".json")
        if case.name == "cli_output_is_input_mp4":
            json_path = outdir / "input.json"
        if not json_path.is_file():
            judge.flag(f"exit {code} but no JSON written")
            record.update(outcome="missing_output", message=stderr.strip()[-300:])
        else:
            payload = json.loads(json_path.read_text())
            clips = judge.payload(payload, len(case.clips))
            record["clips"] = clips
            if code == 0 and payload.get("failures"):
                judge.flag("exit 0 although some clips were not scored")
            if code == 1 and not payload.get("failures"):
                judge.flag("exit 1 although every clip was scored")
            subject = clips[case.subject] if clips else {"outcome": "none", "message": ""}
            record.update(outcome=subject["outcome"], message=subject["message"])
            if case.name == "cli_output_is_input_mp4":
                judge.note(f"--output input.mp4 wrote {json_path.with_suffix('.csv').name} and {json_path.name} beside the input (no refusal; "
                           "the input itself is unchanged)")
            shown = [Path(c.get("video") or "").name for c in clips] + [c.get("transcript") or "" for c in clips]
            raw_shown = [t for t in shown if printed_raw(t, stdout)]
            if raw_shown:
                judge.note(f"control characters printed raw to the terminal in the table (from {raw_shown[0][:40]!r})")
        extra = [m for m in messages if not m.startswith("msakit predict: ") and not m.startswith("note: ")]
        if extra:
            judge.note(f"stderr lines besides the progress bar and msakit's: {extra[:2]}")
    else:
        record.update(outcome=f"exit_{code}", message=(messages or [""])[-1][-2000:] if code != "exception" else stderr[-2000:])
    if code == 2 or code in (0, 1):
        for line in messages:
            judge.texts(line)
    judge.expectation(front, run_name, record["outcome"])
    record.update(bad=judge.bad, notes=judge.notes, stdout_tail=stdout[-600:], stderr_lines=[m[:400] for m in messages[-6:]])
    return record


# ---- the API ---------------------------------------------------------------------------------------

def api_call(case: Case, client, stream: bool = False):
    if case.api_request is not None:
        return case.api_request(client)
    files = [("file", (c.api_name if c.api_name is not None else c.path.name, c.path.read_bytes())) for c in case.clips]
    data = {"transcript": [c.transcript or "" for c in case.clips]} if any(c.transcript is not None for c in case.clips) else None
    return client.post("/api/predict", files=files, data=data, params={"progress": "true"} if stream else None)


def run_api(case: Case, client, run_name: str, modalities: str, serve_tmp: Path, stream: bool = False) -> dict:
    judge = Judge(case, modalities, ["msakit-serve-", str(serve_tmp)])
    front = "api-progress" if stream else "api"
    start = time.perf_counter()
    try:
        response = api_call(case, client, stream)
    except BaseException:  # noqa: BLE001 - the app raised: a 500 under a real server
        text = traceback.format_exc()
        judge.flag("HTTP 500 (the app raised)")
        judge.texts(text)
        from fastapi.testclient import TestClient

        seen = api_call(case, TestClient(client.app, raise_server_exceptions=False), stream)  # what a client of a real server gets
        judge.expectation(front, run_name, "http_500")
        return {"status": seen.status_code, "outcome": "http_500", "message": text.strip().splitlines()[-1],
                "client_sees": f"HTTP {seen.status_code} {seen.headers.get('content-type')}: {seen.text[:300]}",
                "traceback": text[-3000:], "seconds": round(time.perf_counter() - start, 2), "bad": judge.bad, "notes": judge.notes}
    seconds = time.perf_counter() - start
    text = response.text
    judge.texts(text)
    record: dict[str, Any] = {"status": response.status_code, "seconds": round(seconds, 2)}
    if response.status_code >= 500:
        judge.flag(f"HTTP {response.status_code}")
        record.update(outcome=f"http_{response.status_code}", message=text[-2000:])
    elif 400 <= response.status_code < 500:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or set(body) != {"detail", "code"}:
            judge.flag(f"4xx body is not {{detail, code}}: {text[:200]!r}")
            body = body if isinstance(body, dict) else {}
        detail, code = str(body.get("detail", "")), str(body.get("code", ""))
        judge.one_line("4xx detail", detail)
        if code not in DOCUMENTED_REFUSALS:
            judge.note(f"undocumented refusal code {code!r}")
        judge.refused(front)
        record.update(outcome=f"refused_4xx:{code}", message=detail)
    elif response.status_code == 200:
        payload = None
        if stream:
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            last = lines[-1] if lines else {}
            if "result" in last:
                payload = last["result"]
            else:
                judge.flag(f"stream ended without a result: {str(last)[:200]}")
                record.update(outcome="stream_error", message=json.dumps(last)[:2000])
        else:
            payload = response.json()
        if payload is not None:
            clips = judge.payload(payload, len(case.clips))
            record["clips"] = clips
            subject = clips[case.subject] if clips else {"outcome": "none", "message": ""}
            record.update(outcome=subject["outcome"], message=subject["message"])
            for clip in clips:
                shown = str(clip.get("video", ""))
                if CONTROL.search(shown) or "/" in shown or "\\" in shown:
                    judge.flag(f"the clip's name as shown keeps control characters or a path: {shown[:80]!r}")
    else:
        record.update(outcome=f"http_{response.status_code}", message=text[:2000])
    judge.expectation(front, run_name, record["outcome"])
    record.update(bad=judge.bad, notes=judge.notes)
    return record


# ---- the benchmark ---------------------------------------------------------------------------------

def shorten(text: str, n: int = 110) -> str:
    text = CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), " ".join(str(text).split(" ")))
    text = text.replace("\n", "\\n").replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", help="folder for the runs and media (default: a temporary folder, deleted); kept and reused if given")
    parser.add_argument("--only", help="comma-separated substrings: run only the cases whose name contains one")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the result files")
    args = parser.parse_args()

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="msakit-scoring-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["MSAKIT_CACHE"] = str(work / "cache")  # the runs' feature cache stays in the work folder
    import msakit

    if not str(Path(msakit.__file__).resolve()).startswith(str(ROOT)):
        print(f"msakit is imported from {msakit.__file__}, not from {ROOT}: run from the repository root", file=sys.stderr)
        return 2
    from fastapi.testclient import TestClient

    from msakit.workflows.predict_video import VideoScorer
    from msakit.workflows.serve import create_app

    clock = time.perf_counter()
    runs: dict[str, Path] = {}
    bert = work / "tiny_bert"
    if not (bert / "config.json").is_file():
        tiny_bert(bert)
    for name, build in (("tav", tav_run), ("text", text_run)):
        existing = work / name / "run"
        if (existing / "seed_1111" / "best").is_dir():
            runs[name] = existing
        else:
            shutil.rmtree(work / name, ignore_errors=True)
            (work / name).mkdir(parents=True)
            runs[name] = build(work / name, bert)
    build_seconds = time.perf_counter() - clock
    print(f"runs ready in {build_seconds:.0f} s: {', '.join(f'{k}={v}' for k, v in runs.items())}", flush=True)
    media = make_media(work / "media")
    all_cases = cases(media, work)
    if args.only:
        wanted = [w for w in args.only.split(",") if w]
        all_cases = [c for c in all_cases if any(w in c.name for w in wanted)]
    skipped = [] if "real_grid" in media else ["real_grid_mpg, real_speech_wav (no shared/data/media)"]
    subprocess_cases = {"good_mp4", "zero_bytes", "cli_missing_clip", "no_clip", "name_newline"}
    stream_cases = {"good_mp4", "truncated_30", "mixed_batch", "zero_bytes", "audio_wav", "transcript_100_words"}

    results: list[dict] = []
    for run_name, run in runs.items():
        modalities = "t" if run_name == "text" else "tav"
        for case in all_cases:
            if "cli" not in case.fronts:
                continue
            fronts = ["cli"] + (["cli-subprocess"] if case.name in subprocess_cases and run_name == "text" else [])
            for front in fronts:
                record = run_cli(case, run, run_name, modalities, work, front == "cli-subprocess")
                results.append({"case": case.name, "what": case.what, "front": front, "run": run_name, **record})
                print(f"{case.name:<28} {front:<15} {run_name:<5} {record['outcome']:<32} {record['seconds']:>6.1f} s"
                      + (f"  BAD: {record['bad']}" if record["bad"] else ""), flush=True)
        serve_tmp = work / "serve-tmp"
        serve_tmp.mkdir(exist_ok=True)
        app = create_app(VideoScorer(run, device="cpu"), workers=1, temp_dir=str(serve_tmp))
        caught: list[logging.LogRecord] = []

        class Catch(logging.Handler):
            def emit(self, record):
                caught.append(record)

        catcher = Catch(level=logging.WARNING)
        logging.getLogger().addHandler(catcher)
        try:
            with TestClient(app) as client:
                for case in all_cases:
                    if "api" not in case.fronts:
                        continue
                    for front in ["api"] + (["api-progress"] if case.name in stream_cases else []):
                        before = len(caught)
                        record = run_api(case, client, run_name, modalities, serve_tmp, stream=front == "api-progress")
                        logged = [r for r in caught[before:] if r.name.startswith("msakit")]
                        for r in logged:
                            if r.exc_info:
                                record["bad"].append("traceback in the server log")
                        if logged:
                            record["server_log"] = [r.getMessage()[:300] for r in logged]
                        results.append({"case": case.name, "what": case.what, "front": front, "run": run_name, **record})
                        print(f"{case.name:<28} {front:<15} {run_name:<5} {record['outcome']:<32} {record['seconds']:>6.1f} s"
                              + (f"  BAD: {record['bad']}" if record["bad"] else ""), flush=True)
        finally:
            logging.getLogger().removeHandler(catcher)
        leftovers = list(serve_tmp.iterdir())
        if leftovers:
            results.append({"case": "serve_temp_cleanup", "what": "the server's per-request folders are deleted", "front": "api",
                            "run": run_name, "outcome": "leftovers", "message": f"{len(leftovers)} left: {[p.name for p in leftovers[:3]]}",
                            "bad": ["per-request temporary folders left behind"], "notes": []})
            for p in leftovers:
                shutil.rmtree(p, ignore_errors=True)

    totals: dict[str, int] = {}
    for r in results:
        totals[r["outcome"]] = totals.get(r["outcome"], 0) + 1
    bad = [{"case": r["case"], "front": r["front"], "run": r["run"], "outcome": r["outcome"], "bad": r["bad"], "message": r["message"]}
           for r in results if r["bad"]]
    notes = [{"case": r["case"], "front": r["front"], "run": r["run"], "notes": r["notes"]} for r in results if r.get("notes")]
    by_case = {c.name: c for c in all_cases}
    disagreements = []
    for run_name in runs:
        for case in all_cases:
            got = {r["front"]: r["outcome"] for r in results if r["case"] == case.name and r["run"] == run_name}
            if "cli" in got and "api" in got and got["cli"] != got["api"] and {got["cli"], got["api"]} != {"exit_70", "http_500"} and not (
                    by_case[case.name].refusal_allowed("api") and got["api"].startswith("refused")):
                disagreements.append({"case": case.name, "run": run_name, "cli": got["cli"], "api": got["api"]})
    seconds = time.perf_counter() - clock
    summary = {
        "what": "hostile and careless inputs sent through predict --video (in-process, a few as a subprocess) and POST /api/predict "
                "(TestClient; a few with ?progress=true) against a t+a+v Self-MM run and a text-only Self-MM run, both built here "
                "(one epoch, tiny random BERT); each (case, front end, run) classed and checked against the scoring path's contract",
        "cases": len(all_cases),
        "outcomes_recorded": len(results),
        "totals": dict(sorted(totals.items())),
        "bad_count": len(bad),
        "bad": bad,
        "notes": notes,
        "cli_api_disagreements": disagreements,
        "skipped": skipped,
        "seconds": round(seconds, 1),
        "runs_build_seconds": round(build_seconds, 1),
        "results": results,
    }
    print(f"\n{len(all_cases)} cases, {len(results)} outcomes in {seconds:.0f} s: {dict(sorted(totals.items()))}")
    for d in disagreements:
        print(f"  CLI and API disagree: {d['case']} / {d['run']}: cli {d['cli']}, api {d['api']}")
    print(f"BAD outcomes: {len(bad)}")
    for b in bad:
        print(f"  {b['case']} / {b['front']} / {b['run']}: {b['outcome']}: {b['bad']} :: {shorten(b['message'], 300)}")
    (work / "results.json").write_text(json.dumps(summary, indent=1, default=str))
    if not args.no_write:
        lines = ["| case | front end | run | outcome | BAD | message |", "|---|---|---|---|---|---|"]
        for r in results:
            lines.append(f"| {r['case']} | {r['front']} | {r['run']} | {r['outcome']} | {shorten('; '.join(r['bad']), 80) if r['bad'] else ''} "
                         f"| {shorten(r['message'])} |")
        protocol = (f"Hostile and careless inputs through the scoring path: {len(all_cases)} cases, each through `msakit predict --video` "
                    "(`cli`: in-process; `cli-subprocess`: a real process) and `POST /api/predict` (`api`; `api-progress`: "
                    "`?progress=true`), on a t+a+v Self-MM run (`tav`) and a text-only Self-MM run (`text`), both trained here for one "
                    f"epoch with a tiny random BERT. Totals: {json.dumps(dict(sorted(totals.items())))}. BAD outcomes: {len(bad)}")
        lines += ["", "Cases:", "", "| case | what |", "|---|---|"] + [f"| {c.name} | {shorten(c.what, 200)} |" for c in all_cases]
        if disagreements:
            lines += ["", "CLI and API disagree (neither a documented refusal):", "", "| case | run | cli | api |", "|---|---|---|---|"]
            lines += [f"| {d['case']} | {d['run']} | {d['cli']} | {d['api']} |" for d in disagreements]
        (RESULTS / "scoring_bad_inputs.md").write_text(f"{protocol}.\n\n" + "\n".join(lines) + f"\n\nMade with:\n\n    {command_line()}\n")
        write_result("scoring_bad_inputs", summary)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
