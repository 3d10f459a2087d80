"""MISA, MAG-BERT and MMIM on the default synthetic data: a short multi-seed check.

Each model with its MOSI defaults (MMSA's config_regression.json) and the packaged MiniLM,
``num_threads = 1``, a few epochs (selection on validation MAE, test metrics). MISA and MMIM
read the default (unaligned) synthetic file; MAG-BERT, which needs word-aligned frames, the same
samples in the aligned_50 layout (``msakit synth PATH --aligned``). The best constant
predictor's test MAE is given for scale.

    python benchmarks/baselines_partB.py --seeds 1111,1112,1113 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's msakit
from common import write_result  # noqa: E402

import msakit  # noqa: E402
from msakit.data import load_dataset, synthetic_path  # noqa: E402
from msakit.data.synthetic import SyntheticSpec, write_synthetic  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--models", default="misa,mmim,mag_bert")
    parser.add_argument("--workdir", default="/tmp/msakit-bench-partB")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    workdir = Path(args.workdir)
    aligned = workdir / "synthetic_aligned_50.pkl"
    if not aligned.exists():
        write_synthetic(aligned, SyntheticSpec(aligned=True))
    unaligned = synthetic_path()
    y = load_dataset(unaligned)["test"].labels["m"]
    rows = {}
    for model in args.models.split(","):
        data = aligned if model == "mag_bert" else unaligned
        overrides = {"train": {"max_epochs": args.epochs, "num_threads": 1, "progress": False}}
        started = time.perf_counter()
        result = msakit.train(model, data, seeds=seeds, run_dir=workdir / model, overrides=overrides, resume=True)
        seconds_per_epoch = []
        for seed in seeds:
            lines = (workdir / model / f"seed_{seed}" / "metrics.jsonl").read_text().splitlines()
            seconds_per_epoch += [json.loads(line)["train_seconds"] for line in lines]
        rows[model] = {
            "data": "synthetic (aligned_50 layout)" if model == "mag_bert" else "synthetic (unaligned)",
            "summary": result.summary,
            "per_seed": {str(k): v for k, v in result.per_seed.items()},
            "train_seconds_per_epoch": float(np.mean(seconds_per_epoch)),
            "wall_seconds": time.perf_counter() - started,
        }
        s = result.summary
        print(f"{model}: MAE {s['MAE']['mean']:.4f} ± {s['MAE']['std']:.4f}, Corr {s['Corr']['mean']:.4f} ± {s['Corr']['std']:.4f}", flush=True)
    write_result(
        "baselines_partB",
        {
            "protocol": f"default synthetic data (600/150/300), seeds {seeds}, max {args.epochs} epochs, MOSI defaults, "
            "packaged MiniLM, 1 thread, selection on valid MAE, test metrics",
            "constant_predictor_test_MAE": float(np.mean(np.abs(y - np.median(y)))),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
