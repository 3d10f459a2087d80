"""Speech recognition with Moonshine tiny (English), whose model ships inside the
``moonshine-voice==0.0.4`` wheel (later releases download it at run time, so the pin matters).

Audio is recognised in windows of at most ``window_s`` seconds, each cut at the quietest
20 ms in its last quarter so words are rarely split; a fresh recogniser per window (the
library carries lines over between calls on one recogniser). Memory is bounded by one window.
MIT licence (code and model).
"""

from __future__ import annotations

import re

import numpy as np

MODEL_NAME = "moonshine tiny-en (moonshine-voice 0.0.4)"


class Recogniser:
    def __init__(self, sample_rate: int = 16000, window_s: float = 30.0):
        from moonshine_voice.moonshine_api import ModelArch
        from moonshine_voice.utils import get_model_path

        self.model_path = str(get_model_path("tiny-en"))
        self.arch = ModelArch.TINY
        self.sr, self.window = sample_rate, int(window_s * sample_rate)
        self.pending = np.zeros(0, np.float32)
        self.texts: list[str] = []

    def _run(self, audio: np.ndarray) -> None:
        from moonshine_voice.transcriber import Transcriber

        if audio.size < self.sr // 10 or float(np.max(np.abs(audio))) < 1e-4:
            return
        transcriber = Transcriber(self.model_path, self.arch)
        try:
            result = transcriber.transcribe_without_streaming(audio.astype(np.float32).tolist(), self.sr)
        finally:
            transcriber.close()
        self.texts.extend(line.text.strip() for line in result.lines if line.text.strip())

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


def _quiet_cut(audio: np.ndarray, sr: int) -> int:
    step = sr // 50
    start = (3 * audio.size // 4) // step * step
    energy = np.add.reduceat(audio[start:] ** 2, np.arange(0, audio.size - start, step))
    return start + int(np.argmin(energy)) * step + step // 2


_NUMBERS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine"}
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation, for word error rates (``mr.`` -> ``mister``,
    single digits spelled out, hyphenated words split)."""
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()
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
