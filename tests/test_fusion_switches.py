"""Issue 22's switches: off, training is today's bit for bit; on, they do what they say."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from msakit.config import resolve_config
from msakit.data.synthetic import SyntheticSpec, utterance_spec, write_synthetic
from msakit.training.trainer import Trainer


def _fit(data_path, run_dir, tiny_bert_dir, epochs=2, **sections):
    overrides = {"model": {"text_encoder": str(tiny_bert_dir)}, "train": {"batch_size": 16, "max_epochs": epochs, "progress": False, "num_threads": 1}}
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    Trainer(resolve_config("self_mm", data_path=str(data_path), overrides=overrides), run_dir).fit()
    weights = load_file(str(run_dir / "best" / "model.safetensors"))
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return weights, history, (run_dir / "test_predictions.csv").read_text()


@pytest.fixture(scope="module")
def utterance_small(tmp_path_factory):
    spec = utterance_spec(n_train=80, n_valid=40, n_test=40, clips_per_speaker=10, audio_dim=12, vision_dim=16)
    return write_synthetic(tmp_path_factory.mktemp("utt") / "utt.pkl", spec)


def test_empty_as_absent_changes_nothing_on_data_without_empty_samples(small_synthetic, tiny_bert_dir, tmp_path):
    off = _fit(small_synthetic, tmp_path / "off", tiny_bert_dir)
    on = _fit(small_synthetic, tmp_path / "on", tiny_bert_dir, data={"empty_as_absent": True}, model={"ulgm_skip_absent": True})
    assert off[0].keys() == on[0].keys() and all(np.array_equal(off[0][k], on[0][k]) for k in off[0])
    assert off[2] == on[2]


def test_empty_as_absent_keeps_no_face_samples_zero_and_out_of_the_statistics(utterance_small, tiny_bert_dir, tmp_path):
    _fit(utterance_small, tmp_path / "on", tiny_bert_dir, epochs=1, data={"empty_as_absent": True})
    stats = json.loads((tmp_path / "on" / "best" / "standardizer.json").read_text())
    assert stats["empty_as_absent"] is True
    from msakit.data import load_dataset

    vision = np.asarray(load_dataset(utterance_small)["train"].vision, dtype=np.float64)[:, 0]
    found = vision[np.any(vision != 0, axis=1)]
    np.testing.assert_allclose(stats["modalities"]["v"]["mean"], found.mean(axis=0), rtol=1e-6)


def test_blend_leaves_training_unchanged_and_fits_alpha_on_validation(small_synthetic, tiny_bert_dir, tmp_path):
    off = _fit(small_synthetic, tmp_path / "off", tiny_bert_dir, epochs=1, model={"fusion": "text_residual"})
    on = _fit(small_synthetic, tmp_path / "on", tiny_bert_dir, epochs=1, model={"blend": "valid", "fusion": "text_residual"})
    assert set(on[0]) - set(off[0]) == {"blend_alpha"}
    assert all(np.array_equal(off[0][k], on[0][k]) for k in off[0])  # the same weights: training did not change
    alpha = on[1][0]["blend_alpha"]
    assert 0.0 <= alpha <= 1.0 and float(on[0]["blend_alpha"]) == pytest.approx(alpha)
    assert "blend_alpha" not in off[1][0]


def test_blend_alpha_is_the_validation_mae_minimiser(small_synthetic, tiny_bert_dir, tmp_path):
    """α = 0 gives the text prediction and α = 1 the fused one; the fitted α is no worse on the
    validation split than either."""
    overrides = {"model": {"text_encoder": str(tiny_bert_dir), "blend": "valid", "fusion": "text_residual"}, "train": {"batch_size": 16, "max_epochs": 2, "progress": False}}
    trainer = Trainer(resolve_config("self_mm", data_path=str(small_synthetic), overrides=overrides), tmp_path / "run")
    for epoch in (1, 2):
        trainer.train_epoch(epoch)
    labels = trainer.data["valid"].labels["m"]
    maes = {}
    for alpha in (0.0, 1.0):
        trainer.model.blend_alpha.fill_(alpha)
        maes[alpha] = trainer.evaluate("valid")["MAE"]
    fitted = trainer.model.fit_to_validation(lambda: trainer.predict("valid"), labels)["blend_alpha"]
    assert trainer.evaluate("valid")["MAE"] <= min(maes.values()) + 1e-6
    assert float(trainer.model.blend_alpha) == pytest.approx(fitted)


def test_the_switches_refuse_bad_values():
    from msakit.errors import ConfigError

    with pytest.raises(ConfigError, match="blend"):
        resolve_config("self_mm", overrides={"model": {"blend": "sometimes"}}).validate()
    with pytest.raises(ConfigError, match="needs model.fusion=text_residual"):
        resolve_config("self_mm", overrides={"model": {"blend": "valid"}}).validate()
    with pytest.raises(ConfigError, match="empty_as_absent"):
        resolve_config("self_mm", overrides={"data": {"empty_as_absent": "maybe"}})
