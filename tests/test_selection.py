"""train.select=kfold:K: epochs (and fusion=auto's candidate) chosen on video-grouped folds of
the training split, then one run on all of it; the validation split only reports."""

import json

import numpy as np
import pytest

from msakit.config import resolve_config
from msakit.data.folds import parse_select, video_folds
from msakit.errors import ConfigError, ExistingRunError
from msakit.training.trainer import Trainer


@pytest.fixture(scope="module")
def speakers_synthetic(tmp_path_factory):
    from msakit.data.synthetic import SyntheticSpec, write_synthetic

    path = tmp_path_factory.mktemp("speakers") / "speakers.pkl"
    return write_synthetic(path, SyntheticSpec(n_train=96, n_valid=32, n_test=40, max_audio_frames=24, max_vision_frames=30, seed=3,
                                               clips_per_speaker=8))


def _config(data, tiny_bert_dir, model="late_fusion", select="kfold:3", **model_settings):
    return resolve_config(model, data_path=str(data), overrides={
        "model": {"text_encoder": str(tiny_bert_dir), **model_settings},
        "train": {"max_epochs": 3, "progress": False, "num_threads": 1, "select": select}})


def test_folds_hold_whole_videos_and_refuse_more_folds_than_videos():
    ids = [f"v{v}$_${c}" for v in range(7) for c in range(v + 1)]  # 7 videos of 1..7 clips
    folds, by = video_folds(ids, 3, seed=5, where="train")
    assert by == "videos" and len(folds) == 3
    rows = np.concatenate(folds)
    assert sorted(rows.tolist()) == list(range(len(ids)))  # every row once
    for fold in folds:
        videos = {ids[i].split("$_$")[0] for i in fold}
        assert all(sum(ids[i].startswith(v + "$") for i in fold) == int(v[1:]) + 1 for v in videos)  # whole videos
    assert [f.tolist() for f in video_folds(ids, 3, seed=5, where="train")[0]] == [f.tolist() for f in folds]  # seeded
    assert [f.tolist() for f in video_folds(ids, 3, seed=6, where="train")[0]] != [f.tolist() for f in folds]
    with pytest.raises(ConfigError, match=r"kfold:8: train has only 7 videos; use a K of at most 7"):
        video_folds(ids, 8, seed=5, where="train")
    assert video_folds(["a", "b", "c"], 3, seed=0, where="t")[1] == "samples"
    assert parse_select("valid") is None and parse_select("kfold:5") == 5
    for bad in ("kfold:1", "kfold", "kfold:x", "folds:3"):
        with pytest.raises(ConfigError, match="'valid'.*'kfold:K'"):
            parse_select(bad)


def test_kfold_chooses_the_epochs_on_the_folds_and_never_reads_the_validation_split(speakers_synthetic, tiny_bert_dir, tmp_path):
    run = tmp_path / "run"
    result = Trainer(_config(speakers_synthetic, tiny_bert_dir), run).fit()
    done = json.loads((run / "results.json").read_text())
    chosen = done["selection"]["epochs"][""]
    curve = done["selection"]["mean_valid_MAE"][""]
    assert done["selection"]["grouped_by"] == "videos" and sum(done["selection"]["fold_sizes"]) == 96
    assert chosen == int(np.nanargmin(np.array(curve, dtype=float))) and 1 <= chosen <= 3
    assert result.epochs_run == chosen == result.best_epoch  # trained to the chosen epoch, the last one kept
    for k in (1, 2, 3):  # each fold: a run on the others, its own held-out videos as validation
        fold = json.loads((run / "select" / f"fold_{k}" / "results.json").read_text())
        assert fold["evaluated_split"] == "valid" and not (run / "select" / f"fold_{k}" / "best").exists()
    # The validation split chose nothing: other validation labels, the same model and test scores.
    import pickle

    raw = pickle.loads(speakers_synthetic.read_bytes())
    raw["valid"]["regression_labels"] = np.random.default_rng(0).permutation(raw["valid"]["regression_labels"])
    shuffled = tmp_path / "shuffled.pkl"
    shuffled.write_bytes(pickle.dumps(raw))
    Trainer(_config(shuffled, tiny_bert_dir), tmp_path / "other").fit()
    assert (tmp_path / "other" / "test_predictions.csv").read_text() == (run / "test_predictions.csv").read_text()
    with pytest.raises(ExistingRunError, match="--resume"):
        Trainer(_config(speakers_synthetic, tiny_bert_dir), run).fit()


class _Stop(Exception):
    pass


def test_a_killed_kfold_run_ends_where_an_uninterrupted_one_would(speakers_synthetic, tiny_bert_dir, tmp_path):
    config = _config(speakers_synthetic, tiny_bert_dir, select="kfold:2")
    Trainer(config, tmp_path / "whole").fit()

    def stop(epoch, record):
        raise _Stop

    with pytest.raises(_Stop):  # the folds done, killed in the final run's first epoch
        Trainer(config, tmp_path / "killed").fit(callback=stop)
    Trainer(config, tmp_path / "killed").fit(resume=True)
    assert (tmp_path / "killed" / "test_predictions.csv").read_text() == (tmp_path / "whole" / "test_predictions.csv").read_text()


def test_kfold_makes_fusion_autos_choice_and_trains_only_what_it_needs(speakers_synthetic, tiny_bert_dir, tmp_path):
    run = tmp_path / "auto"
    Trainer(_config(speakers_synthetic, tiny_bert_dir, "self_mm", "kfold:2", fusion="auto"), run).fit()
    done = json.loads((run / "results.json").read_text())
    selection = done["selection"]
    means = selection["candidates_mean_best_valid_MAE"]
    assert selection["choice"] == min(means, key=means.get) == done["fusion"]["chosen"]
    assert set(selection["epochs"]) >= {"fusion_concat", "fusion_text_first", "fusion_text_first/text_stage"}
    concat = json.loads((run / "fusion_concat" / "results.json").read_text())
    assert concat["epochs_run"] == selection["epochs"]["fusion_concat"]
    # concat kept: text_first is not trained on the whole split (it would need concat's encoder, not the reverse)
    assert (run / "fusion_text_first").exists() == (selection["choice"] == "text_first")
