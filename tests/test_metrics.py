"""Metrics follow the field's (MMSA's) conventions; expected values are worked out by hand."""

import math
import warnings

import numpy as np
import pytest

from msakit.metrics import format_table, primary_metric_names, regression_metrics, summarize_seeds

# Six samples, with a label of exactly 0 (index 2) and labels/predictions at .5 (2.5, -2.5).
LABELS = [2.5, -1.0, 0.0, 1.2, -2.4, 0.3]
PREDS = [2.6, -0.4, 0.5, -0.2, -2.5, 1.4]


def test_mosi_hand_computed_example():
    m = regression_metrics(PREDS, LABELS, "mosi")
    assert list(m) == primary_metric_names("mosi")
    # has-0 (>= 0 vs < 0): only index 3 (label 1.2, pred -0.2) is wrong.
    assert m["Acc-2 (has-0)"] == pytest.approx(5 / 6)
    # Non-negative: support 4, TP 3, FP 0, FN 1 -> F1 6/7. Negative: support 2, TP 2, FP 1 -> 4/5.
    assert m["F1 (has-0)"] == pytest.approx(4 / 6 * 6 / 7 + 2 / 6 * 4 / 5)  # 88/105, not the macro 0.8286
    # non-0: index 2 (label 0) is dropped; of the 5 left only index 3 is wrong.
    assert m["Acc-2 (non-0)"] == pytest.approx(4 / 5)
    # Positive: support 3, TP 2, FN 1 -> 4/5. Non-positive: support 2, TP 2, FP 1 -> 4/5.
    assert m["F1 (non-0)"] == pytest.approx(4 / 5)
    # Acc-7: labels round to [2, -1, 0, 1, -2, 0] (2.5 -> 2, half to even), predictions to
    # [3, 0, 0, 0, -2, 1] (-2.5 -> -2): indices 2 and 4 match. Half-up would make index 0 match too.
    assert m["Acc-7"] == pytest.approx(2 / 6)
    # Acc-5: clipped to [-2, 2]: labels [2, -1, 0, 1, -2, 0], predictions [2, 0, 0, 0, -2, 1].
    assert m["Acc-5"] == pytest.approx(3 / 6)
    assert m["MAE"] == pytest.approx((0.1 + 0.6 + 0.5 + 1.4 + 0.1 + 1.1) / 6)
    assert m["Corr"] == pytest.approx(np.corrcoef(PREDS, LABELS)[0, 1])
    assert all(isinstance(v, float) for v in m.values())


def test_mosi_like_kinds_agree_and_accept_any_shape():
    reference = regression_metrics(PREDS, LABELS, "mosi")
    for kind in ("mosei", "synthetic", "text"):
        assert regression_metrics(PREDS, LABELS, kind) == reference
    column = np.array(PREDS).reshape(-1, 1)
    assert regression_metrics(column, np.array(LABELS), "mosi") == reference


def test_weighted_f1_gives_classes_only_in_predictions_no_weight():
    # All labels are non-negative; one prediction is negative. sklearn: F1 of the
    # non-negative class only (TP 3, FN 1 -> 6/7), weight 1; the negative class weighs 0.
    m = regression_metrics([1.0, -1.0, 2.0, 3.0], [1.0, 2.0, 0.5, 0.0], "mosi")
    assert m["Acc-2 (has-0)"] == pytest.approx(3 / 4)
    assert m["F1 (has-0)"] == pytest.approx(6 / 7)


def test_non0_metrics_are_nan_when_every_label_is_zero():
    m = regression_metrics([0.5, -0.5, 0.0], [0.0, 0.0, 0.0], "mosi")
    assert math.isnan(m["Acc-2 (non-0)"]) and math.isnan(m["F1 (non-0)"])
    assert m["Acc-2 (has-0)"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("kind", ["mosi", "mosei", "sims"])
def test_perfect_predictions(kind):
    labels = np.linspace(-3, 3, 25) if kind != "sims" else np.linspace(-1, 1, 21)
    m = regression_metrics(labels, labels, kind)
    for name, value in m.items():
        if name == "MAE":
            assert value == 0.0
        else:
            assert value == pytest.approx(1.0), name


def test_mosi_clips_only_for_acc5_and_acc7():
    # 4 vs 3.5: both clip to 3 (Acc-7) and 2 (Acc-5), but MAE uses the raw values.
    m = regression_metrics([4.0, -4.0], [3.5, -3.5], "mosi")
    assert m["Acc-7"] == 1.0 and m["Acc-5"] == 1.0
    assert m["MAE"] == pytest.approx(0.5)


def test_sims_hand_computed_example():
    labels = [-0.1, 0.1, 0.7, 0.0, -1.0, 1.0]
    preds = [-0.09, 0.11, 0.71, 0.01, -1.5, 2.0]  # the last two clip to the labels
    m = regression_metrics(preds, labels, "sims")
    assert list(m) == ["Acc-2", "Acc-3", "Acc-5", "F1", "MAE", "Corr"]
    # Acc-2: labels [0, 1, 1, 0, 0, 1], predictions [0, 1, 1, 1, 0, 1].
    assert m["Acc-2"] == pytest.approx(5 / 6)
    # Acc-3: labels [0, 1, 2, 1, 0, 2], predictions [1, 2, 2, 1, 0, 2].
    assert m["Acc-3"] == pytest.approx(4 / 6)
    # Acc-5: labels [1, 2, 3, 2, 0, 4], predictions [2, 3, 4, 2, 0, 4].
    assert m["Acc-5"] == pytest.approx(3 / 6)
    # Class 0: support 3, TP 2, FN 1 -> 4/5; class 1: support 3, TP 3, FP 1 -> 6/7.
    assert m["F1"] == pytest.approx(0.5 * 4 / 5 + 0.5 * 6 / 7)
    assert m["MAE"] == pytest.approx(0.04 / 6)  # clipped; unclipped would be 1.54 / 6
    clipped = np.clip(preds, -1, 1)
    assert m["Corr"] == pytest.approx(np.corrcoef(clipped, labels)[0, 1])


@pytest.mark.parametrize(
    ("edge", "metric"),
    [(0.0, "Acc-2"), (-0.1, "Acc-3"), (0.1, "Acc-3"), (-0.7, "Acc-5"), (-0.1, "Acc-5"), (0.1, "Acc-5"), (0.7, "Acc-5")],
)
def test_sims_bins_include_their_upper_edge(edge, metric):
    # A bin is (lower, upper]: a value just below the edge shares the edge's class, just above does not.
    m = regression_metrics([edge - 1e-6, edge + 1e-6], [edge, edge], "sims")
    assert m[metric] == 0.5


def test_sims_zero_is_not_an_acc3_or_acc5_edge():
    m = regression_metrics([-1e-6, 1e-6], [0.0, 0.0], "sims")
    assert m["Acc-3"] == 1.0 and m["Acc-5"] == 1.0 and m["Acc-2"] == 0.5


@pytest.mark.parametrize("kind", ["mosi", "sims"])
def test_constant_side_gives_zero_corr_without_warnings(kind):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert regression_metrics([0.1, 0.1, 0.1, 0.1], [-0.5, 0.2, 0.4, 0.9], kind)["Corr"] == 0.0
        assert regression_metrics([-0.5, 0.2, 0.4, 0.9], [0.3, 0.3, 0.3, 0.3], kind)["Corr"] == 0.0


def test_sims_corr_is_zero_when_clipping_makes_predictions_constant():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert regression_metrics([1.5, 2.0, 3.0], [-0.5, 0.2, 0.9], "sims")["Corr"] == 0.0


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match=r"predictions and labels.*same length.*3.*2"):
        regression_metrics([0.1, 0.2, 0.3], [0.1, 0.2], "mosi")


@pytest.mark.parametrize("argument", ["predictions", "labels"])
def test_non_finite_values_raise_naming_the_argument(argument):
    good = [0.1, 0.2, 0.3, 0.4]
    bad = [0.1, float("nan"), float("inf"), 0.4]
    args = (bad, good) if argument == "predictions" else (good, bad)
    with pytest.raises(ValueError, match=rf"^{argument} has 2 non-finite"):
        regression_metrics(*args, "mosi")


def test_too_few_samples_and_unknown_kind_raise():
    with pytest.raises(ValueError, match="at least 2 samples"):
        regression_metrics([0.1], [0.2], "mosi")
    with pytest.raises(ValueError, match=r"kind must be one of.*'mosi'.*'sims'.*'imdb'"):
        regression_metrics(PREDS, LABELS, "imdb")
    with pytest.raises(ValueError, match="kind must be one of"):
        primary_metric_names("imdb")


def test_summarize_seeds_mean_and_sample_std():
    results = [
        {"MAE": 0.70, "Corr": 0.60, "Acc-7": 0.40},
        {"MAE": 0.80, "Corr": 0.70},
        {"MAE": 0.90, "Corr": 0.80, "extra": 1.0},
    ]
    summary = summarize_seeds(results)
    assert list(summary) == ["MAE", "Corr"]  # only metrics in every result
    assert summary["MAE"]["mean"] == pytest.approx(0.80)
    assert summary["MAE"]["std"] == pytest.approx(0.10)  # ddof=1; population std would be 0.0816
    assert summary["Corr"]["n"] == 3
    single = summarize_seeds([{"MAE": 0.7}])
    assert single == {"MAE": {"mean": 0.7, "std": 0.0, "n": 1}}
    with pytest.raises(ValueError, match="results is empty"):
        summarize_seeds([])


def test_format_table_shows_percentages_and_mean_std():
    summary = summarize_seeds([{"Acc-2 (has-0)": 0.85, "MAE": 0.7}, {"Acc-2 (has-0)": 0.8592, "MAE": 0.72}])
    table = format_table(summary, title="test metrics")
    lines = table.splitlines()
    assert lines[0] == "test metrics"
    assert "Mean ± Std" in lines[1]
    row = next(line for line in lines if line.startswith("| Acc-2 (has-0)"))
    assert "85.46 ± 0.65" in row and row.rstrip().endswith("| 2 |")
    assert "0.7100 ± 0.0141" in next(line for line in lines if line.startswith("| MAE"))

    single = format_table(regression_metrics(PREDS, LABELS, "mosi"))
    assert "| Acc-7" in single and "33.33" in single and "0.6333" in single
    assert all(name in single for name in primary_metric_names("mosi"))
