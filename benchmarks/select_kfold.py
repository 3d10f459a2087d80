"""Single-split selection against ``train.select=kfold:K`` on the same data, scored on a split
neither of them selects on.

* ``mosi``: the real CMU-MOSI transcripts (``../shared/data/mosi_text_ctx``, train and dev folds).
  Single split: ``--valid-videos`` videos of the training fold (drawn once, seed 0) are the
  validation split (as MOSI's own validation fold: 10 speakers), the rest trains. k-fold: the
  whole training fold is dealt into K video-grouped folds. Both are scored on dev, which neither
  reads for any choice (the test fold is held out of this project).
* ``utterance``: the synthetic utterance setting (speakers disjoint across splits). Single split:
  train 600, validation 200 as generated. k-fold: the 800 pooled, in K folds of whole speakers.
  Both scored on its test split.

Every row trains the same model, settings and seeds; only what chooses the epochs (and auto's
candidate) differs. Seconds: wall-clock per run in this process.

    python benchmarks/select_kfold.py --setting mosi --model tfn --folds 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import SHARED_DATA, write_table  # noqa: E402

from msakit.config import resolve_config  # noqa: E402
from msakit.data import FeatureData, load_dataset  # noqa: E402
from msakit.data.folds import video_folds  # noqa: E402
from msakit.data.synthetic import utterance_spec, write_synthetic  # noqa: E402
from msakit.training.trainer import Trainer  # noqa: E402

KEYS = ("Acc-2 (non-0)", "F1 (non-0)", "Acc-7", "MAE", "Corr")


def _split(split, rows, name):
    part = split.subset(rows)
    part.name = name
    return part


def _concat(a, b, name):
    """Two splits as one (rows of ``a`` then ``b``; frames padded to the wider of the two)."""
    joined = dataclasses.replace(a, name=name, ids=a.ids + b.ids,
                                 labels={k: np.concatenate([a.labels[k], b.labels[k]]) for k in a.labels if k in b.labels},
                                 raw_text=None if a.raw_text is None else a.raw_text + b.raw_text)
    for key in ("audio", "vision"):
        x, y = getattr(a, key), getattr(b, key)
        if x is not None:
            width = max(x.shape[1], y.shape[1])

            def pad(z, width=width):
                return np.pad(z, ((0, 0), (0, width - z.shape[1]), (0, 0)))

            joined = dataclasses.replace(joined, **{key: np.concatenate([pad(x), pad(y)]),
                                                     f"{key}_lengths": np.concatenate([getattr(a, f"{key}_lengths"), getattr(b, f"{key}_lengths")])})
    return joined


def datasets(setting: str, work: Path, valid_videos: int) -> tuple[str, FeatureData, FeatureData, str]:
    """(data path for the config, single-split data, k-fold data, scored split's name)."""
    if setting == "mosi":
        path = SHARED_DATA / "mosi_text_ctx"
        if not path.is_dir():
            raise SystemExit(f"{path} is absent: this setting needs the shared MOSI transcripts")
        data = load_dataset(path)
        train, dev = data["train"], data["valid"]
        held = video_folds(train.ids, len({i.split("$_$")[0] for i in train.ids}), seed=0, where="train")[0][:valid_videos]
        held = np.sort(np.concatenate(held))
        rest = np.setdiff1d(np.arange(len(train)), held)
        single = FeatureData(source=str(path), splits={"train": _split(train, rest, "train"), "valid": _split(train, held, "valid"),
                                                       "test": _split(dev, np.arange(len(dev)), "test")})
        kfold = FeatureData(source=str(path), splits={"train": train, "valid": dev, "test": _split(dev, np.arange(len(dev)), "test")})
        return str(path), single, kfold, "dev"
    path = work / "utterance.pkl"
    if not path.exists():
        write_synthetic(path, utterance_spec())
    data = load_dataset(path)
    pooled = _concat(data["train"], data["valid"], "train")
    kfold = FeatureData(source=str(path), splits={"train": pooled, "valid": data["valid"], "test": data["test"]})
    return str(path), data, kfold, "test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=("mosi", "utterance"), required=True)
    parser.add_argument("--model", default="tfn")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--valid-videos", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--name")
    args = parser.parse_args()
    from msakit.config import parse_set_options

    work = Path(args.workdir) / f"{args.setting}_{args.model}"
    work.mkdir(parents=True, exist_ok=True)
    path, single, kfold, scored = datasets(args.setting, work, args.valid_videos)
    rows = {"single split": [], f"kfold:{args.folds}": []}
    seconds = {name: [] for name in rows}
    epochs = {name: [] for name in rows}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name, data, select in (("single split", single, "valid"), (f"kfold:{args.folds}", kfold, f"kfold:{args.folds}")):
            overrides = parse_set_options(args.set)
            overrides.setdefault("train", {}).update(max_epochs=args.epochs, num_threads=args.threads, progress=False, seed=seed, select=select)
            run = work / f"{select.replace(':', '')}_seed_{seed}"
            clock = run.parent / f"{run.name}.seconds"
            if not ((run / "results.json").exists() and clock.exists()):
                shutil.rmtree(run, ignore_errors=True)
                started = time.perf_counter()
                Trainer(resolve_config(args.model, data_path=path, overrides=overrides), run, data=data).fit()
                clock.write_text(f"{time.perf_counter() - started:.3f}\n")
            done = json.loads((run / "results.json").read_text())
            rows[name].append(done["metrics"])
            seconds[name].append(float(clock.read_text()))
            epochs[name].append(done["selection"]["epochs"] if "selection" in done else {"": done["best_epoch"]})
            print(f"{name} seed {seed}: MAE {done['metrics']['MAE']:.4f}  Acc-2 {100 * done['metrics']['Acc-2 (non-0)']:.2f}  "
                  f"epochs {epochs[name][-1]}  {seconds[name][-1]:.0f} s", flush=True)
    lines = [f"| selection | {' | '.join(KEYS)} | epochs chosen (per seed) | seconds per run |", "|---|" + "---|" * (len(KEYS) + 2)]
    for name, per_seed in rows.items():
        cells = []
        for key in KEYS:
            values = np.array([m[key] for m in per_seed]) * (100.0 if key != "MAE" and key != "Corr" else 1.0)
            cells.append(f"{values.mean():.2f} ± {values.std():.2f}" if key not in ("MAE", "Corr") else f"{values.mean():.4f} ± {values.std():.4f}")
        chosen = "; ".join(", ".join(f"{k or 'run'} {v}" for k, v in e.items()) for e in epochs[name])
        lines.append(f"| {name} | {' | '.join(cells)} | {chosen} | {np.mean(seconds[name]):.0f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    where = "the CMU-MOSI transcripts (mosi_text_ctx)" if args.setting == "mosi" else "the synthetic utterance setting"
    protocol = (f"{args.model} on {where}, seeds {args.seeds}, at most {args.epochs} epochs, {args.threads} torch thread(s)"
                + (f", settings {args.set}" if args.set else "") + f"; metrics on {scored}, which neither selection reads; "
                "accuracies and F1 in %, mean ± std over seeds")
    write_table(args.name or f"select_kfold_{args.setting}_{args.model}", protocol, table, {"rows": rows, "seconds": seconds, "epochs": epochs})


if __name__ == "__main__":
    main()
