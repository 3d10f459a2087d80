"""Outputs a newcomer reads without decoding them: split sizes (with a warning when a split is too
small to measure anything) from extract and train, one unit per evaluate table, sweep progress
lines with trial k/N and the running best and rounded settings, figure titles that fit, and the
labelled clip set that ``msakit synth --clips`` writes for the tutorial."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from msakit.cli import main
from msakit.metrics import MIN_MEASURABLE_SPLIT, split_sizes


def test_split_sizes_warn_below_the_threshold_only_for_measuring_splits():
    line, warnings = split_sizes({"train": 5, "valid": MIN_MEASURABLE_SPLIT, "test": MIN_MEASURABLE_SPLIT})
    assert line == f"train 5, valid {MIN_MEASURABLE_SPLIT}, test {MIN_MEASURABLE_SPLIT}" and warnings == []  # train is not measured
    _, warnings = split_sizes({"train": 60, "valid": MIN_MEASURABLE_SPLIT - 1, "test": 3})
    assert len(warnings) == 1 and f"valid {MIN_MEASURABLE_SPLIT - 1} and test 3" in warnings[0]
    assert "95% interval" in warnings[0] and str(MIN_MEASURABLE_SPLIT) in warnings[0]  # says why


def test_extract_report_gives_the_split_sizes_and_warns_only_with_labels(tmp_path):
    from msakit.extract.pipeline import ExtractResult

    result = ExtractResult(tmp_path / "f.pkl", tmp_path / "f.extractor.json", ["a"] * 18, splits={"train": 12, "valid": 3, "test": 3},
                           labelled=True)
    report = result.report()
    assert "  splits: train 12, valid 3, test 3" in report.splitlines() and "warning: valid 3 and test 3 sample(s)" in report
    unlabelled = ExtractResult(tmp_path / "f.pkl", tmp_path / "f.extractor.json", ["a"] * 3, splits={"test": 3})
    assert "splits: test 3" in unlabelled.report() and "warning" not in unlabelled.report()  # features for prediction: no metrics


def _tiny_pickle(path: Path, n_valid: int) -> Path:
    from msakit.data.synthetic import SyntheticSpec, write_synthetic

    return write_synthetic(path, SyntheticSpec(n_train=40, n_valid=n_valid, n_test=24, max_audio_frames=24, max_vision_frames=30, seed=1))


def test_train_prints_split_sizes_first_and_warns_on_a_small_split(tmp_path, capsys):
    data = _tiny_pickle(tmp_path / "small_valid.pkl", n_valid=6)
    args = ["train", "--model", "late_fusion", "--data", str(data), "--modalities", "a,v", "--epochs", "1", "--quiet",
            "--run-dir", str(tmp_path / "run")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"note: splits of {data}: train 40, valid 6, test 24 sample(s); modalities a+v" in err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and re.match(r"warning: valid 6 sample\(s\), fewer than 20", warnings[0]) and "test" not in warnings[0]


def test_evaluate_prints_one_unit_per_table(tmp_path, capsys):
    data = _tiny_pickle(tmp_path / "d.pkl", n_valid=24)
    assert main(["train", "--model", "late_fusion", "--data", str(data), "--modalities", "a,v", "--epochs", "1", "--quiet",
                 "--seeds", "1,2", "--run-dir", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(data), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and '"Acc-2' not in out  # no JSON of fractions after a table in %
    per_seed = out[out.index("per seed"):]
    acc = re.search(r"\| Acc-2 \(has-0\) +\| +([\d.]+) +\| +([\d.]+) +\|", per_seed)
    assert acc and all(float(v) > 1.0 for v in acc.groups()), per_seed  # in %, like the summary table
    assert per_seed.count("Accuracies and F1 in %.") == 1
    # robustness's clean row is evaluate's result: the run's standardisation applied (it once scored raw features)
    import msakit
    from msakit.workflows.robustness import robustness

    assert (tmp_path / "run" / "seed_1" / "best" / "standardizer.json").is_file()
    evaluated = msakit.evaluate(tmp_path / "run", data, device="cpu")["summary"]
    payload = robustness(tmp_path / "run", data, grid={"rates": [0.0, 1.0], "missing": "each"}, output_dir=tmp_path / "rob", device="cpu",
                         progress=False)
    for metric in ("MAE", "Corr"):
        assert payload["clean"][metric]["mean"] == pytest.approx(evaluated[metric]["mean"], abs=1e-6), metric


@pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="msakit[sweep] (optuna) is not installed")
def test_sweep_prints_trial_k_of_n_the_running_best_rounded_settings_and_true_epochs(tmp_path, capsys, tiny_bert_dir):
    data = _tiny_pickle(tmp_path / "d.pkl", n_valid=24)
    output = tmp_path / "sweep"
    code = main(["sweep", "--model", "dma", "--data", str(data), "--n-trials", "2", "--epochs", "1", "--no-final", "--sampler-seed", "0",
                 "--output", str(output), "--set", f"model.text_encoder={tiny_bert_dir}", "--set", "train.batch_size=16"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith("trial ")]
    assert [line.split(":")[0] for line in lines] == ["trial 1/2", "trial 2/2"], out
    assert "best so far" in lines[0] and "best so far" in lines[1]
    for number in re.findall(r"\d+\.\d+", " ".join(lines) + out[out.index("best valid MAE"):]):
        assert len(number.split(".")[1]) <= 4, number  # rounded: no 1.2356125459252507
    table = (output / "trials.md").read_text().splitlines()
    header = [c.strip() for c in table[next(i for i, row in enumerate(table) if row.startswith("| number"))].strip("|").split("|")]
    rows = [[c.strip() for c in row.strip("|").split("|")] for row in table if re.match(r"\| \d+ \|", row)]
    assert len(rows) == 2 and all(row[header.index("epochs")] == "1" for row in rows)  # --epochs 1 is 1, fusion=auto or not


def test_robustness_figure_title_fits_in_a_one_column_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from msakit.workflows import robustness as rob

    closed = []
    real_close = plt.close
    payload = {"model": "self_mm_with_a_long_name", "split": "valid", "seeds": [1, 2, 3],
               "clean": {m: {"mean": 0.5, "std": 0.0} for m in ("MAE", "Corr", "Acc-2 (non-0)")},
               "curves": {"missing t": {"kind": "missing", "x": [0, 0.5, 1],
                                        "points": [{"summary": {m: {"mean": 0.5, "std": 0.1} for m in ("MAE", "Corr", "Acc-2 (non-0)")}}] * 3,
                                        "nauc": {m: {"mean": 0.5} for m in ("MAE", "Corr", "Acc-2 (non-0)")}}}}

    def keep(fig):
        closed.append(fig)

    plt.close = keep
    try:
        rob.plot_robustness(payload, tmp_path / "r.png")
    finally:
        plt.close = real_close
    fig = closed[0]
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    box = fig.bbox
    assert box.x0 <= title.x0 and title.x1 <= box.x1 and title.y1 <= box.y1, (title, box)
    assert "mean ± std over 3 seed(s)" in fig._suptitle.get_text().replace("\n", " ")
    real_close(fig)


VIDEO = all(importlib.util.find_spec(m) is not None for m in ("av", "skimage"))


@pytest.mark.skipif(not VIDEO, reason="msakit[video] (av, scikit-image) is not installed")
def test_synth_clips_writes_a_labelled_clip_set_reproducibly_and_keeps_existing_files(tmp_path, capsys):
    import csv

    assert main(["synth", str(tmp_path / "a"), "--clips", "4"]) == 0
    assert main(["synth", str(tmp_path / "b"), "--clips", "4"]) == 0
    with open(tmp_path / "a" / "manifest.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["path"] for r in rows] == [f"clip_{i:03d}.mp4" for i in range(4)] and {r["video_id"] for r in rows} == {"video_000", "video_001"}
    labels = np.array([float(r["label"]) for r in rows])
    assert np.all(np.abs(labels) <= 3) and all(r["text"] for r in rows)
    for name in ["manifest.csv", *(r["path"] for r in rows)]:  # same arguments, same bytes
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    capsys.readouterr()
    before = (tmp_path / "a" / "clip_000.mp4").stat().st_mtime_ns
    assert main(["synth", str(tmp_path / "a"), "--clips", "4"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and (tmp_path / "a" / "clip_000.mp4").stat().st_mtime_ns == before
    assert main(["synth", str(tmp_path / "c"), "--clips", "4", "--aligned"]) == 2
    assert "--aligned shapes the synthetic pickle" in capsys.readouterr().err and not (tmp_path / "c").exists()
    assert main(["synth", str(tmp_path / "d"), "--clips", "1"]) == 2


def test_a_sweep_trial_shows_a_progress_bar_of_its_epochs(tmp_path, monkeypatch, tiny_bert_dir):
    """On a terminal each trial has a bar that ticks once per epoch with the validation MAE
    (recorded here by a stand-in for tqdm; off a terminal tqdm hides it by itself)."""
    import tqdm.auto

    bars = []
    real = tqdm.auto.tqdm

    class Recorder(real):  # every other bar (the trainer's) stays a real, hidden one
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})
            self.ticks, self.postfix, self.closed, self.shown = 0, [], False, kwargs.get("desc", "")
            bars.append(self)

        def update(self, n=1):
            self.ticks += n

        def set_postfix_str(self, text, refresh=True):
            self.postfix.append(text)

        def close(self):
            self.closed = True
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    data = _tiny_pickle(tmp_path / "d.pkl", n_valid=24)
    code = main(["sweep", "--model", "late_fusion", "--data", str(data), "--n-trials", "1", "--epochs", "2", "--no-final",
                 "--sampler-seed", "0", "--output", str(tmp_path / "sweep"), "--set", f"model.text_encoder={tiny_bert_dir}"])
    assert code == 0
    trial_bars = [b for b in bars if str(b.shown).startswith("trial ")]
    assert len(trial_bars) == 1 and trial_bars[0].shown == "trial 1/1"
    bar = trial_bars[0]
    assert bar.total == 2 and bar.ticks == 2 and bar.closed and all(p.startswith("valid MAE ") for p in bar.postfix)
