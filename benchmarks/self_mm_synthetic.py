"""Self-MM vs a text-only model on the default synthetic data, and ULGM's label quality.

Both models are Self-MM trained the same way (same config, seeds, epochs); the text-only one
sees only ``t``. ULGM is scored on the training split, where the planted true unimodal labels
are known: the correlation of each generated label ``label[s]`` with the true ``y_s`` against
the correlation of the multimodal label ``y_m`` (ULGM's starting point) with ``y_s``.

    python benchmarks/self_mm_synthetic.py [--seeds 1111,1112,1113] [--epochs 15]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from msakit.config import resolve_config  # noqa: E402
from msakit.data import load_dataset  # noqa: E402
from msakit.metrics import format_table, summarize_seeds  # noqa: E402
from msakit.objectives import ULGM  # noqa: E402
from msakit.training.trainer import Trainer  # noqa: E402


def ulgm_label_quality(trainer: Trainer) -> dict[str, dict[str, float]]:
    ulgm = next(o for o in trainer.objectives if isinstance(o, ULGM))
    train = trainer.data["train"]
    out = {}
    for s in ulgm.modalities:
        truth = train.labels[s]
        generated = ulgm.labels(s).cpu().numpy()
        out[s] = {
            "corr_generated_vs_true": float(np.corrcoef(generated, truth)[0, 1]),
            "corr_multimodal_vs_true": float(np.corrcoef(train.labels["m"], truth)[0, 1]),
            "mae_generated_vs_true": float(np.mean(np.abs(generated - truth))),
            "mae_multimodal_vs_true": float(np.mean(np.abs(train.labels["m"] - truth))),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/msakit-bench-synthetic")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    data = load_dataset("synthetic")
    variants = {"self_mm (t,a,v)": None, "text only (t)": "t"}
    per_variant, ulgm = {}, {}
    for name, modalities in variants.items():
        per_seed = {}
        for seed in seeds:
            overrides = {"train": {"seed": seed, "max_epochs": args.epochs, "num_threads": args.threads, "progress": False}}
            if modalities:
                overrides["data"] = {"modalities": modalities}
            config = resolve_config("self_mm", kind="mosi", overrides=overrides)
            run_dir = Path(args.workdir) / name.split()[0].replace("self_mm", "selfmm") / f"{'t' if modalities else 'tav'}_seed_{seed}"
            if run_dir.exists():
                import shutil

                shutil.rmtree(run_dir)
            trainer = Trainer(config, run_dir, data=data)
            result = trainer.fit()
            per_seed[seed] = result.metrics
            if not modalities:
                ulgm[seed] = ulgm_label_quality(trainer)
            print(f"{name} seed {seed}: MAE {result.metrics['MAE']:.4f} Corr {result.metrics['Corr']:.4f} (best epoch {result.best_epoch})", flush=True)
        per_variant[name] = {"per_seed": per_seed, "summary": summarize_seeds(list(per_seed.values()))}
    ulgm_summary = {
        s: {k: {"mean": float(np.mean([ulgm[seed][s][k] for seed in seeds])), "std": float(np.std([ulgm[seed][s][k] for seed in seeds], ddof=1)) if len(seeds) > 1 else 0.0} for k in ulgm[seeds[0]][s]}
        for s in ("t", "a", "v")
    }
    a, b = per_variant["self_mm (t,a,v)"]["summary"], per_variant["text only (t)"]["summary"]
    verdict = {
        "self_mm_lower_MAE": a["MAE"]["mean"] < b["MAE"]["mean"],
        "self_mm_higher_Corr": a["Corr"]["mean"] > b["Corr"]["mean"],
        "ulgm_beats_multimodal_label_for": [s for s in ("t", "a", "v") if ulgm_summary[s]["corr_generated_vs_true"]["mean"] > ulgm_summary[s]["corr_multimodal_vs_true"]["mean"]],
    }
    for name, v in per_variant.items():
        print(format_table(v["summary"], title=f"{name}, test, {len(seeds)} seeds"))
    print("ULGM:", ulgm_summary)
    print("verdict:", verdict)
    write_result(
        "self_mm_synthetic",
        {
            "protocol": f"default synthetic data (msakit.data.synthetic, SyntheticSpec defaults), Self-MM MOSI defaults, max {args.epochs} epochs, early stop 8, model selected on valid MAE, test metrics; text-only = the same model and settings with modalities=t",
            "seeds": seeds,
            "variants": per_variant,
            "ulgm_train_split": {"per_seed": ulgm, "summary": ulgm_summary},
            "verdict": verdict,
        },
    )


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
