"""Shared fixtures: a tiny BERT directory (random weights, real loading path) and small data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MOSI_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mosi_text"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Generated data goes to a per-session temp dir, never the user's ~/.cache.
    monkeypatch.setenv("MSAKIT_CACHE", str(tmp_path_factory.getbasetemp() / "msakit-cache"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT saved like any local model directory."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from msakit.data.synthetic import _FILLERS, _LEVELS, _OPENERS, _SUBJECTS

    directory = tmp_path_factory.mktemp("tiny_bert")
    words = set()
    for phrase in [*_FILLERS, *_OPENERS, *_SUBJECTS, *(w for ws in _LEVELS.values() for w in ws)]:
        words.update(phrase.split())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words), *"abcdefghijklmnopqrstuvwxyz"]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # The vocabulary file positionally: transformers 5 ignores a vocab_file= keyword (every word became [UNK]).
    BertTokenizerFast(str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(str(directory))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    from msakit.data.synthetic import SyntheticSpec, write_synthetic

    path = tmp_path_factory.mktemp("data") / "small.pkl"
    return write_synthetic(path, SyntheticSpec(n_train=96, n_valid=32, n_test=40, max_audio_frames=24, max_vision_frames=30, seed=3))


@pytest.fixture
def tiny_overrides(tiny_bert_dir):
    def make(**train):
        return {
            "model": {"text_encoder": str(tiny_bert_dir)},
            "train": {"batch_size": 16, "max_epochs": 3, "progress": False, **train},
        }

    return make


def fit_killed_at(config, run_dir: Path, monkeypatch, epoch: int) -> None:
    """Train ``config`` into ``run_dir`` and kill it (KeyboardInterrupt) as epoch ``epoch`` starts,
    after the previous epoch's checkpoint was written; ``Trainer.train_epoch`` is restored after."""
    from msakit.training.trainer import Trainer

    original = Trainer.train_epoch

    def dying(self, at):
        if at == epoch:
            raise KeyboardInterrupt("simulated kill")
        return original(self, at)

    monkeypatch.setattr(Trainer, "train_epoch", dying)
    try:
        with pytest.raises(KeyboardInterrupt):
            Trainer(config, run_dir).fit()
    finally:
        monkeypatch.setattr(Trainer, "train_epoch", original)


def fit_with_harmful_correction(trainer) -> None:
    """``trainer.fit()`` with every epoch of its second stage ending with the fused head's bias
    pushed far off (+5): a correction that only hurts, so a text_first run must keep epoch 0."""
    import torch

    train_epoch = trainer.train_epoch

    def harmful(epoch):
        record = train_epoch(epoch)
        with torch.no_grad():
            trainer.model.regressors["m"][-1].bias.add_(5.0)
        return record

    trainer.train_epoch = harmful
    trainer.fit()


def write_text_table(directory: Path, seed: int = 0) -> Path:
    """train/dev/test tables of short positive and negative phrases (words the tiny BERT knows)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 32), ("dev", 12), ("test", 12)):
        labels = rng.uniform(-3, 3, n)
        rows = [f"{'a great film' if y > 0 else 'a terrible film'} {i}\t{y:.2f}" for i, y in enumerate(labels)]
        (directory / f"{split}.tsv").write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    return directory


@pytest.fixture(scope="session")
def text_only_run(tmp_path_factory, tiny_bert_dir) -> Path:
    """A Self-MM run trained (one epoch, tiny BERT) on a small text table: text alone, no extractor sidecar."""
    import msakit

    root = tmp_path_factory.mktemp("text_only_run")
    overrides = {"model": {"text_encoder": str(tiny_bert_dir)}, "train": {"batch_size": 16, "max_epochs": 1, "progress": False}}
    return msakit.train("self_mm", write_text_table(root / "table"), run_dir=root / "run", overrides=overrides).run_dir


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_bert_dir, small_synthetic) -> Path:
    """A finished one-epoch Self-MM run (seed 1) on the small synthetic data. Shared: tests that
    change a run work on a copy of it."""
    import msakit

    run = tmp_path_factory.mktemp("trained") / "run"
    msakit.train("self_mm", small_synthetic, run_dir=run, seeds=[1],
                 overrides={"model": {"text_encoder": str(tiny_bert_dir)}, "train": {"max_epochs": 1, "progress": False}})
    return run


@pytest.fixture(scope="session")
def clip_run(tmp_path_factory, tiny_bert_dir) -> Path:
    """A Self-MM run on text, audio and vision features that ``msakit extract`` made from eight
    generated clips (a face photo and a voice; transcripts given in the manifest), trained one
    epoch with today's defaults (audio and vision withheld from a quarter of the training
    samples). Needs the ``video`` extra; tests that use it skip without."""
    import csv

    for module in ("av", "librosa", "mediapipe", "moonshine_voice", "skimage"):
        pytest.importorskip(module)
    import msakit
    from msakit.extract.media import voice, write_clip

    root = tmp_path_factory.mktemp("clip_run")
    words = {1.5: "this movie is great and wonderful", -1.5: "this movie is terrible and boring"}
    rows = []
    for i in range(8):
        label = 1.5 if i % 2 else -1.5
        write_clip(root / "clips" / f"clip{i}.mp4", seconds=1.0, size=(160, 120), audio=voice(1.0, f0=200 if label > 0 else 110, seed=i),
                   scale=lambda t, label=label: 0.8 if label > 0 else 0.55)
        rows.append({"path": f"clips/clip{i}.mp4", "label": label, "split": "train" if i < 4 else "valid" if i < 6 else "test",
                     "text": words[label], "video_id": f"v{i}"})
    with open(root / "manifest.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    msakit.extract(root / "manifest.csv", root / "feats.pkl", workers=1, progress=False)
    overrides = {"model": {"text_encoder": str(tiny_bert_dir)}, "train": {"batch_size": 16, "max_epochs": 1, "progress": False}}
    return msakit.train("self_mm", root / "feats.pkl", run_dir=root / "run", overrides=overrides).run_dir


def save_tiny_speech_encoder(directory: Path, kind: str = "wav2vec2", seed: int = 0, **changes) -> Path:
    """A 2-layer, 32-wide speech encoder (random weights) saved like any local model directory:
    three convolutions (stride 80 samples, receptive field 85), layer-normalised."""
    import torch
    import transformers as T

    config = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16, 16),
                  conv_kernel=(10, 4, 4), conv_stride=(5, 4, 4), feat_extract_norm="layer", num_conv_pos_embeddings=16,
                  num_conv_pos_embedding_groups=2, vocab_size=8)
    config.update(changes)
    Config, Model = {"wav2vec2": (T.Wav2Vec2Config, T.Wav2Vec2Model), "hubert": (T.HubertConfig, T.HubertModel)}[kind]
    torch.manual_seed(seed)
    Model(Config(**config)).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def tiny_speech_encoder_dir(tmp_path_factory) -> Path:
    return save_tiny_speech_encoder(tmp_path_factory.mktemp("tiny_wav2vec2"))
