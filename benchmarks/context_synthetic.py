"""Context on the synthetic utterance setting (``msakit synth --utterance``): speakers of 20 clips,
each with its own sentiment shift (seen in every modality), its own rating bias and its own offset
and gain on audio and vision, disjoint across splits. Each row trains the same model, seeds and
settings; only ``data.context`` / ``data.context_modalities`` differ. Trained on train, selected on
valid by validation MAE, reported on test. Writes ``benchmarks/results/context_synthetic.json``
and ``.md``.

    python benchmarks/context_synthetic.py [--model self_mm] [--rows off,av2,tav2] [--seeds 1111,1112,1113]
                                           [--epochs 10] [--set KEY=VALUE ...]

Rows: ``off`` (each utterance alone), ``avK`` (audio and vision with the mean of K neighbours on
each side), ``tK`` (text with K neighbours' transcripts), ``tavK`` (both).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, write_result  # noqa: E402

import msakit  # noqa: E402
from msakit.config import parse_set_options  # noqa: E402
from msakit.data.synthetic import make_synthetic  # noqa: E402

METRICS = ("Acc-2 (non-0)", "F1 (non-0)", "Acc-7", "MAE", "Corr")


def row_settings(row: str) -> list[str]:
    if row == "off":
        return ["data.context=0"]
    match = re.fullmatch(r"(t|av|tav)(\d+)", row)
    if not match:
        raise SystemExit(f"--rows: {row!r} is not off, avK, tK or tavK")
    return [f"data.context={match.group(2)}", f"data.context_modalities={','.join(match.group(1))}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="self_mm")
    parser.add_argument("--rows", default="off,av2,tav2")
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--workdir", default="/tmp/msakit-bench-context-synth")
    parser.add_argument("--name", default=None, help="result file stem (default context_synthetic[_MODEL])")
    parser.add_argument("--note", default="", help="a line added under the table (e.g. the machine's load while it ran)")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    data = make_synthetic(workdir / "utterance.pkl", utterance=True, overwrite=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {}
    for row in args.rows.split(","):
        overrides = parse_set_options(["train.num_threads=2", "train.progress=false", f"train.max_epochs={args.epochs}",
                                       *row_settings(row), *args.set])
        run_dir = workdir / f"{args.model}_{row}"
        shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        result = msakit.train(args.model, data, seeds=seeds, run_dir=run_dir, overrides=overrides)
        seconds = time.perf_counter() - start
        per_seed = {seed: {m: result.per_seed[seed][m] for m in METRICS} for seed in result.per_seed}
        epochs = {}
        for seed_dir in sorted(run_dir.glob("seed_*")):
            done = json.loads((seed_dir / "results.json").read_text())
            epochs[seed_dir.name] = {"best_epoch": done.get("best_epoch"), "epochs_run": done.get("epochs_run"), "train_seconds": done.get("train_seconds")}
        rows[row] = {"settings": row_settings(row), "per_seed": per_seed, "summary": {m: result.summary[m] for m in METRICS},
                     "seconds": round(seconds, 1), "best_epochs": epochs}
        print(f"{row}: " + ", ".join(f"{m} {result.summary[m]['mean']:.4f}" for m in METRICS) + f" ({seconds:.0f} s)", flush=True)
    name = args.name or ("context_synthetic" if args.model == "self_mm" else f"context_synthetic_{args.model}")
    payload = {
        "protocol": (f"{args.model} on the synthetic utterance setting (msakit synth --utterance: speakers of 20 clips with their own "
                     f"sentiment shift, rating bias and audio/vision offset and gain, disjoint across splits): trained on train, "
                     f"selected on valid by validation MAE, metrics on test; train.max_epochs={args.epochs}; seeds {seeds}; "
                     f"extra settings {args.set or 'none'}; only the context settings differ between rows"),
        "command": "python benchmarks/context_synthetic.py " + shlex.join(sys.argv[1:]),
        "rows": rows,
        "note": args.note,
    }
    write_result(name, payload)
    lines = [f"# {args.model}: each utterance alone vs read with its neighbours (synthetic utterance setting)", "",
             payload["protocol"] + ".", "", "| row | settings | " + " | ".join(METRICS) + " | training time |",
             "|---" * (len(METRICS) + 3) + "|"]
    for row, values in rows.items():
        cells = []
        for m in METRICS:
            s = values["summary"][m]
            cells.append(f"{s['mean'] * 100:.2f} ± {s['std'] * 100:.2f}" if m not in ("MAE", "Corr") else f"{s['mean']:.4f} ± {s['std']:.4f}")
        lines.append(f"| {row} | {' '.join(values['settings'])} | " + " | ".join(cells) + f" | {values['seconds']:.0f} s |")
    lines += ["", "Accuracies and F1 in % (mean ± std over seeds). Per seed: the JSON file beside this one."]
    if args.note:
        lines += ["", args.note]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
