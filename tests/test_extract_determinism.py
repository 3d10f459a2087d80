"""Deterministic extraction: the same clips with the same settings give a byte-identical pickle,
transcripts included, with 1 or 2 workers and after a kill and resume; and decoding loops are
caught so no transcript is longer than its audio allows."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

for _module in ("av", "librosa", "mediapipe", "moonshine_voice", "skimage"):
    pytest.importorskip(_module)

import msakit  # noqa: E402
from msakit.extract.asr import Recogniser, degenerate, max_words  # noqa: E402
from msakit.extract.media import write_clip  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def _speech() -> np.ndarray:
    from moonshine_voice.utils import get_assets_path

    from msakit.extract.decode import iter_audio

    return np.concatenate([np.concatenate(list(iter_audio(get_assets_path() / name))) for name in ("beckett.wav", "two_cities.wav")])


@pytest.fixture(scope="module")
def speech_clips(tmp_path_factory) -> Path:
    """Four talking-face clips cut from real speech (different lengths and offsets)."""
    folder = tmp_path_factory.mktemp("speech_clips")
    speech = _speech()
    for i, (start, seconds) in enumerate([(0.0, 3.0), (3.0, 2.5), (10.0, 4.0), (14.5, 3.5)]):
        piece = speech[int(start * SR) : int((start + seconds) * SR)]
        write_clip(folder / f"s{i}.mp4", seconds=seconds, audio=piece, scale=lambda t, i=i: 0.6 + 0.05 * i)
    return folder


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_clips_give_a_byte_identical_pickle_with_1_and_2_workers_and_after_resume(speech_clips, tmp_path):
    one = msakit.extract(speech_clips, tmp_path / "one.pkl", workers=1, progress=False)
    assert not one.failures and len(one.extracted) == 4
    texts = __import__("pickle").loads((tmp_path / "one.pkl").read_bytes())["test"]["raw_text"]
    assert all(texts) and "ever tried" in texts[0].lower()  # real speech was recognised
    two = msakit.extract(speech_clips, tmp_path / "two.pkl", workers=2, progress=False)
    assert _digest(two.output) == _digest(one.output)
    again = msakit.extract(speech_clips, tmp_path / "one.pkl", workers=1, progress=False, overwrite=True)  # from the cache
    assert _digest(again.output) == _digest(one.output)
    # Killed after the first clip, then resumed in another process.
    output = tmp_path / "resumed.pkl"
    command = [sys.executable, "-m", "msakit.cli", "extract", str(speech_clips), "-o", str(output), "--workers", "1", "--quiet"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "resumed.pkl.parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("*/*.npz"))) < 1 and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 1 <= len(list(parts.glob("*/*.npz"))) < 4 and not output.exists()
    resumed = msakit.extract(speech_clips, output, workers=2, progress=False)
    assert _digest(resumed.output) == _digest(one.output)
    # The timings of the killed run's finished clips are kept (summed over the parts that ran).
    import json

    timing = json.loads(resumed.sidecar.read_text())["timing_s"]["summed_over_clips"]
    first = json.loads(one.sidecar.read_text())["timing_s"]["summed_over_clips"]
    assert set(timing) >= {"asr", "audio", "face", "decode", "clip_total"} and timing["clip_total"] > 0.5 * first["clip_total"]


def test_the_same_audio_gives_the_same_transcript_whatever_came_before():
    """The library's VAD kept state across calls: the same window gave another transcript after
    other audio. With msakit's own windows the text depends on the window alone."""
    speech = _speech()
    window = speech[: 3 * SR]

    def text(audio: np.ndarray) -> str:
        recogniser = Recogniser()
        recogniser.push(audio)
        return recogniser.finish()

    first = text(window)
    text(speech[5 * SR : 12 * SR])
    text(np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32) * 0.05)
    assert [text(window) for _ in range(3)] == [first] * 3


def test_a_clip_made_to_loop_gives_no_transcript_longer_than_its_audio_allows(tmp_path):
    """A long tone, then a short word, then silence: the transcript stays within what speech of
    that length can hold."""
    word = _speech()[: int(1.2 * SR)]
    t = np.arange(int(15 * SR)) / SR
    audio = np.concatenate([0.2 * np.sin(2 * np.pi * 440 * t), word, np.zeros(10 * SR)]).astype(np.float32)
    path = write_clip(tmp_path / "loop.mp4", seconds=audio.size / SR, audio=audio)
    from msakit.extract import ExtractSettings, extract_clip

    out = extract_clip(path, ExtractSettings(modalities="t"))
    words = out["text"].split()
    assert len(words) <= max_words(1.2) + 3, out["text"]  # speech only in the 1.2 s word (the tone and silence are not speech)
    assert degenerate(out["text"], audio.size / SR) is None


def test_degenerate_decoding_is_retried_then_cut_and_flagged():
    """A decoder that loops ('100%. 100%. ...', as the library did on a talking-head clip) is
    retried on shorter windows; when it still loops the text is cut and the clip flagged."""
    calls = []

    def looping(audio: np.ndarray) -> str:
        calls.append(audio.size)
        return "100%. " * 60

    recogniser = Recogniser(decode=looping)
    audio = (0.1 * np.random.default_rng(1).standard_normal(6 * SR)).astype(np.float32)
    recogniser.push(audio)
    text = recogniser.finish()
    assert len(calls) == 3 and max(calls[1:]) < calls[0]  # the whole window, then its two halves
    assert text.split() == ["100%.", "100%."] and len(recogniser.flags) == 1 and "degenerate transcript" in recogniser.flags[0]

    def fine_when_short(audio: np.ndarray) -> str:  # loops on the long window only
        return "ok " * 80 if audio.size > 5.5 * SR else "hello there"

    recogniser = Recogniser(decode=fine_when_short)
    recogniser.push(audio)
    assert recogniser.finish() == "hello there hello there" and not recogniser.flags
    assert degenerate("and so my fellow americans ask not", 3.0) is None
    assert degenerate("word " * 40, 3.0) is not None


@pytest.mark.parametrize("workers", [1, 2])
def test_third_party_log_lines_stay_off_the_terminal(speech_clips, tmp_path, workers):
    """MediaPipe / TensorFlow Lite / ONNX Runtime print to the C-level stderr; only the progress
    bar and msakit's report reach the terminal (the rest goes to the parts folder's worker.log)."""
    output = tmp_path / "out.pkl"
    command = [sys.executable, "-m", "msakit.cli", "extract", str(speech_clips), "-o", str(output), "--workers", str(workers)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    shown = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert shown and all(line.startswith("extract:") for line in shown), shown  # the one progress bar
    assert "clips" in shown[-1] and ("clip/s" in shown[-1] or "s/clip" in shown[-1])
    assert done.stdout.splitlines()[0].startswith("4 clip(s) extracted")
    log = (tmp_path / "out.pkl.parts" / "worker.log").read_text()
    assert "TensorFlow Lite" in log or "W0000" in log or "INFO" in log  # the libraries did speak, into the log
