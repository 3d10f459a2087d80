"""Corruptions in the data path, robustness curves for every model, and modality dropout."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import msakit
from msakit.errors import DataError
from msakit.data import load_dataset
from msakit.data.batching import BatchBuilder
from msakit.data.corruption import Corruption, apply_corruption, blank_split, dropout_masks, parse_modality_dropout
from msakit.errors import ConfigError
from msakit.models import available_models, get_model_class
from msakit.workflows.robustness import build_grid, nauc, robustness


def _overrides(model, tiny_bert_dir, request=None, **train):
    fields = {f.name for f in dataclasses.fields(get_model_class(model).config_class)}
    model_overrides = {"text_encoder": str(tiny_bert_dir)} if "text_encoder" in fields else {}
    model_overrides.update(getattr(get_model_class(model), "TEST_OVERRIDES", {}))  # a model's tiny sizes (and stage lengths)
    setup = getattr(get_model_class(model), "TEST_SETUP", {})  # other inputs (see test_every_model.py)
    model_overrides.update({name: str(request.getfixturevalue(fixture)) for name, fixture in setup.get("fixtures", {}).items()})
    return {"model": model_overrides, "train": {"batch_size": 16, "max_epochs": 1, "progress": False, **train},
            **({"data": setup["data"]} if "data" in setup else {})}


@pytest.fixture(scope="module")
def data_for(small_synthetic, tmp_path_factory):
    """The small synthetic data in the layout a model needs: word-aligned for MAG-BERT."""
    from msakit.data.synthetic import SyntheticSpec, write_synthetic
    from msakit.models import get_model_class

    aligned = write_synthetic(tmp_path_factory.mktemp("aligned") / "small_aligned.pkl",
                              SyntheticSpec(n_train=96, n_valid=32, n_test=40, max_audio_frames=24, max_vision_frames=30, seed=3, aligned=True))
    plain = load_dataset(small_synthetic)

    def choose(model):
        changes = getattr(get_model_class(model), "TEST_SETUP", {}).get("synthetic")
        if changes:  # a model that reads other inputs: the same small data with them
            return write_synthetic(tmp_path_factory.mktemp(f"data_{model}") / "small.pkl",
                                   SyntheticSpec(n_train=96, n_valid=32, n_test=40, max_audio_frames=24, max_vision_frames=30, seed=3, **changes))
        try:
            get_model_class(model).check_data(plain, plain.modalities)
        except DataError:
            return aligned
        return small_synthetic

    return choose


@pytest.fixture(scope="module")
def trained(tiny_bert_dir, data_for, tmp_path_factory, request):
    """One tiny run per model (1 epoch), trained on first use."""
    runs = {}

    def get(model, seeds=(1,)):
        key = (model, tuple(seeds))
        if key not in runs:
            run_dir = tmp_path_factory.mktemp(f"run_{model}")
            msakit.train(model, data_for(model), seeds=list(seeds), run_dir=run_dir, overrides=_overrides(model, tiny_bert_dir, request))
            runs[key] = run_dir
        return runs[key]

    return get


@pytest.fixture(scope="module")
def test_split(small_synthetic):
    return load_dataset(small_synthetic)["test"]


def _predict(run_dir, split):
    from msakit.training.checkpoint import load_model
    from msakit.training.trainer import predict_builder

    seed_dir = next(p for p in sorted(run_dir.glob("seed_*")))
    model, tokenizer, meta = load_model(seed_dir / "best")
    builder = BatchBuilder(split, tuple(meta["input_dims"]["modalities"]), tokenizer)
    return predict_builder(model, builder, 16, "cpu")["m"]


# ---- the corruptions ---------------------------------------------------------------------
ALL_AT = [
    Corruption("missing", ("t", "a", "v"), rate=0.0),
    Corruption("frames", ("a", "v"), rate=0.0),
    Corruption("words", ("t",), rate=0.0, mode="replace"),
]


def test_rate_zero_changes_nothing_and_predictions_are_bit_identical(trained, test_split):
    run = trained("self_mm")
    clean = _predict(run, test_split)
    for corruption in ALL_AT:
        corrupted = apply_corruption(test_split, corruption, seed=5)
        assert np.array_equal(_predict(run, corrupted), clean), corruption
    # Training-time dropout with probability 0 builds exactly the clean batches.
    builder = BatchBuilder(test_split, ("a", "v"))
    for x, y in zip(builder.batches(8, shuffle=True, seed=3, epoch=2, modality_dropout={"a": 0.0, "v": 0.0}),
                    builder.batches(8, shuffle=True, seed=3, epoch=2)):
        assert torch.equal(x.audio, y.audio) and torch.equal(x.vision_lengths, y.vision_lengths)


def test_rate_one_removes_the_modality_fully(trained, test_split):
    gone = apply_corruption(test_split, Corruption("missing", ("t", "a"), rate=1.0), seed=0)
    assert gone.raw_text == [""] * len(test_split)
    assert not gone.audio.any() and (gone.audio_lengths == test_split.audio.shape[1]).all()
    assert np.array_equal(gone.vision, test_split.vision)  # untouched
    assert test_split.audio.any() and test_split.raw_text[0]  # the original is never modified
    assert apply_corruption(test_split, Corruption("words", ("t",), rate=1.0), seed=0).raw_text == [""] * len(test_split)
    assert not apply_corruption(test_split, Corruption("frames", ("v",), rate=1.0), seed=0).vision.any()
    # Absent means absent: whatever the audio was, a model sees the same input and predicts the same.
    run = trained("self_mm")
    scrambled = dataclasses.replace(test_split, audio=np.random.default_rng(0).standard_normal(test_split.audio.shape).astype(np.float32) * 3)
    absent = Corruption("missing", ("a",), rate=1.0)
    assert np.array_equal(_predict(run, apply_corruption(test_split, absent)), _predict(run, apply_corruption(scrambled, absent)))
    assert not np.array_equal(_predict(run, test_split), _predict(run, scrambled))


def test_same_seed_same_corrupted_data_other_seed_differs(test_split):
    for corruption in (Corruption("missing", ("a", "v"), rate=0.5), Corruption("frames", ("a",), rate=0.3),
                       Corruption("noise", ("v",), snr_db=0.0), Corruption("words", ("t",), rate=0.4, mode="replace")):
        a, b, c = (apply_corruption(test_split, corruption, seed=s) for s in (1, 1, 2))
        assert a.raw_text == b.raw_text and np.array_equal(a.audio, b.audio) and np.array_equal(a.vision, b.vision)
        assert a.raw_text != c.raw_text or not np.array_equal(a.audio, c.audio) or not np.array_equal(a.vision, c.vision)
    first, again, later = dropout_masks(50, {"a": 0.3}, 7, 1), dropout_masks(50, {"a": 0.3}, 7, 1), dropout_masks(50, {"a": 0.3}, 7, 2)
    assert np.array_equal(first["a"], again["a"]) and not np.array_equal(first["a"], later["a"])


def test_missing_rate_is_the_fraction_removed_and_nested(test_split):
    rates = [0.2, 0.5, 0.8]
    removed = [~apply_corruption(test_split, Corruption("missing", ("v",), rate=r), seed=0).vision.any(axis=(1, 2)) for r in rates]
    assert all(np.all(removed[i] <= removed[i + 1]) for i in range(2))  # a sample gone at 0.2 stays gone at 0.5
    from msakit.data.corruption import absent_draws

    assert abs((absent_draws(20000, "v", 0) < 0.3).mean() - 0.3) < 0.02  # the rate is the fraction removed


def test_noise_has_the_requested_snr(test_split):
    noisy = apply_corruption(test_split, Corruption("noise", ("a",), snr_db=10.0), seed=0)
    valid = np.arange(test_split.audio.shape[1])[None, :] < test_split.audio_lengths[:, None]
    signal = (test_split.audio[valid].astype(np.float64) ** 2).mean()
    noise = ((noisy.audio - test_split.audio)[valid].astype(np.float64) ** 2).mean()
    assert 10 * np.log10(signal / noise) == pytest.approx(10.0, abs=0.3)
    assert not (noisy.audio - test_split.audio)[~valid].any()  # padding stays zero


def test_bad_corruptions_and_settings_are_refused_with_the_culprit(test_split):
    with pytest.raises(ConfigError, match="rate"):
        Corruption("missing", ("a",), rate=1.5)
    with pytest.raises(ConfigError, match="audio/vision"):
        Corruption("noise", ("t",), snr_db=5.0)
    with pytest.raises(ConfigError, match="train.modality_dropout"):
        parse_modality_dropout("a=0.3")
    with pytest.raises(ConfigError, match="train.modality_dropout.*'x'"):
        msakit.config.resolve_config("self_mm", overrides={"train": {"modality_dropout": "x:0.3"}})
    with pytest.raises(ConfigError, match="--noise"):
        build_grid(("t",), noise="a")
    assert parse_modality_dropout({"v": "0.3", "a": 0.1}) == {"a": 0.1, "v": 0.3}


def test_nauc_is_the_curves_average():
    assert nauc([0, 0.5, 1], [1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert nauc([0, 1], [0.2, 0.6]) == pytest.approx(0.4)
    assert nauc([-10, 0, 20], [3.0, 1.0, 1.0]) == pytest.approx((20 * 1 + 10 * 2) / 30)


# ---- the evaluation --------------------------------------------------------------------------
@pytest.mark.parametrize("model", available_models())
def test_every_model_runs_through_the_default_grid(model, trained, data_for, tmp_path):
    run = trained(model)
    payload = robustness(run, data_for(model), output_dir=tmp_path, progress=False)
    used = json.loads(next(run.glob("seed_*/best/model.json")).read_text())["input_dims"]["modalities"]
    assert list(payload["curves"]) == [f"missing {m}" for m in used] + ["missing all"]
    assert len(used) == 3 or getattr(get_model_class(model), "TEST_SETUP", {}).get("data", {}).get("modalities")
    for curve in payload["curves"].values():
        assert curve["x"] == [round(0.1 * i, 1) for i in range(11)]
        assert curve["points"][0]["summary"]["MAE"]["mean"] == payload["clean"]["MAE"]["mean"]
        assert np.isfinite(curve["nauc"]["MAE"]["mean"])
    assert "full frame count" in payload["absent_convention"]
    saved = json.loads((tmp_path / "robustness.json").read_text())
    assert saved["absent_convention"] == payload["absent_convention"]
    assert (tmp_path / "robustness.png").stat().st_size > 1000 and "nAUC" in (tmp_path / "robustness.md").read_text()


def test_composed_missing_curves_equal_direct_evaluation_and_seeds_are_summarised(trained, small_synthetic, tmp_path):
    run = trained("late_fusion", seeds=(1, 2))
    curves = build_grid(("t", "a", "v"), rates=(0.0, 0.4, 1.0), missing="all", frame_drop="v", noise="a", snrs=(0,), word_errors="replace")
    composed = robustness(run, small_synthetic, curves=curves, output_dir=tmp_path / "c", progress=False)
    direct = robustness(run, small_synthetic, curves=curves, output_dir=tmp_path / "d", compose_missing=False, progress=False)
    assert composed["seeds"] == ["seed_1", "seed_2"]
    for name in composed["curves"]:
        for p, q in zip(composed["curves"][name]["points"], direct["curves"][name]["points"]):
            for seed in p["per_seed"]:
                assert p["per_seed"][seed]["MAE"] == pytest.approx(q["per_seed"][seed]["MAE"], abs=1e-5)
        assert composed["curves"][name]["points"][-1]["summary"]["MAE"]["n"] == 2


def test_cli_writes_the_table_and_refuses_bad_options(trained, small_synthetic, tmp_path, capsys):
    from msakit.cli import main

    run = trained("self_mm")
    assert main(["robustness", str(run), "--data", str(small_synthetic), "--rates", "0,0.5,1", "--missing", "v",
                 "--word-errors", "drop", "--output", str(tmp_path)]) == 0
    assert "missing v" in capsys.readouterr().out
    payload = json.loads((tmp_path / "robustness.json").read_text())
    assert list(payload["curves"]) == ["missing v", "words drop"] and payload["command"].startswith("msakit robustness")
    assert main(["robustness", str(run), "--data", str(small_synthetic), "--rates", "0,x"]) == 2
    assert "--rates" in capsys.readouterr().err


# ---- robust training -----------------------------------------------------------------------
def test_modality_dropout_trains_changes_the_run_and_resumes_bit_identically(small_synthetic, tiny_bert_dir, tmp_path, monkeypatch):
    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    overrides = _overrides("self_mm", tiny_bert_dir, max_epochs=2, modality_dropout="t:0.3,a:0.5")
    config = resolve_config("self_mm", data_path=str(small_synthetic), overrides=overrides)
    assert config.train.modality_dropout == "t:0.3,a:0.5"
    straight = Trainer(config, tmp_path / "straight").fit()

    original = Trainer.train_epoch

    def dying(self, epoch):
        if epoch == 2:  # killed during the second epoch
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, tmp_path / "killed").fit()
    monkeypatch.setattr(Trainer, "train_epoch", original)
    resumed = Trainer(config, tmp_path / "killed").fit(resume=True)
    assert resumed.metrics == straight.metrics
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]

    plain = resolve_config("self_mm", data_path=str(small_synthetic), overrides=_overrides("self_mm", tiny_bert_dir, max_epochs=1))
    assert Trainer(plain, tmp_path / "plain").fit().history[0]["train_loss"] != straight.history[0]["train_loss"]
    with pytest.raises(ConfigError, match="does not use"):
        text_only = dataclasses.replace(config, data=dataclasses.replace(config.data, modalities=("t",)))
        Trainer(text_only, tmp_path / "other")


def test_incomplete_drops_words_and_frames_at_one_rate_and_runs_as_one_curve(trained, small_synthetic, test_split, tmp_path):
    """LNLN's evaluation: every modality loses elements at the same rate (frames zeroed, words
    dropped), each with the draws of its own corruption, so the curve is the composition."""
    half = apply_corruption(test_split, Corruption("incomplete", ("t", "a", "v"), rate=0.5), seed=7)
    frames = apply_corruption(test_split, Corruption("frames", ("a", "v"), rate=0.5), seed=7)
    words = apply_corruption(test_split, Corruption("words", ("t",), rate=0.5), seed=7)
    np.testing.assert_array_equal(half.audio, frames.audio)
    np.testing.assert_array_equal(half.vision, frames.vision)
    assert half.raw_text == words.raw_text
    kept = sum(len(t.split()) for t in half.raw_text) / sum(len(t.split()) for t in test_split.raw_text)
    assert 0.4 < kept < 0.6
    zeroed = np.mean(np.all(half.audio == 0, axis=2)[np.any(test_split.audio != 0, axis=2)])
    assert 0.4 < zeroed < 0.6
    assert apply_corruption(test_split, Corruption("incomplete", ("t", "a", "v"), rate=0.0)) is test_split

    curves = build_grid(("t", "a", "v"), missing="", incomplete=True)
    assert [(c.name, c.modalities) for c in curves] == [("incomplete", ("t", "a", "v"))]
    result = robustness(trained("self_mm"), small_synthetic, curves=curves, output_dir=tmp_path / "out", device="cpu")
    points = json.loads((tmp_path / "out" / "robustness.json").read_text())["curves"]["incomplete"]["points"]
    assert len(points) == 11 and points[0]["summary"]["MAE"]["mean"] != points[-1]["summary"]["MAE"]["mean"]
    assert result is not None
