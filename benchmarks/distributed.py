"""Training over 1 and 2 processes (torchrun, gloo) and extraction on one machine vs a local Ray
cluster, on this machine's CPUs; and a paper estimate of CMU-MOSEI-raw extraction on N machines.

    .venv/bin/python benchmarks/distributed.py [--epochs 3] [--skip-extract]

Training: Self-MM (``fusion=concat``) on a synthetic pickle of 600/150/300 samples with a
randomly initialised 2-layer, 64-wide BERT built here (no download), batch 32; each
configuration is one ``msakit train`` process (``--nproc 2`` for two) timed from start to exit
(wall) and by its own ``train_seconds`` (the epochs alone): 1 process with 1 thread, 1 process
with 2 threads, 2 processes with 1 thread each.
Extraction: the real recordings in shared/data/media (6 GRID videos, 4 speech files), default
settings, fresh output each time: ``--engine local`` with 1 and 2 workers, and ``--engine ray``
(a local cluster started inside the command, one worker per core); rate = seconds of media per
wall-clock second of the whole command (start-up included); Ray's overhead per clip = its
wall time minus the local 2-worker wall time, over the clips.
Writes benchmarks/results/distributed.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import write_table  # noqa: E402

MEDIA = next((p / "shared" / "data" / "media" for p in REPO.parents if (p / "shared" / "data" / "media").is_dir()), None)
MOSEI_RAW_SECONDS = 65 * 3600  # about 23,000 clips, 65 hours


def _bert(directory: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from msakit.data.synthetic import _FILLERS, _LEVELS, _OPENERS, _SUBJECTS

    words = set()
    for phrase in [*_FILLERS, *_OPENERS, *_SUBJECTS, *(w for ws in _LEVELS.values() for w in ws)]:
        words.update(phrase.split())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words), *"abcdefghijklmnopqrstuvwxyz"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # The vocabulary file positionally: transformers 5 ignores a vocab_file= keyword.
    BertTokenizerFast(str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(str(directory))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                         max_position_embeddings=64)).save_pretrained(str(directory))
    return directory


def _run(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def training(work: Path, epochs: int) -> list[dict]:
    from msakit.data.synthetic import SyntheticSpec, write_synthetic

    data = write_synthetic(work / "data.pkl", SyntheticSpec(n_train=600, n_valid=150, n_test=300, seed=0))
    bert = _bert(work / "bert")
    rows = []
    for label, nproc, threads in (("1 process, 1 thread", 1, 1), ("1 process, 2 threads", 1, 2), ("2 processes, 1 thread each", 2, 1)):
        run_dir = work / f"train_{nproc}_{threads}"
        command = [sys.executable, "-m", "msakit.cli", "train", "--model", "self_mm", "--data", str(data), "--run-dir", str(run_dir),
                   "--epochs", str(epochs), "--device", "cpu", "--quiet", f"--set=model.text_encoder={bert}", "--set=model.fusion=concat",
                   "--set=train.batch_size=32", f"--set=train.num_threads={threads}"]
        if nproc > 1:
            command += ["--nproc", str(nproc)]
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(threads))
        wall = _run(command, env)
        results = json.loads((run_dir / "seed_1111" / "results.json").read_text())
        samples = 600 * results["epochs_run"]
        rows.append({"configuration": label, "processes": nproc, "threads_per_process": threads, "wall_s": round(wall, 2),
                     "train_s": round(results["train_seconds"], 2), "train_samples_per_s": round(samples / results["train_seconds"], 1),
                     "test_MAE": round(results["metrics"]["MAE"], 4), "test_Corr": round(results["metrics"]["Corr"], 4)})
        print(rows[-1], flush=True)
    return rows


def extraction(work: Path) -> tuple[list[dict], float]:
    import av

    clips = sorted(p for p in MEDIA.rglob("*") if p.suffix in (".mpg", ".wav", ".flac"))
    seconds = 0.0
    for clip in clips:
        with av.open(str(clip)) as container:
            seconds += float(container.duration or 0) / 1e6
    rows = []
    for label, extra in (("local, 1 worker", ["--workers", "1"]), ("local, 2 workers", ["--workers", "2"]),
                         ("ray, local cluster (2 CPUs)", ["--engine", "ray"])):
        folder = work / f"media_{len(rows)}"
        folder.mkdir()
        for clip in clips:
            (folder / f"{clip.parent.name}_{clip.name}").symlink_to(clip)
        output = work / f"extract_{len(rows)}" / "f.pkl"
        wall = _run([sys.executable, "-m", "msakit.cli", "extract", str(folder), "-o", str(output), "--quiet", *extra],
                    dict(os.environ, PYTHONPATH=str(REPO)))
        rows.append({"engine": label, "clips": len(clips), "media_s": round(seconds, 1), "wall_s": round(wall, 2),
                     "media_s_per_s": round(seconds / wall, 2), "pickle_bytes": output.stat().st_size, "_pickle": output.read_bytes()})
        print({k: v for k, v in rows[-1].items() if k != "_pickle"}, flush=True)
    same = rows[2]["_pickle"] == rows[1]["_pickle"] == rows[0]["_pickle"]
    for row in rows:
        del row["_pickle"]
        row["pickle_identical_to_local"] = same
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--skip-extract", action="store_true")
    args = parser.parse_args()
    payload: dict = {}
    lines = []
    with tempfile.TemporaryDirectory(prefix="msakit-bench-dist-") as temp:
        work = Path(temp)
        payload["training"] = training(work, args.epochs)
        lines += ["| Training (Self-MM, 600 samples x epochs) | wall s | train s | samples/s | test MAE | test Corr |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['configuration']} | {r['wall_s']} | {r['train_s']} | {r['train_samples_per_s']} | {r['test_MAE']} | {r['test_Corr']} |"
                  for r in payload["training"]]
        if not args.skip_extract and MEDIA is not None:
            rows, seconds = extraction(work)
            payload["extraction"] = rows
            local, ray = rows[1], rows[2]
            overhead = (ray["wall_s"] - local["wall_s"]) / ray["clips"]
            payload["ray_overhead_s_per_clip_vs_local_2_workers"] = round(overhead, 2)
            best = max(r["media_s_per_s"] for r in rows)
            payload["mosei_raw_estimate_hours"] = {
                f"{n} machine(s) like this one (2 cores)": round(MOSEI_RAW_SECONDS / (best * n) / 3600, 1) for n in (1, 4, 16, 64)}
            lines += ["", "| Extraction (shared media) | clips | media s | wall s | media s per s | pickle same as local |", "|---|---|---|---|---|---|"]
            lines += [f"| {r['engine']} | {r['clips']} | {r['media_s']} | {r['wall_s']} | {r['media_s_per_s']} | {r['pickle_identical_to_local']} |"
                      for r in rows]
            lines += ["", f"Ray's overhead per clip over the local 2-worker engine (start-up of the cluster included): {overhead:.2f} s.",
                      "", "Estimate for CMU-MOSEI raw (65 h of media) at the best rate measured here, scaling linearly with machines "
                      "(clips are independent; the driver only writes parts): "
                      + ", ".join(f"{k}: {v} h" for k, v in payload["mosei_raw_estimate_hours"].items())]
    protocol = ("Training over 1 and 2 processes (torchrun, gloo) and extraction on one machine vs a local Ray cluster, on this "
                "machine's 2 CPUs, shared with other jobs while measured (timings are noisy; see benchmarks/distributed.py)")
    write_table("distributed", protocol, "\n".join(lines) + "\n", payload)


if __name__ == "__main__":
    main()
