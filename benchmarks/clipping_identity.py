"""Gradient clipping through the trainer's one hook trains MulT, MISA and MMIM bit-identically
to the two mechanisms it replaced (issue 18).

Trains each model 2 epochs (seed 7, batch 8, 2-batch accumulation, grad_clip 0.05 so clipping
acts on every step, a tiny BERT) once in a worktree of ``--before`` (the commit before the
merge) and once in this checkout, and compares the SHA-256 of ``best/model.safetensors``.

    .venv/bin/python benchmarks/clipping_identity.py --before f34d7d9
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

TRAIN = r'''
import hashlib, json, os, sys, tempfile
from pathlib import Path
work = Path(tempfile.mkdtemp())
os.environ["MSAKIT_CACHE"] = str(work / "cache")
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast
import msakit
from msakit.data.synthetic import _FILLERS, _LEVELS, _OPENERS, _SUBJECTS, SyntheticSpec, write_synthetic
from msakit.models import get_model_class
data = write_synthetic(work / "d.pkl", SyntheticSpec(n_train=64, n_valid=16, n_test=16, max_audio_frames=12, max_vision_frames=14, seed=4))
bert = work / "bert"; bert.mkdir()
words = set()
for phrase in [*_FILLERS, *_OPENERS, *_SUBJECTS, *(w for ws in _LEVELS.values() for w in ws)]:
    words.update(phrase.split())
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words), *"abcdefghijklmnopqrstuvwxyz"]
(bert / "vocab.txt").write_text("\n".join(vocab) + "\n")
BertTokenizerFast(str(bert / "vocab.txt"), do_lower_case=True).save_pretrained(str(bert))
torch.manual_seed(0)
BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=64)).save_pretrained(str(bert))
out = {"msakit": msakit.__file__}
for model in ("mult", "misa", "mmim"):
    run = work / model
    msakit.train(model, data, run_dir=run, seeds=[7], overrides={
        "model": {"text_encoder": str(bert), **getattr(get_model_class(model), "TEST_OVERRIDES", {}), "grad_clip": 0.05},
        "train": {"max_epochs": 2, "batch_size": 8, "grad_accumulation": 2, "progress": False, "num_threads": 1, "early_stop": 10}})
    out[model] = hashlib.sha256((run / "seed_7" / "best" / "model.safetensors").read_bytes()).hexdigest()
print("RESULT " + json.dumps(out))
'''


def hashes(checkout: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", TRAIN], cwd=checkout, capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="the commit before the clipping merge")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        before_dir = Path(temp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before_dir), args.before], cwd=ROOT, check=True, capture_output=True)
        try:
            before = hashes(before_dir)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before_dir)], cwd=ROOT, capture_output=True)
    after = hashes(ROOT)
    rows = {m: {"before": before[m], "after": after[m], "identical": before[m] == after[m]} for m in ("mult", "misa", "mmim")}
    path = write_result("clipping_identity", {"before_commit": args.before, "models": rows,
                                              "setting": "2 epochs, seed 7, batch 8, grad_accumulation 2, grad_clip 0.05, tiny BERT"})
    for model, row in rows.items():
        print(f"{model}: {'bit-identical' if row['identical'] else 'DIFFERENT'}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
