"""Evaluation metrics for multimodal sentiment regression, computed the way MMSA computes them.

Pure numpy; inputs are flattened with ``reshape(-1)``. Accuracies and F1 are fractions in
[0, 1] (``format_table`` shows them as percentages). F1 is always the support-weighted F1
(sklearn's ``average="weighted"``).

MOSI / MOSEI (and "synthetic", "text", which use MOSI's conventions), labels in [-3, 3]:

- ``Acc-2 (has-0)``, ``F1 (has-0)``: all samples; negative (< 0) vs non-negative (>= 0).
- ``Acc-2 (non-0)``, ``F1 (non-0)``: samples whose label is exactly 0 are dropped, then
  positive (> 0) vs non-positive (<= 0). NaN if every label is 0.
- ``Acc-7`` / ``Acc-5``: clip to [-3, 3] / [-2, 2], round with ``np.round`` (half to even),
  and compare the classes.
- ``MAE``, ``Corr`` (Pearson): on the unclipped values.

SIMS, labels in [-1, 1]: predictions and labels are clipped to [-1, 1] first, and MAE and
Corr use the clipped values. Classes come from bins that include their upper edge (the
first bin also includes -1):

- ``Acc-2``: [-1, 0], (0, 1]; ``F1`` is the weighted F1 of this split.
- ``Acc-3``: [-1, -0.1], (-0.1, 0.1], (0.1, 1].
- ``Acc-5``: [-1, -0.7], (-0.7, -0.1], (-0.1, 0.1], (0.1, 0.7], (0.7, 1].

``Corr`` is 0.0 (not NaN, and without a warning) when either side is constant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["bootstrap_standard_errors", "format_table", "primary_metric_names", "regression_metrics", "summarize_seeds"]

_MOSI_LIKE = ("mosi", "mosei", "synthetic", "text")
VALID_KINDS = (*_MOSI_LIKE, "sims")

_MOSI_NAMES = ["Acc-2 (has-0)", "F1 (has-0)", "Acc-2 (non-0)", "F1 (non-0)", "Acc-5", "Acc-7", "MAE", "Corr"]
_SIMS_NAMES = ["Acc-2", "Acc-3", "Acc-5", "F1", "MAE", "Corr"]

# SIMS bin edges, as in MMSA: class i is (edges[i], edges[i + 1]]; -1.01 lets the first bin
# include -1 (values are clipped to [-1, 1] before binning).
_SIMS_EDGES = {
    2: [-1.01, 0.0, 1.01],
    3: [-1.01, -0.1, 0.1, 1.01],
    5: [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01],
}


# ---- public API ---------------------------------------------------------------------------
def primary_metric_names(kind: str) -> list[str]:
    """The metric names ``regression_metrics`` returns for ``kind``, in display order."""
    return list(_SIMS_NAMES if _normalise_kind(kind) == "sims" else _MOSI_NAMES)


def regression_metrics(predictions, labels, kind: str) -> dict[str, float]:
    """The standard metrics of ``kind`` ("mosi", "mosei", "sims", "synthetic", "text").

    Keys are those of ``primary_metric_names(kind)``, in that order; values are Python floats.
    """
    kind = _normalise_kind(kind)
    preds = _as_vector(predictions, "predictions")
    truth = _as_vector(labels, "labels")
    if preds.size != truth.size:
        raise ValueError(f"predictions and labels must have the same length, got {preds.size} and {truth.size}")
    if preds.size < 2:
        raise ValueError(f"need at least 2 samples to compute metrics, got {preds.size}")
    if kind == "sims":
        # Class bins compare in the inputs' own precision, as the reference does on float32
        # tensors: a float32 0.1 lies on the 0.1 edge, but above it once cast to float64.
        return _sims_metrics(preds, truth, _native(predictions), _native(labels))
    return _mosi_metrics(preds, truth)


def bootstrap_standard_errors(predictions, labels, kind: str, groups=None, resamples: int = 1000, seed: int = 0) -> dict:
    """How much each metric of one split would move with another draw of its samples: the
    standard deviation of the metric over ``resamples`` bootstrap resamples (seeded: the same
    inputs give the same numbers). With ``groups`` (e.g. each sample's video), whole groups are
    resampled: utterances of one speaker are not independent, and a split of 229 utterances from
    10 speakers (MOSI's validation fold) measures far less than 229 independent samples would.
    Returns ``{"standard_errors": {metric: se}, "resampled": "videos" | "samples", "units": n}``."""
    preds = _as_vector(predictions, "predictions")
    truth = _as_vector(labels, "labels")
    rng = np.random.default_rng(seed)
    if groups is not None:
        _, unit_of = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        members = [np.flatnonzero(unit_of == u) for u in range(unit_of.max() + 1)]
    else:
        members = [np.array([i]) for i in range(preds.size)]
    grouped = groups is not None and len(members) < preds.size
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        rows = np.concatenate([members[u] for u in rng.integers(0, len(members), len(members))])
        try:
            values = regression_metrics(preds[rows], truth[rows], kind)
        except ValueError:
            continue
        for name, value in values.items():
            if np.isfinite(value):
                draws.setdefault(name, []).append(value)
    return {"standard_errors": {name: float(np.std(v, ddof=1)) for name, v in draws.items() if len(v) > 1},
            "resampled": "videos" if grouped else "samples", "units": len(members), "resamples": resamples}


def summarize_seeds(results: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample std (ddof=1; 0.0 for a single run) of each metric over seeds.

    Only metrics present in every result are kept, in the order of the first result.
    Returns ``{metric: {"mean": ..., "std": ..., "n": ...}}``.
    """
    results = list(results)
    if not results:
        raise ValueError("results is empty: summarize_seeds needs at least one metrics dict")
    common = [name for name in results[0] if all(name in r for r in results[1:])]
    n = len(results)
    summary: dict[str, dict[str, float]] = {}
    for name in common:
        values = np.array([float(r[name]) for r in results], dtype=np.float64)
        std = float(np.std(values, ddof=1)) if n > 1 else 0.0
        summary[name] = {"mean": float(np.mean(values)), "std": std, "n": n}
    return summary


def format_table(summary_or_metrics: Mapping[str, object], title: str | None = None) -> str:
    """A markdown table of one metrics dict, or of a ``summarize_seeds`` summary (mean ± std).

    Accuracies and F1 are shown as percentages with 2 decimals; other metrics with 4.
    """
    rows = list(summary_or_metrics.items())
    is_summary = bool(rows) and all(isinstance(v, Mapping) for _, v in rows)
    lines = [title] if title else []
    if not rows:
        return "\n".join([*lines, "(no metrics)"])

    if is_summary:
        header = ["Metric", "Mean ± Std", "n"]
        body = [
            [name, f"{_format_value(name, s['mean'])} ± {_format_value(name, s['std'])}", str(int(s.get("n", 0)))]
            for name, s in rows
        ]
    else:
        header = ["Metric", "Value"]
        body = [[name, _format_value(name, value)] for name, value in rows]

    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    lines.append(line(header))
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines.extend(line(row) for row in body)
    if any(_is_percent(name) for name, _ in rows):
        lines.append("Accuracies and F1 in %.")
    return "\n".join(lines)


def format_per_seed(per_seed: Mapping[str, Mapping[str, float]], title: str | None = None) -> str:
    """A markdown table with a column per seed, in the units of ``format_table`` (accuracies and
    F1 in %, the rest with 4 decimals), so a command prints one unit per quantity throughout."""
    seeds = list(per_seed)
    names = [n for n in (per_seed[seeds[0]] if seeds else {}) if all(n in per_seed[s] for s in seeds)]
    header = ["Metric", *seeds]
    body = [[name, *(_format_value(name, per_seed[s][name]) for s in seeds)] for name in names]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [title] if title else []
    lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(header, widths)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in body]
    if any(_is_percent(name) for name in names):
        lines.append("Accuracies and F1 in %.")
    return "\n".join(lines)


# ---- MOSI / MOSEI -------------------------------------------------------------------------
def _mosi_metrics(preds: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    has0_preds, has0_truth = preds >= 0, truth >= 0
    nonzero = truth != 0
    if nonzero.any():
        non0_preds, non0_truth = preds[nonzero] > 0, truth[nonzero] > 0
        acc2_non0 = _accuracy(non0_preds, non0_truth)
        f1_non0 = _weighted_f1(non0_truth, non0_preds)
    else:
        acc2_non0 = f1_non0 = math.nan
    return {
        "Acc-2 (has-0)": _accuracy(has0_preds, has0_truth),
        "F1 (has-0)": _weighted_f1(has0_truth, has0_preds),
        "Acc-2 (non-0)": acc2_non0,
        "F1 (non-0)": f1_non0,
        "Acc-5": _rounded_accuracy(preds, truth, 2.0),
        "Acc-7": _rounded_accuracy(preds, truth, 3.0),
        "MAE": _mae(preds, truth),
        "Corr": _pearson(preds, truth),
    }


def _rounded_accuracy(preds: np.ndarray, truth: np.ndarray, bound: float) -> float:
    """Accuracy of ``np.round`` classes after clipping both sides to [-bound, bound]."""
    return _accuracy(np.round(np.clip(preds, -bound, bound)), np.round(np.clip(truth, -bound, bound)))


# ---- SIMS ---------------------------------------------------------------------------------
def _sims_metrics(preds: np.ndarray, truth: np.ndarray, native_preds: np.ndarray | None = None,
                  native_truth: np.ndarray | None = None) -> dict[str, float]:
    preds, truth = np.clip(preds, -1.0, 1.0), np.clip(truth, -1.0, 1.0)
    bin_preds = preds if native_preds is None else np.clip(native_preds, -1.0, 1.0)
    bin_truth = truth if native_truth is None else np.clip(native_truth, -1.0, 1.0)
    classes = {k: (_sims_bins(bin_preds, edges), _sims_bins(bin_truth, edges)) for k, edges in _SIMS_EDGES.items()}
    return {
        "Acc-2": _accuracy(*classes[2]),
        "Acc-3": _accuracy(*classes[3]),
        "Acc-5": _accuracy(*classes[5]),
        "F1": _weighted_f1(classes[2][1], classes[2][0]),
        "MAE": _mae(preds, truth),
        "Corr": _pearson(preds, truth),
    }


def _sims_bins(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Class i where edges[i] < value <= edges[i + 1] (MMSA's loop), each edge taken in the
    values' own dtype (a float32 array compares with float32 edges)."""
    classes = np.zeros(values.shape, dtype=np.int64)
    cast = values.dtype.type
    for i in range(len(edges) - 1):
        classes[(values > cast(edges[i])) & (values <= cast(edges[i + 1]))] = i
    return classes


def _native(values) -> np.ndarray | None:
    """``values`` as a 1-D array in its own floating dtype (float32 stays float32), else None."""
    if isinstance(values, np.ndarray) and values.dtype in (np.float16, np.float32):
        return values.reshape(-1)
    if hasattr(values, "detach") and str(getattr(values, "dtype", "")) in ("torch.float32", "torch.float16"):
        return values.detach().cpu().numpy().reshape(-1)
    return None


# ---- building blocks ----------------------------------------------------------------------
def _accuracy(preds: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(preds == truth))


def _weighted_f1(truth: np.ndarray, preds: np.ndarray) -> float:
    """Support-weighted F1 over the classes present in ``truth`` (sklearn's average="weighted").

    Per class, F1 = 2·TP / (2·TP + FP + FN), which equals 2·P·R / (P + R), and 0 when TP = 0.
    """
    total = 0.0
    for c in np.unique(truth):
        is_true, is_pred = truth == c, preds == c
        tp = int(np.sum(is_true & is_pred))
        fp = int(np.sum(~is_true & is_pred))
        fn = int(np.sum(is_true & ~is_pred))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        total += (tp + fn) / truth.size * f1
    return float(total)


def _mae(preds: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(preds - truth)))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0.0 when either side is constant."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy)))
    if denom == 0.0:  # underflow of tiny deviations
        return 0.0
    return float(np.clip(np.dot(dx, dy) / denom, -1.0, 1.0))


def _normalise_kind(kind: str) -> str:
    key = kind.lower() if isinstance(kind, str) else kind
    if key not in VALID_KINDS:
        raise ValueError(f"kind must be one of {', '.join(repr(k) for k in VALID_KINDS)}; got {kind!r}")
    return key


def _as_vector(values, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be numeric array-like: {exc}") from exc
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValueError(f"{name} has {bad} non-finite value(s) (NaN or inf) out of {array.size}")
    return array


def _is_percent(name: str) -> bool:
    return name.startswith(("Acc", "F1"))


def _format_value(name: str, value: object) -> str:
    value = float(value)  # type: ignore[arg-type]
    if math.isnan(value):
        return "nan"
    return f"{100 * value:.2f}" if _is_percent(name) else f"{value:.4f}"


def higher_is_better(metric: str) -> bool:
    """Every metric here but MAE is better when higher."""
    return metric != "MAE"


def seeds_won(per_seed: Mapping[str, Mapping[str, float]], other: Mapping[str, Mapping[str, float]], metric: str) -> tuple[int, int]:
    """``(won, of)``: in how many of the seeds both have, ``per_seed`` is strictly better than
    ``other`` on ``metric`` (a tie is not a win)."""
    seeds = [s for s in per_seed if s in other]
    up = higher_is_better(metric)
    won = sum(1 for s in seeds if per_seed[s][metric] != other[s][metric] and (per_seed[s][metric] > other[s][metric]) == up)
    return won, len(seeds)



# A split with fewer samples than this cannot measure a model: with 20 samples the 95% interval
# of a correlation of 0.5 already runs from about 0.07 to 0.77 (Fisher z, standard error
# 1/sqrt(n - 3)) and that of a binary accuracy of 70% spans +-20 points (binomial); with fewer,
# a printed Corr 1.0000 or Acc-2 100% says nothing about the model.
MIN_MEASURABLE_SPLIT = 20


def split_sizes(sizes: Mapping[str, int], threshold: int = MIN_MEASURABLE_SPLIT) -> tuple[str, list[str]]:
    """``("train 72, valid 24, test 24", [warning])``: the samples in each split, and a warning
    when a validation or test split holds samples but fewer than ``threshold`` (saying why)."""
    line = ", ".join(f"{name} {count}" for name, count in sizes.items())
    small = [f"{name} {count}" for name, count in sizes.items() if name != "train" and 0 < count < threshold]
    if not small:
        return line, []
    return line, [f"{' and '.join(small)} sample(s), fewer than {threshold}: metrics on so few cannot measure a model (with "
                  f"{threshold}, the 95% interval of a correlation of 0.5 is already 0.07-0.77 and of a 70% accuracy +-20 points); "
                  "give the split(s) more samples (with msakit extract: more clips, or a larger share in --split-fractions)"]
