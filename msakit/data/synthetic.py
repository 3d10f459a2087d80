"""A synthetic dataset in the MMSA pickle format, with structure planted where we can check it.

Per sample: a shared sentiment factor ``z`` and a private factor per modality ``p_s``. The
true unimodal labels are ``y_s = 3·tanh(g·(ρ·z + √(1−ρ²)·p_s))`` for s in t, a, v, and the
multimodal label is ``y_m = clip(c·(w_t·y_t + w_a·y_a + w_v·y_v), −3, 3)``, so every modality
carries part of the answer and none carries all of it. The true unimodal labels are stored as
``regression_labels_T/_A/_V`` (the SIMS key names) so ULGM's generated labels can be scored.

Text is English built from sentiment-bearing words, chosen from ``y_t`` (stochastic
rounding to one of seven intensity levels), so a pretrained encoder can read it. Audio and
vision are variable-length frame sequences whose frames carry ``y_s`` along a fixed direction
under per-frame noise, so a sequence model must integrate over time to recover it.

Two switches, both off by default (the default output is unchanged, bit for bit):
``noise_df > 0`` draws the per-frame noise from a Student-t with that many degrees of freedom
(heavy tails, as real descriptors have), and ``raw_scale=True`` rescales every audio/vision
column as a real extractor would emit it: a per-column scale log-uniform over 1e-3..1e2, an
offset, two near-constant columns and two heavy-tailed (cubed) columns per modality; padding
stays 0. ``weak_noisy_spec()`` combines both with audio/vision whose share of the label and
per-frame signal are small next to the text's: the setting where fusion loses to text.

Written through the same pickle layout real files use, so the default path exercises the
real reader. Seeded and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Bump when the generator changes what it writes: cached files carry this number.
GENERATOR_VERSION = 1

_LEVELS = {
    -3: ["terrible", "awful", "a complete disaster", "the worst thing i have seen", "painful to sit through"],
    -2: ["bad", "really boring", "quite disappointing", "poorly made", "a waste of time"],
    -1: ["a bit weak", "not that great", "somewhat dull", "mediocre", "a little disappointing"],
    0: ["okay", "average", "neither good nor bad", "just fine", "so so"],
    1: ["pretty good", "nice", "enjoyable", "decent", "pleasant enough"],
    2: ["really good", "great", "very enjoyable", "well made", "a lot of fun"],
    3: ["amazing", "fantastic", "absolutely wonderful", "a masterpiece", "the best thing i have seen"],
}
_SUBJECTS = ["the movie", "the film", "the story", "the acting", "the ending", "the plot", "the soundtrack", "the main character"]
_OPENERS = ["", "honestly ", "i think ", "overall ", "to be fair ", "well ", "i would say "]
_FILLERS = ["", " and i saw it last weekend", " from what i remember", " if you ask me", " to be honest", " at least for me"]


@dataclass
class SyntheticSpec:
    n_train: int = 600
    n_valid: int = 150
    n_test: int = 300
    audio_dim: int = 5
    vision_dim: int = 20
    min_frames: int = 12
    max_audio_frames: int = 60
    max_vision_frames: int = 80
    shared_fraction: float = 0.6  # ρ: how much of each unimodal label is the shared factor
    gain: float = 0.9  # g
    weights: tuple[float, float, float] = (0.4, 0.3, 0.3)  # w_t, w_a, w_v
    scale: float = 1.25  # c: spreads y_m over the MOSI range
    frame_signal: float = 0.6  # signal amplitude per frame, relative to unit noise
    seed: int = 0
    # True: the layout of MMSA's aligned_50.pkl: frames trimmed to the 50 text positions, no
    # *_lengths keys (the reader takes each sample's length from its text mask), so frame i
    # belongs to text position i. Same samples and values as the unaligned file otherwise.
    aligned: bool = False
    noise_df: float = 0.0  # > 0: Student-t frame noise with this many degrees of freedom
    raw_scale: bool = False  # True: raw-extractor column scales/offsets (see the module docstring)
    # Speakers (all off by default; see utterance_spec()). clips_per_speaker > 0 groups each
    # split's samples into speakers (video ids "synth<split>spk<k>"), disjoint across splits.
    clips_per_speaker: int = 0
    speaker_label_shift: float = 0.0  # std of a speaker's own shift of the shared factor z (seen in every modality)
    speaker_label_bias: float = 0.0  # std of a speaker's own shift of y_m that no modality shows (how raters saw the person)
    speaker_offset: float = 0.0  # std (per column, in frame-noise units) of a speaker's a/v offset
    speaker_gain: float = 0.0  # std of log of a speaker's per-column a/v gain
    vision_zero_rate: float = 0.0  # mean share of samples whose vision vector is all zeros (no face)
    arousal: float = 0.0  # audio also carries |y_m| (intensity, not sign) along its own direction
    # > 0: the audio is a mono waveform at this rate (Hz) instead of frames, one column, one row per
    # sample (the ``waveform`` feature set's layout), ``waveform_seconds`` long at most: a tone whose
    # pitch carries y_a (see ``_waveforms``). Off by default (the default output is unchanged).
    waveform_rate: int = 0
    waveform_seconds: float = 0.25
    split_shift: float = 0.0  # std (per column) of one a/v offset common to all of valid's, and another to test's, samples
    # Labels (multimodal and unimodal) span [-label_range, label_range]: every stored label is
    # divided by 3 / label_range after generation (1.0: CH-SIMS's [-1, 1]); the text, frames and
    # annotations are generated on the 3-point scale as always, so they are unchanged.
    label_range: float = 3.0


def weak_noisy_spec(**changes) -> SyntheticSpec:
    """Audio/vision weak, noisy, heavy-tailed, wide and raw-scale; text carries most of the label.

    Like per-utterance extractor descriptors: 128 audio and 256 vision columns and 1 to 4 frames
    per sample (nothing to average the noise away over), t(3) noise, a per-frame signal a quarter
    of the default, and 5 % each of the label (on their own private factor): real but small
    information, easy to overfit. With the published Self-MM and flagship this setting loses to
    text alone (benchmarks/results/real_features_weak.md); fusion must not let audio and vision
    pull the prediction away from what the text knows. (Until 2026-11-25: 64 columns each,
    signal 0.3 and 10 % each, where the published fusion lost on one seed of three only.)"""
    base = dict(weights=(0.9, 0.05, 0.05), frame_signal=0.15, noise_df=3.0, audio_dim=128, vision_dim=256,
                min_frames=1, max_audio_frames=4, max_vision_frames=4, raw_scale=True)
    return SyntheticSpec(**{**base, **changes})


def utterance_spec(**changes) -> SyntheticSpec:
    """Shaped like utterance-level real features (CMU-MOSI with openSMILE functionals and 3D-CNN
    visual vectors): one vector per utterance and modality (88 audio, 128 vision columns),
    raw-scale heavy-tailed columns, about 40 % of the visual vectors all zero (per speaker: some
    faces found in almost every clip, some in few), and speakers of 20 clips each, disjoint
    across splits, each with its own sentiment shift (seen in every modality), its own rating
    bias (seen in none: how the raters saw the person) and its own offset and per-column gain on
    audio and vision; the validation and the test split's audio/vision each sit apart as a whole
    (one common offset per split: other recording conditions). Audio and vision carry a small
    share of the label (15 % each, sign and magnitude) and audio the label's intensity |y| as
    well. Speaker offsets let audio and vision identify the training speakers, whose rating bias
    a model can memorise, and the split offsets move what it learned: the failure of issue 22,
    where the fused model's predictions on unseen speakers shift.

    Learnable, not only present: a ridge regression on the audio/vision vectors alone reaches
    about 60 % Acc-2 and 0.40 Corr on the test speakers (CMU-MOSI's audio-only and vision-only
    models: 55-60 %), and added to a text prediction it gains about +1.3 Acc-2 points
    (``benchmarks/sign_headroom.py``). Until 2026-12-02 the setting had ``weights=(0.85, 0.075,
    0.075)``, ``frame_signal=0.15`` and 400 test samples: there that ridge reader reached 51 %
    Acc-2 (Corr 0.07) and *lost* 0.4 points added to the text, so no model could beat text
    alone on Acc-2 except by seed noise (the files ``fusion_vs_text_utterance*.md`` of before
    that date)."""
    base = dict(n_train=600, n_valid=200, n_test=700, audio_dim=88, vision_dim=128, min_frames=1,
                max_audio_frames=1, max_vision_frames=1, weights=(0.7, 0.15, 0.15), frame_signal=0.6,
                noise_df=3.0, raw_scale=True, clips_per_speaker=20, speaker_label_shift=0.5,
                speaker_label_bias=0.4, speaker_offset=2.0, speaker_gain=0.3, vision_zero_rate=0.4, arousal=0.5, split_shift=1.0)
    return SyntheticSpec(**{**base, **changes})


def sims_spec(**changes) -> SyntheticSpec:
    """Shaped like CH-SIMS's MMSA features (``unaligned_39.pkl``): audio 33 and vision 709
    columns, every label on [-1, 1] (the default generator's labels divided by 3), and the
    planted unimodal labels stored as ``regression_labels_T/A/V`` as CH-SIMS stores its human
    unimodal annotations. Read it with ``kind="sims"``: the multi-task models (MLF-DNN, MTFN,
    MLMF) train on those unimodal labels. Generated as ``SyntheticSpec(audio_dim=33,
    vision_dim=709)`` is (the same text, frames and annotations), with every label divided by 3."""
    base = dict(audio_dim=33, vision_dim=709, label_range=1.0)
    return SyntheticSpec(**{**base, **changes})


def _sentence(y_t: float, rng: np.random.Generator) -> str:
    level = int(np.clip(np.floor(y_t + rng.random()), -3, 3))  # stochastic rounding: unbiased
    words = _LEVELS[level][rng.integers(len(_LEVELS[level]))]
    subject = _SUBJECTS[rng.integers(len(_SUBJECTS))]
    opener = _OPENERS[rng.integers(len(_OPENERS))]
    filler = _FILLERS[rng.integers(len(_FILLERS))]
    return f"{opener}{subject} was {words}{filler}".strip()


def _frames(y: np.ndarray, direction: np.ndarray, max_frames: int, spec: SyntheticSpec, rng: np.random.Generator):
    n, dim = len(y), len(direction)
    lengths = rng.integers(spec.min_frames, max_frames + 1, size=n)
    frames = np.zeros((n, max_frames, dim), dtype=np.float32)
    for i in range(n):
        length = lengths[i]
        signal = spec.frame_signal * (y[i] / 3.0) * direction
        noise = rng.standard_t(spec.noise_df, (length, dim)) if spec.noise_df > 0 else rng.standard_normal((length, dim))
        frames[i, :length] = signal + noise
    return frames, lengths.astype(np.int64)


def _raw_scale_columns(dim: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """How each column of one modality is distorted into 'raw extractor' units."""
    scale = 10.0 ** rng.uniform(-3, 2, dim)
    offset = rng.normal(0, 1, dim) * 10.0 ** rng.uniform(-1, 2, dim)
    order = rng.permutation(dim)
    near_constant, heavy = order[:2], order[2:4]
    scale[near_constant] = 1e-5  # values barely move around their offset
    offset[near_constant] = rng.uniform(1, 5, len(near_constant))
    cube = np.zeros(dim, dtype=bool)
    cube[heavy] = True
    return {"scale": scale, "offset": offset, "cube": cube}


def _to_raw_scale(frames: np.ndarray, lengths: np.ndarray, columns: dict[str, np.ndarray]) -> np.ndarray:
    x = frames.astype(np.float64)
    x = np.where(columns["cube"], x**3, x) * columns["scale"] + columns["offset"]
    valid = np.arange(frames.shape[1])[None, :] < lengths[:, None]
    return (x * valid[:, :, None]).astype(np.float32)  # padding stays 0, as real files pad


def _speaker_effects(audio, vision, speaker, n_speakers, intensity, arousal_direction, spec, rng):
    """Each speaker's own offset and per-column gain on its audio/vision (what a voice, a room or
    a camera adds, the same on every clip of the speaker), and the audio's arousal component."""
    out = []
    for frames in (audio, vision):
        dim = frames.shape[2]
        offset = spec.speaker_offset * rng.standard_normal((n_speakers, dim))
        gain = np.exp(spec.speaker_gain * rng.standard_normal((n_speakers, dim)))
        valid = np.any(frames != 0, axis=2, keepdims=True)  # padding stays 0
        out.append(np.where(valid, frames * gain[speaker][:, None, :] + offset[speaker][:, None, :], 0.0).astype(np.float32))
    if spec.arousal > 0:
        centred = (intensity - intensity.mean()) / 3.0
        valid = np.any(audio != 0, axis=2, keepdims=True)
        out[0] = np.where(valid, out[0] + spec.arousal * centred[:, None, None] * arousal_direction, 0.0).astype(np.float32)
    return out[0], out[1]


def _zero_vision_rows(speaker, n_speakers, rate, rng) -> np.ndarray:
    """Rows whose vision is all zeros: each speaker has its own rate (Beta with mean ``rate``:
    some speakers' faces are found in nearly every clip, others' in few)."""
    concentration = 2.0
    per_speaker = rng.beta(rate * concentration, (1 - rate) * concentration, n_speakers)
    return rng.random(len(speaker)) < per_speaker[speaker]


def _waveforms(y: np.ndarray, spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(n, T, 1)`` float32 waveforms and their lengths in samples: per sample a tone of
    ``800·2^(y/1.5)`` Hz (200 Hz at y = −3, 3.2 kHz at y = +3), random phase, random level
    (0.1..1, uninformative) and white noise at a tenth of the level, lasting 60..100 % of
    ``waveform_seconds``."""
    longest = max(1, int(round(spec.waveform_seconds * spec.waveform_rate)))
    lengths = rng.integers(int(0.6 * longest), longest + 1, size=len(y)).clip(1)
    out = np.zeros((len(y), longest, 1), dtype=np.float32)
    t = np.arange(longest) / spec.waveform_rate
    for i, value in enumerate(y):
        level = rng.uniform(0.1, 1.0)
        tone = np.sin(2 * np.pi * 800.0 * 2.0 ** (value / 1.5) * t[: lengths[i]] + rng.uniform(0, 2 * np.pi))
        out[i, : lengths[i], 0] = level * (tone + 0.1 * rng.standard_normal(lengths[i]))
    return out, lengths


def make_synthetic_data(spec: SyntheticSpec | None = None) -> dict:
    """The synthetic dataset as an MMSA-format dict (``train``/``valid``/``test``)."""
    spec = spec or SyntheticSpec()
    rng = np.random.default_rng(spec.seed)
    # Fixed per-dataset directions along which audio/vision frames carry sentiment.
    direction_a = rng.standard_normal(spec.audio_dim)
    direction_a *= np.sqrt(spec.audio_dim) / np.linalg.norm(direction_a)
    direction_v = rng.standard_normal(spec.vision_dim)
    direction_v *= np.sqrt(spec.vision_dim) / np.linalg.norm(direction_v)
    rho = spec.shared_fraction
    if spec.raw_scale:  # its own generator: the default draws above and below are unchanged
        raw_rng = np.random.default_rng([spec.seed, 7919])
        raw_columns = {"a": _raw_scale_columns(spec.audio_dim, raw_rng), "v": _raw_scale_columns(spec.vision_dim, raw_rng)}
    speakers_on = spec.clips_per_speaker > 0
    if speakers_on:  # own generators again: the draws of the speaker-free setting are unchanged
        arousal_direction = np.random.default_rng([spec.seed, 15485863]).standard_normal(spec.audio_dim)
    data = {}
    for index, (split, n) in enumerate((("train", spec.n_train), ("valid", spec.n_valid), ("test", spec.n_test))):
        z = rng.standard_normal(n)
        if speakers_on:
            speaker_rng = np.random.default_rng([spec.seed, 104729, index])
            speaker = np.arange(n) // spec.clips_per_speaker
            n_speakers = int(speaker[-1]) + 1
            z = z + spec.speaker_label_shift * speaker_rng.standard_normal(n_speakers)[speaker]
        unimodal = {}
        for s in ("t", "a", "v"):
            private = rng.standard_normal(n)
            unimodal[s] = 3.0 * np.tanh(spec.gain * (rho * z + np.sqrt(1 - rho**2) * private))
        w_t, w_a, w_v = spec.weights
        y_m = spec.scale * (w_t * unimodal["t"] + w_a * unimodal["a"] + w_v * unimodal["v"])
        if speakers_on and spec.speaker_label_bias > 0:
            y_m = y_m + spec.speaker_label_bias * speaker_rng.standard_normal(n_speakers)[speaker]
        y_m = np.clip(y_m, -3, 3)
        texts = [_sentence(y, rng) for y in unimodal["t"]]
        audio, audio_lengths = _frames(unimodal["a"], direction_a, spec.max_audio_frames, spec, rng)
        vision, vision_lengths = _frames(unimodal["v"], direction_v, spec.max_vision_frames, spec, rng)
        if speakers_on:
            audio, vision = _speaker_effects(audio, vision, speaker, n_speakers, np.abs(y_m), arousal_direction, spec, speaker_rng)
            if split != "train" and spec.split_shift > 0:  # recorded elsewhere: the whole split's features sit apart
                for frames in (audio, vision):
                    shift = spec.split_shift * speaker_rng.standard_normal(frames.shape[2]).astype(np.float32)
                    frames += np.where(np.any(frames != 0, axis=2, keepdims=True), shift, 0.0).astype(np.float32)
        if spec.raw_scale:
            audio = _to_raw_scale(audio, audio_lengths, raw_columns["a"])
            vision = _to_raw_scale(vision, vision_lengths, raw_columns["v"])
        if spec.waveform_rate > 0:  # its own generator: every other draw is unchanged
            audio, audio_lengths = _waveforms(unimodal["a"], spec, np.random.default_rng([spec.seed, 16000, index]))
        if speakers_on and spec.vision_zero_rate > 0:  # no face found: the extractor writes zeros
            vision[_zero_vision_rows(speaker, n_speakers, spec.vision_zero_rate, speaker_rng)] = 0.0
        # text_bert mirrors the real layout (ids, mask, segments); msakit re-tokenizes raw_text,
        # so the ids are placeholders and only the mask (word count + [CLS]/[SEP]) is meaningful.
        text_bert = np.zeros((n, 3, 50), dtype=np.float32)
        for i, text in enumerate(texts):
            text_bert[i, 1, : min(50, len(text.split()) + 2)] = 1
        labels = {"regression_labels": y_m, "regression_labels_T": unimodal["t"], "regression_labels_A": unimodal["a"],
                   "regression_labels_V": unimodal["v"]}
        for key, value in labels.items():
            labels[key] = value.astype(np.float32)
            if spec.label_range != 3.0:
                labels[key] = (labels[key] / (3.0 / spec.label_range)).astype(np.float32)
        ids = [f"synth{split}spk{speaker[i]:03d}$_${i:05d}" for i in range(n)] if speakers_on else [f"synth{split}{i:05d}$_$0" for i in range(n)]
        data[split] = {
            "id": ids,
            "raw_text": texts,
            "text_bert": text_bert,
            "audio": audio,
            "audio_lengths": audio_lengths.tolist(),
            "vision": vision,
            "vision_lengths": vision_lengths.tolist(),
            **labels,
            "annotations": ["Positive" if y > 0 else "Negative" if y < 0 else "Neutral" for y in y_m],
        }
        if spec.aligned:
            for key in ("audio", "vision"):
                data[split][key] = data[split][key][:, : text_bert.shape[2]]
                del data[split][f"{key}_lengths"]
    return data


def write_synthetic(path: str | Path, spec: SyntheticSpec | None = None) -> Path:
    """Write the synthetic dataset as an MMSA feature pickle at ``path``."""
    from msakit.data.mmsa import write_mmsa_pickle

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mmsa_pickle(path, make_synthetic_data(spec))
    return path


def make_synthetic(path: str | Path, weak_noisy: bool = False, overwrite: bool = False, utterance: bool = False, kind: str = "mosi",
                   **spec) -> Path:
    """Write the synthetic MMSA-format pickle to ``path``; ``weak_noisy=True`` starts from
    ``weak_noisy_spec()``, ``utterance=True`` from ``utterance_spec()``, ``kind="sims"`` from
    ``sims_spec()`` (``spec`` still overrides). Every split gets at least one sample (a
    file training would refuse is not written); an existing file is replaced only with
    ``overwrite``."""
    from msakit.errors import ConfigError
    from msakit.outputs import check_outputs

    for name in ("n_train", "n_valid", "n_test"):
        value = spec.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name.replace('_', '-')}={value!r}: every split needs at least one sample (train, valid and test are all used)")
    if "seed" in spec and (isinstance(spec["seed"], bool) or not isinstance(spec["seed"], int) or not 0 <= spec["seed"] < 2**63):
        raise ConfigError(f"--seed={spec['seed']!r}: must be an integer in [0, 2**63)")
    if kind not in ("mosi", "sims"):
        raise ConfigError(f"--kind={kind!r}: the synthetic data comes as 'mosi' (labels in [-3, 3]) or 'sims' (CH-SIMS-shaped, labels in [-1, 1])")
    if weak_noisy and utterance:
        raise ConfigError("--weak-noisy and --utterance are two different settings: give one")
    if kind == "sims":
        other = "--weak-noisy" if weak_noisy else "--utterance" if utterance else "--aligned" if spec.get("aligned") else None
        if other == "--aligned":
            raise ConfigError("--kind sims with --aligned: CH-SIMS is released unaligned only (unaligned_39.pkl); leave out --aligned, "
                              "or use --kind mosi for the aligned_50 layout")
        if other:
            raise ConfigError(f"--kind sims with {other}: two different settings (CH-SIMS's feature sizes vs {other}'s own); give one")
    path, = check_outputs([("output", path)], overwrite=overwrite)
    make = weak_noisy_spec if weak_noisy else utterance_spec if utterance else sims_spec if kind == "sims" else SyntheticSpec
    return write_synthetic(path, make(**spec))
