"""``msakit compare``: every model over the seeds, one table and one figure, runs reused."""

from __future__ import annotations

import json

import pytest

from msakit.cli import main
from msakit.errors import RunDirError
from msakit.training.trainer import Trainer


def test_compare_writes_table_and_figure_reuses_runs_and_adds_text_only_rows(small_synthetic, tiny_bert_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cmp"
    argv = [
        "compare", "--models", "tfn,mult", "--data", str(small_synthetic), "--seeds", "1,2", "--epochs", "1", "--output", str(out),
        "--text-only", "--quiet", "--set", f"model.text_encoder={tiny_bert_dir}", "--set", "train.num_threads=1",
        "--set", "tfn:model.text_out=8", "--set", "tfn:model.video_hidden=8", "--set", "mult:model.model_dim=8", "--set", "mult:model.heads=2",
        "--set", "mult:model.layers=1",
    ]
    assert main(argv) == 0
    payload = json.loads((out / "compare.json").read_text())
    assert payload["complete"] is True
    assert list(payload["rows"]) == ["tfn", "tfn (text only)", "mult", "mult (text only)"]
    tfn = payload["rows"]["tfn"]
    assert tfn["status"] == "ok" and set(tfn["per_seed"]) == {"1", "2"} and tfn["summary"]["MAE"]["n"] == 2
    assert tfn["parameters"] > tfn["parameters_without_text_encoder"] > 0
    assert tfn["timing"]["seconds_per_epoch"]["mean"] > 0 and tfn["timing"]["samples_per_s"]["mean"] > 0
    assert payload["rows"]["tfn (text only)"]["modalities"] == "t"
    refused = payload["rows"]["mult (text only)"]
    assert refused["status"] == "refused" and "MulT needs two or three modalities" in refused["reason"]
    assert payload["command"].startswith("msakit compare --models tfn,mult")
    table = (out / "compare.md").read_text()
    assert "| mult (text only) | refused: mult: data.modalities=t" in table and "Made with:" in table
    assert (out / "compare.png").stat().st_size > 10_000
    capsys.readouterr()

    # A second call trains nothing: every seed is finished and reused, and the numbers are kept.
    monkeypatch.setattr(Trainer, "fit", lambda self, resume=False: pytest.fail("a finished run was trained again"))
    assert main(argv) == 0
    again = json.loads((out / "compare.json").read_text())
    assert again["rows"]["tfn"]["per_seed"] == tfn["per_seed"]

    # A finished run made with other settings is never passed off as this comparison's.
    from msakit.compare import compare

    with pytest.raises(RunDirError, match=r"seed_1 was trained with another config \(differs in model.text_out"):
        compare(["tfn"], small_synthetic, output_dir=out, seeds=[1], overrides={"model": {"text_encoder": str(tiny_bert_dir)}, "train": {"max_epochs": 1, "num_threads": 1}},
                model_overrides={"tfn": {"model": {"text_out": 4, "video_hidden": 8}}})


def test_compare_refuses_unknown_models_and_settings_for_absent_models(tmp_path, capsys):
    assert main(["compare", "--models", "tfn,nosuch", "--output", str(tmp_path)]) == 2
    assert "unknown model 'nosuch'" in capsys.readouterr().err
    assert main(["compare", "--models", "tfn", "--output", str(tmp_path), "--set", "lmf:model.rank=2"]) == 2
    assert "settings given for ['lmf'], which are not among --models tfn" in capsys.readouterr().err
