"""Audio/vision standardisation: training-split statistics, valid frames only, stored with the run."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

import msakit
from msakit.config import resolve_config
from msakit.data import load_dataset
from msakit.data.mmsa import write_mmsa_pickle
from msakit.data.standardize import Standardizer
from msakit.data.synthetic import SyntheticSpec, make_synthetic_data, weak_noisy_spec
from msakit.data.types import Split
from msakit.errors import RunDirError
from msakit.training.trainer import Trainer

SMALL = dict(n_train=96, n_valid=32, n_test=40, max_audio_frames=24, max_vision_frames=30, seed=3)


def _split(audio, lengths) -> Split:
    n = len(lengths)
    return Split(name="train", ids=[str(i) for i in range(n)], labels={"m": np.zeros(n, np.float32)},
                 audio=np.asarray(audio, np.float32), audio_lengths=np.asarray(lengths, np.int64))


def _predictions(csv_path):
    with open(csv_path) as f:
        return np.array([float(r["prediction"]) for r in csv.DictReader(f)])


def test_padding_is_excluded_and_stays_zero():
    rng = np.random.default_rng(0)
    audio = rng.normal(5.0, 2.0, (6, 10, 3))
    lengths = np.array([10, 4, 7, 2, 9, 5])
    audio[np.arange(10)[None, :] >= lengths[:, None]] = 1e6  # garbage in the padding
    fitted = Standardizer.fit(_split(audio, lengths), ("a",))
    valid = audio[np.arange(10)[None, :] < lengths[:, None]]
    np.testing.assert_allclose(fitted.stats["a"]["mean"], valid.mean(0), rtol=1e-5)
    np.testing.assert_allclose(fitted.stats["a"]["std"], valid.std(0), rtol=1e-4)
    z = fitted.apply(_split(audio, lengths)).audio
    assert np.all(z[np.arange(10)[None, :] >= lengths[:, None]] == 0)
    np.testing.assert_allclose(z[np.arange(10)[None, :] < lengths[:, None]].mean(0), 0, atol=1e-5)


def test_constant_column_gives_zeros_and_outliers_are_clipped():
    rng = np.random.default_rng(1)
    audio = rng.normal(0, 1, (20, 5, 3))
    audio[:, :, 1] = 7.25  # constant column
    audio[:, :, 2] *= 1e-4  # tiny but real scale: standardised, not treated as constant
    fitted = Standardizer.fit(_split(audio, np.full(20, 5)), ("a",), clip=4.0)
    assert fitted.stats["a"]["std"][1] == 1.0
    test = audio.copy()
    test[0, 0, 0] = 1e9  # an extreme value at test time
    z = fitted.apply(_split(test, np.full(20, 5))).audio
    assert np.all(np.isfinite(z)) and np.all(z[:, :, 1] == 0)
    assert z[0, 0, 0] == 4.0 and np.abs(z).max() <= 4.0
    assert 0.5 < z[:, :, 2].std() < 1.5
    again = Standardizer.from_dict(json.loads(json.dumps(fitted.to_dict())))
    np.testing.assert_array_equal(again.apply(_split(test, np.full(20, 5))).audio, z)


def test_statistics_come_from_the_training_split_only(tmp_path, tiny_overrides):
    data = make_synthetic_data(weak_noisy_spec(**SMALL))
    write_mmsa_pickle(tmp_path / "a.pkl", data)
    for key in ("audio", "vision"):
        data["test"][key] = data["test"][key] * 100.0 + 3.0  # another test split entirely
        data["valid"][key] = data["valid"][key] * 0.5
    write_mmsa_pickle(tmp_path / "b.pkl", data)
    config = resolve_config("self_mm", data_path=str(tmp_path / "a.pkl"), overrides=tiny_overrides())
    stats = [Trainer(config, tmp_path / f"r{i}", data=load_dataset(tmp_path / f"{n}.pkl")).standardizer.to_dict() for i, n in enumerate("ab")]
    assert stats[0] == stats[1]
    assert set(stats[0]["modalities"]) == {"a", "v"}


def test_run_stores_statistics_and_predict_uses_them(tmp_path, tiny_overrides):
    data_path = msakit.make_synthetic(tmp_path / "raw.pkl", raw_scale=True, **SMALL)
    overrides = tiny_overrides(max_epochs=2)
    overrides["model"]["fusion"] = "concat"  # audio/vision have their full say from the start
    msakit.train("self_mm", data_path, run_dir=tmp_path / "run", overrides=overrides)
    seed_dir = tmp_path / "run" / "seed_1111"
    assert json.loads((seed_dir / "config.json").read_text())["data"]["standardize"] is True
    assert json.loads((seed_dir / "results.json").read_text())["standardized"] == ["a", "v"]
    stored = json.loads((seed_dir / "best" / "standardizer.json").read_text())
    raw_std = np.array(stored["modalities"]["a"]["std"])
    assert raw_std.max() / raw_std.min() > 1e3  # the raw-scale columns really differ in scale

    predicted = msakit.predict(tmp_path / "run", data_path, tmp_path / "p.csv", device="cpu")
    np.testing.assert_allclose(_predictions(predicted), _predictions(seed_dir / "test_predictions.csv"), atol=1e-5)

    # Other statistics in the file give other predictions: predict really reads the stored ones.
    for s in stored["modalities"].values():
        s["mean"] = [m + 3 * sd for m, sd in zip(s["mean"], s["std"])]
    (seed_dir / "best" / "standardizer.json").write_text(json.dumps(stored))
    shifted = msakit.predict(tmp_path / "run", data_path, tmp_path / "q.csv", device="cpu")
    assert np.abs(_predictions(shifted) - _predictions(predicted)).max() > 1e-3

    (seed_dir / "best" / "standardizer.json").unlink()
    with pytest.raises(RunDirError, match="standardizer.json"):
        msakit.predict(tmp_path / "run", data_path, tmp_path / "r.csv", device="cpu")


def test_already_standardised_file_gives_the_same_predictions_on_or_off(tmp_path, tiny_overrides):
    data = make_synthetic_data(SyntheticSpec(**SMALL))
    for key in ("audio", "vision"):  # z-score with the training split's own statistics
        lengths = np.asarray(data["train"][f"{key}_lengths"])
        frames = data["train"][key]
        valid = frames[np.arange(frames.shape[1])[None, :] < lengths[:, None]].astype(np.float64)
        mean, std = valid.mean(0), valid.std(0)
        for split in data.values():
            mask = np.arange(split[key].shape[1])[None, :] < np.asarray(split[f"{key}_lengths"])[:, None]
            split[key] = (((split[key] - mean) / std) * mask[:, :, None]).astype(np.float32)
    write_mmsa_pickle(tmp_path / "z.pkl", data)
    runs = {}
    for flag in ("true", "false"):
        overrides = tiny_overrides(max_epochs=2)
        overrides["data"] = {"standardize": flag, "standardize_clip": 1e6}
        msakit.train("self_mm", tmp_path / "z.pkl", run_dir=tmp_path / flag, overrides=overrides)
        runs[flag] = _predictions(tmp_path / flag / "seed_1111" / "test_predictions.csv")
    assert not (tmp_path / "false" / "seed_1111" / "best" / "standardizer.json").exists()
    np.testing.assert_allclose(runs["true"], runs["false"], atol=2e-3)


def test_training_reads_standardised_frames_batch_by_batch_without_a_copy(small_synthetic, tmp_path):
    """The trainer's splits are lazy views: a batch equals the eagerly standardised rows, and a
    memory-mapped array is fitted and read without being copied whole."""
    import numpy as np

    from msakit.data import load_dataset
    from msakit.data.batching import BatchBuilder
    from msakit.data.standardize import StandardizedFrames, Standardizer

    data = load_dataset(small_synthetic)
    train = data["train"]
    mapped = tmp_path / "audio.npy"
    np.save(mapped, train.audio)
    on_disk = dataclasses.replace(train, audio=np.load(mapped, mmap_mode="r"))
    fitted = Standardizer.fit(on_disk, ("a", "v"))
    reference = Standardizer.fit(train, ("a", "v"))
    for m in ("a", "v"):
        np.testing.assert_allclose(fitted.stats[m]["mean"], reference.stats[m]["mean"], rtol=0, atol=1e-12)
    lazy, eager = fitted.apply(on_disk, lazy=True), fitted.apply(on_disk)
    assert isinstance(lazy.audio, StandardizedFrames) and isinstance(eager.audio, np.ndarray)
    rows = np.array([5, 0, 17, 3])
    batch_lazy = BatchBuilder(lazy, ("a", "v")).make_batch(rows)
    batch_eager = BatchBuilder(eager, ("a", "v")).make_batch(rows)
    assert torch.equal(batch_lazy.audio, batch_eager.audio) and torch.equal(batch_lazy.vision, batch_eager.vision)
    np.testing.assert_array_equal(np.asarray(lazy.audio), eager.audio)
