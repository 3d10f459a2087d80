"""Corruptions of the data a model sees: a modality missing, frames lost, noise, transcript errors.

They act in the data path, never inside a model, so every model is evaluated (and can be
trained) under exactly the same corruption. Each is seeded: the same ``seed`` gives the same
corrupted data, so a robustness curve is reproducible.

**How an absent modality is given to a model** (``ABSENT_CONVENTION``). Models here cannot be
told "no audio"; they get an input that carries no information but has the usual shape:

- audio / vision: every frame of the sample set to zero and its length set to the split's full
  frame count ``T`` (the padded width of the array). Every absent sample then gets the same
  input, so nothing about the sample (not even its duration) leaks through, and the sequence is
  as long as the longest clean one, so any model that runs on the clean data runs on it (a
  length of 1 would break, e.g., strided convolutions over frames);
- text: an empty transcript, i.e. only the tokenizer's special tokens (``[CLS] [SEP]``).

Corruptions (each a ``Corruption``; ``apply_corruption`` returns a corrupted copy of a split):

- ``missing``: each listed modality is absent for a sample with probability ``rate``,
  independently per modality. The draws are one uniform number per (sample, modality),
  absent when it is below ``rate``: a sample missing at rate 0.3 is also missing at 0.5, so a
  curve over rates is monotone in what is removed rather than re-drawn at each point.
- ``frames``: each frame of an audio/vision sequence is zeroed with probability ``rate``
  (lengths unchanged, so at rate 1 only the sample's duration is left).
- ``noise``: Gaussian noise added to the valid frames at a signal-to-noise ratio of ``snr_db``:
  per feature dimension d, noise std = sqrt(P_d / 10^(snr/10)), with P_d the mean square of d
  over the split's valid frames (padding stays zero).
- ``words``: each word of a transcript is dropped (``mode="drop"``) or replaced by a random
  word of the split's own vocabulary (``mode="replace"``) with probability ``rate``; on
  ``raw_text``, before tokenisation, like ASR errors. At rate 1 with ``drop`` the text is absent.

Training-time modality dropout (``train.modality_dropout``) uses the same convention through
``dropout_masks`` and ``BatchBuilder``: masks depend only on ``(seed, epoch)``.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

import numpy as np

from msakit.data.types import MODALITIES, Split
from msakit.errors import ConfigError

ABSENT_CONVENTION = (
    "absent audio/vision: all frames zero, length set to the split's full frame count; "
    "absent text: empty transcript (only the tokenizer's special tokens)"
)
KINDS = ("missing", "frames", "noise", "words", "incomplete")
WORD_MODES = ("drop", "replace")


@dataclass(frozen=True)
class Corruption:
    """One corruption at one strength. ``modalities`` is the tuple it acts on (``missing``:
    any of t/a/v; ``frames``/``noise``: a and/or v; ``words``: t; ``incomplete``: any of t/a/v,
    frames zeroed and words dropped at the same rate)."""

    kind: str
    modalities: tuple[str, ...]
    rate: float = 0.0  # missing / frames / words
    snr_db: float | None = None  # noise
    mode: str = "drop"  # words

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"corruption kind {self.kind!r}: must be one of {', '.join(KINDS)}")
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities:
            raise ConfigError(f"corruption {self.kind}: modalities {self.modalities!r} must be a non-empty subset of t, a, v")
        if self.kind in ("frames", "noise") and "t" in self.modalities:
            raise ConfigError(f"corruption {self.kind}: acts on audio/vision frames only (a, v), not on text")
        if self.kind == "words" and self.modalities != ("t",):
            raise ConfigError("corruption words: acts on the transcript only (modality t)")
        if self.kind == "noise":
            if self.snr_db is None or not np.isfinite(self.snr_db):
                raise ConfigError("corruption noise: give a finite snr_db (signal-to-noise ratio in dB)")
        elif not (0.0 <= self.rate <= 1.0):
            raise ConfigError(f"corruption {self.kind}: rate={self.rate!r} must lie in [0, 1]")
        if self.kind == "words" and self.mode not in WORD_MODES:
            raise ConfigError(f"corruption words: mode={self.mode!r} must be one of {', '.join(WORD_MODES)}")

    @property
    def strength(self) -> float:
        return float(self.snr_db) if self.kind == "noise" else float(self.rate)

    def is_identity(self) -> bool:
        return self.kind != "noise" and self.rate == 0.0


def _stream(seed: int, *tags: str) -> np.random.Generator:
    """A generator for one (seed, purpose) pair; tags are hashed stably (not Python's hash)."""
    return np.random.default_rng([int(seed), *(zlib.crc32(t.encode()) for t in tags)])


def absent_draws(n: int, modality: str, seed: int) -> np.ndarray:
    """One uniform number in [0, 1) per sample for ``modality``: absent at rate r where < r."""
    return _stream(seed, "missing", modality).random(n)


def missing_rows(n: int, corruption: "Corruption", seed: int = 0) -> dict[str, np.ndarray]:
    """``{m: bool (n,)}``: the rows a ``missing`` corruption blanks (``apply_corruption``)."""
    return {m: absent_draws(n, m, seed) < corruption.rate for m in corruption.modalities}


def blank_split(split: Split, absent: dict[str, np.ndarray]) -> Split:
    """A copy of ``split`` in which the rows flagged in ``absent[m]`` (bool ``(N,)``) lack
    modality ``m``, by ``ABSENT_CONVENTION``. Unflagged rows are untouched."""
    changes = {}
    for m, rows in absent.items():
        rows = np.asarray(rows, dtype=bool)
        if not rows.any() or m not in split.modalities:
            continue
        if m == "t":
            changes["raw_text"] = ["" if r else s for s, r in zip(changes.get("raw_text", split.raw_text), rows)]
        else:
            key = "audio" if m == "a" else "vision"
            array = changes.get(key, getattr(split, key)).copy()
            lengths = changes.get(f"{key}_lengths", getattr(split, f"{key}_lengths")).copy()
            array[rows] = 0.0
            lengths[rows] = array.shape[1]
            changes[key], changes[f"{key}_lengths"] = array, lengths
    return dataclasses.replace(split, **changes) if changes else split


def apply_corruption(split: Split, corruption: Corruption, seed: int = 0) -> Split:
    """A corrupted copy of ``split`` (the original is never modified). Rate 0 returns the split
    itself, so predictions are bit-identical to the clean ones."""
    c = corruption
    missing = [m for m in c.modalities if m not in split.modalities]
    if missing:
        raise ConfigError(f"corruption {c.kind}: split {split.name!r} has no {missing} data (it has {list(split.modalities)})")
    if c.is_identity():
        return split
    n = len(split)
    if c.kind == "missing":
        return blank_split(split, missing_rows(n, c, seed))
    if c.kind == "frames":
        changes = {}
        for m in c.modalities:
            key = "audio" if m == "a" else "vision"
            array = getattr(split, key).copy()
            drop = _stream(seed, "frames", m).random(array.shape[:2]) < c.rate
            array[drop] = 0.0
            changes[key] = array
        return dataclasses.replace(split, **changes)
    if c.kind == "noise":
        changes = {}
        for m in c.modalities:
            key = "audio" if m == "a" else "vision"
            array = getattr(split, key)
            lengths = getattr(split, f"{key}_lengths")
            valid = np.arange(array.shape[1])[None, :] < lengths[:, None]  # (N, T)
            power = (array[valid].astype(np.float64) ** 2).mean(axis=0)  # (D,)
            std = np.sqrt(power / 10.0 ** (c.snr_db / 10.0))
            noise = _stream(seed, "noise", m).standard_normal(array.shape) * std
            changes[key] = (array + noise * valid[:, :, None]).astype(array.dtype)
        return dataclasses.replace(split, **changes)
    if c.kind == "incomplete":
        # LNLN's protocol (Zhang et al., NeurIPS 2024): every modality loses elements at the same
        # rate, audio/vision frames zeroed and transcript words dropped, each with its own draws.
        out = split
        frames = tuple(m for m in c.modalities if m != "t")
        if frames:
            out = apply_corruption(out, Corruption("frames", frames, rate=c.rate), seed)
        if "t" in c.modalities:
            out = apply_corruption(out, Corruption("words", ("t",), rate=c.rate, mode="drop"), seed)
        return out
    # words
    rng = _stream(seed, "words", c.mode)
    vocabulary = sorted({w for text in split.raw_text for w in text.split()})
    texts = []
    for text in split.raw_text:
        words = text.split()
        hit = rng.random(len(words)) < c.rate
        picks = rng.integers(len(vocabulary), size=len(words)) if vocabulary else np.zeros(len(words), int)
        if c.mode == "drop":
            words = [w for w, h in zip(words, hit) if not h]
        else:
            words = [vocabulary[p] if h else w for w, h, p in zip(words, hit, picks)]
        texts.append(" ".join(words))
    return dataclasses.replace(split, raw_text=texts)


# ---- training-time modality dropout ------------------------------------------------------
def parse_modality_dropout(value, where: str = "train.modality_dropout") -> dict[str, float]:
    """``"a:0.3,v:0.3"`` or ``{"a": 0.3, "v": 0.3}`` -> ``{"a": 0.3, "v": 0.3}``; ``""`` or ``"none"`` -> ``{}``.
    Each probability is the chance that a training sample has that modality absent in an epoch."""
    if value is None or value == {} or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return {}
    if isinstance(value, str):
        items = {}
        for part in value.replace(" ", "").split(","):
            if not part:
                continue
            if ":" not in part:
                raise ConfigError(f"{where}={value!r}: expected MODALITY:PROBABILITY pairs, e.g. a:0.3,v:0.3")
            m, p = part.split(":", 1)
            items[m] = p
        value = items
    parsed = {}
    for m, p in dict(value).items():
        if m not in MODALITIES:
            raise ConfigError(f"{where}: unknown modality {m!r}; use t (text), a (audio), v (vision), e.g. a:0.3,v:0.3")
        try:
            p = float(p)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: probability for {m!r} must be a number, got {p!r}") from None
        if not (0.0 <= p <= 1.0):
            raise ConfigError(f"{where}: probability for {m!r} is {p}; it must lie in [0, 1]")
        parsed[m] = p
    return {m: parsed[m] for m in MODALITIES if m in parsed and parsed[m] > 0}


def format_modality_dropout(value) -> str:
    """The canonical string form stored in a run's config (``"t:0.2,a:0.3"``)."""
    return ",".join(f"{m}:{p:g}" for m, p in parse_modality_dropout(value).items())


def dropout_masks(n: int, probabilities: dict[str, float], seed: int, epoch: int) -> dict[str, np.ndarray]:
    """Which of ``n`` training samples lack each modality in ``epoch``: bool ``(n,)`` per
    modality, a function of ``(seed, epoch)`` only (so a resumed run sees the same masks)."""
    return {m: _stream(seed, "modality_dropout", m, str(epoch)).random(n) < p for m, p in probabilities.items() if p > 0}
