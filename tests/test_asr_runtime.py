"""The speech recogniser on ONNX Runtime gives the transcripts moonshine-voice's own C library
gives (same model files, same audio, greedy), uses no extra threads, and the stages of one clip
overlap without changing its features or the reason a bad clip is refused."""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

import numpy as np
import pytest

for _module in ("av", "mediapipe", "moonshine_voice", "onnxruntime", "skimage"):
    pytest.importorskip(_module)

from msakit.extract.asr import Moonshine, Recogniser, _transcriber, model_dir  # noqa: E402
from msakit.extract.decode import iter_audio  # noqa: E402

SR = 16000


def _c_library_transcribe(audio: np.ndarray) -> str:
    """The C library's transcription with its voice detector off (how msakit used it before),
    on a fresh handle: its transcript keeps lines of earlier calls once a call held several."""
    from moonshine_voice.errors import check_error
    from moonshine_voice.moonshine_api import ModelArch, TranscriptC, _MoonshineLib

    class Option(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]

    lib = _MoonshineLib().lib
    options = (Option * 1)(Option(b"vad_threshold", b"0"))
    handle = lib.moonshine_load_transcriber_from_files(str(model_dir()).encode(), ModelArch.TINY.value,
                                                       ctypes.cast(options, ctypes.POINTER(ctypes.c_void_p)), 1, 20000)
    assert handle >= 0
    try:
        audio = np.ascontiguousarray(audio, np.float32)
        out = ctypes.POINTER(TranscriptC)()
        check_error(lib.moonshine_transcribe_without_streaming(handle, audio.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), audio.size,
                                                               SR, 0, ctypes.byref(out)))
        lines = [ctypes.string_at(out.contents.lines[i].text).decode("utf-8", "ignore").strip() for i in range(out.contents.line_count)]
        return " ".join(line for line in lines if line)
    finally:
        lib.moonshine_free_transcriber(handle)


def _windows(path: Path, window_s: float = 8.0) -> list[np.ndarray]:
    """The windows msakit's recogniser hands to the model for ``path``."""
    windows: list[np.ndarray] = []
    recogniser = Recogniser(SR, window_s, decode=lambda audio: (windows.append(audio.copy()), "")[1])
    for chunk in iter_audio(path):
        recogniser.push(chunk)
    recogniser.finish()
    return windows


def test_transcripts_equal_the_c_library_on_the_shipped_recordings():
    assets = model_dir().parent
    speech = np.concatenate(list(iter_audio(assets / "two_cities.wav")))
    windows = _windows(assets / "beckett.wav") + _windows(assets / "two_cities.wav")[:3]
    windows.append(speech[: 41 * SR])  # one call of 41 s: two segments (the library cuts at 30 s)
    model = _transcriber()
    for audio in windows:
        assert model.transcribe(audio) == _c_library_transcribe(audio)
    assert "ever tried" in model.transcribe(windows[0]).lower()


def test_segments_are_whole_hops_cut_as_the_c_library_cuts_them():
    hop, limit = Moonshine.HOP, Moonshine.MAX_SEGMENT
    audio = np.arange(70 * SR, dtype=np.float32)
    short = Moonshine.segments(audio[: 5 * SR + 100])
    assert len(short) == 1 and short[0].size == (5 * SR + 100) // hop * hop
    assert Moonshine.segments(audio[: hop - 1]) == []
    long = Moonshine.segments(audio)
    assert len(long) == 3
    assert long[0][0] == 0 and long[0].size == limit + 2 * hop  # closed by the hop after it grew past the limit
    for before, after in zip(long, long[1:]):  # the next hop starts one, with the 8192 samples up to its end
        assert after[0] == before[-1] + 1 + hop - Moonshine.LOOK_BEHIND
    assert long[-1][-1] == audio.size // hop * hop - 1
    assert Moonshine.segments(audio[: limit + 2 * hop])[0].size == limit + 2 * hop  # exactly one full segment


def test_too_short_audio_gives_no_text_instead_of_an_error():
    assert _transcriber().transcribe(np.full(Moonshine.MIN_SAMPLES - 1, 0.1, np.float32)) == ""


def test_the_recogniser_starts_no_threads():
    before = len(os.listdir("/proc/self/task")) if Path("/proc/self/task").is_dir() else threading.active_count()
    model = Moonshine(model_dir())  # a second one, to count what loading starts
    model.transcribe(np.zeros(SR, np.float32) + 0.01)
    after = len(os.listdir("/proc/self/task")) if Path("/proc/self/task").is_dir() else threading.active_count()
    assert after == before


def test_overlapped_stages_give_the_features_of_one_after_the_other(tmp_path):
    """The audio and video stages of a clip run at the same time; the features are those of
    each stage run alone, and when the audio fails its reason is the clip's."""
    from msakit.extract.decode import ClipError
    from msakit.extract.media import write_clip
    from msakit.extract.pipeline import ExtractSettings, extract_clip

    assets = model_dir().parent
    speech = np.concatenate(list(iter_audio(assets / "beckett.wav")))[: 3 * SR]
    write_clip(tmp_path / "clip.mp4", seconds=3.0, audio=speech)
    timings: dict = {}
    both = extract_clip(tmp_path / "clip.mp4", ExtractSettings(), timings=timings)
    alone_v = extract_clip(tmp_path / "clip.mp4", ExtractSettings(modalities="v"))
    alone_ta = extract_clip(tmp_path / "clip.mp4", ExtractSettings(modalities="ta"))
    assert np.array_equal(both["vision"], alone_v["vision"]) and np.array_equal(both["audio"], alone_ta["audio"])
    assert both["text"] == alone_ta["text"] and "ever tried" in both["text"].lower()
    assert {"decode", "asr", "audio", "face", "setup"} <= set(timings)
    write_clip(tmp_path / "short.mp4", seconds=0.3, audio=speech[: int(0.3 * SR)])
    with pytest.raises(ClipError, match="too short .* of audio"):
        extract_clip(tmp_path / "short.mp4", ExtractSettings(min_duration_s=1.0))
    assert not [t for t in threading.enumerate() if t.name == "msakit-video"]
