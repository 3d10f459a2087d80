"""Raw-scale synthetic switch, the text-residual fusion, and the text-only guard."""

from __future__ import annotations

import numpy as np
import torch

from msakit.api import compare_text_only, side_by_side
from msakit.data.synthetic import SyntheticSpec, make_synthetic_data, weak_noisy_spec

SMALL = dict(n_train=96, n_valid=32, n_test=40, max_audio_frames=24, max_vision_frames=30, seed=3)


def _valid(split, key):
    lengths = np.asarray(split[f"{key}_lengths"])
    return split[key][np.arange(split[key].shape[1])[None, :] < lengths[:, None]]


def test_raw_scale_switch_keeps_everything_but_the_units():
    unit, raw = make_synthetic_data(SyntheticSpec(**SMALL)), make_synthetic_data(SyntheticSpec(raw_scale=True, **SMALL))
    for split in unit:
        assert unit[split]["raw_text"] == raw[split]["raw_text"]
        np.testing.assert_array_equal(unit[split]["regression_labels"], raw[split]["regression_labels"])
        assert unit[split]["audio_lengths"] == raw[split]["audio_lengths"]
        for key in ("audio", "vision"):
            pad = np.arange(raw[split][key].shape[1])[None, :] >= np.asarray(raw[split][f"{key}_lengths"])[:, None]
            assert np.all(raw[split][key][pad] == 0)  # padding stays 0, as real files pad
    std = _valid(raw["train"], "vision").std(0)
    assert std.max() / std[std > 1e-4].min() > 1e3 and (std < 1e-4).sum() >= 2  # scales spread, near-constant columns
    assert np.abs(_valid(raw["train"], "vision")).max() > 100


def test_weak_noisy_setting_text_carries_most_of_the_label():
    data = make_synthetic_data(weak_noisy_spec(**SMALL))["train"]
    y = data["regression_labels"]
    corr = {s: np.corrcoef(data[f"regression_labels_{s}"], y)[0, 1] for s in "TAV"}
    assert corr["T"] > 0.85 and corr["A"] < corr["T"] - 0.2 and corr["V"] < corr["T"] - 0.2
    assert data["audio"].shape[2] == 128 and data["vision"].shape[2] == 256


def test_text_residual_fusion_starts_from_the_text_prediction(tiny_bert_dir):
    from msakit.config import resolve_config
    from msakit.data import load_dataset
    from msakit.data.batching import BatchBuilder
    from msakit.encoders.text import TextEncoder, load_tokenizer
    from msakit.models import InputDims, get_model_class

    tokenizer = load_tokenizer(tiny_bert_dir)
    data = make_synthetic_data(SyntheticSpec(**SMALL))
    from msakit.data.mmsa import write_mmsa_pickle
    import tempfile, pathlib

    path = pathlib.Path(tempfile.mkdtemp()) / "d.pkl"
    write_mmsa_pickle(path, data)
    split = load_dataset(path)["train"]
    batch = next(BatchBuilder(split, ("t", "a", "v"), tokenizer).batches(8))
    for fusion in ("text_residual", "concat"):
        config = resolve_config("self_mm", data_path=str(path), overrides={"model": {"text_encoder": str(tiny_bert_dir), "fusion": fusion}})
        torch.manual_seed(0)
        model = get_model_class("self_mm")(config.model_config, InputDims.from_split(split, ("t", "a", "v")), text_encoder=TextEncoder.from_pretrained(str(tiny_bert_dir))).eval()
        with torch.no_grad():
            out = model(batch)
            if fusion == "text_residual":
                text_only = model.text_to_m(model.text_model(batch.text_ids, batch.text_mask)).squeeze(-1)
                torch.testing.assert_close(out.predictions["m"], text_only)  # audio/vision start with no say
                batch.audio = batch.audio * 0 + 5.0
                torch.testing.assert_close(model(batch).predictions["m"], text_only)
            else:
                assert not hasattr(model, "text_to_m")


def test_compare_text_only_trains_both_and_prints_them(small_synthetic, tiny_overrides, tmp_path):
    import json

    overrides = tiny_overrides(max_epochs=1)
    overrides["model"]["fusion"] = "concat"  # the published fusion: text alone is trained beside it
    multimodal, text = compare_text_only("dma", small_synthetic, run_dir=tmp_path / "run", overrides=overrides)
    assert (tmp_path / "run" / "seed_1111" / "best").is_dir() and (tmp_path / "run" / "text_only" / "seed_1111" / "best").is_dir()
    assert json.loads((tmp_path / "run" / "text_only" / "seed_1111" / "results.json").read_text())["modalities"] == ["t"]
    table = side_by_side(multimodal, text)
    assert "text only" in table and "MAE" in table
    # fusion=auto with auto_text_stage=own has trained its own text-only run already: nothing trains twice
    own = tiny_overrides(max_epochs=1)
    own["model"]["auto_text_stage"] = "own"
    multimodal, text = compare_text_only("dma", small_synthetic, run_dir=tmp_path / "auto", overrides=own)
    assert not (tmp_path / "auto" / "text_only").exists()
    stage = json.loads((tmp_path / "auto" / "seed_1111" / "results.json").read_text())["text_stage"]
    assert text.per_seed[1111] == stage["metrics"] and (tmp_path / "auto" / "seed_1111" / stage["run_dir"] / "results.json").exists()
    # the default auto's text stage reads the concat encoder: not a text-only run, so one is trained
    compare_text_only("dma", small_synthetic, run_dir=tmp_path / "default", overrides=tiny_overrides(max_epochs=1))
    assert (tmp_path / "default" / "text_only" / "seed_1111" / "results.json").exists()
    table = side_by_side(multimodal, text)
    mae_row = next(line for line in table.splitlines() if line.startswith("| MAE"))
    assert f"{multimodal.summary['MAE']['mean']:.4f}" in mae_row and f"{text.summary['MAE']['mean']:.4f}" in mae_row
    m, s = multimodal.summary, text.summary
    worse = m["MAE"]["mean"] >= s["MAE"]["mean"] or m["Corr"]["mean"] <= s["Corr"]["mean"] or m["Acc-2 (non-0)"]["mean"] <= s["Acc-2 (non-0)"]["mean"]
    assert ("WARNING" in table) == worse
    won = (multimodal.per_seed[1111]["MAE"] < text.per_seed[1111]["MAE"])
    assert mae_row.rstrip(" |").endswith(f"{int(won)}/1")  # per-seed win count


def test_default_modality_dropout_covers_only_the_modalities_the_run_has(small_synthetic, tiny_overrides, tmp_path, capsys):
    """Self-MM and the flagship drop audio/vision by default (a departure from the papers); on
    text alone the default is skipped with a note, a dropout the user set there is refused, and
    '--set train.modality_dropout=none' gives the published training."""
    import json

    import pytest

    import msakit
    from msakit.config import resolve_config
    from msakit.errors import ConfigError

    assert resolve_config("self_mm").train.modality_dropout == "a:0.25,v:0.25"
    assert resolve_config("dma", kind="sims").train.modality_dropout == "a:0.25,v:0.25"
    assert resolve_config("tfn").train.modality_dropout == ""
    assert resolve_config("self_mm", overrides={"train": {"modality_dropout": "none"}}).train.modality_dropout == ""

    overrides = tiny_overrides(max_epochs=1)
    overrides["data"] = {"modalities": "t"}
    result = msakit.train("dma", small_synthetic, seeds=[1], run_dir=tmp_path / "t", overrides=overrides)
    err = capsys.readouterr().err
    assert "default modality dropout of a, v is skipped (train.modality_dropout=none)" in err and "alignment pair(s) a-v" in err
    saved = json.loads((result.run_dir / "seed_1" / "config.json").read_text())
    assert saved["train"]["modality_dropout"] == "" and saved["alignment"]["pairs"] == "none"

    overrides["train"]["modality_dropout"] = "a:0.3"
    with pytest.raises(ConfigError, match=r"train.modality_dropout='a:0.3': the run does not use \['a'\]"):
        msakit.train("self_mm", small_synthetic, seeds=[1], run_dir=tmp_path / "u", overrides=overrides)
