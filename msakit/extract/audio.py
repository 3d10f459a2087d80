"""Frame-level acoustic descriptors (librosa), computed chunk by chunk at a fixed rate.

Frames are ``win`` samples long every ``hop`` samples, not centred (frame ``i`` covers samples
``[i*hop, i*hop + win)``), so each frame depends only on its own samples and the features of a
long file are computed from successive decoded chunks without holding the file: the streamer
keeps the ``win - hop`` samples a frame straddling a chunk boundary still needs.

Features per frame (raw units; no normalisation here):

=================  ============================================================================
mfcc_1..mfcc_13    cepstrum (orthonormal DCT-II) of the log10 mel power spectrum (40 mel bands,
                   60 Hz..sr/2), in bels: mfcc_1 tracks overall level
level_db           RMS level of the frame, dB relative to full scale (floor -100)
f0_hz              fundamental frequency, Hz, from the autocorrelation peak in [60, 400] Hz with
                   parabolic interpolation; 0 in unvoiced frames (voicing < 0.45)
voicing            height of that normalised autocorrelation peak, 0..1 (periodicity)
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
VOICING_THRESHOLD = 0.45


class AudioFeaturizer:
    """Feed chunks with ``push``; ``finish`` returns ``float32 (frames, 21)``."""

    def __init__(self, sample_rate: int = 16000, hop: int = 640, win: int = 1024):
        import librosa

        if win < hop:
            raise ValueError(f"audio window ({win}) must be at least the hop ({hop})")
        self.sr, self.hop, self.win = sample_rate, hop, win
        self.window = np.hanning(win + 1)[:-1].astype(np.float32)
        self.mel = librosa.filters.mel(sr=sample_rate, n_fft=win, n_mels=40, fmin=60.0, fmax=sample_rate / 2).astype(np.float32)
        self.freqs_khz = (np.fft.rfftfreq(win, 1.0 / sample_rate) / 1000.0).astype(np.float32)
        self.lags = (int(sample_rate / F0_RANGE[1]), int(sample_rate / F0_RANGE[0]))
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
        return np.concatenate(self.rows).astype(np.float32)

    def _frames(self, x: np.ndarray, m: int) -> np.ndarray:
        from scipy.fft import dct

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
        f0, voicing = self._pitch(frames)
        return np.column_stack([mfcc, level, f0, voicing, zcr, centroid, bandwidth, rolloff, flatness])

    def _pitch(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centred = frames - frames.mean(axis=1, keepdims=True)
        n = 2 * self.win
        acf = np.fft.irfft(np.abs(np.fft.rfft(centred, n=n, axis=1)) ** 2, n=n, axis=1)[:, : self.win]
        # Unbiased normalisation: each lag's sum covers win - lag samples.
        acf = acf / np.maximum(acf[:, :1], 1e-12) * (self.win / (self.win - np.arange(self.win)))
        lo, hi = self.lags
        segment = acf[:, lo : hi + 1]
        best = np.argmax(segment, axis=1)
        voicing = np.clip(segment[np.arange(len(best)), best], 0.0, 1.0)
        lag = best + lo
        left, mid = acf[np.arange(len(lag)), lag - 1], acf[np.arange(len(lag)), lag]
        right = acf[np.arange(len(lag)), np.minimum(lag + 1, self.win - 1)]
        denominator = left - 2 * mid + right
        shift = np.where(np.abs(denominator) > 1e-9, 0.5 * (left - right) / np.where(denominator == 0, 1, denominator), 0.0)
        f0 = self.sr / (lag + np.clip(shift, -0.5, 0.5))
        voiced = (voicing >= VOICING_THRESHOLD) & (np.mean(frames**2, axis=1) > 1e-7)
        return np.where(voiced, f0, 0.0), np.where(np.mean(frames**2, axis=1) > 1e-7, voicing, 0.0)
