"""Speech recognition with Moonshine tiny (English), whose model files ship inside the
``moonshine-voice==0.0.4`` wheel (later releases download them at run time, so the pin matters),
run by msakit on ONNX Runtime (``onnxruntime==1.23.2``, the release the wheel's own C library
bundles): one thread, no spinning, greedy decoding.

Why not the wheel's C library: its ONNX Runtime sessions take one intra-op thread per core and
spin them between the decoder's small operations, so on 2 cores they took about as much CPU
as the recognition itself (about 40 % of the process's samples were spin-waits) and starved the
other stages; it copies every cached key/value tensor at every token and converts each window's audio
to a Python list. The same models, the same audio and the same greedy search on one
non-spinning thread give the same transcripts (``tests/test_asr_runtime.py`` compares them with
the C library's on the shipped recordings), about 4x faster on 2 loaded cores.

What the C library did is kept where it shapes the text: its transcription path with the voice
detector off cuts a window into 256-sample hops (a last partial hop is dropped), into segments of
at most 30 s (a new segment starts with the 8192 samples before it), decodes at most
``ceil(13 * seconds)`` tokens per segment, keeps the token bytes that are not special tokens
(``<...>``), turns "▁" into spaces, replaces invalid UTF-8 bytes with "?" and trims spaces and
tabs.
One thing is not kept: once a call held several segments (a window over 30 s, possible with
``asr_window_s`` above 30), the library's later answers also carried the extra lines of that
call; here each window's text is its own segments'.

Deterministic: the library's voice-activity detector (TEN VAD) carried state from one call to the
next (run 1 "Bimblew F. Two now.", run 2 "Pep. Bimblew F. Tuneau." on one GRID clip), so msakit
segments the audio itself: a clip is cut into windows of at most ``window_s`` seconds at the
quietest 20 ms of each window's last quarter; windows with no sound above -50 dBFS are skipped,
and the quiet stretches at either end of a window (20 dB under its peak) are trimmed, keeping
0.25 s: on the GRID clips, whose pauses hold noise, this takes the WER from 0.31 to 0.19.
Decoding is greedy (argmax) on one thread, so the same window always gives the same text; one
model is loaded per process and reused.

Degenerate decoding is caught: a window whose text holds more words than speech allows
(``MAX_WORDS_PER_S``) or an n-gram repeated ``REPEAT_LIMIT`` times in a row is decoded again in
halves (shorter windows are the model's safer mode); if it stays degenerate, the repetition is
cut to two occurrences and the text to the word limit, and the clip is flagged.
MIT licence (code and model); ONNX Runtime MIT.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np

MODEL_NAME = ("moonshine tiny-en (moonshine-voice 0.0.4 model files on onnxruntime 1.23.2, one thread, greedy, "
              "msakit windows and trimming)")
MAX_WORDS_PER_S = 5.0  # fast conversational speech is about 3-4 words/s
REPEAT_LIMIT = 4  # an n-gram (n = 1..4) this many times in a row is a decoding loop
SILENCE_DBFS = -50.0
TRIM_BELOW_PEAK_DB = 20.0  # a window's ends quieter than its peak by this much are not speech
TRIM_MARGIN_S = 0.25

_MODEL: dict = {}  # one loaded model per process
_MODEL_LOCK = threading.Lock()  # clips in threads: the first two must not both load it


def load_model() -> None:
    """Load the recogniser now (once per process), so its start-up is not counted as decoding."""
    _transcriber()


def model_dir() -> Path:
    """The tiny English model's folder inside the installed moonshine-voice wheel (found without
    importing the package, which would load its C library)."""
    from importlib.util import find_spec

    spec = find_spec("moonshine_voice")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("moonshine-voice is not installed: pip install 'msakit[video]'")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "tiny-en"


def _transcriber() -> "Moonshine":
    with _MODEL_LOCK:
        if "t" not in _MODEL:
            _MODEL["t"] = Moonshine(model_dir())
    return _MODEL["t"]


class Moonshine:
    """Moonshine tiny on ONNX Runtime: ``transcribe(audio)`` -> text (16 kHz mono float32)."""

    HOP = 256  # the C library's voice-detector hop: audio is taken in whole hops
    LOOK_BEHIND = 8192  # samples a segment after a forced cut starts with
    MAX_SEGMENT = 30 * 16000  # a segment longer than this is cut
    MAX_TOKENS_PER_S = 13
    MIN_SAMPLES = 127 + 12 * 64  # the encoder's convolutions (127/64, 7/3, 3/2) need this many for one frame
    START, END = 1, 2  # decoder start and end-of-text tokens
    LAYERS, HEADS, HEAD_DIM = 6, 8, 36

    def __init__(self, folder: str | Path):
        import onnxruntime as ort

        folder = Path(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # parallelism is msakit's: stages overlap, clips go to worker processes
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # as the C library
        options.log_severity_level = 3
        options.add_session_config_entry("session.load_model_format", "ORT")
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        cpu = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(str(folder / "encoder_model.ort"), options, providers=cpu)
        self.decoder = ort.InferenceSession(str(folder / "decoder_model_merged.ort"), options, providers=cpu)
        self.inputs = {i.name for i in self.decoder.get_inputs()}
        self.outputs = [o.name for o in self.decoder.get_outputs()]
        self.past_names = sorted(n for n in self.inputs if n.startswith("past_key_values."))
        if self.outputs[0] != "logits" or len(self.past_names) != 4 * self.LAYERS:
            raise RuntimeError(f"unexpected Moonshine decoder in {folder}: inputs {sorted(self.inputs)}")
        self.tokens = _read_tokenizer(folder / "tokenizer.bin")

    def transcribe(self, audio: np.ndarray) -> str:
        audio = np.ascontiguousarray(audio, np.float32).reshape(-1)
        texts = [self._segment(segment).strip() for segment in self.segments(audio)]
        return " ".join(t for t in texts if t)

    @classmethod
    def segments(cls, audio: np.ndarray) -> list[np.ndarray]:
        """Whole hops, in segments of at most about 30 s (the C library's cuts with its detector off)."""
        hops = audio.size // cls.HOP
        if hops == 0:
            return []
        if hops * cls.HOP <= cls.MAX_SEGMENT + cls.HOP:  # one segment (every window msakit makes)
            return [audio[: hops * cls.HOP]]
        out, start, length = [], 0, 0
        for i in range(hops):
            end = (i + 1) * cls.HOP
            if length == 0:  # a segment starts: the look-behind samples before it, this hop included
                start, length = max(0, end - cls.LOOK_BEHIND), end - max(0, end - cls.LOOK_BEHIND)
            elif length > cls.MAX_SEGMENT:  # too long: this hop closes it
                out.append(audio[start:end])
                length = 0
            else:
                length += cls.HOP
        if length:
            out.append(audio[start : start + length])
        return out

    def _segment(self, audio: np.ndarray) -> str:
        if audio.size < self.MIN_SAMPLES:  # shorter than the encoder's convolutions (the C library fails)
            return ""
        x = audio[None, :]
        mask = np.ones(x.shape, np.int64)
        hidden = self.encoder.run(None, {"input_values": x, "attention_mask": mask})[0]
        limit = int(np.ceil(np.float32(audio.size) / np.float32(16000.0) * np.float32(self.MAX_TOKENS_PER_S)))
        empty = np.zeros((1, self.HEADS, 1, self.HEAD_DIM), np.float32)
        past = {name: empty for name in self.past_names}
        feed = {"input_ids": np.array([[self.START]], np.int64), "encoder_hidden_states": hidden, **past}
        if "encoder_attention_mask" in self.inputs:
            feed["encoder_attention_mask"] = mask
        tokens = [self.START]
        for step in range(limit):
            feed["use_cache_branch"] = np.array([step > 0])
            result = self.decoder.run(self.outputs, feed)
            for name, value in zip(self.outputs[1:], result[1:]):
                if step == 0 or ".decoder." in name:  # the encoder's keys and values stay those of step 0
                    feed["past_key_values." + name[len("present."):]] = value
            token = int(np.argmax(result[0][0, -1]))
            tokens.append(token)
            if token == self.END:
                break
            feed["input_ids"] = np.array([[token]], np.int64)
        return self.detokenise(tokens)

    def detokenise(self, tokens: list[int]) -> str:
        pieces = [self.tokens[t] for t in tokens if 0 <= t < len(self.tokens)]
        data = b"".join(p for p in pieces if not (len(p) > 2 and p[:1] == b"<" and p[-1:] == b">"))
        return _sanitise(data).replace("\u2581", " ").strip(" \t")


def _read_tokenizer(path: Path) -> list[bytes]:
    """Moonshine's tokenizer.bin: per token a length (one byte, or two when the first is >= 128) and its bytes."""
    data, tokens, i = path.read_bytes(), [], 0
    while i < len(data):
        first = data[i]
        i += 1
        if first >= 128:
            first, i = data[i] * 128 + first - 128, i + 1
        tokens.append(data[i : i + first])
        i += first
    return tokens


def _sanitise(data: bytes) -> str:
    """UTF-8 text of ``data`` with each byte that does not start a well-formed sequence as "?"."""
    out, i = bytearray(), 0
    while i < len(data):
        c = data[i]
        n = 1 if c < 0x80 else 2 if c & 0xE0 == 0xC0 else 3 if c & 0xF0 == 0xE0 else 4 if c & 0xF8 == 0xF0 else 0
        if n and i + n <= len(data) and all(b & 0xC0 == 0x80 for b in data[i + 1 : i + n]):
            out += data[i : i + n]
            i += n
        else:
            out += b"?"
            i += 1
    return out.decode("utf-8", "replace")


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
        return _transcriber().transcribe(audio)

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
