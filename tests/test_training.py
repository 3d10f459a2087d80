"""End to end: a run trains, leaves a complete directory, resumes exactly, reloads alone."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import msakit
from msakit.config import resolve_config
from msakit.training.checkpoint import load_model
from msakit.training.trainer import Trainer


def test_run_directory_is_complete_and_best_model_reloads_without_training_code(small_synthetic, tiny_overrides, tmp_path):
    result = msakit.train("self_mm", small_synthetic, run_dir=tmp_path / "run", overrides=tiny_overrides())
    seed_dir = tmp_path / "run" / "seed_1111"
    for name in ("config.json", "metrics.jsonl", "best/model.safetensors", "best/model.json", "test_predictions.csv", "results.json"):
        assert (seed_dir / name).exists(), name
    assert not (seed_dir / "last.pt").exists()  # resume state dropped once the run is finished
    epochs = [json.loads(line) for line in (seed_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert {"train_loss", "valid_MAE", "valid_Corr", "train_samples_per_s"} <= set(epochs[0])
    assert "ulgm_t" not in str(epochs[0]) or epochs[0]["train_ulgm_t"] == 0.0  # epoch 1: fusion only
    results = json.loads((seed_dir / "results.json").read_text())
    assert results["evaluated_split"] == "test"
    assert results["metrics"] == result.per_seed[1111]
    assert result.summary["MAE"]["n"] == 1

    # The saved model alone reproduces the reported test metrics.
    with open(seed_dir / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and {"id", "label", "prediction", "prediction_t", "prediction_a", "prediction_v"} <= set(rows[0])
    again = msakit.evaluate(tmp_path / "run", small_synthetic, device="cpu")
    assert again["per_seed"]["seed_1111"]["MAE"] == pytest.approx(results["metrics"]["MAE"], abs=1e-5)


def _uninterrupted_and_resumed(small_synthetic, tiny_overrides, tmp_path, monkeypatch):
    overrides = tiny_overrides(max_epochs=4, grad_accumulation=3)
    overrides["model"]["fusion"] = "concat"  # one run's epochs (fusion=auto's candidates: tests/test_fusion_auto.py)
    config = resolve_config("self_mm", data_path=str(small_synthetic), overrides=overrides)
    straight = Trainer(config, tmp_path / "straight").fit()

    # Kill the second run partway through epoch 3, after epoch 2's checkpoint was written.
    original = Trainer.train_epoch

    def dying(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt("simulated kill")
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, tmp_path / "killed").fit()
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert len((tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "killed" / "last.pt").exists()
    resumed = Trainer(config, tmp_path / "killed").fit(resume=True)
    return straight, resumed


def test_killed_run_resumes_to_the_same_numbers(small_synthetic, tiny_overrides, tmp_path, monkeypatch):
    straight, resumed = _uninterrupted_and_resumed(small_synthetic, tiny_overrides, tmp_path, monkeypatch)
    assert resumed.epochs_run == straight.epochs_run == 4
    assert resumed.metrics == straight.metrics
    for a, b in zip(straight.history, resumed.history):
        assert a["valid_MAE"] == b["valid_MAE"] and a["train_loss"] == b["train_loss"]
    weights_a = load_model(tmp_path / "straight")[0].state_dict()
    weights_b = load_model(tmp_path / "killed")[0].state_dict()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_same_seed_same_numbers_and_other_seed_differs(small_synthetic, tiny_overrides, tmp_path):
    runs = [msakit.train("self_mm", small_synthetic, seeds=[s], run_dir=tmp_path / f"r{i}", overrides=tiny_overrides(max_epochs=2)) for i, s in enumerate((5, 5, 6))]
    assert runs[0].per_seed[5] == runs[1].per_seed[5]
    assert runs[0].per_seed[5] != runs[2].per_seed[6]


@pytest.mark.bad_input
def test_starting_over_an_existing_run_is_refused(small_synthetic, tiny_overrides, tmp_path):
    config = resolve_config("self_mm", data_path=str(small_synthetic), overrides=tiny_overrides(max_epochs=1))
    Trainer(config, tmp_path / "run").fit()
    with pytest.raises(FileExistsError, match="resume"):
        Trainer(config, tmp_path / "run").fit()
    with pytest.raises(FileExistsError, match="finished"):
        Trainer(config, tmp_path / "run").fit(resume=True)
    other = resolve_config("self_mm", data_path=str(small_synthetic), overrides=tiny_overrides(max_epochs=1, batch_size=8))
    with pytest.raises(ValueError, match="another config"):
        Trainer(other, tmp_path / "run").fit(resume=True)


@pytest.mark.bad_input
def test_checkpoint_from_another_model_configuration_is_refused(small_synthetic, tiny_overrides, tmp_path):
    msakit.train("self_mm", small_synthetic, run_dir=tmp_path / "text", overrides=tiny_overrides(max_epochs=1) | {"data": {"modalities": "t"}})
    meta_path = tmp_path / "text" / "seed_1111" / "best" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["input_dims"] = {"modalities": ["t", "a"], "audio_dim": 5, "vision_dim": None}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not fit SelfMM.*missing"):
        msakit.load_run(tmp_path / "text")


def test_text_only_and_audio_only_subsets_train(small_synthetic, tiny_overrides, tmp_path):
    for modalities in ("t", "a"):
        result = msakit.train("self_mm", small_synthetic, run_dir=tmp_path / modalities, overrides=tiny_overrides(max_epochs=1) | {"data": {"modalities": modalities}})
        assert np.isfinite(result.summary["MAE"]["mean"])
        meta = json.loads((tmp_path / modalities / "seed_1111" / "best" / "model.json").read_text())
        assert meta["input_dims"]["modalities"] == [modalities]


def test_self_mm_learns_the_planted_signal(small_synthetic, tiny_overrides, tmp_path):
    # A model that learned nothing predicts near the mean: MAE ~ mean |y - mean(y)|.
    result = msakit.train("self_mm", small_synthetic, run_dir=tmp_path / "r", overrides=tiny_overrides(max_epochs=8) | {"data": {"modalities": "a,v"}})
    from msakit.data.mmsa import read_mmsa_pickle

    y = read_mmsa_pickle(small_synthetic)["test"].labels["m"]
    baseline = float(np.mean(np.abs(y - y.mean())))
    assert result.summary["MAE"]["mean"] < 0.9 * baseline
    assert result.summary["Corr"]["mean"] > 0.4


def test_resume_restarts_a_seed_killed_before_its_first_epoch_and_keeps_finished_ones(small_synthetic, tiny_overrides, tmp_path, monkeypatch):
    overrides = tiny_overrides(max_epochs=1)
    original = Trainer.train_epoch

    def dying(self, epoch):
        raise KeyboardInterrupt("killed in epoch 1")

    first = msakit.train("self_mm", small_synthetic, seeds=[1], run_dir=tmp_path / "run", overrides=overrides)
    monkeypatch.setattr(Trainer, "train_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        msakit.train("self_mm", small_synthetic, seeds=[1, 2], run_dir=tmp_path / "run", overrides=overrides, resume=True)
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert (tmp_path / "run" / "seed_2" / "config.json").exists() and not (tmp_path / "run" / "seed_2" / "last.pt").exists()
    both = msakit.train("self_mm", small_synthetic, seeds=[1, 2], run_dir=tmp_path / "run", overrides=overrides, resume=True)
    assert both.per_seed[1] == first.per_seed[1] and set(both.per_seed) == {1, 2}
