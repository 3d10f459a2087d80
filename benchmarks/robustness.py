"""Robustness to missing modalities on the default synthetic data, with and without training-time
modality dropout, for Self-MM and the flagship (dma).

    python benchmarks/robustness.py --threads 1 --epochs 6

Trains 4 variants x 3 seeds (finished seeds in --workdir are reused), then runs
``msakit.workflows.robustness`` (default grid: each modality missing at rates 0..1, and all modalities
each missing at those rates) on every variant and writes, under benchmarks/results/robustness/:
one directory per variant (robustness.json/.md/.png, as the CLI writes them), and
``summary.json`` / ``summary.md`` / ``summary.png`` comparing the variants.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, command_line, write_result  # noqa: E402

DROPOUT = "t:0.2,a:0.2,v:0.2"
VARIANTS = {
    "self_mm": ("self_mm", ""),
    "self_mm + modality dropout": ("self_mm", DROPOUT),
    "dma": ("dma", ""),
    "dma + modality dropout": ("dma", DROPOUT),
}


def slug(name: str) -> str:
    return name.replace(" + modality dropout", "_md")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--workdir", default="/tmp/msakit-bench-robustness")
    parser.add_argument("--phase", choices=["train", "eval", "all"], default="all")
    parser.add_argument("--models", default="self_mm,dma", help="which models' variant pairs to run")
    args = parser.parse_args()
    models = args.models.split(",")
    for name in [n for n, (m, _) in VARIANTS.items() if m not in models]:
        del VARIANTS[name]
    seeds = [int(s) for s in args.seeds.split(",")]
    import msakit

    workdir = Path(args.workdir)
    if args.phase in ("train", "all"):
        # Seed by seed, so the variants stay paired if the benchmark is stopped early.
        for seed in seeds:
            for name, (model, dropout) in VARIANTS.items():
                overrides = {"train": {"num_threads": args.threads, "max_epochs": args.epochs, "progress": False, "modality_dropout": dropout}}
                print(f"[train] {name} seed {seed}", flush=True)
                msakit.train(model, "synthetic", seeds=[seed], run_dir=workdir / slug(name), overrides=overrides, resume=True)
    if args.phase == "train":
        return
    import torch

    from msakit.workflows.robustness import robustness

    torch.set_num_threads(args.threads)

    out = RESULTS / "robustness"
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, (model, dropout) in VARIANTS.items():
        # Only finished seeds (results.json), linked into one directory per variant.
        finished = sorted(p for p in (workdir / slug(name)).glob("seed_*") if (p / "results.json").exists())
        run = workdir / "finished" / slug(name)
        run.mkdir(parents=True, exist_ok=True)
        for link in run.glob("seed_*"):
            link.unlink()
        for p in finished:
            (run / p.name).symlink_to(p.resolve())
        previous = out / slug(name) / "robustness.json"
        if previous.exists() and json.loads(previous.read_text())["seeds"] == [p.name for p in finished]:
            print(f"[robustness] {name}: reusing {previous}", flush=True)
            results[name] = json.loads(previous.read_text())
            continue
        print(f"[robustness] {name}: seeds {[p.name for p in finished]}", flush=True)
        results[name] = robustness(run, "synthetic", output_dir=out / slug(name), command=command_line(), device="cpu")
    rows = {}
    for name, payload in results.items():
        rows[name] = {
            "model": VARIANTS[name][0],
            "modality_dropout": VARIANTS[name][1],
            "clean": {m: payload["clean"][m] for m in ("MAE", "Acc-2 (non-0)")},
            "nauc": {c: payload["curves"][c]["nauc"] for c in payload["curves"]},
        }
    summary = {
        "protocol": f"default synthetic data, seeds {sorted({s for r in results.values() for s in r['seeds']})}, max {args.epochs} epochs, {args.threads} thread(s) per run; "
        f"modality dropout {DROPOUT}; robustness grid: the default of msakit robustness (corruption seed 0)",
        "absent_convention": next(iter(results.values()))["absent_convention"],
        "variants": rows,
        "planted_reference_MAE": planted_reference(),
    }
    write_result("robustness/summary", summary)
    (out / "summary.md").write_text(summary_markdown(summary, results))
    plot_summary(results, out / "summary.png")


def planted_reference() -> dict:
    """What the planted structure implies: test MAE of the least-squares fit (on train) of the
    multimodal label on the true unimodal labels of the modalities that remain. A perfect reader
    of the remaining modalities could do about this well; it ranks the modalities by how much of
    the label only they carry."""
    import numpy as np

    from msakit.data import load_dataset

    data = load_dataset("synthetic")
    train, test = data["train"], data["test"]
    out = {}
    for removed in ("none", "t", "a", "v", "t+a+v"):
        kept = [m for m in "tav" if m not in removed.split("+")]

        def design(split):
            return np.column_stack([split.labels[m] for m in kept] + [np.ones(len(split))])

        coef, *_ = np.linalg.lstsq(design(train), train.labels["m"], rcond=None)
        out[f"without {removed}" if removed != "none" else "all modalities"] = float(np.abs(design(test) @ coef - test.labels["m"]).mean())
    return out


def summary_markdown(summary: dict, results: dict) -> str:
    curves = list(next(iter(results.values()))["curves"])
    lines = [
        f"Robustness on the default synthetic data ({summary['protocol']}).",
        "",
        "Normalised AUC of test MAE (the curve's mean over missing rates 0..1; lower is better), mean ± std over seeds; "
        "clean = test MAE with nothing removed.",
        "",
        "| variant | clean MAE | " + " | ".join(f"nAUC {c}" for c in curves) + " |",
        "|---|---|" + "|".join("---" for _ in curves) + "|",
    ]
    for name, row in summary["variants"].items():
        clean = row["clean"]["MAE"]
        cells = [name, f"{clean['mean']:.4f} ± {clean['std']:.4f}"]
        cells += [f"{row['nauc'][c]['MAE']['mean']:.4f} ± {row['nauc'][c]['MAE']['std']:.4f}" for c in curves]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "What the planted structure implies (test MAE of a least-squares fit of the label on the true unimodal "
              "labels of the remaining modalities): " + ", ".join(f"{k} {v:.3f}" for k, v in summary["planted_reference_MAE"].items()) + "."]
    lines += ["", f"Absent modality convention: {summary['absent_convention']}.", ""]
    return "\n".join(lines)


def plot_summary(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = list(next(iter(results.values()))["curves"])
    models = sorted({name.replace(" + modality dropout", "") for name in results}, key=["self_mm", "dma"].index)
    fig, axes = plt.subplots(len(models), len(curves), figsize=(3.6 * len(curves), 3.2 * len(models)), squeeze=False, sharey=True)
    for row, model in enumerate(models):
        for col, curve in enumerate(curves):
            ax = axes[row][col]
            for name, style in ((model, "-"), (f"{model} + modality dropout", "--")):
                c = results[name]["curves"][curve]
                x = c["x"]
                mean = [p["summary"]["MAE"]["mean"] for p in c["points"]]
                std = [p["summary"]["MAE"]["std"] for p in c["points"]]
                ax.plot(x, mean, style, marker="o", ms=3, label=name)
                ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
            ax.set_title(f"{model}: {curve}", fontsize=9)
            ax.set_xlabel("missing rate")
            if col == 0:
                ax.set_ylabel("test MAE (lower is better)")
            ax.grid(alpha=0.3)
        axes[row][0].legend(fontsize=7)
    fig.suptitle("Test MAE vs missing rate, mean ± std over seeds: trained without / with modality dropout")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
