"""Context on the real CMU-MOSI transcripts: each utterance alone (``data.context=0``) against
the same model reading its neighbours of the same video (``data.context=K``).

Data: ``../shared/data/mosi_text_ctx`` (the CMU standard train and dev folds with ``video_id`` and
``clip_id``): trained on train, selected on dev by validation MAE, reported on dev (the test fold
is held out of this project). Packaged all-MiniLM-L6-v2 encoder, fine-tuned or frozen as the model's default is. Each setting runs
the same seeds with the same settings; only ``data.context`` differs. Writes
``benchmarks/results/context_mosi_text.json`` and ``.md`` (per seed and mean ± std, with the
training time of each run).

    python benchmarks/context_mosi_text.py [--model self_mm] [--contexts 0,1,2] [--seeds 1111,1112,1113]
                                           [--epochs 10] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, write_result  # noqa: E402

import msakit  # noqa: E402
from msakit.config import parse_set_options  # noqa: E402

METRICS = ("Acc-2 (non-0)", "F1 (non-0)", "Acc-2 (has-0)", "Acc-7", "MAE", "Corr")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="self_mm")
    parser.add_argument("--contexts", default="0,1,2", help="data.context values to compare (0: off)")
    parser.add_argument("--side", default="both", choices=["both", "past"])
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--workdir", default="/tmp/msakit-bench-context")
    parser.add_argument("--name", default=None, help="result file stem (default context_mosi_text[_MODEL])")
    parser.add_argument("--reuse", action="store_true", help="keep finished seeds in --workdir (same settings) instead of training anew")
    args = parser.parse_args()
    data = SHARED_DATA / "mosi_text_ctx"
    if not data.is_dir():
        print(f"skipped: {data} is absent")
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    contexts = [int(k) for k in args.contexts.split(",")]
    rows = {}
    for k in contexts:
        overrides = parse_set_options(["train.num_threads=2", "train.progress=false", f"train.max_epochs={args.epochs}",
                                       f"data.context={k}", f"data.context_side={args.side}", *args.set])
        run_dir = Path(args.workdir) / f"{args.model}_context{k}_{args.side}"
        import shutil

        if not args.reuse:
            shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        result = msakit.train(args.model, data, kind="mosi", seeds=seeds, run_dir=run_dir, overrides=overrides, reuse=args.reuse)
        seconds = time.perf_counter() - start
        if args.reuse:  # seeds trained earlier: the time their runs recorded (training and validation, each seed)
            seconds = sum((json.loads((d / "results.json").read_text()).get("timings") or {}).get("total_s", 0.0)
                          for d in sorted(run_dir.glob("seed_*")))
        per_seed = {seed: {m: result.per_seed[seed][m] for m in METRICS} for seed in result.per_seed}
        epochs = {}
        for seed_dir in sorted(run_dir.glob("seed_*")):
            done = json.loads((seed_dir / "results.json").read_text())
            epochs[seed_dir.name] = {"best_epoch": done.get("best_epoch"), "epochs_run": done.get("epochs_run"), "train_seconds": done.get("train_seconds")}
        rows[k] = {"per_seed": per_seed, "summary": {m: result.summary[m] for m in METRICS}, "seconds": round(seconds, 1),
                   "best_epochs": epochs}
        print(f"context={k}: " + ", ".join(f"{m} {result.summary[m]['mean']:.4f}" for m in METRICS) + f" ({seconds:.0f} s)", flush=True)
    name = args.name or ("context_mosi_text" if args.model == "self_mm" else f"context_mosi_text_{args.model}")
    from msakit.models import get_model_class

    finetuned = getattr(get_model_class(args.model).config_class(), "text_finetune", True)
    encoder_use = "fine-tuned" if finetuned else "frozen (the model's default: a fixed feature extractor)"
    payload = {
        "protocol": (f"{args.model} on mosi_text_ctx (CMU-MOSI transcripts, standard folds): trained on train, selected on dev by "
                     f"validation MAE, metrics on dev; packaged all-MiniLM-L6-v2 {encoder_use}; train.max_epochs={args.epochs}; "
                     f"data.context_side={args.side}; " + "".join(f"{item}; " for item in args.set) + f"seeds {seeds}; only data.context differs between rows"),
        "command": "python benchmarks/context_mosi_text.py " + shlex.join(sys.argv[1:]),
        "rows": {str(k): v for k, v in rows.items()},
    }
    write_result(name, payload)
    lines = [f"# {args.model}: each utterance alone vs read with its neighbours (CMU-MOSI dev)", "", payload["protocol"] + ".", "",
             "| data.context | " + " | ".join(METRICS) + " | training time |", "|---" * (len(METRICS) + 2) + "|"]
    for k, row in rows.items():
        cells = []
        for m in METRICS:
            s = row["summary"][m]
            scale = 100 if m not in ("MAE", "Corr") else 1
            cells.append(f"{s['mean'] * scale:.2f} ± {s['std'] * scale:.2f}" if scale == 100 else f"{s['mean']:.4f} ± {s['std']:.4f}")
        lines.append(f"| {k} | " + " | ".join(cells) + f" | {row['seconds']:.0f} s |")
    lines += ["", "Accuracies and F1 in % (mean ± std over seeds). Per seed: the JSON file beside this one."]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
