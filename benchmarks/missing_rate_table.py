"""LNLN's missing-rate table for many models: each model's runs of a ``msakit compare`` evaluated
by ``msakit robustness --incomplete`` (every modality loses words or frames at the same rate,
rates 0 to 0.9 as LNLN reports them), one row per model.

    python benchmarks/missing_rate_table.py --runs-dir RUNS [--runs-dir RUNS2 ...] --models dmd,dlf,confede,lnln,kuda \\
        [--data synthetic] [--model-data mfn=ALIGNED.pkl] [--name missing_rate_synthetic]

``RUNS/<model>/seed_*`` are the compare's runs (``msakit compare --runs-dir RUNS``; with several
``--runs-dir``, the first that holds finished seeds of the model); a model trained on another
layout of the same samples is scored on its own file (``--model-data``, as ``msakit compare``); each
model's curve is written beside the table (``<name>/<model>/robustness.json/.md/.png``); a model
whose curve was already written for the same seeds is reused. Writes
``benchmarks/results/<name>/table.md``, ``table.json`` and ``table.png`` (every model's two
curves in one figure): Acc-2 (non-0) and MAE at each rate, mean over seeds, and the normalised
area under each curve (its mean over the rates).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command_line, write_result  # noqa: E402

RATES = tuple(round(0.1 * i, 1) for i in range(10))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", required=True, action="append")
    parser.add_argument("--models", required=True)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--model-data", action="append", default=[], metavar="MODEL=PATH",
                        help="score MODEL on PATH (the file it was trained on) instead of --data")
    parser.add_argument("--name", default="missing_rate_synthetic")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    from msakit.workflows.robustness import build_grid, robustness

    torch.set_num_threads(args.threads)
    out = RESULTS / args.name
    out.mkdir(parents=True, exist_ok=True)
    model_data = dict(item.split("=", 1) for item in args.model_data)
    rows, skipped = {}, {}
    for model in args.models.split(","):
        run, seeds = None, []
        for runs_dir in args.runs_dir:
            run = Path(runs_dir) / model
            seeds = sorted(p.name for p in run.glob("seed_*") if (p / "results.json").exists())
            if seeds:
                break
        if not seeds:
            skipped[model] = "no finished seed in " + " or ".join(str(Path(d) / model) for d in args.runs_dir)
            continue
        data = model_data.get(model, args.data)
        previous = out / model / "robustness.json"
        if previous.exists() and json.loads(previous.read_text())["seeds"] == seeds:
            payload = json.loads(previous.read_text())
        else:
            modalities = tuple(json.loads((run / seeds[0] / "best" / "model.json").read_text())["input_dims"]["modalities"])
            curves = build_grid(modalities, rates=RATES, missing="none", incomplete=True)
            print(f"[missing-rate] {model}: seeds {seeds}", flush=True)
            payload = robustness(run, data, curves=curves, output_dir=out / model, command=command_line(), device="cpu", progress=False)
        curve = payload["curves"]["incomplete"]
        rows[model] = {
            "seeds": payload["seeds"],
            "runs": str(run),
            "data": str(data),
            "acc2": [p["summary"]["Acc-2 (non-0)"]["mean"] for p in curve["points"]],
            "mae": [p["summary"]["MAE"]["mean"] for p in curve["points"]],
            "nauc": {m: curve["nauc"][m] for m in ("Acc-2 (non-0)", "MAE")},
        }
    table = {"protocol": (f"msakit robustness --incomplete on each model's compare runs ({', '.join(args.runs_dir)}) on {args.data}, test split, "
                          f"rates {list(RATES)} (every modality the model uses loses words or frames at the rate), corruption seed 0"),
             "command": command_line(), "rows": rows, "skipped": skipped}
    write_result(f"{args.name}/table", table)
    lines = [f"# Missing-rate table ({args.data}, LNLN's protocol)", "", table["protocol"] + ".", "",
             "Acc-2 (non-0) in % / MAE at each missing rate, mean over seeds; nAUC = the curve's mean over the rates.", "",
             "| model | " + " | ".join(f"{r:.1f}" for r in RATES) + " | nAUC Acc-2 | nAUC MAE |",
             "|---" * (len(RATES) + 3) + "|"]
    for model, row in sorted(rows.items(), key=lambda kv: -kv[1]["nauc"]["Acc-2 (non-0)"]["mean"]):
        cells = [f"{100 * a:.1f} / {m:.3f}" for a, m in zip(row["acc2"], row["mae"])]
        n = row["nauc"]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {100 * n['Acc-2 (non-0)']['mean']:.2f} ± {100 * n['Acc-2 (non-0)']['std']:.2f}"
                     f" | {n['MAE']['mean']:.4f} ± {n['MAE']['std']:.4f} |")
    others = {m: r["data"] for m, r in rows.items() if r["data"] != str(args.data)}
    if others:
        lines += ["", "Scored on the file each was trained on (the same samples in another layout): "
                  + "; ".join(f"`{m}` on `{d}`" for m, d in others.items()) + "."]
    if skipped:
        lines += ["", "Not in the table: " + "; ".join(f"`{m}` ({why})" for m, why in skipped.items()) + "."]
    lines += ["", "Made with:", "", "    " + table["command"]]
    if rows:
        lines[4:4] = ["![Acc-2 and MAE of every model against the missing rate](table.png)", ""]
        plot(rows, out / "table.png", args.data)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def plot(rows: dict, path: Path, data: str) -> None:
    """Acc-2 (non-0) and MAE against the missing rate, one line per model, best nAUC first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = sorted(rows, key=lambda m: -rows[m]["nauc"]["Acc-2 (non-0)"]["mean"])
    colours = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for i, model in enumerate(order):
        style = dict(color=colours(i % 20), linestyle="-" if i < 10 else "--", marker="o", markersize=3, linewidth=1.4)
        axes[0].plot(RATES, [100 * a for a in rows[model]["acc2"]], label=model, **style)
        axes[1].plot(RATES, rows[model]["mae"], **style)
    for ax, title in zip(axes, ("Acc-2 (non-0), %", "MAE (lower is better)")):
        ax.set_title(title)
        ax.set_xlabel("missing rate (every modality)")
        ax.grid(alpha=0.3)
    fig.legend(loc="center right", fontsize=8, title="best nAUC first")
    fig.suptitle(f"LNLN's missing-rate protocol on {data}: test split, mean over seeds")
    fig.tight_layout(rect=(0, 0, 0.87, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
