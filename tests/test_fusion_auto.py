"""model.fusion=auto: concat and text_first each trained as the run its own config gives, the
one with the lower validation MAE kept. The candidates are those runs bit for bit, the kept one
is the run (its weights, predictions and metrics), and a killed run ends where an uninterrupted
one would."""

import json

import pytest

from msakit.config import resolve_config
from msakit.errors import ConfigError, ExistingRunError
from msakit.training.checkpoint import load_model
from msakit.training.trainer import Trainer


def _config(data_path, tiny_bert_dir, name="self_mm", fusion="auto", **sections):
    overrides = {"model": {"text_encoder": str(tiny_bert_dir), "fusion": fusion},
                 "train": {"batch_size": 16, "max_epochs": 2, "progress": False, "num_threads": 1}}
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return resolve_config(name, data_path=str(data_path), overrides=overrides)


def _csv(run_dir):
    return (run_dir / "test_predictions.csv").read_text()


class _Stop(Exception):
    pass


@pytest.mark.parametrize("model", ["self_mm", "dma"])
def test_auto_keeps_the_candidate_with_the_lower_validation_mae(small_synthetic, tiny_bert_dir, tmp_path, model):
    run = tmp_path / "auto"
    result = Trainer(_config(small_synthetic, tiny_bert_dir, model), run).fit()
    Trainer(_config(small_synthetic, tiny_bert_dir, model, "concat"), tmp_path / "concat").fit()  # the first candidate on its own
    assert _csv(run / "fusion_concat") == _csv(tmp_path / "concat")  # bit for bit
    results = json.loads((run / "results.json").read_text())
    candidates = {f: json.loads((run / f"fusion_{f}" / "results.json").read_text()) for f in ("concat", "text_first")}
    chosen = min(candidates, key=lambda f: candidates[f]["best_valid_MAE"])
    assert results["fusion"]["chosen"] == chosen
    assert results["metrics"] == candidates[chosen]["metrics"] == result.metrics
    assert _csv(run) == _csv(run / f"fusion_{chosen}")
    assert {f: c["best_valid_MAE"] for f, c in results["fusion"]["candidates"].items()} == {f: r["best_valid_MAE"] for f, r in candidates.items()}
    assert results["text_stage"]["metrics"] == candidates["text_first"]["text_stage"]["metrics"]  # what --compare-text-only reads
    loaded, _, _ = load_model(run, "cpu")  # the run's model is the kept candidate's
    assert loaded.config.fusion == chosen
    assert not (run / "fusion_concat" / "best").exists() and not (run / "fusion_text_first" / "best").exists()


def test_auto_text_first_reads_the_concat_text_encoder_frozen(small_synthetic, tiny_bert_dir, tmp_path):
    """The default auto trains the text encoder once: text_first's text stage takes the concat
    candidate's fine-tuned encoder, frozen, and trains only its heads on text alone."""
    run = tmp_path / "auto"

    def stop_in_text_first(epoch, record):
        if (run / "fusion_text_first" / "last.pt").exists():
            raise _Stop

    with pytest.raises(_Stop):
        Trainer(_config(small_synthetic, tiny_bert_dir), run).fit(callback=stop_in_text_first)
    stage = run / "fusion_text_first" / "text_stage"
    saved = json.loads((stage / "config.json").read_text())
    assert saved["model_config"]["text_stage"] == "concat" and saved["data"]["modalities"] == ["t"]
    concat, _, _ = load_model(run / "fusion_concat", "cpu")
    text, _, _ = load_model(stage, "cpu")
    pairs = list(zip(text.text_model.state_dict().items(), concat.text_model.state_dict().values()))
    assert pairs and all(a.equal(b) for (_, a), b in pairs)  # concat's fine-tuned encoder, unchanged by the text stage
    trained = json.loads((stage / "results.json").read_text())
    assert trained["best_epoch"] >= 1  # its heads trained on text alone beat their starting point on validation


def test_auto_text_stage_own_is_the_text_first_run_bit_for_bit(small_synthetic, tiny_bert_dir, tmp_path):
    model = {"fusion": "auto", "auto_text_stage": "own"}
    run = tmp_path / "auto"
    Trainer(_config(small_synthetic, tiny_bert_dir, "self_mm", model=model), run).fit()
    Trainer(_config(small_synthetic, tiny_bert_dir, "self_mm", "text_first"), tmp_path / "text_first").fit()
    assert _csv(run / "fusion_text_first") == _csv(tmp_path / "text_first")


def test_a_shared_text_stage_outside_auto_is_refused(small_synthetic, tiny_bert_dir, tmp_path):
    config = _config(small_synthetic, tiny_bert_dir, "self_mm", model={"fusion": "text_first", "text_stage": "concat"})
    with pytest.raises(ConfigError, match="model.fusion=auto"):
        Trainer(config, tmp_path / "run").fit()


def test_a_killed_auto_run_ends_where_an_uninterrupted_one_would(small_synthetic, tiny_bert_dir, tmp_path):
    config = _config(small_synthetic, tiny_bert_dir)
    whole = tmp_path / "whole"
    Trainer(config, whole).fit()
    calls = []

    def stop_in_the_second_candidate(epoch, record):
        calls.append(epoch)
        if len(calls) == 3:  # concat's 2 epochs done, text_first's first epoch done
            raise _Stop

    killed = tmp_path / "killed"
    with pytest.raises(_Stop):
        Trainer(config, killed).fit(callback=stop_in_the_second_candidate)
    assert (killed / "fusion_concat" / "results.json").exists() and (killed / "fusion_text_first" / "last.pt").exists()
    with pytest.raises(ExistingRunError, match="--resume"):
        Trainer(config, killed).fit()
    Trainer(config, killed).fit(resume=True)
    assert _csv(killed) == _csv(whole)
    def untimed(run):  # each candidate's seconds are recorded too; they differ between any two runs
        fusion = json.loads((run / "results.json").read_text())["fusion"]
        for candidate in fusion["candidates"].values():
            assert candidate.pop("train_seconds") > 0 and candidate.pop("total_seconds") > 0
        return fusion

    assert untimed(killed) == untimed(whole)
    with pytest.raises(ExistingRunError, match="finished"):
        Trainer(config, killed).fit(resume=True)


def test_an_auto_run_resumed_with_other_settings_is_refused(small_synthetic, tiny_bert_dir, tmp_path):
    run = tmp_path / "auto"

    def stop(epoch, record):
        raise _Stop

    with pytest.raises(_Stop):
        Trainer(_config(small_synthetic, tiny_bert_dir), run).fit(callback=stop)
    with pytest.raises(ConfigError, match="another config"):
        Trainer(_config(small_synthetic, tiny_bert_dir, model={"fusion": "auto", "post_fusion_dropout": 0.3}), run).fit(resume=True)


def test_auto_on_text_alone_is_the_plain_model(small_synthetic, tiny_bert_dir, tmp_path):
    text = {"data": {"modalities": "t"}, "train": {"modality_dropout": "none"}, "alignment": {"pairs": "none"}}
    Trainer(_config(small_synthetic, tiny_bert_dir, **text), tmp_path / "a").fit()
    Trainer(_config(small_synthetic, tiny_bert_dir, fusion="concat", **text), tmp_path / "b").fit()
    assert _csv(tmp_path / "a") == _csv(tmp_path / "b")
    assert not any(p.name.startswith("fusion_") for p in (tmp_path / "a").iterdir())


def test_a_run_started_under_the_old_default_is_refused_naming_the_value_to_repeat(small_synthetic, tiny_overrides, tmp_path):
    """A run saved with model.fusion=concat (the default until 2026-12-02), continued under today's
    default, is refused with both values, and continues when the old value is given."""
    import msakit
    from msakit.errors import RunDirError

    old = tiny_overrides(max_epochs=2)
    old["model"]["fusion"] = "concat"

    def stop(epoch, record):
        raise _Stop

    config = resolve_config("self_mm", data_path=str(small_synthetic), overrides={**old, "train": {**old["train"], "seed": 1}})
    with pytest.raises(_Stop):
        Trainer(config, tmp_path / "run" / "seed_1").fit(callback=stop)
    with pytest.raises(RunDirError, match=r"model.fusion \('concat' in the run, 'auto' now\).*--set"):
        msakit.train("self_mm", small_synthetic, seeds=[1], run_dir=tmp_path / "run", overrides=tiny_overrides(max_epochs=2), resume=True)
    result = msakit.train("self_mm", small_synthetic, seeds=[1], run_dir=tmp_path / "run", overrides=old, resume=True)
    assert result.per_seed[1] and not (tmp_path / "run" / "seed_1" / "fusion_concat").exists()
