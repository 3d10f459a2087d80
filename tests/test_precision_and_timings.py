"""Mixed precision (the CUDA path, exercised here on CPU), the per-epoch callback, and the
time breakdown every run records."""

from __future__ import annotations

import json
import math

import pytest
import torch

from msakit.config import resolve_config
from msakit.training.trainer import Trainer, resolve_precision


def test_auto_precision_is_fp32_on_cpu_so_cpu_runs_are_unchanged():
    assert resolve_precision("auto", torch.device("cpu")) == (None, None)
    assert resolve_precision("fp32", torch.device("cpu")) == (None, None)


def test_run_records_where_its_time_went_and_callback_sees_every_epoch(small_synthetic, tiny_overrides, tmp_path):
    config = resolve_config("self_mm", data_path=str(small_synthetic), overrides=tiny_overrides(max_epochs=2) | {"data": {"modalities": "a,v"}})
    seen = []
    Trainer(config, tmp_path / "run").fit(callback=lambda epoch, record: seen.append((epoch, record["valid_MAE"])))
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    timings = results["timings"]
    assert set(timings) == {"load_s", "setup_s", "train_s", "validate_s", "test_s", "total_s"}
    assert all(v >= 0 for v in timings.values()) and timings["train_s"] > 0 and timings["validate_s"] > 0
    assert timings["total_s"] >= timings["train_s"] + timings["validate_s"]
    assert results["precision"] == "fp32"
    assert [e for e, _ in seen] == [1, 2] and all(math.isfinite(m) for _, m in seen)


def test_callback_can_stop_a_run(small_synthetic, tiny_overrides, tmp_path):
    config = resolve_config("self_mm", data_path=str(small_synthetic), overrides=tiny_overrides(max_epochs=3) | {"data": {"modalities": "a,v"}})

    class Stop(Exception):
        pass

    def stop(epoch, record):
        raise Stop

    with pytest.raises(Stop):
        Trainer(config, tmp_path / "run").fit(callback=stop)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_mixed_precision_on_cpu_is_refused_naming_the_setting(small_synthetic, tiny_overrides, tmp_path):
    from msakit.errors import ConfigError

    config = resolve_config("dma", data_path=str(small_synthetic), overrides=tiny_overrides(max_epochs=1, precision="bf16"))
    with pytest.raises(ConfigError, match="train.precision=bf16.*CUDA"):
        Trainer(config, tmp_path / "run")


def test_loss_scaler_path_trains_like_fp32(small_synthetic, tiny_overrides, tmp_path, monkeypatch):
    """The fp16 path's loss scaling (scale, unscale-and-step, update, saved in last.pt),
    run on CPU with fp32 compute: a power-of-two scale cancels exactly, so the numbers match a
    plain fp32 run."""
    config = resolve_config("dma", data_path=str(small_synthetic), overrides=tiny_overrides(max_epochs=2) | {"data": {"modalities": "a,v"}})
    plain = Trainer(config, tmp_path / "plain").fit()
    scaled_trainer = Trainer(config, tmp_path / "scaled")
    scaled_trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaled = scaled_trainer.fit()
    assert scaled.metrics == pytest.approx(plain.metrics, rel=1e-4, abs=1e-5)
    assert scaled_trainer.scaler.get_scale() > 0
