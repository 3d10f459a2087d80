"""What the default fusion costs, and what it keeps: ``model.fusion=auto`` as it is now (its
text_first candidate reads the concat candidate's text encoder, frozen: ``auto_text_stage=concat``)
against auto as it was (``auto_text_stage=own``: text_first fine-tunes its own encoder on text
alone first) and against one concat training, per setting and seed, on one machine in one process.

Per seed two runs are trained:
* ``auto``: today's default; its ``fusion_concat`` candidate is the concat run bit for bit, so
  the concat row (metrics and time) is read from it;
* ``text_first_own``: the old auto's second candidate on its own (text stage on text alone, then
  the correction); the old auto keeps it or concat, whichever has the lower validation MAE, and
  its time is concat's plus this run's. Its text stage is the model's own text-only run: the
  "text alone" row.

Times are wall-clock seconds of each run in this process (set-up, training, validation, test);
the ratio is to the concat candidate of the same seed.

    python benchmarks/fusion_cost.py --settings utterance,weak,standard --workdir /work/runs-cost
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import write_table  # noqa: E402

from msakit.config import resolve_config  # noqa: E402
from msakit.data import load_dataset  # noqa: E402
from msakit.data.synthetic import SyntheticSpec, utterance_spec, weak_noisy_spec, write_synthetic  # noqa: E402
from msakit.training.trainer import Trainer  # noqa: E402

SETTINGS = {  # as in fusion_vs_text.py
    "utterance": lambda: utterance_spec(),
    "weak": lambda: weak_noisy_spec(n_train=300, n_valid=300, n_test=600),
    "standard": lambda: SyntheticSpec(),
}
KEYS = ("MAE", "Corr", "Acc-2 (non-0)", "Acc-7")


def train(run_dir: Path, model: str, data_path: Path, dataset, overrides: dict) -> tuple[dict, float]:
    """The run's results and its wall-clock seconds (a finished run is read, with its recorded time)."""
    done = run_dir / "results.json"
    clock = run_dir.parent / f"{run_dir.name}.seconds"
    if not (done.exists() and clock.exists()):
        shutil.rmtree(run_dir, ignore_errors=True)
        started = time.perf_counter()
        Trainer(resolve_config(model, data_path=str(data_path), overrides=overrides), run_dir, data=dataset).fit()
        clock.write_text(f"{time.perf_counter() - started:.3f}\n")
    return json.loads(done.read_text()), float(clock.read_text())


def fmt(values: list[float], percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    mean, std = scale * float(np.mean(values)), scale * float(np.std(values))
    return f"{mean:.2f} ± {std:.2f}" if percent else f"{mean:.4f} ± {std:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="utterance,weak,standard")
    parser.add_argument("--model", default="self_mm", choices=("self_mm", "dma"))
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--name", help="result file name (default fusion_cost_<model>)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    lines = [f"| setting | row | {' | '.join(KEYS)} | seconds | × concat | kept per seed |", "|---|---|" + "---|" * (len(KEYS) + 3)]
    payload = {"settings": {}}
    for setting in args.settings.split(","):
        work = Path(args.workdir) / setting
        work.mkdir(parents=True, exist_ok=True)
        data_path = work / "data.pkl"
        if not data_path.exists():
            write_synthetic(data_path, SETTINGS[setting]())
        dataset = load_dataset(data_path)
        rows = {name: {"metrics": [], "seconds": [], "kept": []} for name in ("text alone", "concat", "auto before (own text stage)", "auto now (concat's encoder)")}
        for seed in seeds:
            train_overrides = {"max_epochs": args.epochs, "num_threads": args.threads, "progress": False, "seed": seed}
            auto, auto_s = train(work / f"auto_seed_{seed}", args.model, data_path, dataset,
                                 {"model": {"fusion": "auto", "auto_text_stage": "concat"}, "train": train_overrides})
            own, own_s = train(work / f"text_first_own_seed_{seed}", args.model, data_path, dataset,
                               {"model": {"fusion": "text_first", "text_stage": "own"}, "train": train_overrides})
            concat = json.loads((work / f"auto_seed_{seed}" / "fusion_concat" / "results.json").read_text())
            concat_s = auto["fusion"]["candidates"]["concat"]["total_seconds"]
            before = own if own["best_valid_MAE"] < concat["best_valid_MAE"] else concat  # a tie keeps concat, as auto does
            for name, result, seconds, kept in (
                ("text alone", {"metrics": own["text_stage"]["metrics"]}, None, ""),
                ("concat", concat, concat_s, ""),
                ("auto before (own text stage)", before, concat_s + own_s, "text_first" if before is own else "concat"),
                ("auto now (concat's encoder)", auto, auto_s, auto["fusion"]["chosen"]),
            ):
                rows[name]["metrics"].append(result["metrics"])
                rows[name]["seconds"].append(seconds)
                rows[name]["kept"].append(kept)
            print(f"{setting} seed {seed}: concat {concat_s:.0f} s, auto now {auto_s:.0f} s ({auto['fusion']['chosen']}), "
                  f"text_first own {own_s:.0f} s; valid MAE concat {concat['best_valid_MAE']:.4f}, own {own['best_valid_MAE']:.4f}, "
                  f"now's text_first {auto['fusion']['candidates']['text_first']['best_valid_MAE']:.4f}", flush=True)
        for name, row in rows.items():
            cells = [fmt([m[k] for m in row["metrics"]], percent=k.startswith("Acc")) for k in KEYS]
            timed = [s for s in row["seconds"] if s is not None]
            ratio = [s / c for s, c in zip(row["seconds"], rows["concat"]["seconds"])] if timed else []
            lines.append(f"| {setting} | {name} | {' | '.join(cells)} | {f'{np.mean(timed):.0f}' if timed else '–'} | "
                         f"{f'{np.mean(ratio):.2f}' if ratio else '–'} | {', '.join(k for k in row['kept'] if k)} |")
        payload["settings"][setting] = rows
    table = "\n".join(lines) + "\n"
    print(table)
    protocol = (f"{args.model}, seeds {args.seeds}, max {args.epochs} epochs, {args.threads} torch thread(s), synthetic settings of "
                "fusion_vs_text.py; test metrics (accuracies in %), mean ± std over seeds; seconds: wall-clock of each run, mean "
                "over seeds; × concat: the mean over seeds of each seed's ratio to its concat run")
    write_table(args.name or f"fusion_cost_{args.model}", protocol, table, payload)


if __name__ == "__main__":
    main()
