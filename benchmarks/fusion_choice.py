"""Would choosing the fusion per run on validation give a default that never loses? No training:
reads the runs of ``benchmarks/fusion_vs_text.py`` and, per model and seed, keeps whichever of
two variants has the lower best validation MAE (what the trainer selects epochs on), then scores
the kept runs' test metrics against text alone.

    python benchmarks/fusion_choice.py --workdir /work/runs22/w1 --setting weak --variants concat,tfirstP
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_table  # noqa: E402

KEYS = ("MAE", "Corr", "Acc-2 (non-0)")


def read(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="the --workdir of fusion_vs_text.py")
    parser.add_argument("--setting", required=True)
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--variants", default="concat,tfirstP", help="two variant names, as in fusion_vs_text.py's rows")
    parser.add_argument("--name", help="result file name (default fusion_choice_<setting>)")
    args = parser.parse_args()
    runs = Path(args.workdir) / args.setting / "runs"
    first, second = args.variants.split(",")
    seeds = args.seeds.split(",")
    text = [read(runs / "self_mm_text_only" / f"seed_{s}")["metrics"] for s in seeds]
    lines = ["| model | row | MAE | Corr | Acc-2 (non-0) | kept per seed | beats text alone on all three |", "|---|---|---|---|---|---|---|"]
    mean_text = {k: float(np.mean([m[k] for m in text])) for k in KEYS}
    lines.append(f"| - | text alone | {mean_text['MAE']:.4f} | {mean_text['Corr']:.4f} | {100 * mean_text['Acc-2 (non-0)']:.2f} | | |")
    payload = {"text": text, "models": {}}
    for model in ("self_mm", "dma"):
        rows = {first: [], second: [], "chosen on validation": []}
        kept = []
        for s in seeds:
            a, b = read(runs / f"{model}_{first}" / f"seed_{s}"), read(runs / f"{model}_{second}" / f"seed_{s}")
            rows[first].append(a["metrics"])
            rows[second].append(b["metrics"])
            pick, name = (a, first) if a["best_valid_MAE"] <= b["best_valid_MAE"] else (b, second)
            rows["chosen on validation"].append(pick["metrics"])
            kept.append(f"{name} ({a['best_valid_MAE']:.3f} / {b['best_valid_MAE']:.3f})")
        payload["models"][model] = {"rows": rows, "kept": kept}
        for row, per_seed in rows.items():
            mean = {k: float(np.mean([m[k] for m in per_seed])) for k in KEYS}
            wins = mean["MAE"] < mean_text["MAE"] and mean["Corr"] > mean_text["Corr"] and mean["Acc-2 (non-0)"] > mean_text["Acc-2 (non-0)"]
            lines.append(f"| {model} | {row} | {mean['MAE']:.4f} | {mean['Corr']:.4f} | {100 * mean['Acc-2 (non-0)']:.2f} | "
                         f"{', '.join(kept) if row == 'chosen on validation' else ''} | {'yes' if wins else 'no'} |")
    # Per seed: the chosen run (model.fusion=auto, the default since 2026-12-02) against text alone.
    lines += ["", "Per seed, chosen on validation (= `model.fusion=auto`) against text alone (MAE / Corr / non-0 Acc-2):", "",
              "| model | seed | text alone | chosen | kept | wins MAE / Corr / Acc-2 |", "|---|---|---|---|---|---|"]
    for model, entry in payload["models"].items():
        for s, t, c, k in zip(seeds, text, entry["rows"]["chosen on validation"], entry["kept"]):
            cells = [f"{m['MAE']:.4f} / {m['Corr']:.4f} / {100 * m['Acc-2 (non-0)']:.2f}" for m in (t, c)]
            wins = [c["MAE"] < t["MAE"], c["Corr"] > t["Corr"], c["Acc-2 (non-0)"] > t["Acc-2 (non-0)"]]
            lines.append(f"| {model} | {s} | {cells[0]} | {cells[1]} | {k.split(' ')[0]} | {' / '.join('yes' if w else 'no' for w in wins)} |")
    table = "\n".join(lines) + "\n"
    print(table)
    protocol = (f"setting {args.setting}, seeds {args.seeds}: per model and seed, the run of {first} or {second} with the lower best "
                "validation MAE (shown as first / second); test metrics, means over seeds")
    write_table(args.name or f"fusion_choice_{args.setting}", protocol, table, payload)


if __name__ == "__main__":
    main()
