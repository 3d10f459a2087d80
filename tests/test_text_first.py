"""model.fusion=text_first: the model's own text-only run first, then a correction from audio and
vision on its frozen prediction. The text stage is the text-only run bit for bit, the frozen
part never moves, the run keeps the text prediction when the correction does not help, and a
killed run ends where an uninterrupted one would."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import fit_with_harmful_correction
from msakit.config import resolve_config
from msakit.errors import ConfigError
from msakit.training.trainer import Trainer
from msakit.workflows.text_only import text_only_overrides


def _config(data_path, tiny_bert_dir, name="self_mm", epochs=2, **sections):
    overrides = {"model": {"text_encoder": str(tiny_bert_dir), "fusion": "text_first"},
                 "train": {"batch_size": 16, "max_epochs": epochs, "progress": False, "num_threads": 1}}
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return resolve_config(name, data_path=str(data_path), overrides=overrides)


def _predictions(run_dir):
    return (run_dir / "test_predictions.csv").read_text()


@pytest.mark.parametrize("model", ["self_mm", "dma"])
def test_the_text_stage_is_the_text_only_run_and_stays_frozen(small_synthetic, tiny_bert_dir, tmp_path, model):
    run = tmp_path / "tf"
    result = Trainer(_config(small_synthetic, tiny_bert_dir, model), run).fit()
    # the same model's --text-only run, trained on its own
    text_overrides = text_only_overrides({"model": {"text_encoder": str(tiny_bert_dir), "fusion": "text_first"},
                                          "train": {"batch_size": 16, "max_epochs": 2, "progress": False, "num_threads": 1}})
    Trainer(resolve_config(model, data_path=str(small_synthetic), overrides=text_overrides), tmp_path / "text").fit()
    stage_csv = (run / "text_stage" / "test_predictions.csv").read_text()
    text_csv = _predictions(tmp_path / "text")
    assert stage_csv == text_csv  # bit for bit: same predictions, to the printed digit
    text_weights = load_file(str(tmp_path / "text" / "best" / "model.safetensors"))
    weights = load_file(str(run / "best" / "model.safetensors"))
    frozen = {k: k for k in text_weights if k.startswith("text_model.")}
    frozen |= {k: k.replace("feature_layers.m.", "text_to_m.0.") for k in text_weights if k.startswith("feature_layers.m.")}
    frozen |= {k: k.replace("regressors.m.", "text_to_m.1.") for k in text_weights if k.startswith("regressors.m.")}
    assert len(frozen) > 10
    for source, target in frozen.items():
        assert np.array_equal(text_weights[source], weights[target]), target  # the text prediction did not move
    results = json.loads((run / "results.json").read_text())
    assert results["text_stage"]["metrics"] == json.loads((tmp_path / "text" / "results.json").read_text())["metrics"]
    assert result.metrics == results["metrics"]
    assert not (run / "text_stage" / "best").exists()  # its weights live in the run's model


def test_without_a_useful_correction_the_run_keeps_the_text_prediction(small_synthetic, tiny_bert_dir, tmp_path):
    """A correction that only hurts (every epoch ends with the fused head's bias pushed far off)
    never beats epoch 0: the run's model is the text stage's, with its test predictions."""
    run = tmp_path / "tf"
    fit_with_harmful_correction(Trainer(_config(small_synthetic, tiny_bert_dir), run))
    results = json.loads((run / "results.json").read_text())
    assert results["best_epoch"] == 0 and results["epochs_run"] == 2
    assert results["metrics"] == results["text_stage"]["metrics"]
    fused = np.loadtxt(run / "test_predictions.csv", delimiter=",", skiprows=1, usecols=2)
    text = np.loadtxt(run / "text_stage" / "test_predictions.csv", delimiter=",", skiprows=1, usecols=2)
    np.testing.assert_array_equal(fused, text)


class _Stop(Exception):
    pass


def test_a_killed_run_ends_where_an_uninterrupted_one_would(small_synthetic, tiny_bert_dir, tmp_path):
    whole = tmp_path / "whole"
    Trainer(_config(small_synthetic, tiny_bert_dir, epochs=3), whole).fit()

    killed = tmp_path / "killed"

    def stop_after_first(epoch, record):
        if epoch == 1:
            raise _Stop

    with pytest.raises(_Stop):  # killed in the second stage, after its first epoch
        Trainer(_config(small_synthetic, tiny_bert_dir, epochs=3), killed).fit(callback=stop_after_first)
    assert (killed / "text_stage" / "results.json").exists() and (killed / "last.pt").exists()
    Trainer(_config(small_synthetic, tiny_bert_dir, epochs=3), killed).fit(resume=True)
    assert _predictions(killed) == _predictions(whole)
    assert load_file(str(killed / "best" / "model.safetensors")).keys() == load_file(str(whole / "best" / "model.safetensors")).keys()


def test_correction_epochs_limit_the_second_stage_only_and_a_killed_run_keeps_them(small_synthetic, tiny_bert_dir, tmp_path):
    """model.correction_epochs: the text stage trains train.max_epochs, the correction that many;
    a run killed in the correction resumes to the same end."""
    config = _config(small_synthetic, tiny_bert_dir, epochs=1, model={"fusion": "text_first", "correction_epochs": 3})
    whole = tmp_path / "whole"
    result = Trainer(config, whole).fit()
    assert result.epochs_run == 3 and len((whole / "metrics.jsonl").read_text().splitlines()) == 3
    assert json.loads((whole / "results.json").read_text())["text_stage"]["epochs_run"] == 1

    def stop_after_second(epoch, record):
        if epoch == 2:
            raise _Stop

    killed = tmp_path / "killed"
    with pytest.raises(_Stop):
        Trainer(config, killed).fit(callback=stop_after_second)
    Trainer(config, killed).fit(resume=True)  # epoch 2 of 3 is past train.max_epochs=1: still a valid checkpoint
    assert _predictions(killed) == _predictions(whole)


def test_a_text_stage_from_other_settings_is_refused(small_synthetic, tiny_bert_dir, tmp_path):
    run = tmp_path / "tf"
    Trainer(_config(small_synthetic, tiny_bert_dir, epochs=1), run).fit()
    (run / "results.json").unlink()
    (run / "config.json").unlink()
    with pytest.raises(ConfigError, match="text stage was trained with another config"):
        Trainer(_config(small_synthetic, tiny_bert_dir, epochs=1, model={"fusion": "text_first", "post_text_dropout": 0.3}), run).fit()


def test_text_first_on_text_alone_is_the_plain_model(small_synthetic, tiny_bert_dir, tmp_path):
    """With text alone there is nothing to correct: no text stage, the same run as concat fusion."""
    text = {"data": {"modalities": "t"}, "train": {"modality_dropout": "none"}, "alignment": {"pairs": "none"}}
    first = Trainer(_config(small_synthetic, tiny_bert_dir, epochs=1, **text), tmp_path / "a")
    assert not first.model.needs_text_stage()
    first.fit()
    Trainer(_config(small_synthetic, tiny_bert_dir, epochs=1, model={"fusion": "concat"}, **text), tmp_path / "b").fit()
    assert _predictions(tmp_path / "a") == _predictions(tmp_path / "b")
    assert not (tmp_path / "a" / "text_stage").exists()


def test_epoch_0_predicts_as_the_text_stage(small_synthetic, tiny_bert_dir, tmp_path):
    """Before any second-stage step the multimodal model's predictions are the text stage's (to
    float rounding: the frozen encoder reads each transcript on its own, unpadded, where the text
    stage read padded batches), and nothing of the text prediction is left to train."""
    trainer = Trainer(_config(small_synthetic, tiny_bert_dir, epochs=1), tmp_path / "run")
    (tmp_path / "run").mkdir()
    stage = trainer._text_stage()
    trainer.model.adopt_text_model(stage["model"])
    np.testing.assert_allclose(trainer.predict("test")["m"], trainer.predict("test", stage["model"])["m"], rtol=0, atol=1e-6)
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith(("text_model.", "text_to_m.")) for n in trainable)


def test_compare_text_only_reads_the_text_stages(small_synthetic, tiny_overrides, tmp_path):
    """With text_first, --compare-text-only trains nothing twice: its text side is each run's
    text stage, which is what a separate text-only run gives."""
    from msakit.api import compare_text_only, side_by_side
    from msakit.training.runs import train

    overrides = tiny_overrides(max_epochs=1)
    overrides["model"]["fusion"] = "text_first"
    multimodal, text = compare_text_only("self_mm", small_synthetic, run_dir=tmp_path / "run", overrides=overrides)
    assert not (tmp_path / "run" / "text_only").exists()
    separate = train("self_mm", small_synthetic, run_dir=tmp_path / "text", overrides=text_only_overrides(overrides))
    assert text.per_seed == separate.per_seed
    assert "text only" in side_by_side(multimodal, text)


def test_train_prints_the_text_stage_beside_the_run(small_synthetic, tiny_bert_dir, tmp_path, capsys):
    """`msakit train` with text_first shows the run against its own text-only run, and
    `msakit evaluate` scores the saved model as training did."""
    from msakit.cli import main

    run = tmp_path / "run"
    assert main(["train", "--model", "self_mm", "--data", str(small_synthetic), "--run-dir", str(run), "--epochs", "1", "--quiet",
                 "--set", f"model.text_encoder={tiny_bert_dir}", "--set", "model.fusion=text_first"]) == 0
    shown = capsys.readouterr().out
    assert "all modalities vs text only" in shown and "seeds won" in shown
    assert main(["evaluate", str(run), "--data", str(small_synthetic), "--device", "cpu"]) == 0
    mae = json.loads((run / "seed_1111" / "results.json").read_text())["metrics"]["MAE"]
    assert f"{mae:.4f}" in capsys.readouterr().out
