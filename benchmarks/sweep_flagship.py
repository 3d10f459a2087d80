"""A sweep of the flagship's alignment weight λ and aligned feature size, two workers on one study.

Space: ``alignment.weight`` log-uniform in [0.01, 10], ``alignment.align_dim`` in {16, 32, 64}
(the flagship's default space, msakit/workflows/sweep.py). Data: the packaged synthetic dataset
(600/150/300). To fit this machine (2 cores shared by several jobs) each trial is short: audio
+ vision only (the flagship's aligned pair is a-v; no text encoder), ``--epochs`` epochs, one
thread per worker. Two ``msakit sweep --no-final`` workers share one SQLite study; then
``msakit sweep --final-only`` retrains the best settings over five seeds and tests them.
The report (trials table, figures, sweep.json) is copied to benchmarks/results/sweep/; the
trials' run directories stay in a temporary directory.

    python benchmarks/sweep_flagship.py [--trials 24] [--epochs 6]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from common import RESULTS, write_result

    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="msakit-bench-sweep-"))
    output = work / "sweep"
    common = ["--model", "dma", "--data", "synthetic", "--output", str(output), "--n-trials", str(args.trials),
              "--epochs", str(args.epochs), "--sampler-seed", "0", "--set", "data.modalities=a,v", "--set", "train.num_threads=1"]
    cli = [sys.executable, "-m", "msakit.cli", "sweep"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MSAKIT_CACHE": str(work / "cache")}
    started = time.perf_counter()
    workers = [subprocess.Popen(cli + common + ["--no-final"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [w.communicate()[0] for w in workers]
    if any(w.returncode for w in workers):
        sys.exit("a worker failed:\n" + "\n".join(logs))
    search_s = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(cli + common + ["--final-only"], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    final_s = time.perf_counter() - started

    target = RESULTS / "sweep"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("trials.csv", "trials.md", "sweep.json", "history.png", "importances.png"):
        if (output / name).exists():
            shutil.copy(output / name, target / name)
    report = json.loads((output / "sweep.json").read_text())
    workers_seen = sorted({line.split(",")[-2] for line in (output / "trials.csv").read_text().splitlines()[1:]})
    write_result("sweep_flagship", {
        "protocol": __doc__.split("    python")[0].strip(),
        "trials": args.trials,
        "epochs_per_trial": args.epochs,
        "states": report["states"],
        "workers": len(workers_seen),
        "best": report["best"],
        "final": report["final"],
        "wall_s": {"search_two_workers": round(search_s, 1), "final_five_seeds": round(final_s, 1)},
        "report": "benchmarks/results/sweep/",
    })
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
