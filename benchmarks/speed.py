"""Self-MM training throughput on a MOSI-shaped pickle (issue: speed acceptance).

Protocol (the reference framework's): 1284/229/686 samples, ``raw_text`` drawn from the real
MOSI transcripts in ../shared/data/mosi_text (so token lengths are real), ``text_bert`` padded
to 50, audio (375, 5) and vision (500, 20) with variable lengths, batch 16, the packaged
MiniLM fine-tuned, every frame used, 2 threads.

Frame counts are not in the text-only data, so each clip's lengths are drawn proportional to
its word count (about 12 audio / 16 vision frames per word, ±20%, capped at 375 / 500); the
same lengths feed every mode, so the modes compare fairly.

Modes:
- ``msakit``: batches padded to their own longest item, the text encoder run on real tokens
  only (CLS-only last layer), unpacked (fused) LSTM + gather, fused Adam.
- ``reference_protocol``: the same model with the reference framework's choices: every text
  padded to 50 tokens through the stock BERT forward, the packed LSTM, per-tensor Adam. A same-code stand-in for the reference, used to
  attribute the speed-up; the reference framework itself measured 12–16 samples/s here.

    python benchmarks/speed.py [--batches 40]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, write_result  # noqa: E402

from msakit.config import resolve_config  # noqa: E402
from msakit.data.mmsa import read_mmsa_pickle, write_mmsa_pickle  # noqa: E402
from msakit.training.trainer import Trainer  # noqa: E402


def mosi_shaped(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sentences = []
    for name in ("train.tsv", "dev.tsv"):
        lines = (SHARED_DATA / "mosi_text" / name).read_text().splitlines()[1:]
        sentences += [line.rsplit("\t", 1)[0].strip() for line in lines if line.strip()]
    data = {}
    for split, n in (("train", 1284), ("valid", 229), ("test", 686)):
        texts = [sentences[i] for i in rng.integers(0, len(sentences), n)]
        words = np.array([max(1, len(t.split())) for t in texts])
        audio_len = np.clip((words * 12 * rng.uniform(0.8, 1.2, n)).astype(int), 8, 375)
        vision_len = np.clip((words * 16 * rng.uniform(0.8, 1.2, n)).astype(int), 8, 500)
        audio = np.zeros((n, 375, 5), np.float32)
        vision = np.zeros((n, 500, 20), np.float32)
        for i in range(n):
            audio[i, : audio_len[i]] = rng.standard_normal((audio_len[i], 5))
            vision[i, : vision_len[i]] = rng.standard_normal((vision_len[i], 20))
        text_bert = np.zeros((n, 3, 50), np.float32)
        for i, w in enumerate(words):
            text_bert[i, 1, : min(50, w + 2)] = 1
        data[split] = {
            "id": [f"{split}{i}" for i in range(n)],
            "raw_text": texts,
            "text_bert": text_bert,
            "audio": audio,
            "audio_lengths": audio_len.tolist(),
            "vision": vision,
            "vision_lengths": vision_len.tolist(),
            "regression_labels": np.clip(rng.normal(0, 1.5, n), -3, 3).astype(np.float32),
        }
    write_mmsa_pickle(path, data)
    return path


def pad_text_to(trainer: Trainer, width: int) -> None:
    """Reference behaviour: every text batch padded to the file's full width."""
    builder = trainer.builders["train"]
    original = builder.make_batch

    def padded(rows):
        batch = original(rows)
        extra = width - batch.text_ids.shape[1]
        if extra > 0:
            batch.text_ids = torch.nn.functional.pad(batch.text_ids, (0, extra), value=builder.pad_id)
            batch.text_mask = torch.nn.functional.pad(batch.text_mask, (0, extra), value=0)
        return batch

    builder.make_batch = padded


def time_steps(trainer: Trainer, n_batches: int, warmup: int = 3) -> dict:
    """Time full training steps (forward, ULGM losses, backward, hooks, Adam) per part."""
    model, builder = trainer.model, trainer.builders["train"]
    model.train()
    batches = list(builder.batches(16, shuffle=True, seed=1, epoch=2))[: n_batches + warmup]
    parts = {"text_encoder_forward": 0.0, "lstm_forward": 0.0, "rest_forward_loss": 0.0, "backward": 0.0, "hooks_and_optimizer": 0.0}
    samples, total = 0, 0.0
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        text = model.text_model(batch.text_ids, batch.text_mask)
        t1 = time.perf_counter()
        audio = model.audio_model(batch.audio, batch.audio_lengths)
        video = model.video_model(batch.vision, batch.vision_lengths)
        t2 = time.perf_counter()
        encoded = {"t": text, "a": audio, "v": video}
        fused = torch.cat([text, audio, video], -1)
        feats = {s: model.feature_layers[s](x) for s, x in {"m": fused, **encoded}.items()}
        from msakit.models.base import ModelOutput

        out = ModelOutput({s: model.regressors[s](f).squeeze(-1) for s, f in feats.items()}, feats)
        loss = sum(sum(o(out, batch, 2).values()) for o in trainer.objectives)
        t3 = time.perf_counter()
        loss.backward()
        t4 = time.perf_counter()
        for o in trainer.objectives:
            if hasattr(o, "after_step"):
                o.after_step(out, batch, 2)
        if i % 4 == 3:
            trainer.optimizer.step()
            trainer.optimizer.zero_grad()
        t5 = time.perf_counter()
        if i >= warmup:
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                parts[key] += dt
            total += t5 - t0
            samples += len(batch)
    return {
        "samples_per_s": samples / total,
        "seconds_per_batch": total / n_batches,
        "seconds_per_batch_by_part": {k: round(v / n_batches, 4) for k, v in parts.items()},
        "mean_text_tokens_per_batch": float(np.mean([b.text_ids.shape[1] for b in batches[warmup:]])),
        "mean_longest_audio_frames": float(np.mean([int(b.audio_lengths.max()) for b in batches[warmup:]])),
        "mean_longest_vision_frames": float(np.mean([int(b.vision_lengths.max()) for b in batches[warmup:]])),
    }


def run_mode(path: Path, mode: str, n_batches: int) -> dict:
    overrides = {"train": {"num_threads": 2, "progress": False}, "model": {"packed_lstm": mode == "reference_protocol"}}
    config = resolve_config("self_mm", kind="mosi", data_path=str(path), overrides=overrides)
    data = read_mmsa_pickle(path, kind="mosi")
    trainer = Trainer(config, path.parent / f"run_{mode}", data=data)
    if mode == "reference_protocol":
        pad_text_to(trainer, 50)
        trainer.model.text_model.unpadded = False  # the stock forward over all 50 positions
        trainer.optimizer = torch.optim.Adam(trainer.model.parameter_groups())  # per-tensor Adam
    result = time_steps(trainer, n_batches)
    result["peak_rss_mib_so_far"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workdir", default="/tmp/msakit-speed")
    args = parser.parse_args()
    if not (SHARED_DATA / "mosi_text").is_dir():
        sys.exit(f"skipped: {SHARED_DATA / 'mosi_text'} is absent (the real MOSI sentences set token lengths)")
    torch.set_num_threads(2)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = mosi_shaped(workdir / "mosi_shaped.pkl")
    # msakit first, so its peak RSS is not inflated by the other mode.
    modes = {m: run_mode(path, m, args.batches) for m in ("msakit", "reference_protocol")}
    for m, r in modes.items():
        print(f"{m:20s} {r['samples_per_s']:6.1f} samples/s  {r['seconds_per_batch_by_part']}")
    reference_low, reference_high = 12.0, 16.0
    speed = modes["msakit"]["samples_per_s"]
    write_result(
        "speed",
        {
            "protocol": "Self-MM, MOSI-shaped pickle 1284/229/686, real MOSI sentences, audio (375,5) vision (500,20) variable lengths, batch 16, MiniLM fine-tuned, every frame used, 2 threads; timed over training steps (forward, losses, backward, ULGM hooks, Adam every 4 batches)",
            "batches_timed": args.batches,
            "modes": modes,
            "reference_framework_samples_per_s": [reference_low, reference_high],
            "speedup_vs_reference_framework": [round(speed / reference_high, 2), round(speed / reference_low, 2)],
            "speedup_vs_reference_protocol_same_code": round(speed / modes["reference_protocol"]["samples_per_s"], 2),
            "peak_rss_mib_msakit": modes["msakit"]["peak_rss_mib_so_far"],
            "reference_framework_peak_rss_gib": 4.0,
        },
    )


if __name__ == "__main__":
    main()
