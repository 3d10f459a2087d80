"""Raw-scale and weak/noisy audio-vision features: does adding modalities help or hurt?

Two parts, each over seeds, short epochs, one process, ``--threads`` torch threads:

* ``scaling``: Self-MM (defaults) on the synthetic data with unit-scale features, and on the
  same data in raw extractor units (``raw_scale=True``) without standardisation and with it
  (the default).
* ``weak``: the weak/noisy setting (``weak_noisy_spec``): text alone, Self-MM and the flagship
  (``dma``) in their published form (concat fusion, no modality dropout) and with msakit's
  defaults (modality dropout of audio and vision, 0.25 each).
* ``weak-alternatives``: the same rows plus the other recipes tried (text-residual fusion,
  stronger modality dropout, both together).

Every run also records diagnostics: the gradient norm of each optimiser group (text encoder,
audio, video, the rest) averaged per epoch, train loss and validation MAE per epoch
(overfitting curves), and the test MAE/Corr of each unimodal head against the label.

    python benchmarks/real_features.py --part scaling --epochs 10
    python benchmarks/real_features.py --part weak --epochs 10
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's msakit, not an installed one
from common import write_table  # noqa: E402

from msakit.workflows.text_only import text_only_overrides  # noqa: E402
from msakit.config import resolve_config  # noqa: E402
from msakit.data import load_dataset  # noqa: E402
from msakit.data.synthetic import SyntheticSpec, weak_noisy_spec, write_synthetic  # noqa: E402
from msakit.metrics import summarize_seeds  # noqa: E402
from msakit.training.trainer import Trainer  # noqa: E402

# Validation MAE jumps from epoch to epoch in these short runs: validation and test splits
# larger than the training split keep selection and scoring noise below the differences measured.
SIZE = dict(n_train=300, n_valid=300, n_test=600)


class DiagnosingTrainer(Trainer):
    """The shared trainer, plus the gradient norm of each optimiser group before each step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.grad_norms: dict[str, list[float]] = {}
        step = self.optimizer.step

        def recording_step(*a, **k):
            for group in self.optimizer.param_groups:
                grads = [p.grad.detach().flatten() for p in group["params"] if p.grad is not None]
                if grads:
                    self.grad_norms.setdefault(group.get("name", "?"), []).append(float(torch.cat(grads).norm()))
            return step(*a, **k)

        self.optimizer.step = recording_step

    def train_epoch(self, epoch):
        self.grad_norms = {}
        record = super().train_epoch(epoch)
        record.update({f"grad_norm_{k}": float(np.mean(v)) for k, v in self.grad_norms.items()})
        return record


def unimodal_scores(csv_path: Path) -> dict[str, dict[str, float]]:
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    label = np.array([float(r["label"]) for r in rows])
    out = {}
    for key in ("prediction", "prediction_t", "prediction_a", "prediction_v"):
        if key in rows[0]:
            p = np.array([float(r[key]) for r in rows])
            out[key.replace("prediction_", "head_") if "_" in key else "head_m"] = {
                "MAE": float(np.abs(p - label).mean()), "Corr": float(np.corrcoef(p, label)[0, 1]) if p.std() > 0 else 0.0}
    return out


def seed_text_stage(trainer, seed_dir: Path, text_dir: Path) -> bool:
    """``model.fusion=text_first``: put the finished text-only run ``text_dir`` (the same seed) in
    as the run's text stage instead of training it again. The text stage is that run bit for bit
    (``tests/test_text_first.py``); its config is written as the stage's, which the trainer checks."""
    import shutil

    if not trainer.model.needs_text_stage() or not (text_dir / "best").exists() or (seed_dir / "text_stage").exists():
        return False
    shutil.copytree(text_dir, seed_dir / "text_stage", ignore=shutil.ignore_patterns("last.pt", "summary.json"))
    (seed_dir / "text_stage" / "config.json").write_text(json.dumps(trainer.text_stage_config().to_dict(), indent=2))
    return True


def run_variant(name, model, data_path, overrides, seeds, epochs, threads, workdir, grad_accumulation, text_runs: Path | None = None):
    overrides = {k: dict(v) for k, v in overrides.items()}
    overrides.setdefault("train", {}).update(max_epochs=epochs, num_threads=threads, progress=False, grad_accumulation=grad_accumulation)
    dataset = load_dataset(data_path)
    per_seed, diagnostics = {}, {}
    for seed in seeds:
        overrides["train"]["seed"] = seed
        seed_dir = Path(workdir) / name.replace(" ", "_").replace("/", "-") / f"seed_{seed}"
        if (seed_dir / "results.json").exists():
            result = json.loads((seed_dir / "results.json").read_text())
        else:
            if seed_dir.exists():
                import shutil

                shutil.rmtree(seed_dir)
            config = resolve_config(model, data_path=str(data_path), overrides=overrides)
            trainer = DiagnosingTrainer(config, seed_dir, data=dataset)
            if text_runs is not None and seed_text_stage(trainer, seed_dir, Path(text_runs) / f"seed_{seed}"):
                print(f"  {name} seed {seed}: text stage taken from {Path(text_runs) / f'seed_{seed}'}", flush=True)
            trainer.fit()
            result = json.loads((seed_dir / "results.json").read_text())
        history = [json.loads(line) for line in (seed_dir / "metrics.jsonl").read_text().splitlines()]
        per_seed[str(seed)] = result["metrics"]
        diagnostics[str(seed)] = {
            "best_epoch": result["best_epoch"],
            "curves": [{k: v for k, v in h.items() if k in ("epoch", "train_loss", "train_l1_m", "valid_MAE", "valid_Corr") or k.startswith("grad_norm_")} for h in history],
            "test_heads": unimodal_scores(seed_dir / "test_predictions.csv"),
        }
        print(f"  {name} seed {seed}: MAE {result['metrics']['MAE']:.4f} Corr {result['metrics']['Corr']:.4f}", flush=True)
    summary = summarize_seeds(list(per_seed.values()))
    print(f"{name}: MAE {summary['MAE']['mean']:.4f} ± {summary['MAE']['std']:.4f}  Corr {summary['Corr']['mean']:.4f} ± {summary['Corr']['std']:.4f}", flush=True)
    return {"model": model, "data": str(data_path), "overrides": overrides, "summary": summary, "per_seed": per_seed, "diagnostics": diagnostics}


def variants(part: str, data_dir: Path, spec_changes: dict | None = None):
    if part == "scaling":
        unit = write_synthetic(data_dir / "unit.pkl", SyntheticSpec(**SIZE))
        raw = write_synthetic(data_dir / "raw.pkl", SyntheticSpec(raw_scale=True, **SIZE))
        return {
            "raw-scale, no standardisation": ("self_mm", raw, {"data": {"standardize": False}}),
            "raw-scale, standardised (default)": ("self_mm", raw, {}),
            "unit-scale (default)": ("self_mm", unit, {}),
        }
    weak = write_synthetic(data_dir / "weak.pkl", weak_noisy_spec(**{**SIZE, **(spec_changes or {})}))
    published = {"model": {"fusion": "concat"}, "train": {"modality_dropout": "none"}}
    rows = {
        "text only (self_mm = dma on t)": ("self_mm", weak, text_only_overrides({})),
        "self_mm, published (concat, no modality dropout)": ("self_mm", weak, published),
        "self_mm, default (modality dropout a,v 0.25)": ("self_mm", weak, {}),
        "dma, published (concat, no modality dropout)": ("dma", weak, published),
        "dma, default (modality dropout a,v 0.25)": ("dma", weak, {}),
        # The default before ULGM skipped withheld modalities (issue 18): the published ULGM update.
        "self_mm, default with published ULGM (ulgm_skip_absent=false)": ("self_mm", weak, {"model": {"ulgm_skip_absent": False}}),
        "dma, default with published ULGM (ulgm_skip_absent=false)": ("dma", weak, {"model": {"ulgm_skip_absent": False}}),
    }
    if part == "weak-alternatives":  # other recipes tried (benchmarks/results/READINGS.md)
        for model in ("self_mm", "dma"):
            rows[f"{model}, text_residual fusion"] = (model, weak, {"model": {"fusion": "text_residual"}, "train": {"modality_dropout": "none"}})
            rows[f"{model}, modality dropout a,v 0.5"] = (model, weak, {"train": {"modality_dropout": "a:0.5,v:0.5"}})
            rows[f"{model}, text_residual + modality dropout a,v 0.25"] = (model, weak, {"model": {"fusion": "text_residual"}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["scaling", "weak", "weak-alternatives"], required=True)
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--grad-accumulation", type=int, default=1, help="1: an optimiser step per batch (more steps in few epochs)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", help="';'-separated variant-name prefixes to run")
    parser.add_argument("--spec", default="{}", help="JSON: changes to weak_noisy_spec (e.g. '{\"frame_signal\": 0.15}')")
    parser.add_argument("--name", help="result file name (default real_features_<part>)")
    parser.add_argument("--workdir", default="/tmp/msakit-bench-real-features")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    workdir = Path(args.workdir) / args.part
    rows = {}
    for name, (model, data_path, overrides) in variants(args.part, workdir / "data", json.loads(args.spec)).items():
        if args.only and not any(name.startswith(p.strip()) for p in args.only.split(";") if p.strip()):
            continue
        rows[name] = run_variant(name, model, data_path, overrides, seeds, args.epochs, args.threads, workdir / "runs", args.grad_accumulation)
    lines = ["| variant | MAE | Corr | Acc-2 (non-0) | best epochs | test Corr of heads t / a / v |", "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        s = row["summary"]
        heads = []
        for h in ("head_t", "head_a", "head_v"):
            vals = [d["test_heads"][h]["Corr"] for d in row["diagnostics"].values() if h in d["test_heads"]]
            heads.append(f"{np.mean(vals):.3f}" if vals else "-")
        best = ",".join(str(d["best_epoch"]) for d in row["diagnostics"].values())
        lines.append(f"| {name} | {s['MAE']['mean']:.4f} ± {s['MAE']['std']:.4f} | {s['Corr']['mean']:.4f} ± {s['Corr']['std']:.4f} | "
                     f"{100 * s['Acc-2 (non-0)']['mean']:.2f} ± {100 * s['Acc-2 (non-0)']['std']:.2f} | {best} | {' / '.join(heads)} |")
    table = "\n".join(lines) + "\n"
    print(table)
    name = args.name or f"real_features_{args.part}"
    protocol = (f"synthetic {SIZE} ({'SyntheticSpec' if args.part == 'scaling' else 'weak_noisy_spec'}), seeds {seeds}, max {args.epochs} epochs, "
                f"grad_accumulation {args.grad_accumulation}, early stop 8, selection on valid MAE, test metrics, {args.threads} torch thread(s)")
    write_table(name, protocol, table, {"rows": rows})


if __name__ == "__main__":
    main()
