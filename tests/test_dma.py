"""The flagship: Self-MM + covariance alignment, plug-and-play by config on any model."""

from __future__ import annotations

import json

import pytest

import msakit
from msakit.config import resolve_config
from msakit.objectives.alignment import CovarianceAlignment
from msakit.training.trainer import Trainer


def test_dma_defaults_align_audio_and_vision_at_one_size():
    config = resolve_config("dma")
    assert config.alignment.pairs == "a-v" and config.alignment.align_dim == 32
    assert config.model_config.post_audio_dim == config.model_config.post_video_dim == 32
    assert config.model_config.post_text_dim == 32 and config.model_config.post_fusion_dim == 128
    assert resolve_config("self_mm").alignment.pairs == "none"


def test_flagship_trains_and_logs_the_alignment_loss_per_pair(small_synthetic, tiny_overrides, tmp_path):
    overrides = tiny_overrides(max_epochs=2) | {"alignment": {"pairs": "a-v,t-a:0.5", "align_dim": 16}}
    msakit.train("dma", small_synthetic, run_dir=tmp_path / "run", overrides=overrides)
    seed_dir = tmp_path / "run" / "seed_1111"
    epochs = [json.loads(line) for line in (seed_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(e["train_cov_av"] > 0 and e["train_cov_ta"] > 0 for e in epochs)
    results = json.loads((seed_dir / "results.json").read_text())
    assert {"t-a", "t-v", "a-v"} <= set(results["covariance_distance"])  # all 16-dim after align_dim
    assert json.loads((seed_dir / "config.json").read_text())["alignment"]["pairs"] == "a-v,t-a:0.5"


def test_features_of_different_sizes_are_refused_with_the_dims_to_set(small_synthetic, tiny_overrides, tmp_path):
    overrides = tiny_overrides(max_epochs=1) | {"alignment": {"pairs": "a-v", "align_dim": 0}}
    config = resolve_config("self_mm", data_path=str(small_synthetic), overrides=overrides)
    with pytest.raises(ValueError, match="F_a has 16 dims and F_v has 32.*align_dim"):
        Trainer(config, tmp_path / "run")


def test_alignment_plugs_into_another_model_by_config_alone(small_synthetic, tiny_overrides, tmp_path):
    overrides = tiny_overrides(max_epochs=2) | {"alignment": {"pairs": "all", "weight": 0.5}}
    config = resolve_config("late_fusion", data_path=str(small_synthetic), overrides=overrides)
    trainer = Trainer(config, tmp_path / "run")
    assert any(isinstance(o, CovarianceAlignment) for o in trainer.objectives)
    result = trainer.fit()
    assert set(result.history[0]) >= {"train_cov_ta", "train_cov_tv", "train_cov_av"}


def test_align_dim_on_a_modality_the_model_cannot_size_is_refused():
    with pytest.raises(ValueError, match="late_fusion.*'m'"):
        resolve_config("late_fusion", overrides={"alignment": {"pairs": "t-m", "align_dim": 8}})


def test_ablation_writes_table_json_and_plot(small_synthetic, tiny_bert_dir, tmp_path, capsys):
    from msakit.cli import main

    out = tmp_path / "ablation"
    code = main(["ablate", "--data", str(small_synthetic), "--output", str(out), "--seeds", "1,2", "--pair-sets", "none;a-v", "--no-ulgm-for", "a-v",
                 "--epochs", "1", "--align-dim", "8", "--set", f"model.text_encoder={tiny_bert_dir}"])
    assert code == 0
    payload = json.loads((out / "ablation.json").read_text())
    assert list(payload["variants"]) == ["none", "a-v", "a-v / no ULGM"]
    for v in payload["variants"].values():
        assert v["summary"]["MAE"]["n"] == 2 and "cov a-v" in v["covariance_distance"]
    table = (out / "ablation.md").read_text()
    assert "a-v / no ULGM" in table and "±" in table and "cov a-v" in table
    # The table says how to make it again.
    assert payload["command"].startswith("msakit ablate --data") and payload["command"] in table
    assert (out / "ablation.png").stat().st_size > 10_000
    assert "a-v / no ULGM" in capsys.readouterr().out


def test_align_dim_never_silently_overrides_a_size_the_user_set():
    with pytest.raises(ValueError, match=r"model.post_audio_dim=64 conflicts with alignment.align_dim=32.*align_dim=64"):
        resolve_config("dma", overrides={"model": {"post_audio_dim": 64}})
    # Agreeing settings, and sizes of modalities that are not aligned, are fine.
    assert resolve_config("dma", overrides={"model": {"post_audio_dim": 32}}).model_config.post_audio_dim == 32
    assert resolve_config("dma", overrides={"model": {"post_text_dim": 48}}).model_config.post_text_dim == 48
    sized_by_hand = resolve_config("dma", overrides={"model": {"post_audio_dim": 64, "post_video_dim": 64}, "alignment": {"align_dim": 0}})
    assert (sized_by_hand.model_config.post_audio_dim, sized_by_hand.model_config.post_video_dim) == (64, 64)


def test_flagship_on_text_alone_is_self_mm(small_synthetic, tiny_overrides, tmp_path):
    """The default a-v pair needs audio and vision; on text alone it is dropped, and the flagship
    is Self-MM to the byte (the every-model tables on transcripts list it as Self-MM's rows)."""
    overrides = tiny_overrides(max_epochs=1) | {"data": {"modalities": "t"}}
    for model in ("dma", "self_mm"):
        msakit.train(model, small_synthetic, run_dir=tmp_path / model, overrides=overrides)
    dma, self_mm = ((tmp_path / m / "seed_1111" / "test_predictions.csv").read_bytes() for m in ("dma", "self_mm"))
    assert dma == self_mm and len(dma.splitlines()) == 41
    assert json.loads((tmp_path / "dma" / "seed_1111" / "config.json").read_text())["alignment"]["pairs"] == "none"
