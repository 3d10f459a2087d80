"""Real sentences train: a slice of the CMU-MOSI transcripts (skipped where the data is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import MOSI_TEXT
from msakit.config import resolve_config
from msakit.data.text_table import read_text_dataset
from msakit.data.types import FeatureData
from msakit.encoders.text import default_text_encoder_path
from msakit.training.trainer import Trainer


def test_text_only_training_on_real_mosi_sentences_learns_sentiment(tmp_path):
    if not MOSI_TEXT.is_dir():
        pytest.skip(f"{MOSI_TEXT} is absent (real MOSI transcripts are not shipped with msakit)")
    try:
        default_text_encoder_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    full = read_text_dataset(MOSI_TEXT, kind="mosi")
    rng = np.random.default_rng(0)
    data = FeatureData(
        source=str(MOSI_TEXT),
        splits={
            "train": full["train"].subset(rng.permutation(len(full["train"]))[:320]),
            "valid": full["valid"].subset(np.arange(120)),
        },
    )
    config = resolve_config("self_mm", data_path=str(MOSI_TEXT), overrides={"train": {"max_epochs": 3, "progress": False}, "data": {"modalities": "t"}})
    result = Trainer(config, tmp_path / "run", data=data).fit()
    assert result.evaluated_split == "valid"  # no test split in the table directory
    # 320 sentences and 3 epochs are far from the full benchmark, but well above chance.
    assert result.metrics["Acc-2 (non-0)"] > 0.65, result.metrics
    assert result.metrics["Corr"] > 0.3, result.metrics
