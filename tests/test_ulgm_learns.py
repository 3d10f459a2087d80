"""ULGM's generated unimodal labels recover the planted truth better than the multimodal label.

The synthetic data plants true unimodal labels y_t, y_a, y_v (each = shared + private factor);
ULGM starts every generated label at y_m. If it works, training moves label[s] toward y_s:
corr(label[s], y_s) must end above corr(y_m, y_s) for each of t, a, v. This uses the real
packaged MiniLM: a randomly initialised encoder cannot read the sentiment words, so its text
features (and text labels) would not say anything about ULGM.
"""

from __future__ import annotations

import numpy as np
import pytest

from msakit.config import resolve_config
from msakit.data import load_dataset
from msakit.data.synthetic import SyntheticSpec, write_synthetic
from msakit.encoders.text import default_text_encoder_path
from msakit.objectives import ULGM
from msakit.training.trainer import Trainer


def test_generated_labels_correlate_with_true_unimodal_labels_better_than_y_m(tmp_path):
    try:
        default_text_encoder_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    path = write_synthetic(tmp_path / "syn.pkl", SyntheticSpec(n_train=320, n_valid=64, n_test=64, seed=0))
    data = load_dataset(path)
    config = resolve_config("self_mm", data_path=str(path), overrides={"model": {"fusion": "concat"}, "train": {"max_epochs": 8, "early_stop": 100, "progress": False}})
    trainer = Trainer(config, tmp_path / "run", data=data)
    trainer.fit()
    ulgm = next(o for o in trainer.objectives if isinstance(o, ULGM))
    train = data["train"]
    for s in ("t", "a", "v"):
        generated = ulgm.labels(s).cpu().numpy()
        corr_generated = np.corrcoef(generated, train.labels[s])[0, 1]
        corr_multimodal = np.corrcoef(train.labels["m"], train.labels[s])[0, 1]
        assert corr_generated > corr_multimodal, (s, corr_generated, corr_multimodal)
        assert not np.allclose(generated, train.labels["m"])  # the labels really moved
