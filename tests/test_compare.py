"""``msakit compare``: every model over the seeds, one table and one figure, runs reused."""

from __future__ import annotations

import json

import numpy as np

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
    from msakit.workflows.compare import compare

    with pytest.raises(RunDirError, match=r"seed_1 was trained with another config \(differs in model.text_out"):
        compare(["tfn"], small_synthetic, output_dir=out, seeds=[1], overrides={"model": {"text_encoder": str(tiny_bert_dir)}, "train": {"max_epochs": 1, "num_threads": 1}},
                model_overrides={"tfn": {"model": {"text_out": 4, "video_hidden": 8}}})


def test_compare_refuses_unknown_models_and_settings_for_absent_models(tmp_path, capsys):
    assert main(["compare", "--models", "tfn,nosuch", "--output", str(tmp_path)]) == 2
    assert "unknown model 'nosuch'" in capsys.readouterr().err
    assert main(["compare", "--models", "tfn", "--output", str(tmp_path), "--set", "lmf:model.rank=2"]) == 2
    assert "settings given for ['lmf'], which are not among --models tfn" in capsys.readouterr().err


def test_compare_trains_mag_bert_on_the_aligned_file_given_by_model_data(tiny_bert_dir, tmp_path, capsys):
    """MAG-BERT refuses unaligned data in its row (naming the fix); --model-data gives it the aligned file."""
    from msakit.data.synthetic import SyntheticSpec, write_synthetic

    spec = dict(n_train=48, n_valid=16, n_test=16, max_audio_frames=12, max_vision_frames=12, seed=4)
    unaligned = write_synthetic(tmp_path / "u.pkl", SyntheticSpec(**spec))
    aligned = write_synthetic(tmp_path / "a.pkl", SyntheticSpec(aligned=True, **spec))
    common = ["compare", "--models", "mag_bert", "--data", str(unaligned), "--seeds", "1", "--epochs", "1", "--quiet",
              "--set", f"model.text_encoder={tiny_bert_dir}", "--set", "train.num_threads=1"]
    assert main([*common, "--output", str(tmp_path / "refused")]) == 0
    row = json.loads((tmp_path / "refused" / "compare.json").read_text())["rows"]["mag_bert"]
    assert row["status"] == "refused" and "aligned" in row["reason"]

    assert main([*common, "--output", str(tmp_path / "ok"), "--model-data", f"mag_bert={aligned}"]) == 0
    payload = json.loads((tmp_path / "ok" / "compare.json").read_text())
    assert payload["rows"]["mag_bert"]["status"] == "ok" and payload["rows"]["mag_bert"]["data"] == str(aligned)
    assert f"mag_bert: trained and scored on `{aligned}`" in (tmp_path / "ok" / "compare.md").read_text()
    capsys.readouterr()

    assert main([*common, "--output", str(tmp_path / "x"), "--model-data", "tfn=a.pkl"]) == 2
    assert "--model-data given for ['tfn']" in capsys.readouterr().err
    assert main([*common, "--output", str(tmp_path / "x"), "--model-data", "mag_bert"]) == 2
    assert "expected MODEL=PATH" in capsys.readouterr().err


def test_compare_table_counts_seeds_won_against_text_alone_and_flags_a_mean_loss():
    from msakit.workflows.compare import compare_markdown

    def row(maes, accs):
        per_seed = {str(s): {"MAE": m, "Acc-2 (non-0)": a} for s, m, a in zip((1, 2, 3), maes, accs)}
        summary = {k: {"mean": float(np.mean([v[k] for v in per_seed.values()])), "std": 0.0} for k in ("MAE", "Acc-2 (non-0)")}
        timing = {k: {"mean": 1.0, "std": 0.0} for k in ("seconds_per_epoch", "samples_per_s", "epochs_run", "best_epoch")}
        return {"status": "ok", "per_seed": per_seed, "summary": summary, "timing": timing, "parameters": 1, "parameters_without_text_encoder": 1}

    payload = {"data": "d", "kind": "mosi", "seeds": [1, 2, 3], "evaluated_split": "test", "rows": {
        "self_mm": row([0.40, 0.41, 0.50], [0.80, 0.81, 0.79]),
        "self_mm (text only)": row([0.42, 0.42, 0.42], [0.80, 0.82, 0.83]),
    }}
    table = compare_markdown(payload)
    line = next(x for x in table.splitlines() if x.startswith("| self_mm |") and "/3" in x)
    # MAE: won on seeds 1 and 2, but the mean (0.437) is worse than 0.42; Acc-2: seed 1 ties, no win.
    assert line == "| self_mm | 2/3 **loses** | 0/3 **loses** |"


def test_compare_table_is_the_table_of_compare_markdown():
    from msakit.workflows.compare import compare_markdown, compare_table

    metrics = {"Acc-2 (has-0)": {"mean": 0.9, "std": 0.01, "n": 2}, "MAE": {"mean": 0.5, "std": 0.02, "n": 2}}
    timing = {"seconds_per_epoch": {"mean": 3.0, "std": 0.5, "n": 2}, "samples_per_s": {"mean": 100.0, "std": 1.0, "n": 2},
              "epochs_run": {"mean": 4.0, "std": 0.0, "n": 2}, "best_epoch": {"mean": 3.5, "std": 0.7, "n": 2}}
    rows = {"tfn": {"status": "ok", "summary": metrics, "timing": timing, "parameters": 1234, "parameters_without_text_encoder": 34},
            "mult (text only)": {"status": "refused", "reason": "MulT needs two or three modalities"}}
    table = compare_table(rows)
    assert table[0] == "| model | Acc-2 (has-0) | MAE | parameters (without text encoder) | s / epoch | train samples/s | epochs (best) |"
    assert table[2] == "| tfn | 90.00 ± 1.00 | 0.5000 ± 0.0200 | 1,234 (34) | 3.00 ± 0.50 | 100.0 ± 1.0 | 4.0 (3.5) |"
    assert table[3].startswith("| mult (text only) | refused: MulT needs two or three modalities |")
    assert len(table) == 4
    payload = {"data": "synthetic", "kind": "mosi", "seeds": [1, 2], "rows": rows, "machine": {}, "complete": True}
    assert "\n".join(table) in compare_markdown(payload)
