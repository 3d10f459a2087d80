"""``train.select=kfold:K``: what early stopping and fusion=auto's choice read when the
validation split is too small to tell epochs apart (MOSI's: 229 utterances of 10 speakers).

The training split's videos are dealt into K folds (msakit/data/folds.py). Fold k trains the
run as configured (every stage, fusion=auto's candidates included) on the other folds, with
fold k as its validation split, in ``RUN/select/fold_<k>``. Each stage's validation curve is
averaged over the folds (up to the shortest); the epoch count with the lowest mean MAE is the
stage's, and auto keeps the candidate with the lowest mean best fold MAE. Then the run itself
trains on the whole training split for exactly those epochs, keeping the last; its validation
split is only scored (``selection`` in results.json says what was chosen from what).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from msakit.data import FeatureData

FOLDS_DIR = "select"


def fold_data(data: FeatureData, valid_rows: np.ndarray, fold: int, folds: int) -> FeatureData:
    """The training split without ``valid_rows`` as ``train``, those rows as ``valid``."""
    train = data["train"]
    rest = np.setdiff1d(np.arange(len(train)), valid_rows)
    splits = {"train": train.subset(rest), "valid": train.subset(valid_rows)}
    splits["valid"].name = "valid"
    return FeatureData(source=f"{data.source} (training split, fold {fold}/{folds})", splits=splits, aligned=data.aligned)


def _curve(run: Path) -> list[float]:
    """Validation MAE per epoch of one (stage) run; index 0 is epoch 0 where the run has one
    (text_first's correction starts at its text stage's prediction)."""
    lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
    curve = [float(json.loads(line)["valid_MAE"]) for line in lines if line.strip()]
    stage = run / "text_stage" / "results.json"
    results = run / "results.json"
    if stage.exists() and results.exists() and json.loads(results.read_text()).get("text_stage") is not None:
        return [float(json.loads(stage.read_text())["best_valid_MAE"])] + curve
    return [float("nan")] + curve  # no epoch 0


def stage_runs(fold: Path) -> list[str]:
    """Paths (relative to a fold's run) of every run that trained epochs: "" and its stages."""
    found = []
    for metrics in sorted(fold.rglob("metrics.jsonl")):
        relative = metrics.parent.relative_to(fold).as_posix()
        if FOLDS_DIR not in relative.split("/"):
            found.append("" if relative == "." else relative)
    return found


def choose(fold_dirs: list[Path], method: str, grouped_by: str, sizes: list[int]) -> dict:
    """Each stage's epoch count (the lowest mean validation MAE over the folds) and, for
    fusion=auto, the kept candidate: what the run on the whole training split trains."""
    epochs, curves = {}, {}
    results = [json.loads((fold / "results.json").read_text()) for fold in fold_dirs]
    auto = all("fusion" in r for r in results)
    for stage in stage_runs(fold_dirs[0]):
        if auto and stage == "":  # fusion=auto's own metrics are its kept candidate's, which may differ by fold
            continue
        per_fold = [_curve(fold / stage if stage else fold) for fold in fold_dirs]
        length = min(len(c) for c in per_fold)
        with warnings.catch_warnings():  # epoch 0 is NaN where the run has none
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.array([c[:length] for c in per_fold], dtype=np.float64), axis=0) if length > 1 else np.array([np.nan])
        if np.all(np.isnan(mean)):
            continue
        best = int(np.nanargmin(mean))  # the first of a tie: the fewest epochs
        epochs[stage], curves[stage] = best, [None if np.isnan(v) else round(float(v), 6) for v in mean]
    choice, candidates = None, {}
    if auto:
        names = list(results[0]["fusion"]["candidates"])
        candidates = {n: float(np.mean([r["fusion"]["candidates"][n]["best_valid_MAE"] for r in results])) for n in names}
        choice = min(names, key=lambda n: candidates[n])  # the first of a tie (concat)
    return {"method": method, "grouped_by": grouped_by, "fold_sizes": sizes, "epochs": epochs, "mean_valid_MAE": curves,
            "choice": choice, "candidates_mean_best_valid_MAE": candidates}


def narrowed(selection: dict | None, prefix: str) -> dict | None:
    """The part of ``selection`` for the stage run at ``prefix`` (its paths made relative to it)."""
    if selection is None:
        return None
    epochs = {key[len(prefix) + 1:] if key != prefix else "": value for key, value in selection["epochs"].items()
              if key == prefix or key.startswith(prefix + "/")}
    return {**selection, "epochs": epochs, "choice": None}
