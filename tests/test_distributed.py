"""One run over 2 processes (torchrun, gloo on CPU) against the same run in one process.

Two launches: tests/ddp_worker.py trains Self-MM, the flagship (DMA: Self-MM + covariance
alignment), a Self-MM run killed after epoch 2 and resumed, and a Self-MM run that chooses its
epochs by video-grouped k-fold selection (``train.select=kfold:2``), in one 2-process group, with
rank 1's file writes recorded; ``msakit train --nproc 2`` trains the same Self-MM again. The
models have no dropout (the tiny BERT's included), so one process and two see the same
computation up to float rounding (each rank's share is padded to its own longest item, the
gradient is summed in another order).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="torchrun's gloo rendezvous is tested on POSIX only")

EPOCHS = 2  # ULGM generates labels from epoch 2; the killed run dies after epoch 1's checkpoint
# Between the 2-process and the 1-process run: predictions and metrics agree to this (measured:
# 1e-6, the CSV's last digit; MAE to 1e-8).
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def nodrop_bert(tmp_path_factory) -> Path:
    """The conftest's tiny BERT without dropout."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from msakit.data.synthetic import _FILLERS, _LEVELS, _OPENERS, _SUBJECTS

    directory = tmp_path_factory.mktemp("nodrop_bert")
    words = set()
    for phrase in [*_FILLERS, *_OPENERS, *_SUBJECTS, *(w for ws in _LEVELS.values() for w in ws)]:
        words.update(phrase.split())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words), *"abcdefghijklmnopqrstuvwxyz"]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # The vocabulary file positionally: transformers 5 ignores a vocab_file= keyword.
    BertTokenizerFast(str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(str(directory))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(str(directory))
    return directory


def overrides(bert: Path, name: str = "") -> dict:
    """``short_last``: batches of 19 over 96 training samples, so the last batch has 1 sample and
    rank 1's share of it is empty. ``kfold``: the epochs chosen on 2 folds of the training split."""
    return {
        "model": {"text_encoder": str(bert), "fusion": "concat", "post_text_dropout": 0.0, "post_audio_dropout": 0.0},
        "train": {"batch_size": 19 if name == "short_last" else 16, "max_epochs": EPOCHS, "progress": False, "device": "cpu",
                  **({"select": "kfold:2"} if name == "kfold" else {})},
    }


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_synthetic, nodrop_bert):
    """Every run, trained once: {"two": {name: dir}, "one": {name: dir}, "cli": dir, "out": dir}."""
    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    base = tmp_path_factory.mktemp("ddp")
    out, root = base / "out", base / "runs"
    out.mkdir()
    names = {"self_mm": "self_mm", "dma": "dma", "killed": "self_mm", "short_last": "self_mm", "kfold": "self_mm"}
    spec = {"data": str(small_synthetic), "out": str(out),
            "runs": [{"model": model, "run_dir": str(root / name), "overrides": overrides(nodrop_bert, name),
                      **({"kill_at_epoch": EPOCHS} if name == "killed" else {})} for name, model in names.items()]}
    (out / "spec.json").write_text(json.dumps(spec))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    done = subprocess.run([*torchrun, str(ROOT / "tests" / "ddp_worker.py"), str(out / "spec.json")], env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # The same Self-MM through the command line's launcher.
    sets = [f"--set=model.{k}={v}" for k, v in overrides(nodrop_bert)["model"].items()] + ["--set=train.batch_size=16"]
    cli = subprocess.run([sys.executable, "-m", "msakit.cli", "train", "--nproc", "2", "--model", "self_mm", "--data", str(small_synthetic),
                          "--run-dir", str(base / "cli"), "--epochs", str(EPOCHS), "--device", "cpu", "--quiet", *sets],
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert cli.stdout.count("run written to") == 1, cli.stdout  # rank 0 alone prints
    one = {}
    import torch

    threads = torch.get_num_threads()
    try:
        for name in ("self_mm", "dma", "short_last", "kfold"):  # one thread, as each of the two processes had
            config = resolve_config(names[name], data_path=str(small_synthetic), overrides=overrides(nodrop_bert, name))
            Trainer(dataclasses.replace(config, train=dataclasses.replace(config.train, num_threads=1)), base / "one" / name).fit()
            one[name] = base / "one" / name
    finally:
        torch.set_num_threads(threads)
    return {"two": {name: root / name for name in names}, "one": one, "cli": base / "cli" / "seed_1111", "out": out, "root": root}


def _predictions(run: Path) -> np.ndarray:
    with open(run / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    return np.array([[float(r[k]) for k in ("prediction", "prediction_t", "prediction_a", "prediction_v")] for r in rows])


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def test_rank_0_alone_writes_the_runs(runs):
    writes = json.loads((runs["out"] / "writes_rank1.json").read_text())
    assert any("probe.txt" in w for w in writes), "rank 1's write recorder saw nothing: the check below would prove nothing"
    into_runs = [w for w in writes if str(runs["root"]) in w]
    assert into_runs == []
    for name, run in runs["two"].items():  # one line per epoch (not one per rank), no resume state left
        epochs = _results(run)["selection"]["epochs"][""] if name == "kfold" else EPOCHS
        assert len((run / "metrics.jsonl").read_text().splitlines()) == epochs
        assert not (run / "last.pt").exists() and (run / "best" / "model.safetensors").exists()


@pytest.mark.parametrize("model", ["self_mm", "dma", "short_last", "kfold"])
def test_two_processes_match_one_process(runs, model):
    two, one = runs["two"][model], runs["one"][model]
    assert np.abs(_predictions(two) - _predictions(one)).max() < TOLERANCE
    r2, r1 = _results(two), _results(one)
    for name in ("MAE", "Corr"):
        assert r2["metrics"][name] == pytest.approx(r1["metrics"][name], abs=TOLERANCE)
    assert r2["metrics"]["Corr"] > 0.4  # the planted signal is learnt
    # ULGM's generated labels (updated from the whole batch on every rank) agree with one process's.
    for s, scores in r1["ulgm_labels"]["modalities"].items():
        for name in ("MAE", "Corr"):
            assert r2["ulgm_labels"]["modalities"][s]["generated"][name] == pytest.approx(scores["generated"][name], abs=TOLERANCE)
    h2, h1 = ([json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (two, one))
    assert [e["valid_MAE"] for e in h2] == pytest.approx([e["valid_MAE"] for e in h1], abs=TOLERANCE)
    if model == "kfold":  # the same folds, the same curves on each, the same epochs chosen
        assert r2["selection"]["epochs"] == r1["selection"]["epochs"]
        for fold in ("fold_1", "fold_2"):
            f2, f1 = ([json.loads(line)["valid_MAE"] for line in (run / "select" / fold / "metrics.jsonl").read_text().splitlines()]
                      for run in (two, one))
            assert f2 == pytest.approx(f1, abs=TOLERANCE)
    if model == "dma":  # the covariance alignment term, computed on the whole batch
        assert [e["train_cov_av"] for e in h2] == pytest.approx([e["train_cov_av"] for e in h1], rel=1e-2, abs=1e-5)


def test_same_bytes_across_runs_and_after_a_kill(runs):
    straight = runs["two"]["self_mm"]
    for other in (runs["cli"], runs["two"]["killed"]):
        for name in ("test_predictions.csv", "best/model.safetensors"):
            assert (other / name).read_bytes() == (straight / name).read_bytes(), (other, name)
        assert _results(other)["metrics"] == _results(straight)["metrics"]
        assert _results(other)["ulgm_labels"] == _results(straight)["ulgm_labels"]


def test_nproc_refuses_a_count_below_one(capsys):
    from msakit.cli import main

    assert main(["train", "--nproc", "0", "--model", "self_mm"]) == 2
    assert "--nproc 0: give the number of processes" in capsys.readouterr().err


def test_resuming_with_another_number_of_processes_is_refused(small_synthetic, nodrop_bert, tmp_path, monkeypatch):
    """A checkpoint written by a 2-process run (its world size, one random state per rank) is
    not continued by one process: the message names the count to resume with."""
    import torch

    from msakit.config import resolve_config
    from msakit.errors import ConfigError
    from msakit.training.trainer import Trainer

    config = resolve_config("self_mm", data_path=str(small_synthetic), overrides=overrides(nodrop_bert))
    original = Trainer.train_epoch

    def dying(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt("simulated kill")
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, tmp_path / "run").fit()
    monkeypatch.setattr(Trainer, "train_epoch", original)
    payload = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    payload.update(world_size=2, rng_ranks=[payload["rng"], payload["rng"]])
    torch.save(payload, tmp_path / "run" / "last.pt")
    with pytest.raises(ConfigError, match=r"started with 2 process\(es\) and is resumed with 1; resume it with 2 \(msakit train --nproc 2"):
        Trainer(config, tmp_path / "run").fit(resume=True)
