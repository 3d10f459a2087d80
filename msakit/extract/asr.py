"""Speech recognition with Moonshine tiny (English), whose model ships inside the
``moonshine-voice==0.0.4`` wheel (later releases download it at run time, so the pin matters).

Deterministic: the library's own voice-activity detector (TEN VAD) is a process-wide singleton
whose recurrent state carries over from one call to the next, so the same audio gave different
segments, and so different transcripts, depending on what the process had recognised before
(run 1 "Bimblew F. Two now.", run 2 "Pep. Bimblew F. Tuneau." on one GRID clip). It is switched
off (``vad_threshold=0``: each window is one segment) and msakit segments the audio itself: a
clip is cut into windows of at most ``window_s`` seconds at the quietest 20 ms of each window's
last quarter; windows with no sound above -50 dBFS are skipped, and the quiet stretches at either
end of a window (20 dB under its peak) are trimmed, keeping 0.25 s: on the GRID clips, whose
pauses hold noise, this takes the WER from 0.31 to 0.19. Decoding is greedy (the library's argmax), so the same
window always gives the same text; one model is loaded per process and reused.

Degenerate decoding is caught: a window whose text holds more words than speech allows
(``MAX_WORDS_PER_S``) or an n-gram repeated ``REPEAT_LIMIT`` times in a row is decoded again in
halves (shorter windows are the model's safer mode); if it stays degenerate, the repetition is
cut to two occurrences and the text to the word limit, and the clip is flagged.
MIT licence (code and model).
"""

from __future__ import annotations

import ctypes
import re

import numpy as np

MODEL_NAME = "moonshine tiny-en (moonshine-voice 0.0.4, greedy, library VAD off, msakit windows and trimming)"
MAX_WORDS_PER_S = 5.0  # fast conversational speech is about 3-4 words/s
REPEAT_LIMIT = 4  # an n-gram (n = 1..4) this many times in a row is a decoding loop
SILENCE_DBFS = -50.0
TRIM_BELOW_PEAK_DB = 20.0  # a window's ends quieter than its peak by this much are not speech
TRIM_MARGIN_S = 0.25

_MODEL: dict = {}  # one loaded transcriber per process


class _Option(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]


def load_model() -> None:
    """Load the recogniser now (once per process), so its start-up is not counted as decoding."""
    _transcriber()


def _transcriber():
    """The process's Moonshine transcriber, loaded once, with the library's VAD off."""
    if "t" not in _MODEL:
        from moonshine_voice.moonshine_api import ModelArch
        from moonshine_voice.transcriber import Transcriber
        from moonshine_voice.utils import get_model_path

        class _Configured(Transcriber):
            def __init__(self, model_path: str, arch) -> None:  # as Transcriber.__init__, with options
                from moonshine_voice.errors import MoonshineError
                from moonshine_voice.moonshine_api import _MoonshineLib

                self._lib_wrapper = _MoonshineLib()
                self._lib = self._lib_wrapper.lib
                self._handle, self._model_path, self._model_arch = None, model_path, arch
                options = (_Option * 1)(_Option(b"vad_threshold", b"0"))
                handle = self._lib.moonshine_load_transcriber_from_files(
                    model_path.encode("utf-8"), arch.value, ctypes.cast(options, ctypes.POINTER(ctypes.c_void_p)), 1,
                    self.MOONSHINE_HEADER_VERSION)
                if handle < 0:
                    raise MoonshineError(f"failed to load the speech recogniser: {self._lib.moonshine_error_to_string(handle)}")
                self._handle = handle

            def transcribe_array(self, audio: np.ndarray, sample_rate: int):
                from moonshine_voice.errors import check_error
                from moonshine_voice.moonshine_api import TranscriptC

                audio = np.ascontiguousarray(audio, np.float32)
                out = ctypes.POINTER(TranscriptC)()
                check_error(self._lib.moonshine_transcribe_without_streaming(
                    self._handle, audio.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), audio.size, sample_rate, 0, ctypes.byref(out)))
                return self._parse_transcript(out)

        _MODEL["t"] = _Configured(str(get_model_path("tiny-en")), ModelArch.TINY)
    return _MODEL["t"]


def degenerate(text: str, seconds: float) -> str | None:
    """Why ``text`` cannot be the speech of ``seconds`` of audio, or None."""
    words = text.split()
    limit = max_words(seconds)
    if len(words) > limit:
        return f"{len(words)} words in {seconds:.1f} s of audio (at most {limit})"
    repeated = _longest_repeat([w.strip(".,!?;:").lower() for w in words])
    if repeated is not None:
        return f"{' '.join(repeated[0])!r} repeated {repeated[1]} times"
    return None


def max_words(seconds: float) -> int:
    return int(3 + MAX_WORDS_PER_S * seconds)


def _longest_repeat(words: list[str]) -> tuple[list[str], int] | None:
    for n in range(1, 5):
        for start in range(0, max(0, len(words) - n * REPEAT_LIMIT + 1)):
            gram, count = words[start : start + n], 1
            while words[start + count * n : start + (count + 1) * n] == gram:
                count += 1
            if count >= REPEAT_LIMIT:
                return gram, count
    return None


def collapse(text: str, seconds: float) -> str:
    """``text`` with every n-gram run cut to two occurrences and at most ``max_words`` words."""
    words = text.split()
    keys = [w.strip(".,!?;:").lower() for w in words]
    n = 4
    while n >= 1:
        i, out, out_keys = 0, [], []
        while i < len(words):
            gram = keys[i : i + n]
            count = 1
            while len(gram) == n and keys[i + count * n : i + (count + 1) * n] == gram:
                count += 1
            if count > 2:
                out += words[i : i + 2 * n]
                out_keys += keys[i : i + 2 * n]
                i += count * n
            else:
                out.append(words[i])
                out_keys.append(keys[i])
                i += 1
        words, keys = out, out_keys
        n -= 1
    return " ".join(words[: max_words(seconds)])


class Recogniser:
    """Feed mono chunks with ``push``; ``finish`` returns the transcript. ``flags`` lists what
    was caught (degenerate decoding)."""

    def __init__(self, sample_rate: int = 16000, window_s: float = 30.0, decode=None):
        self.sr, self.window = sample_rate, int(window_s * sample_rate)
        self.pending = np.zeros(0, np.float32)
        self.texts: list[str] = []
        self.flags: list[str] = []
        self.decode = decode or self._decode  # (audio) -> text; replaceable in tests

    def _decode(self, audio: np.ndarray) -> str:
        result = _transcriber().transcribe_array(audio, self.sr)
        return " ".join(line.text.strip() for line in result.lines if line.text.strip())

    def _run(self, audio: np.ndarray) -> None:
        audio = _trim(audio, self.sr)
        if audio.size < self.sr // 10:
            return
        seconds = audio.size / self.sr
        text = self.decode(audio)
        problem = degenerate(text, seconds)
        if problem is not None and audio.size >= 2 * self.sr:  # the safer mode: shorter windows
            cut = _quiet_cut(audio[: 3 * audio.size // 4], self.sr, start_fraction=1 / 3)
            text = " ".join(t for t in (self.decode(part) for part in (_trim(audio[:cut], self.sr), _trim(audio[cut:], self.sr))
                                         if part.size >= self.sr // 10) if t)
            problem = degenerate(text, seconds)
        if problem is not None:
            self.flags.append(f"degenerate transcript ({problem}); repetitions and excess words cut")
            text = collapse(text, seconds)
        if text:
            self.texts.append(text)

    def push(self, chunk: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, chunk])
        while self.pending.size > self.window:
            cut = _quiet_cut(self.pending[: self.window], self.sr)
            self._run(self.pending[:cut])
            self.pending = self.pending[cut:]

    def finish(self) -> str:
        self._run(self.pending)
        self.pending = np.zeros(0, np.float32)
        text, self.texts = " ".join(self.texts), []
        return text


def _trim(audio: np.ndarray, sr: int) -> np.ndarray:
    """``audio`` without the quiet stretches at either end: 20 ms frames more than
    ``TRIM_BELOW_PEAK_DB`` under the window's loudest frame (or under ``SILENCE_DBFS``), keeping
    ``TRIM_MARGIN_S`` of them; empty when all silent. Only the ends are cut, never the inside."""
    step = sr // 50
    if audio.size < step:
        return audio[:0]
    frames = audio[: audio.size // step * step].reshape(-1, step)
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > max(SILENCE_DBFS, float(level.max()) - TRIM_BELOW_PEAK_DB))
    if loud.size == 0:
        return audio[:0]
    margin = int(TRIM_MARGIN_S * sr)
    return audio[max(0, loud[0] * step - margin) : min(audio.size, (loud[-1] + 1) * step + margin)]


def _quiet_cut(audio: np.ndarray, sr: int, start_fraction: float = 0.75) -> int:
    step = sr // 50
    start = int(start_fraction * audio.size) // step * step
    energy = np.add.reduceat(audio[start:] ** 2, np.arange(0, audio.size - start, step))
    return start + int(np.argmin(energy)) * step + step // 2


_NUMBERS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine"}
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation, for word error rates (``mr.`` -> ``mister``,
    single digits spelled out, a letter glued to a digit split as GRID's grammar reads it:
    ``p2`` -> ``p two``, hyphenated words split)."""
    text = re.sub(r"\b([a-z])([0-9])\b", r"\1 \2", text.lower())
    words = re.sub(r"[^a-z0-9' ]+", " ", text.replace("-", " ")).split()
    out = []
    for word in words:
        word = word.strip("'")
        if word in _ABBREVIATIONS:
            out.append(_ABBREVIATIONS[word])
        elif word.isdigit() and len(word) == 1:
            out.append(_NUMBERS[word])
        elif word:
            out.append(word)
    return out


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """``(edit distance in words, reference length)`` after ``normalise_words``."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[len(hyp)], len(ref)


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    errors = [word_errors(r, h) for r, h in zip(references, hypotheses)]
    return sum(e for e, _ in errors) / max(1, sum(n for _, n in errors))
