"""The utterance vectors of ``data.context_encoder=lstm`` with a fine-tuned text encoder: the
real-tokens-only forward (``bert_mean_unpadded``) against the stock padded forward, side by side.

With a fine-tuned encoder, every training step encodes each scored transcript's neighbours again
(forward only) to give the context LSTM its utterance vectors. This times that step alone on the
real CMU-MOSI transcripts (``../shared/data/mosi_text_ctx``, train split), on the windows the
trainer builds for ``data.context=1`` (batch 16, so up to 48 transcripts a step), with the model
in training mode (dropout on) under ``torch.no_grad``, as in training. The two sides run the
same batches, alternated batch by batch (the order flipped every batch), on one thread; their
outputs are compared first (eval mode, no dropout). Writes
``benchmarks/results/context_text_speed.json`` and ``.md``.

    python benchmarks/context_text_speed.py [--batches 40] [--model late_fusion]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, command_line, write_result  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--model", default="late_fusion")
    parser.add_argument("--workdir", default="/tmp/msakit-bench-context-speed")
    args = parser.parse_args()
    data = SHARED_DATA / "mosi_text_ctx"
    if not data.is_dir():
        print(f"skipped: {data} is absent")
        return 0
    import torch

    from msakit.config import resolve_config
    from msakit.encoders.context import window_transcripts
    from msakit.training.trainer import Trainer

    torch.set_num_threads(1)
    overrides = {"train": {"num_threads": 1, "progress": False}, "data": {"context": 1, "context_encoder": "lstm"}}
    config = resolve_config(args.model, kind="mosi", data_path=str(data), overrides=overrides)
    trainer = Trainer(config, Path(args.workdir) / "run")
    encoder = trainer.model.text_model
    batches = [window_transcripts(b.context)[1:] for b in list(trainer.builders["train"].batches(16, shuffle=True, seed=1, epoch=1))[: args.batches + 2]]

    def run(packed: bool, ids, mask):
        encoder.unpadded = packed
        with torch.no_grad():
            return encoder.sentence_vectors(ids, mask)

    encoder.eval()
    worst = max(float((run(True, *b) - run(False, *b)).abs().max()) for b in batches[:4])
    encoder.train()
    seconds = {"packed": 0.0, "stock": 0.0}
    transcripts, tokens, padded = 0, 0, 0
    for i, (ids, mask) in enumerate(batches):
        order = ("packed", "stock") if i % 2 == 0 else ("stock", "packed")
        for side in order:
            t = time.perf_counter()
            run(side == "packed", ids, mask)
            if i >= 2:  # two warm-up batches
                seconds[side] += time.perf_counter() - t
        if i >= 2:
            transcripts += ids.shape[0]
            tokens += int(mask.sum())
            padded += ids.numel()
    ratio = seconds["stock"] / seconds["packed"]
    payload = {
        "protocol": (f"{args.model}'s fine-tuned packaged MiniLM, the context windows of data.context=1 on mosi_text_ctx train "
                     f"(batch 16), {args.batches} batches after 2 warm-up, alternated batch by batch, 1 thread, train mode under no_grad"),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "transcripts_per_s": {k: round(transcripts / v, 1) for k, v in seconds.items()},
        "speedup_packed_over_stock": round(ratio, 3),
        "real_token_share": round(tokens / padded, 3),
        "max_abs_difference_eval": worst,
    }
    write_result("context_text_speed", payload)
    lines = ["# Context windows' utterance vectors: packed vs stock forward (CMU-MOSI transcripts)", "", payload["protocol"] + ".", "",
             "| forward | seconds | transcripts / s |", "|---|---|---|",
             f"| packed (real tokens only) | {seconds['packed']:.2f} | {payload['transcripts_per_s']['packed']} |",
             f"| stock (padded) | {seconds['stock']:.2f} | {payload['transcripts_per_s']['stock']} |", "",
             f"Packed is {ratio:.2f}x the stock forward's speed; real tokens are {100 * tokens / padded:.0f} % of the padded grid; "
             f"largest difference between the two sides' vectors (eval mode): {worst:.2e}.", "",
             "Made with:", "", "    " + command_line()]
    (RESULTS / "context_text_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
