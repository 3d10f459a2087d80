"""How much Acc-2 can audio and vision add at all? An upper bound on the synthetic settings.

The synthetic data plant each sample's unimodal labels (``labels["a"]``, ``labels["v"]``). For
each seed's text-only run (from ``benchmarks/fusion_vs_text.py``), this fits on the validation
split the best linear correction of the text prediction from the *true* audio and vision labels,
and scores it on the test split: no model of audio or vision can know more than these labels.
Three forms of the correction: from a and v alone; plus an intercept; plus the text prediction
itself (a recalibration). It reports every metric, and how many test signs each correction
changes and how many of those changes are right.

The oracle says what audio and vision *hold*; the last row says what a simple model can *learn*
of it from the training split: a ridge regression of the text-only run's training residual on
the standardised audio and vision vectors (frames averaged; the penalty chosen on validation
MAE), added to the text prediction. Where that row does not beat text alone on Acc-2, no fused
model can except by seed noise.

    python benchmarks/sign_headroom.py --workdir /work/runs22/w1 --setting weak
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import write_table  # noqa: E402

from msakit.data import load_dataset  # noqa: E402
from msakit.data.standardize import Standardizer  # noqa: E402
from msakit.metrics import regression_metrics  # noqa: E402
from msakit.training.runs import load_run, predict_split  # noqa: E402

KEYS = ("MAE", "Corr", "Acc-2 (non-0)")
FORMS = {
    "a, v": lambda L, p: np.c_[L["a"], L["v"]],
    "a, v, intercept": lambda L, p: np.c_[L["a"], L["v"], np.ones(len(p))],
    "a, v, intercept, text prediction": lambda L, p: np.c_[L["a"], L["v"], np.ones(len(p)), p],
}


PENALTIES = (1.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
LEARNED = "text + ridge(audio, vision vectors)"


def _vectors(split) -> np.ndarray:
    """Each sample's audio and vision frames averaged (padding excluded), side by side."""
    out = []
    for frames, lengths in ((split.audio, split.audio_lengths), (split.vision, split.vision_lengths)):
        frames = np.asarray(frames, dtype=np.float64)
        valid = np.arange(frames.shape[1])[None, :] < lengths[:, None]
        out.append((frames * valid[:, :, None]).sum(1) / lengths[:, None])
    return np.concatenate(out, axis=1)


def learned_correction(dataset, pred: dict[str, np.ndarray]) -> np.ndarray:
    """The test prediction corrected by a ridge fit of the training residual on the audio/vision
    vectors and the text prediction, its penalty chosen on validation MAE."""
    standardizer = Standardizer.fit(dataset["train"], ("a", "v"))
    x = {s: np.c_[_vectors(standardizer.apply(dataset[s])), pred[s]] for s in pred}
    residual = dataset["train"].labels["m"] - pred["train"]
    mean_x, mean_r = x["train"].mean(0), residual.mean()
    centred = x["train"] - mean_x
    best = None
    for penalty in PENALTIES:
        w = np.linalg.solve(centred.T @ centred + penalty * np.eye(centred.shape[1]), centred.T @ (residual - mean_r))
        corrected = {s: pred[s] + (x[s] - mean_x) @ w + mean_r for s in ("valid", "test")}
        mae = float(np.mean(np.abs(corrected["valid"] - dataset["valid"].labels["m"])))
        if best is None or mae < best[0]:
            best = (mae, corrected["test"])
    return best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="the --workdir of fusion_vs_text.py")
    parser.add_argument("--setting", required=True)
    parser.add_argument("--seeds", default="1111,1112,1113")
    args = parser.parse_args()
    root = Path(args.workdir) / args.setting
    data = root / "data.pkl"
    dataset = load_dataset(str(data), "mosi", ("t", "a", "v"))
    rows: dict[str, list[dict]] = {"text alone": [], **{f"text + oracle({form})": [] for form in FORMS}, LEARNED: []}
    for seed in args.seeds.split(","):
        run = root / "runs" / "self_mm_text_only" / f"seed_{seed}"
        loaded = load_run(run, "cpu")
        pred = {split: predict_split(run, str(data), None, split, "cpu", loaded=loaded)[0]["m"] for split in ("train", "valid", "test")}
        y = {split: dataset[split].labels["m"] for split in pred}
        nonzero = y["test"] != 0
        rows["text alone"].append({k: regression_metrics(pred["test"], y["test"], "mosi")[k] for k in KEYS} | {"flips": 0, "right": 0})
        for form, design in FORMS.items():
            weights = np.linalg.lstsq(design(dataset["valid"].labels, pred["valid"]), y["valid"] - pred["valid"], rcond=None)[0]
            corrected = pred["test"] + design(dataset["test"].labels, pred["test"]) @ weights
            flipped = ((corrected > 0) != (pred["test"] > 0)) & nonzero
            right = flipped & ((corrected > 0) == (y["test"] > 0))
            scores = {k: regression_metrics(corrected, y["test"], "mosi")[k] for k in KEYS}
            rows[f"text + oracle({form})"].append(scores | {"flips": int(flipped.sum()), "right": int(right.sum())})
        corrected = learned_correction(dataset, pred)
        flipped = ((corrected > 0) != (pred["test"] > 0)) & nonzero
        right = flipped & ((corrected > 0) == (y["test"] > 0))
        scores = {k: regression_metrics(corrected, y["test"], "mosi")[k] for k in KEYS}
        rows[LEARNED].append(scores | {"flips": int(flipped.sum()), "right": int(right.sum())})
    text = rows["text alone"]
    lines = ["| prediction | MAE | Corr | Acc-2 (non-0) | per seed Acc-2 | signs changed (right) per seed |", "|---|---|---|---|---|---|"]
    for name, per_seed in rows.items():
        mean = {k: float(np.mean([r[k] for r in per_seed])) for k in KEYS}
        acc = " / ".join(f"{100 * r['Acc-2 (non-0)']:.2f}" for r in per_seed)
        flips = "-" if name == "text alone" else " / ".join(f"{r['flips']} ({r['right']})" for r in per_seed)
        lines.append(f"| {name} | {mean['MAE']:.4f} | {mean['Corr']:.4f} | {100 * mean['Acc-2 (non-0)']:.2f} | {acc} | {flips} |")
    table = "\n".join(lines) + "\n"
    print(table)
    protocol = (f"setting {args.setting}, seeds {args.seeds}: the text-only runs of benchmarks/fusion_vs_text.py, corrected by a "
                "least-squares fit (on the validation split) of the planted audio/vision labels, and by a ridge "
                "fit (on the training split) of the audio/vision vectors; test metrics")
    write_table(f"sign_headroom_{args.setting}", protocol, table, {"rows": rows, "text": text})


if __name__ == "__main__":
    main()
