"""Annotated unimodal labels (SIMS's label_T/A/V; the synthetic data's planted ones) are reported
beside ULGM's generated labels at the end of training: in each seed's results.json, the run's
summary.json, the printed summary and ``msakit evaluate``; data without them reports nothing."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import msakit
from msakit.data.synthetic import SyntheticSpec, write_synthetic
from msakit.objectives.ulgm import ULGM, label_agreement


def _check_comparison(comparison: dict, n: int, modalities=("t", "a", "v")) -> None:
    assert comparison["split"] == "train" and comparison["after_epoch"] >= 1
    assert sorted(comparison["modalities"]) == sorted(modalities)
    for row in comparison["modalities"].values():
        assert row["n"] == n
        for which in ("generated", "multimodal_label"):
            scores = row[which]
            assert scores["MAE"] >= 0 and -1 <= scores["Corr"] <= 1 and 0 <= scores["sign_agreement"] <= 1


def test_label_agreement_scores():
    annotated = np.array([0.8, -0.4, 0.2, -1.0, 0.0], np.float32)
    same = label_agreement(annotated, annotated, "sims")
    assert same == {"MAE": 0.0, "Corr": pytest.approx(1.0), "sign_agreement": 1.0}
    flipped = label_agreement(-annotated, annotated, "sims")
    assert flipped["Corr"] == pytest.approx(-1.0) and flipped["sign_agreement"] == pytest.approx(0.2)  # only the 0 stays in [-1, 0]
    ulgm = ULGM(np.array([1.0, -1.0, 2.0]), {"m": 2, "t": 2, "a": 2}, ("t", "a"))
    assert ulgm.compare_with_annotated({"m": np.zeros(3)}, "mosi") == {}  # no annotated unimodal label: nothing
    with pytest.raises(ValueError, match="training split of 3"):
        ulgm.compare_with_annotated({"t": np.zeros(4)}, "mosi")


def test_self_mm_on_synthetic_reports_generated_beside_planted_labels(tmp_path, tiny_overrides, capsys):
    spec = SyntheticSpec(n_train=64, n_valid=16, n_test=16, seed=3)
    path = write_synthetic(tmp_path / "syn.pkl", spec)
    summary = msakit.train("self_mm", path, kind="mosi", seeds=(1, 2), run_dir=tmp_path / "run", overrides=tiny_overrides(max_epochs=2))
    assert sorted(summary.ulgm_labels) == [1, 2]
    for seed in (1, 2):
        results = json.loads((tmp_path / "run" / f"seed_{seed}" / "results.json").read_text())
        _check_comparison(results["ulgm_labels"], spec.n_train)
        assert results["ulgm_labels"]["after_epoch"] == 2
        for row in results["ulgm_labels"]["modalities"].values():
            # The planted unimodal labels share a factor with y_m: the generated labels, which
            # start at y_m and moved in epoch 2, correlate with them.
            assert row["generated"]["Corr"] > 0.2 and row["multimodal_label"]["Corr"] > 0.2
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())["ulgm_labels"]
    assert sorted(saved["per_seed"]) == ["1", "2"] and saved["summary"]["t"]["generated"]["MAE"]["n"] == 2
    table = summary.table()
    assert "ULGM's generated unimodal labels vs the annotated ones" in table and "| text | 64 |" in table
    # msakit evaluate carries what training recorded, and prints it.
    from msakit.cli import main

    assert main(["evaluate", str(tmp_path / "run"), "--data", str(path), "--kind", "mosi", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "ULGM's generated unimodal labels" in out and "| vision | 64 |" in out
    evaluated = msakit.evaluate(tmp_path / "run", path, kind="mosi", device="cpu")
    assert sorted(evaluated["ulgm_labels"]["per_seed"]) == ["seed_1", "seed_2"]


def test_data_without_unimodal_labels_reports_nothing(tmp_path, tiny_overrides):
    path = write_synthetic(tmp_path / "syn.pkl", SyntheticSpec(n_train=48, n_valid=16, n_test=16, seed=4))
    data = pickle.loads(path.read_bytes())
    for split in data.values():
        for m in "TAV":
            del split[f"regression_labels_{m}"]
    path.write_bytes(pickle.dumps(data))
    summary = msakit.train("self_mm", path, kind="mosi", run_dir=tmp_path / "run", overrides=tiny_overrides(max_epochs=2))
    assert summary.ulgm_labels == {} and "ULGM" not in summary.table()
    assert "ulgm_labels" not in json.loads((tmp_path / "run" / "seed_1111" / "results.json").read_text())
    assert "ulgm_labels" not in json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "ulgm_labels" not in msakit.evaluate(tmp_path / "run", path, kind="mosi", device="cpu")


def test_a_model_without_ulgm_reports_nothing(tmp_path, tiny_overrides):
    path = write_synthetic(tmp_path / "syn.pkl", SyntheticSpec(n_train=48, n_valid=16, n_test=16, seed=5))
    summary = msakit.train("late_fusion", path, kind="mosi", run_dir=tmp_path / "run", overrides=tiny_overrides(max_epochs=1))
    assert summary.ulgm_labels == {} and "ulgm_labels" not in json.loads((tmp_path / "run" / "seed_1111" / "results.json").read_text())
