"""Pitch that means pitch: YIN-style voicing (never noise), F0 only on voiced frames and always
inside the documented range; on generated tones and against librosa's pYIN on real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("librosa")

from msakit.extract.audio import F0_RANGE, FEATURE_NAMES, AudioFeaturizer  # noqa: E402

MEDIA = next((p / "shared" / "data" / "media" for p in Path(__file__).resolve().parents[1:4] if (p / "shared" / "data" / "media").is_dir()),
             Path("shared/data/media"))
SR, HOP, WIN = 16000, 640, 1024
F0, VOICING = FEATURE_NAMES.index("f0_hz"), FEATURE_NAMES.index("voicing")


def _features(signal: np.ndarray) -> np.ndarray:
    featurizer = AudioFeaturizer(SR, HOP, WIN)
    featurizer.push(signal.astype(np.float32))
    return featurizer.finish()


def _tone(f0: float, seconds: float, rng) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi)
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 6))
    return 0.15 * harmonics / 2.3


def test_tones_with_noise_filled_pauses():
    """Harmonic tones at known F0 separated by white-noise pauses as loud as the tones."""
    rng = np.random.default_rng(3)
    pitches = [70.0, 110.0, 160.0, 230.0, 310.0, 390.0]
    pieces, truth = [], []  # truth per sample: F0 or 0 for noise
    for f0 in pitches:
        noise = 0.08 * rng.standard_normal(int(0.4 * SR))
        tone = _tone(f0, 0.6, rng)
        pieces += [noise, tone]
        truth += [np.zeros(noise.size), np.full(tone.size, f0)]
    pieces.append(0.08 * rng.standard_normal(int(0.4 * SR)))
    truth.append(np.zeros(int(0.4 * SR)))
    signal, truth = np.concatenate(pieces), np.concatenate(truth)
    features = _features(signal)
    starts = np.arange(len(features)) * HOP
    tone_frames = [i for i, s in enumerate(starts) if s + WIN <= truth.size and np.all(truth[s : s + WIN] == truth[s]) and truth[s] > 0]
    pause_frames = [i for i, s in enumerate(starts) if s + WIN <= truth.size and np.all(truth[s : s + WIN] == 0)]
    assert len(tone_frames) >= 6 * 10 and len(pause_frames) >= 7 * 5
    f0 = features[:, F0]
    for i in tone_frames:
        expected = truth[starts[i]]
        assert abs(f0[i] / expected - 1) < 0.03, (i, expected, f0[i])
    assert np.all(f0[pause_frames] == 0), f0[pause_frames]
    assert features[pause_frames, VOICING].max() < 0.5  # white noise is aperiodic
    assert features[tone_frames, VOICING].min() > 0.8


def test_f0_never_outside_the_documented_range():
    """A sweep from 30 to 800 Hz: frames get F0 only inside [60, 400] Hz, never beyond."""
    t = np.arange(int(6.0 * SR)) / SR
    frequency = 30.0 * (800.0 / 30.0) ** (t / t[-1])
    signal = 0.2 * np.sin(2 * np.pi * np.cumsum(frequency) / SR)
    f0 = _features(signal)[:, F0]
    voiced = f0 > 0
    assert voiced.any()
    assert f0[voiced].min() >= F0_RANGE[0] and f0[voiced].max() <= F0_RANGE[1]
    # And where the sweep is inside the range, F0 follows it.
    centre = (np.arange(len(f0)) * HOP + WIN // 2).clip(max=t.size - 1)
    inside = (frequency[centre] > 70) & (frequency[centre] < 380) & voiced
    assert inside.sum() > 20
    assert np.median(np.abs(f0[inside] / frequency[centre][inside] - 1)) < 0.03


def test_silence_and_noise_alone_are_unvoiced():
    rng = np.random.default_rng(0)
    for signal in (np.zeros(SR), 1e-5 * rng.standard_normal(SR), 0.3 * rng.standard_normal(2 * SR)):
        assert np.all(_features(signal)[:, F0] == 0)


def _media_audio(path: Path) -> np.ndarray:
    pytest.importorskip("av")
    from msakit.extract.decode import iter_audio

    return np.concatenate(list(iter_audio(path, SR)))


@pytest.mark.skipif(not MEDIA.is_dir(), reason="shared/data/media (real recordings) not present")
def test_no_f0_outside_the_range_on_any_real_file():
    files = sorted(p for p in MEDIA.rglob("*") if p.suffix in (".mpg", ".wav", ".flac"))
    assert files
    for path in files:
        f0 = _features(_media_audio(path))[:, F0]
        voiced = f0[f0 > 0]
        assert voiced.size, path
        assert voiced.min() >= F0_RANGE[0] and voiced.max() <= F0_RANGE[1], path


@pytest.mark.skipif(not MEDIA.is_dir(), reason="shared/data/media (real recordings) not present")
def test_grid_voicing_close_to_pyin():
    """On the GRID clips the voiced fraction is within 15 points of librosa's pYIN (same frames,
    same F0 range), and where both find voice the F0 agrees."""
    import librosa

    files = sorted((MEDIA / "grid").glob("*.mpg"))
    assert files
    for path in files:
        audio = _media_audio(path)
        f0 = _features(audio)[:, F0]
        pyin_f0, pyin_voiced, _ = librosa.pyin(audio, fmin=F0_RANGE[0], fmax=F0_RANGE[1], sr=SR, frame_length=WIN, hop_length=HOP, center=False)
        n = min(len(f0), len(pyin_voiced))
        f0, pyin_f0, pyin_voiced = f0[:n], pyin_f0[:n], pyin_voiced[:n]
        assert abs((f0 > 0).mean() - pyin_voiced.mean()) <= 0.15, (path.name, (f0 > 0).mean(), pyin_voiced.mean())
        both = (f0 > 0) & pyin_voiced
        assert np.mean(np.abs(f0[both] / pyin_f0[both] - 1) < 0.05) >= 0.7, path.name


@pytest.mark.parametrize("sr,n_fft,fmin", [(16000, 1024, 60.0), (8000, 512, 60.0), (22050, 2048, 60.0), (16000, 1024, 1500.0), (44100, 4096, 0.0)])
def test_mel_filters_are_librosas_bit_for_bit(sr, n_fft, fmin):
    """The audio descriptors build librosa's mel filter bank themselves (no librosa import at
    run time): the same float32 values."""
    import librosa

    from msakit.extract.audio import mel_filters

    ours = mel_filters(sr, n_fft, 40, fmin, sr / 2)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=40, fmin=fmin, fmax=sr / 2)
    assert ours.dtype == theirs.dtype == np.float32 and ours.tobytes() == theirs.tobytes()
