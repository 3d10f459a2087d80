"""Self-MM, the flagship and MMMIE with its three ablations, on the default synthetic data.

Every variant: same data, seeds and epoch budget; model selected on validation MAE; test
metrics, mean ± std. The flagship row is read from the alignment ablation's ``a-v`` variant
(``msakit ablate``, same seeds and epochs), which is exactly ``dma``'s default config.

    python benchmarks/model_comparison.py --ablation benchmarks/results/ablation/ablation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command_line, write_result  # noqa: E402

import msakit  # noqa: E402

VARIANTS = {
    "self_mm": ("self_mm", {}),
    "mmmie": ("mmmie", {}),
    "mmmie, α=0 (no InfoNCE)": ("mmmie", {"infonce_weight": 0.0}),
    "mmmie, β=0 (no bottleneck KL)": ("mmmie", {"bottleneck_weight": 0.0}),
    "mmmie, no identity embedding": ("mmmie", {"identity_embedding": False}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ablation", help="ablation.json whose 'a-v' variant is the flagship row")
    parser.add_argument("--workdir", default="/tmp/msakit-bench-models")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {}
    for name, (model, model_overrides) in VARIANTS.items():
        overrides = {"model": dict(model_overrides), "train": {"max_epochs": args.epochs, "num_threads": args.threads, "progress": False}}
        run_dir = Path(args.workdir) / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        result = msakit.train(model, "synthetic", seeds=seeds, run_dir=run_dir, overrides=overrides, resume=True)
        rows[name] = {"model": model, "overrides": model_overrides, "summary": result.summary, "per_seed": {str(k): v for k, v in result.per_seed.items()}}
        print(f"{name}: MAE {result.summary['MAE']['mean']:.4f} ± {result.summary['MAE']['std']:.4f}", flush=True)
    if args.ablation:
        flagship = json.loads(Path(args.ablation).read_text())["variants"]["a-v"]
        rows = {"self_mm": rows.pop("self_mm"), "dma (flagship, a-v)": {"model": "dma", "overrides": {}, "summary": flagship["summary"], "per_seed": flagship["per_seed"]}, **rows}
    metrics = list(next(iter(rows.values()))["summary"])
    lines = ["| model | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name, row in rows.items():
        cells = []
        for m in metrics:
            s = row["summary"][m]
            cells.append(f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}" if m.startswith(("Acc", "F1")) else f"{s['mean']:.4f} ± {s['std']:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    (RESULTS / "model_comparison.md").write_text(
        f"Default synthetic data, test split, mean ± std over seeds {seeds}, max {args.epochs} epochs; accuracies/F1 in %.\n\n"
        + table + f"\nMade with ({args.threads} thread(s) per run; readings in READINGS.md):\n\n    {command_line()}\n"
    )
    write_result("model_comparison", {"protocol": f"default synthetic data, seeds {seeds}, max {args.epochs} epochs, early stop 8, selection on valid MAE, test metrics", "rows": rows})


if __name__ == "__main__":
    main()
