"""The CLI is a thin layer over the API; config errors name the setting."""

from __future__ import annotations

import csv

import pytest

from msakit.cli import main
from msakit.config import parse_set_options, resolve_config


def test_train_evaluate_predict_from_the_command_line(small_synthetic, tiny_bert_dir, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--data", str(small_synthetic), "--run-dir", str(run), "--epochs", "1", "--quiet", "--seeds", "1,2", "--set", f"model.text_encoder={tiny_bert_dir}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "MAE" in out and "Acc-7" in out and "±" in out
    assert (run / "seed_1" / "results.json").exists() and (run / "seed_2" / "results.json").exists()
    assert main(["evaluate", str(run), "--data", str(small_synthetic), "--device", "cpu"]) == 0
    assert "Corr" in capsys.readouterr().out
    output = tmp_path / "pred.csv"
    assert main(["predict", str(run / "seed_1"), "--data", str(small_synthetic), "--output", str(output), "--split", "valid"]) == 0
    with open(output) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 32 and float(rows[0]["prediction"]) == float(rows[0]["prediction"])


def test_synth_writes_a_readable_pickle(tmp_path, capsys):
    path = tmp_path / "s.pkl"
    assert main(["synth", str(path), "--n-train", "20", "--n-valid", "8", "--n-test", "8"]) == 0
    from msakit.data.mmsa import read_mmsa_pickle

    data = read_mmsa_pickle(path)
    assert len(data["train"]) == 20 and data.modalities == ("t", "a", "v")
    assert set(data["train"].labels) == {"m", "t", "a", "v"}


@pytest.mark.bad_input
def test_bad_input_gives_an_error_not_a_traceback(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.pkl"), "--quiet"]) == 2
    assert "missing.pkl" in capsys.readouterr().err
    assert main(["train", "--set", "model.no_such_thing=3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "model.no_such_thing" in err and "post_text_dim" in err
    assert main(["train", "--set", "train.batch_size=lots", "--quiet"]) == 2
    assert "train.batch_size" in capsys.readouterr().err


def test_config_layers_dataset_defaults_under_overrides():
    sims = resolve_config("self_mm", kind="sims")
    assert sims.model_config.ulgm_bound == 1.0 and sims.model_config.video_hidden == 64 and sims.train.batch_size == 32
    mosi = resolve_config("self_mm", kind="mosi", overrides=parse_set_options(["model.post_text_dim=64", "data.modalities=t,a"]))
    assert mosi.model_config.ulgm_bound == 3.0 and mosi.model_config.post_text_dim == 64
    assert mosi.data.modalities == ("t", "a")
    with pytest.raises(ValueError, match="SECTION.KEY=VALUE"):
        parse_set_options(["post_text_dim=64"])


def test_predict_on_unlabelled_clips_of_one_split(small_synthetic, tiny_overrides, tmp_path):
    import msakit
    from msakit.data.mmsa import write_mmsa_pickle
    from msakit.data.safe_pickle import safe_load

    msakit.train("self_mm", small_synthetic, run_dir=tmp_path / "run", overrides=tiny_overrides(max_epochs=1))
    clips = safe_load(small_synthetic)["test"]
    for key in [k for k in clips if k.startswith("regression_labels")]:
        del clips[key]
    write_mmsa_pickle(tmp_path / "clips.pkl", {"test": clips})  # a user's file: one split, no labels
    out = msakit.predict(tmp_path / "run", tmp_path / "clips.pkl", tmp_path / "p.csv")
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and "label" not in rows[0] and rows[0]["id"] == clips["id"][0]


def test_every_command_is_one_module_with_add_parser_and_run():
    """A new command is one module in msakit/commands/ and its entry in COMMANDS: the parser's
    subcommands are exactly those modules, each adding its own subcommand and nothing else."""
    import argparse
    from pathlib import Path

    import msakit.commands
    from msakit.cli import build_parser
    from msakit.commands import COMMANDS

    modules = {p.stem for p in Path(msakit.commands.__file__).parent.glob("*.py") if not p.stem.startswith("_")}
    assert set(COMMANDS) == modules, "a module in msakit/commands/ that is not in COMMANDS (or the reverse)"
    for name, module in COMMANDS.items():
        assert module.__name__ == f"msakit.commands.{name}"
        assert callable(module.add_parser) and callable(module.run)
        alone = argparse.ArgumentParser().add_subparsers(dest="command")
        module.add_parser(alone, argparse.ArgumentParser(add_help=False))
        assert list(alone.choices) == [name]
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)
