"""MMMIE: its MI estimators, its switches, and that it trains on every data layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import msakit
from msakit.config import resolve_config
from msakit.data.mmsa import write_mmsa_pickle
from msakit.data.safe_pickle import safe_load
from msakit.objectives.information import gaussian_kl, info_nce_lower_bound
from msakit.training.trainer import Trainer


def test_info_nce_is_higher_for_paired_than_shuffled_and_at_most_log_b():
    torch.manual_seed(0)
    x = torch.randn(32, 8)
    y = x + 0.3 * torch.randn(32, 8)
    paired = info_nce_lower_bound(x, y, 0.1)
    shuffled = info_nce_lower_bound(x, y[torch.randperm(32)], 0.1)
    assert paired > shuffled
    assert paired <= math.log(32) + 1e-6
    assert info_nce_lower_bound(x, x, 0.01) <= math.log(32) + 1e-6  # even for identical pairs
    with pytest.raises(ValueError, match="same shape|one shape"):
        info_nce_lower_bound(x, y[:, :4])


def test_kl_is_zero_exactly_at_the_standard_normal_and_positive_elsewhere():
    zeros = torch.zeros(4, 5, 6)
    assert gaussian_kl(zeros, zeros) == 0
    assert gaussian_kl(zeros + 0.1, zeros) > 0
    assert gaussian_kl(zeros, zeros - 0.5) > 0
    assert gaussian_kl(zeros, zeros + 0.5) > 0
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[:, 3:] = False
    big = zeros.clone()
    big[:, 3:] = 100.0  # masked positions do not count
    assert gaussian_kl(big, zeros, mask) == 0


def _model_and_batch(small_synthetic, tiny_overrides, tmp_path, **model):
    overrides = tiny_overrides(max_epochs=1)
    overrides["model"].update(model)
    trainer = Trainer(resolve_config("mmmie", data_path=str(small_synthetic), overrides=overrides), tmp_path / "run")
    return trainer.model, next(trainer.builders["test"].batches(8))


def test_identity_embedding_switch_changes_the_output(small_synthetic, tiny_overrides, tmp_path):
    model, batch = _model_and_batch(small_synthetic, tiny_overrides, tmp_path)
    model.eval()
    with torch.no_grad():
        with_identity = model(batch).predictions["m"]
        model.use_identity = False
        without_identity = model(batch).predictions["m"]
    assert not torch.allclose(with_identity, without_identity)


def test_bottleneck_is_deterministic_at_evaluation_and_stochastic_in_training(small_synthetic, tiny_overrides, tmp_path):
    model, batch = _model_and_batch(small_synthetic, tiny_overrides, tmp_path, dropout=0.0)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(batch).predictions["m"], model(batch).predictions["m"], atol=0, rtol=0)
        model.train()
        assert not torch.allclose(model(batch).predictions["m"], model(batch).predictions["m"])


def test_switches_select_the_objectives(small_synthetic, tiny_overrides, tmp_path):
    full = Trainer(resolve_config("mmmie", data_path=str(small_synthetic), overrides=tiny_overrides()), tmp_path / "a")
    names = [type(o).__name__ for o in full.objectives]
    assert names == ["RegressionL1", "InfoNCE", "InformationBottleneck"]
    assert full.objectives[1].pairs == [("t", "a"), ("t", "v"), ("a", "v")]
    off = tiny_overrides()
    off["model"].update(infonce_weight=0.0, bottleneck_weight=0.0)
    bare = Trainer(resolve_config("mmmie", data_path=str(small_synthetic), overrides=off), tmp_path / "b")
    assert [type(o).__name__ for o in bare.objectives] == ["RegressionL1"]


@pytest.mark.parametrize("layout", ["unaligned", "aligned", "text_only", "audio_vision", "text_table"])
def test_mmmie_trains_on_every_layout(layout, small_synthetic, tiny_overrides, tmp_path):
    data = small_synthetic
    overrides = tiny_overrides(max_epochs=2)
    overrides["model"]["frame_stride"] = 3
    if layout == "aligned":  # MMSA aligned files: no *_lengths, lengths from the text mask
        raw = safe_load(small_synthetic)
        for split in raw.values():
            split.pop("audio_lengths"), split.pop("vision_lengths")
        data = write_mmsa_pickle(tmp_path / "aligned.pkl", raw)
    if layout == "text_only":
        overrides["data"] = {"modalities": "t"}
    if layout == "text_table":  # a directory of text,label tables
        raw = safe_load(small_synthetic)
        (tmp_path / "table").mkdir()
        for split, name in (("train", "train.tsv"), ("valid", "dev.tsv")):
            rows = [f"{t}\t{y:.2f}" for t, y in zip(raw[split]["raw_text"], raw[split]["regression_labels"])]
            (tmp_path / "table" / name).write_text("text\tlabel\n" + "\n".join(rows) + "\n")
        data = tmp_path / "table"
    if layout == "audio_vision":
        overrides["data"] = {"modalities": "a,v"}
    result = msakit.train("mmmie", data, run_dir=tmp_path / layout, overrides=overrides)
    assert np.isfinite(result.summary["MAE"]["mean"])
    history = [r for r in (tmp_path / layout / "seed_1111" / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 2
