"""Does fusion beat text alone on every metric? Self-MM and the flagship against their own
text-only versions, with diagnostics of where the fused prediction departs from the text.

Settings (``--setting``): ``utterance`` (``utterance_spec``: one vector per utterance and
modality, speakers disjoint across splits with their own audio/vision offsets, many all-zero
visual vectors), ``weak`` (``weak_noisy_spec``) and ``standard`` (``SyntheticSpec``). Each
variant is a model with overrides; ``text only`` rows are the same model on ``t``.

Diagnostics per variant and seed, from the test predictions and the training log:
* every metric of the fused prediction and of each unimodal head;
* the mean prediction against the mean label (a shift of unseen speakers' predictions);
* sign flips: test samples where the fused prediction's sign differs from the text-only model's
  (same seed), and how many of those flips are right;
* the gradient norm of each optimiser group (text, audio, video, rest), mean over epochs.

    python benchmarks/fusion_vs_text.py --setting utterance --epochs 10
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import write_table  # noqa: E402
from real_features import run_variant  # noqa: E402

from msakit.data.synthetic import SyntheticSpec, utterance_spec, weak_noisy_spec, write_synthetic  # noqa: E402
from msakit.metrics import regression_metrics, seeds_won, summarize_seeds  # noqa: E402
from msakit.workflows.text_only import text_only_overrides  # noqa: E402

SETTINGS = {
    "utterance": lambda: utterance_spec(),
    "weak": lambda: weak_noisy_spec(n_train=300, n_valid=300, n_test=600),
    "standard": lambda: SyntheticSpec(),
}
HEADLINE = ("MAE", "Corr", "Acc-2 (non-0)", "Acc-7")


def variants(extra: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    # concat: the published fusion, the default until 2026-12-02 (rows named "default" in result
    # files of before); today's default, model.fusion=auto, is what fusion_choice.py picks per run.
    rows = {
        "self_mm text only": ("self_mm", text_only_overrides({})),
        "self_mm concat": ("self_mm", {"model": {"fusion": "concat"}}),
        "dma concat": ("dma", {"model": {"fusion": "concat"}}),
    }
    for name, overrides in extra.items():
        for model in ("self_mm", "dma"):
            rows[f"{model} {name}"] = (model, overrides)
    return rows


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: (np.array([r[k] for r in rows]) if k == "id" else np.array([float(r[k]) for r in rows])) for k in rows[0]}


def diagnose(seed_dir: Path, text_dir: Path | None) -> dict:
    p = read_predictions(seed_dir / "test_predictions.csv")
    out = {"mean_prediction": float(p["prediction"].mean()), "mean_label": float(p["label"].mean()), "heads": {}}
    for key in ("prediction_t", "prediction_a", "prediction_v"):
        if key in p:
            out["heads"][key[-1]] = {k: float(v) for k, v in regression_metrics(p[key], p["label"], "mosi").items() if k in HEADLINE}
    if text_dir is not None and (text_dir / "test_predictions.csv").exists():
        t = read_predictions(text_dir / "test_predictions.csv")
        assert list(t["id"]) == list(p["id"])
        nonzero = p["label"] != 0
        flipped = (np.sign(p["prediction"]) != np.sign(t["prediction"])) & nonzero
        right = flipped & (np.sign(p["prediction"]) == np.sign(p["label"]))
        out["flips_vs_text"] = {"flipped": int(flipped.sum()), "right": int(right.sum()), "of": int(nonzero.sum())}
    history = [json.loads(line) for line in (seed_dir / "metrics.jsonl").read_text().splitlines()]
    norms = {k[len("grad_norm_"):]: float(np.mean([h[k] for h in history if k in h])) for k in history[0] if k.startswith("grad_norm_")}
    out["grad_norms"] = norms
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=sorted(SETTINGS), required=True)
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--grad-accumulation", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default="{}", help="JSON {name: overrides}: extra variants, each for self_mm and dma")
    parser.add_argument("--only", help="';'-separated variant-name prefixes to run (text only always runs)")
    parser.add_argument("--name", help="result file name (default fusion_vs_text_<setting>)")
    parser.add_argument("--workdir", default="/tmp/msakit-bench-fusion")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    workdir = Path(args.workdir) / args.setting
    data_path = workdir / "data.pkl"
    if not data_path.exists():
        write_synthetic(data_path, SETTINGS[args.setting]())
    rows = {}
    for name, (model, overrides) in variants(json.loads(args.variants)).items():
        if name != "self_mm text only" and args.only and not any(name.startswith(p.strip()) for p in args.only.split(";") if p.strip()):
            continue
        text_runs = None if name == "self_mm text only" else workdir / "runs" / "self_mm_text_only"  # text_first: its text stage
        rows[name] = run_variant(name, model, data_path, overrides, seeds, args.epochs, args.threads, workdir / "runs", args.grad_accumulation, text_runs)
        for seed in seeds:
            seed_dir = workdir / "runs" / name.replace(" ", "_").replace("/", "-") / f"seed_{seed}"
            text_dir = workdir / "runs" / "self_mm_text_only" / f"seed_{seed}"
            rows[name]["diagnostics"][str(seed)].update(diagnose(seed_dir, None if name.endswith("text only") else text_dir))
    text = rows["self_mm text only"]["per_seed"]
    lines = ["| variant | " + " | ".join(HEADLINE) + " | seeds won vs text (MAE/Corr/Acc-2/Acc-7) | mean pred − mean label | flips vs text (right) | head t Acc-2 | grad norm t / a / v / rest |",
             "|---" * (len(HEADLINE) + 6) + "|"]
    for name, row in rows.items():
        s, per_seed, diag = row["summary"], row["per_seed"], row["diagnostics"]
        cells = []
        for m in HEADLINE:
            scale = 100 if m.startswith("Acc") else 1
            cells.append(f"{scale * s[m]['mean']:.{2 if scale == 100 else 4}f} ± {scale * s[m]['std']:.{2 if scale == 100 else 4}f}")
        won = [str(seeds_won(per_seed, text, m)[0]) for m in HEADLINE]
        shift = np.mean([d["mean_prediction"] - d["mean_label"] for d in diag.values()])
        flips = [d.get("flips_vs_text") for d in diag.values()]
        flip_text = "-" if None in flips else f"{np.mean([f['flipped'] for f in flips]):.1f} ({np.mean([f['right'] for f in flips]):.1f})"
        head_t = [d["heads"]["t"]["Acc-2 (non-0)"] for d in diag.values() if "t" in d["heads"]]
        norms = [np.mean([d["grad_norms"].get(g, np.nan) for d in diag.values()]) for g in ("text_decay", "audio", "video", "other")]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'/'.join(won)} of {len(per_seed)} | {shift:+.3f} | {flip_text} | "
                     f"{100 * np.mean(head_t):.2f} | " + " / ".join("-" if np.isnan(n) else f"{n:.2f}" for n in norms) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    name = args.name or f"fusion_vs_text_{args.setting}"
    protocol = (f"setting {args.setting}, seeds {seeds}, max {args.epochs} epochs, grad_accumulation {args.grad_accumulation}, "
                f"selection on valid MAE, test metrics, {args.threads} torch thread(s)")
    write_table(name, protocol, table, {"rows": rows})


if __name__ == "__main__":
    main()
