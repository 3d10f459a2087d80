"""``data.context`` on audio and vision (``data.context_modalities``): each utterance's frames
carry the mean of its neighbours' utterance vectors as extra columns. The mean is taken over the
same video and split only, leaves out neighbours with no frames, and lets a model read an
utterance relative to its speaker: a label planted as "louder than this speaker usually is" is
learnt with it and not without it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from msakit.data.context import ContextSpec, frame_context
from msakit.errors import ConfigError


def test_the_neighbours_mean_is_over_valid_frames_of_the_same_video_and_skips_empty_ones():
    frames = np.zeros((5, 3, 2), dtype=np.float32)
    frames[0, :2] = [[1, 1], [3, 3]]  # video a clip 1: valid frames average to 2 (the third is padding)
    frames[1, :1] = [[10, 0]]  # video a clip 2
    frames[2] = 0.0  # video a clip 3: nothing (no face): no part of anyone's context
    frames[3, :3] = [[-4, 4]] * 3  # video b clip 1
    frames[4, :1] = [[7, 7]]  # a clip of no video
    lengths = np.array([2, 1, 3, 3, 1])
    ids = ["a$_$1", "a$_$2", "a$_$3", "b$_$1", "lonely"]
    both = frame_context(frames, lengths, ids, ContextSpec(2, modalities="a"))
    np.testing.assert_allclose(both[0], [10, 0])  # clip 3 is empty: only clip 2 counts
    np.testing.assert_allclose(both[1], [2, 2])
    np.testing.assert_allclose(both[2], [6, 1])  # mean of clip 1 (2, 2) and clip 2 (10, 0)
    np.testing.assert_allclose(both[3], [0, 0])  # alone in its video
    np.testing.assert_allclose(both[4], [0, 0])  # no video
    past = frame_context(frames, lengths, ids, ContextSpec(1, "past", "a"))
    np.testing.assert_allclose(past[0], [0, 0]) and np.testing.assert_allclose(past[1], [2, 2])


def test_context_modalities_are_checked():
    assert ContextSpec(1, modalities="t,a,v").modalities == ("t", "a", "v")
    assert ContextSpec(1, modalities="va").modalities == ("a", "v")
    with pytest.raises(ConfigError, match="among t, a, v"):
        ContextSpec(1, modalities="t,x")
    spec = ContextSpec(1, modalities="a")
    assert spec.reads("a") and not spec.reads("t") and spec.frame_width("a", 5) == 10 and spec.frame_width("v", 5) == 5
    assert ContextSpec(0, modalities="a").frame_width("a", 5) == 5


def _speaker_relative(path, seed: int):
    """Videos of 8 clips; each video's audio sits at its own large offset (a voice, a room), and
    the label is how far a clip's audio is from its own speaker's usual level."""
    from msakit.data.mmsa import write_mmsa_pickle

    rng = np.random.default_rng(seed)
    data = {}
    for split, videos in (("train", 40), ("valid", 10), ("test", 12)):
        n = videos * 8
        video = np.repeat(np.arange(videos), 8)
        offset = rng.normal(0, 3.0, videos)[video]
        own = rng.normal(0, 1.0, n)
        audio = np.zeros((n, 2, 4), dtype=np.float32)
        audio[:, :, 0] = (offset + own)[:, None] + rng.normal(0, 0.1, (n, 2))
        audio[:, :, 1:] = rng.normal(0, 1.0, (n, 2, 3))
        labels = np.clip(1.5 * own, -3, 3).astype(np.float32)
        data[split] = {
            "id": [f"{split}{v}$_${i % 8}" for i, v in enumerate(video)],
            "raw_text": ["a clip"] * n, "audio": audio, "audio_lengths": [2] * n,
            "vision": np.zeros((n, 1, 2), dtype=np.float32), "vision_lengths": [1] * n,
            "regression_labels": labels,
        }
    return write_mmsa_pickle(path, data)


def test_audio_context_lets_a_model_read_a_clip_against_its_speaker(tmp_path):
    import msakit
    from msakit.training.runs import predict_split

    data = _speaker_relative(tmp_path / "speakers.pkl", seed=3)
    maes = {}
    for k in (0, 3):
        result = msakit.train("late_fusion", data, run_dir=tmp_path / f"ctx{k}", overrides={
            "data": {"modalities": ("a",), "context": k, "context_modalities": "a"},
            "model": {"lr_other": 1e-2},
            "train": {"max_epochs": 12, "batch_size": 32, "grad_accumulation": 1, "early_stop": 100, "progress": False, "num_threads": 1}})
        maes[k] = result.summary["MAE"]["mean"]
    assert maes[3] < 0.75 * maes[0], maes  # the offset hides the label without the speaker's other clips

    # The run reads its context again when it predicts, from the clips of each video in the file.
    seed_dir = tmp_path / "ctx3" / "seed_1111"
    meta = json.loads((seed_dir / "best" / "model.json").read_text())
    assert meta["input_dims"]["audio_dim"] == 8  # 4 columns + the neighbours' mean of them
    again, target, _ = predict_split(seed_dir, data, None, "test", "cpu")
    mae = float(np.mean(np.abs(again["m"] - target.labels["m"])))
    assert mae == pytest.approx(maes[3], abs=1e-4)


@pytest.mark.bad_input
def test_context_on_modalities_the_run_does_not_use_is_refused(small_synthetic, tmp_path):
    import msakit

    with pytest.raises(ConfigError, match="uses none of them"):
        msakit.train("late_fusion", small_synthetic, run_dir=tmp_path / "r", overrides={
            "data": {"modalities": ("a",), "context": 1, "context_modalities": "v"}, "train": {"max_epochs": 1, "progress": False}})
