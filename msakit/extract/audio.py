"""Frame-level acoustic descriptors (numpy; librosa's mel filter bank), computed chunk by chunk at a fixed rate.

Frames are ``win`` samples long every ``hop`` samples, not centred (frame ``i`` covers samples
``[i*hop, i*hop + win)``), so each frame depends only on its own samples and the features of a
long file are computed from successive decoded chunks without holding the file: the streamer
keeps the ``win - hop`` samples a frame straddling a chunk boundary still needs.

Features per frame (raw units; no normalisation here):

=================  ============================================================================
mfcc_1..mfcc_13    cepstrum (orthonormal DCT-II) of the log10 mel power spectrum (40 mel bands,
                   60 Hz..sr/2), in bels: mfcc_1 tracks overall level
level_db           RMS level of the frame, dB relative to full scale (floor -100)
f0_hz              fundamental frequency, Hz, by YIN (de Cheveigné & Kawahara 2002) with pYIN-like
                   hysteresis: the cumulative-mean-normalised difference d' of each frame over lags
                   of [60, 400] Hz; a frame is voiced when d' has a dip (a local minimum) below
                   0.3, or below 0.7 in a run of such frames that holds a dip below 0.3; F0 is
                   sr / lag of the first dip below 0.3 (else of the deepest dip), refined by
                   parabolic interpolation and always inside [60, 400]; 0 in unvoiced frames and
                   in frames quieter than -60 dBFS (white noise has d' ~ 1: never voiced)
voicing            periodicity, 1 - (the smallest d' over those lags), 0..1 (near 0 for noise;
                   0 in frames quieter than -60 dBFS)
zcr                zero-crossing rate, crossings per sample
centroid_khz       spectral centroid, kHz
bandwidth_khz      spectral bandwidth (2nd-order spread around the centroid), kHz
rolloff_khz        frequency below which 85% of the spectral energy lies, kHz
flatness           spectral flatness (geometric / arithmetic mean of the power), 0..1
=================  ============================================================================
"""

from __future__ import annotations

import numpy as np

N_MFCC = 13
FEATURE_NAMES = [f"mfcc_{i + 1}" for i in range(N_MFCC)] + [
    "level_db", "f0_hz", "voicing", "zcr", "centroid_khz", "bandwidth_khz", "rolloff_khz", "flatness",
]
UNITS = {**{f"mfcc_{i + 1}": "bel (cepstral)" for i in range(N_MFCC)}, "level_db": "dBFS", "f0_hz": "Hz", "voicing": "0..1",
         "zcr": "crossings/sample", "centroid_khz": "kHz", "bandwidth_khz": "kHz", "rolloff_khz": "kHz", "flatness": "0..1"}
F0_RANGE = (60.0, 400.0)
STRICT_THRESHOLD = 0.3  # a dip of YIN's d' below this makes a frame voiced
LOOSE_THRESHOLD = 0.7  # ... and below this, in a run of frames that holds a strict one
SILENCE_FLOOR = 1e-6  # mean square (-60 dBFS): quieter frames are unvoiced


class AudioFeaturizer:
    """Feed chunks with ``push``; ``finish`` returns ``float32 (frames, 21)``."""

    def __init__(self, sample_rate: int = 16000, hop: int = 640, win: int = 1024):
        from scipy.fft import dct  # imported here: its start-up counts as setup, not as the first frames

        self.dct = dct
        if win < hop:
            raise ValueError(f"audio window ({win}) must be at least the hop ({hop})")
        self.sr, self.hop, self.win = sample_rate, hop, win
        self.window = np.hanning(win + 1)[:-1].astype(np.float32)
        self.mel = mel_filters(sample_rate, win, 40, 60.0, sample_rate / 2)
        self.freqs_khz = (np.fft.rfftfreq(win, 1.0 / sample_rate) / 1000.0).astype(np.float32)
        # Candidate lags (samples) of F0 in F0_RANGE; YIN compares windows of win - max lag samples.
        self.lags = (int(np.ceil(sample_rate / F0_RANGE[1])), int(np.floor(sample_rate / F0_RANGE[0])))
        if self.lags[1] + 2 >= win:
            raise ValueError(f"audio window ({win}) too short for pitch down to {F0_RANGE[0]} Hz at {sample_rate} Hz")
        self.buffer = np.zeros(0, np.float32)
        self.rows: list[np.ndarray] = []
        self.samples = 0

    def push(self, chunk: np.ndarray) -> None:
        self.samples += chunk.size
        self.buffer = np.concatenate([self.buffer, chunk.astype(np.float32, copy=False)])
        if self.buffer.size < self.win:
            return
        m = (self.buffer.size - self.win) // self.hop + 1
        self.rows.append(self._frames(self.buffer[: (m - 1) * self.hop + self.win], m))
        self.buffer = self.buffer[m * self.hop :]

    def finish(self) -> np.ndarray:
        # The tail (less than a window): zero-pad into one last frame if it holds at least a hop.
        if self.buffer.size >= self.hop:
            self.rows.append(self._frames(np.pad(self.buffer, (0, self.win - self.buffer.size)), 1))
        self.buffer = np.zeros(0, np.float32)
        if not self.rows:
            return np.zeros((0, len(FEATURE_NAMES)), np.float32)
        rows = np.concatenate(self.rows)
        # Columns past the features: the strict-dip F0 (0 if none) and the deepest dip's d'.
        strict_f0, depth = rows[:, -2], rows[:, -1]
        voiced = hysteresis(strict_f0 > 0, depth < LOOSE_THRESHOLD)
        features = rows[:, : len(FEATURE_NAMES)]
        f0 = FEATURE_NAMES.index("f0_hz")
        features[:, f0] = np.where(voiced, np.where(strict_f0 > 0, strict_f0, features[:, f0]), 0.0)
        return features.astype(np.float32)

    def _frames(self, x: np.ndarray, m: int) -> np.ndarray:
        dct = self.dct
        idx = np.arange(self.win)[None, :] + self.hop * np.arange(m)[:, None]
        frames = x[idx]  # (m, win)
        spec = np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2  # (m, bins)
        mel = spec @ self.mel.T
        mfcc = dct(np.log10(mel + 1e-10), type=2, norm="ortho", axis=1)[:, :N_MFCC]
        level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
        signs = np.signbit(frames)
        zcr = np.mean(signs[:, 1:] != signs[:, :-1], axis=1)
        total = spec.sum(axis=1) + 1e-12
        centroid = spec @ self.freqs_khz / total
        bandwidth = np.sqrt(np.maximum(spec @ (self.freqs_khz**2) / total - centroid**2, 0.0))
        cumulative = np.cumsum(spec, axis=1)
        rolloff = self.freqs_khz[np.minimum(np.argmax(cumulative >= 0.85 * total[:, None], axis=1), len(self.freqs_khz) - 1)]
        flatness = np.exp(np.mean(np.log(spec + 1e-12), axis=1)) / (np.mean(spec, axis=1) + 1e-12)
        strict_f0, best_f0, depth, loud = yin(frames, self.sr, self.lags)
        voicing = np.where(loud, np.clip(1.0 - depth, 0.0, 1.0), 0.0)
        return np.column_stack([mfcc, level, best_f0, voicing, zcr, centroid, bandwidth, rolloff, flatness, strict_f0, depth])



def mel_filters(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=)`` (Slaney mel scale, Slaney
    area normalisation, float32), the same arithmetic in the same order, so the same bits
    (``tests/test_pitch.py`` compares them); without importing librosa, whose filters module
    pulls scipy.signal in (1-1.5 s at the start of every worker process). librosa: ISC licence."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(hz: float):
        hz = np.asanyarray(hz)
        mel = (hz - 0.0) / f_sp
        return min_log_mel + np.log(hz / min_log_hz) / logstep if hz >= min_log_hz else mel

    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    mel_f = 0.0 + f_sp * mels
    log_t = mels >= min_log_mel
    mel_f[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


def hysteresis(strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Frames in a run of ``weak | strong`` frames that holds at least one ``strong`` frame."""
    candidate = weak | strong
    run = np.cumsum(np.concatenate([[True], candidate[1:] != candidate[:-1]]))  # run id per frame
    has_strong = np.zeros(run.max() + 1 if run.size else 1, bool)
    has_strong[run[strong]] = True
    return candidate & has_strong[run]


def yin(frames: np.ndarray, sr: int, lags: tuple[int, int], threshold: float = STRICT_THRESHOLD):
    """YIN on each row of ``frames`` (m, n): ``(strict_f0, best_f0, depth, loud)``.

    The difference function ``d(tau) = sum_j (x_j - x_{j+tau})^2`` over the first half of the
    frame (an FFT cross-correlation), normalised by its cumulative mean (``d'``). ``strict_f0``:
    F0 at the first local minimum of ``d'`` below ``threshold`` in ``lags`` (the first such dip,
    which avoids octave errors), 0 where there is none or the frame is under ``SILENCE_FLOOR``;
    ``best_f0``: F0 at the deepest local minimum; ``depth``: that minimum's ``d'`` (1 where there
    is no local minimum, or the frame is too quiet). F0 = sr / (parabolically refined lag),
    clipped to the range the lags cover.
    """
    frames = np.asarray(frames, np.float64)
    m, n = frames.shape
    lo, hi = lags
    width = min(n - hi - 1, n // 2)  # samples compared at every lag up to hi + 1 (half the frame, as librosa)
    x = frames - frames.mean(axis=1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(n + width)))
    r = np.fft.irfft(np.fft.rfft(x, size, axis=1) * np.conj(np.fft.rfft(x[:, :width], size, axis=1)), size, axis=1)[:, : hi + 2]
    squares = np.concatenate([np.zeros((m, 1)), np.cumsum(x**2, axis=1)], axis=1)
    taus = np.arange(hi + 2)
    d = np.maximum(squares[:, width][:, None] + squares[:, taus + width] - squares[:, taus] - 2 * r, 0.0)
    d[:, 0] = 0.0
    cumulative = np.cumsum(d[:, 1:], axis=1) / np.arange(1, hi + 2)
    dn = np.ones_like(d)
    dn[:, 1:] = d[:, 1:] / np.maximum(cumulative, 1e-12)
    window = dn[:, lo - 1 : hi + 2]  # lags lo-1 .. hi+1, for the local-minimum test
    centre = window[:, 1:-1]
    is_min = (centre <= window[:, :-2]) & (centre <= window[:, 2:])
    loud = np.mean(x**2, axis=1) > SILENCE_FLOOR
    rows = np.arange(m)

    def f0_at(index: np.ndarray) -> np.ndarray:
        lag = index + lo
        left, mid, right = dn[rows, lag - 1], dn[rows, lag], dn[rows, lag + 1]
        curvature = left - 2 * mid + right
        shift = np.where(curvature > 1e-12, 0.5 * (left - right) / np.where(curvature > 1e-12, curvature, 1.0), 0.0)
        return np.clip(sr / (lag + np.clip(shift, -0.5, 0.5)), sr / hi, sr / lo)

    strict = is_min & (centre < threshold)
    strict_f0 = np.where(strict.any(axis=1) & loud, f0_at(np.argmax(strict, axis=1)), 0.0)
    minima = np.where(is_min, centre, np.inf)
    deepest = np.argmin(minima, axis=1)
    depth = np.where(is_min.any(axis=1) & loud, np.minimum(minima[rows, deepest], 1.0), 1.0)
    return strict_f0, f0_at(deepest), depth, loud
