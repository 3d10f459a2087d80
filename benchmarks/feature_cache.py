"""Startup of a run on a MOSEI-shaped feature pickle: parsed every time vs the memory-mapped cache.

File: MOSEI's shape (16326/1871/4659 samples, audio 500x74, vision 500x35, variable lengths,
zero padding after each clip's length, raw text, labels in [-3, 3]) scaled by ``--scale``
(sample counts only; every per-sample shape is MOSEI's). The full file is ~5 GB and pickling
it needs about twice that in memory; this machine (2 cores, 23 GB shared by several jobs)
runs it at ``--scale 0.25`` by default (~1.3 GB).

Phases, each in a fresh process (so peak RSS and timings are per run):
- ``pickle``: ``MSAKIT_FEATURE_CACHE=0``: unpickle + validate, then the first batch.
- ``first``: cache on, empty cache: unpickle + validate + write the cache, then the first batch.
- ``second``/``third``: cache on, warm: open the memmaps, then the first batch.
Each reports time to the first training batch (load + BatchBuilder + one batch of 32),
peak RSS (``VmHWM``: file-backed pages touched count too) and anonymous RSS after the
first batch (``RssAnon``: memory the process owns), then one full shuffled epoch of batch
building (the data side of an epoch; the model's compute is the same for both sources).

    python benchmarks/feature_cache.py [--scale 0.25]
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MOSEI = {"train": 16326, "valid": 1871, "test": 4659}


def make_file(path: Path, scale: float, seed: int = 0) -> dict:
    from msakit.data.mmsa import write_mmsa_pickle

    rng = np.random.default_rng(seed)
    data = {}
    for name, full in MOSEI.items():
        n = max(8, int(round(full * scale)))
        split = {"id": [f"{name}_{i}" for i in range(n)], "raw_text": [f"clip {i} says something" for i in range(n)]}
        for key, dim in (("audio", 74), ("vision", 35)):
            lengths = rng.integers(20, 501, size=n)
            array = np.zeros((n, 500, dim), dtype=np.float32)
            for i, length in enumerate(lengths):
                array[i, :length] = rng.standard_normal((length, dim), dtype=np.float32)
            split[key], split[f"{key}_lengths"] = array, lengths
        split["regression_labels"] = rng.uniform(-3, 3, size=n).astype(np.float32)
        data[name] = split
    write_mmsa_pickle(path, data)
    return {name: len(split["id"]) for name, split in data.items()}


def status_mb(key: str) -> float:
    """A line of /proc/self/status in MB: ``VmHWM`` (peak RSS of this process since exec;
    ``ru_maxrss`` would carry the parent's peak over exec) or ``RssAnon``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def train_phase(path: str, rows: int) -> dict:
    """Two training epochs of Self-MM (audio + vision, batch 32, 1 thread) on the first ``rows``
    train clips, from whichever source the environment selects (pickle or cache)."""
    import dataclasses
    import tempfile

    import torch

    torch.set_num_threads(1)
    from msakit.config import resolve_config
    from msakit.data import load_dataset
    from msakit.training.trainer import Trainer

    data = load_dataset(path, "mosei", ("a", "v"))
    train = data["train"]
    cut = {f: (None if getattr(train, f) is None else getattr(train, f)[:rows]) for f in ("audio", "audio_lengths", "vision", "vision_lengths")}
    data.splits["train"] = dataclasses.replace(train, ids=train.ids[:rows], labels={k: v[:rows] for k, v in train.labels.items()}, raw_text=None, **cut)
    config = resolve_config("self_mm", kind="mosei", data_path=path, overrides={"data": {"modalities": "a,v"}, "train": {"batch_size": 32, "num_threads": 1, "progress": False}})
    trainer = Trainer(config, tempfile.mkdtemp(), data=data)
    # Epoch 1 from the cache also pays the first touch of each page (the pickle paid that in
    # its load); epoch 2 is the steady state.
    epochs = [trainer.train_epoch(e) for e in (1, 2)]
    return {"epoch_s": [round(e["train_seconds"], 2) for e in epochs], "train_samples_per_s": [round(e["train_samples_per_s"], 1) for e in epochs],
            "memmapped": type(data["train"].audio).__name__ == "memmap"}


def phase(path: str) -> dict:
    import torch

    torch.set_num_threads(1)
    from msakit.data import load_dataset
    from msakit.data.batching import BatchBuilder

    started = time.perf_counter()
    data = load_dataset(path, "mosei", ("a", "v"))
    loaded = time.perf_counter()
    builder = BatchBuilder(data["train"], ("a", "v"))
    batches = builder.batches(32, shuffle=True, seed=1, epoch=1)
    next(batches)
    first = time.perf_counter()
    anon = status_mb("RssAnon")
    peak_at_first = status_mb("VmHWM")
    count = 1
    for _ in batches:
        count += 1
    epoch = time.perf_counter() - first
    return {
        "load_s": round(loaded - started, 3),
        "time_to_first_batch_s": round(first - started, 3),
        "peak_rss_at_first_batch_mb": round(peak_at_first, 1),
        "rss_anon_at_first_batch_mb": round(anon, 1),
        "epoch_batching_s": round(epoch, 3),
        "epoch_batches": count,
        "batches_per_s": round(count / epoch, 1),
        "peak_rss_after_epoch_mb": round(status_mb("VmHWM"), 1),  # includes the memmap pages the epoch touched (page cache, reclaimable)
        "rss_anon_after_epoch_mb": round(status_mb("RssAnon"), 1),
        "memmapped": type(data["train"].audio).__name__ == "memmap",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--train-rows", type=int, default=512, help="train clips in the training-epoch comparison (0: skip it)")
    parser.add_argument("--phase-of", help=argparse.SUPPRESS)
    parser.add_argument("--train-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase_of:
        print(json.dumps(phase(args.phase_of)))
        return
    if args.train_of:
        print(json.dumps(train_phase(args.train_of, args.train_rows)))
        return

    from common import write_result

    work = Path(tempfile.mkdtemp(prefix="msakit-bench-cache-", dir=os.environ.get("BENCH_TMP", "/tmp")))
    path = work / "mosei_shaped.pkl"
    t0 = time.perf_counter()
    sizes = make_file(path, args.scale)
    print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.0f} s", flush=True)
    env = {**os.environ, "MSAKIT_CACHE": str(work / "cache")}
    phases = {}
    for name, cache in (("pickle", "0"), ("first", "1"), ("second", "1"), ("third", "1")):
        out = subprocess.run([sys.executable, __file__, "--phase-of", str(path)], env={**env, "MSAKIT_FEATURE_CACHE": cache},
                             check=True, capture_output=True, text=True)
        phases[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, phases[name], flush=True)
    # A whole training epoch from each source, alternated (pickle, cache, pickle, cache) so a
    # change in the machine's load hits both alike.
    training = {"pickle": [], "cache": []}
    for _ in range(2 if args.train_rows else 0):
        for name, cache in (("pickle", "0"), ("cache", "1")):
            out = subprocess.run([sys.executable, __file__, "--train-of", str(path), "--train-rows", str(args.train_rows)],
                                 env={**env, "MSAKIT_FEATURE_CACHE": cache}, check=True, capture_output=True, text=True)
            training[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print("train", name, training[name][-1], flush=True)
    cache_bytes = sum(p.stat().st_size for p in (work / "cache").rglob("*") if p.is_file())
    write_result("feature_cache", {
        "protocol": __doc__.split("Phases")[0].strip(),
        "scale": args.scale,
        "samples": sizes,
        "pickle_gib": round(path.stat().st_size / 2**30, 3),
        "cache_gib": round(cache_bytes / 2**30, 3),
        "phases": phases,
        "training_epoch": {"rows": args.train_rows, "model": "self_mm, audio+vision, batch 32, 1 thread", **training},
        "second_vs_pickle_time_to_first_batch": round(phases["pickle"]["time_to_first_batch_s"] / phases["second"]["time_to_first_batch_s"], 1),
    })
    import shutil

    shutil.rmtree(work)


if __name__ == "__main__":
    main()
