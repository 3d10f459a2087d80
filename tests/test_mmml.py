"""MMML, the end-to-end model on the transcript and the raw waveform: learns a signal carried by
the waveform alone, refuses audio that is not a waveform and a bad speech-encoder directory in
one line, rebuilds from its run directory without the encoder directory, trains under 2-process
DDP, and scores a clip through ``predict --video`` with the ``waveform`` feature set."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import msakit
from msakit.data.synthetic import SyntheticSpec, write_synthetic
from msakit.encoders import TextEncoder
from msakit.errors import ConfigError, DataError, MsakitError

ROOT = Path(__file__).resolve().parents[1]
TINY = {"fusion_layers": 1, "fusion_heads": 2, "fusion_ff": 64, "head_hidden": 32, "dropout": 0.0, "fusion_dropout": 0.0,
        "lr_text": 1e-3, "lr_audio": 1e-3, "lr_other": 1e-3}


def _overrides(bert, speech, **train) -> dict:
    return {"model": {"text_encoder": str(bert), "speech_encoder_dir": str(speech), **TINY}, "data": {"modalities": "t,a"},
            "train": {"batch_size": 16, "max_epochs": 6, "early_stop": 100, "progress": False, "num_threads": 1, **train}}


@pytest.fixture(scope="module")
def audio_only_signal(tmp_path_factory) -> Path:
    """The label is the pitch of a tone in the waveform (y = 1.25 y_a); the transcript is drawn
    from a label of its own, independent of it (shared fraction 0, text weight 0)."""
    return write_synthetic(tmp_path_factory.mktemp("mmml") / "wave.pkl",
                           SyntheticSpec(n_train=160, n_valid=48, n_test=64, waveform_rate=16000, waveform_seconds=0.25,
                                         weights=(0.0, 1.0, 0.0), shared_fraction=0.0, seed=7))


def _column(run: Path, name: str) -> np.ndarray:
    with open(run / "test_predictions.csv") as f:
        return np.array([float(row[name]) for row in csv.DictReader(f)])


def test_learns_a_signal_carried_only_by_the_waveform(audio_only_signal, tiny_bert_dir, tiny_speech_encoder_dir, tmp_path):
    result = msakit.train("mmml", audio_only_signal, run_dir=tmp_path / "run", overrides=_overrides(tiny_bert_dir, tiny_speech_encoder_dir))
    seed_dir = tmp_path / "run" / "seed_1111"
    labels, fused, text_only = _column(seed_dir, "label"), _column(seed_dir, "prediction"), _column(seed_dir, "prediction_t")
    constant = float(np.mean(np.abs(labels - np.median(labels))))
    mae, text_mae = float(np.mean(np.abs(fused - labels))), float(np.mean(np.abs(text_only - labels)))
    # The text-only head, trained on the same labels in the same run, cannot beat a constant; the fused output reads the tone.
    print(f"mmml MAE {mae:.3f}, its text-only head {text_mae:.3f}, best constant {constant:.3f}, Acc-2 {np.mean(np.sign(fused) == np.sign(labels)):.3f}")
    assert text_mae > 0.85 * constant, (text_mae, constant)
    assert mae < 0.6 * constant and mae < 0.6 * text_mae, (mae, text_mae, constant)
    assert np.mean(np.sign(fused) == np.sign(labels)) > 0.85
    assert result.summary["MAE"]["mean"] == pytest.approx(mae, abs=1e-4)
    # The waveform is not z-scored (the model normalises each clip; clipping would cut loud peaks).
    assert json.loads((seed_dir / "best" / "standardizer.json").read_text())["modalities"] == {}
    # best/ rebuilds the speech encoder from its recorded architecture: the encoder directory is not needed.
    meta = json.loads((seed_dir / "best" / "model.json").read_text())
    assert meta["model_architecture"]["speech_encoder_config"]["model_type"] == "wav2vec2"
    from msakit.training.checkpoint import load_model

    model, _, _ = load_model(seed_dir)
    assert type(model.speech).__name__ == "Wav2Vec2Model" and model.speech.config.hidden_size == 32


def test_gradient_checkpointing_changes_memory_not_results(audio_only_signal, tiny_bert_dir, tiny_speech_encoder_dir, tmp_path):
    """Both encoders checkpoint by default; the gradients are those of the plain backward."""
    import torch

    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    grads = {}
    for on in (True, False):
        overrides = _overrides(tiny_bert_dir, tiny_speech_encoder_dir)
        overrides["model"]["gradient_checkpointing"] = on
        trainer = Trainer(resolve_config("mmml", data_path=str(audio_only_signal), overrides=overrides), tmp_path / f"run_{on}")
        model = trainer.model.train()
        for backbone in (model.speech, model.text_model.backbone):
            flag = "is_activation_checkpointing" if hasattr(backbone, "is_activation_checkpointing") else "is_gradient_checkpointing"
            assert getattr(backbone, flag) is on
        batch = next(trainer.builders["train"].batches(8))
        output = model(batch)
        sum(o(output, batch, 1)[k] for o in trainer.objectives for k in o(output, batch, 1)).backward()
        grads[on] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    torch.testing.assert_close(grads[True], grads[False], rtol=1e-4, atol=1e-6)


def test_refuses_audio_that_is_not_a_waveform(small_synthetic, tiny_bert_dir, tiny_speech_encoder_dir, tmp_path):
    # A 74-column COVAREP-like pickle (MOSI's layout) and the default 5-column synthetic audio.
    from msakit.data.mmsa import write_mmsa_pickle
    from msakit.data.synthetic import make_synthetic_data

    covarep = write_mmsa_pickle(tmp_path / "covarep.pkl", make_synthetic_data(SyntheticSpec(n_train=16, n_valid=4, n_test=4, audio_dim=74)))
    for data in (covarep, small_synthetic):
        with pytest.raises(DataError) as refused:
            msakit.train("mmml", data, run_dir=tmp_path / "no", overrides=_overrides(tiny_bert_dir, tiny_speech_encoder_dir))
        message = str(refused.value)
        assert "\n" not in message and "not a waveform" in message and "--audio-features waveform" in message, message
    assert not (tmp_path / "no").exists() or not list((tmp_path / "no").rglob("*.safetensors"))


def test_refuses_a_missing_or_wrong_speech_encoder_directory(audio_only_signal, tiny_bert_dir, tmp_path):
    cases = {"": "needs a local model directory", str(tmp_path / "nowhere"): "no such directory",
             str(tiny_bert_dir): "a bert model, not a speech encoder"}
    for directory, expected in cases.items():
        with pytest.raises(ConfigError) as refused:
            msakit.train("mmml", audio_only_signal, run_dir=tmp_path / "no", overrides=_overrides(tiny_bert_dir, directory))
        message = str(refused.value)
        assert "\n" not in message and message.startswith("model.speech_encoder_dir") and expected in message, message


def test_refuses_vision_and_audio_context(audio_only_signal, tiny_bert_dir, tiny_speech_encoder_dir, tmp_path):
    overrides = _overrides(tiny_bert_dir, tiny_speech_encoder_dir)
    overrides["data"] = {"modalities": "t,a,v"}
    with pytest.raises(MsakitError, match=r"mmml reads text and the audio waveform \(t,a\).*data.modalities=t,a"):
        msakit.train("mmml", audio_only_signal, run_dir=tmp_path / "no", overrides=overrides)


def test_cross_modal_layer_has_the_reference_shapes():
    """MMML's CMELayer at its published size (hidden 1024, 16 heads, FFN 4096), counted from the
    reference's modules: per stream two attention blocks (q, k, v, output dense: 4·(d² + d),
    LayerNorm 2d) and a feed-forward block (2·d·ff + ff + d, LayerNorm 2d)."""
    from msakit.models.mmml import CrossModalLayer

    d, ff = 1024, 4096
    reference = 2 * (2 * (4 * (d * d + d) + 2 * d) + (2 * d * ff + ff + d) + 2 * d)
    assert reference == 33_593_344
    assert sum(p.numel() for p in CrossModalLayer(d, 16, ff, 0.1).parameters()) == reference


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun's gloo rendezvous is tested on POSIX only")
def test_trains_under_two_process_ddp(audio_only_signal, tiny_bert_dir, tmp_path):
    """``msakit train --nproc 2`` (gloo, CPU): one run written by rank 0; the planted signal is
    learnt, and the metrics match one process's (no dropout here, so the same computation up to
    float rounding; each rank's share is padded to its own longest clip)."""
    import shutil

    from transformers import BertModel

    from conftest import save_tiny_speech_encoder
    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    # Both encoders without dropout (each rank draws its own), so one process and two compute the same.
    bert = tmp_path / "bert"
    shutil.copytree(tiny_bert_dir, bert)
    BertModel.from_pretrained(str(tiny_bert_dir), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).save_pretrained(str(bert))
    speech = save_tiny_speech_encoder(tmp_path / "speech", hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                                      feat_proj_dropout=0.0, final_dropout=0.0)
    overrides = _overrides(bert, speech, max_epochs=2)
    sets = [f"--set=model.{k}={v}" for k, v in overrides["model"].items()] + ["--set=train.batch_size=16", "--set=data.modalities=t,a"]
    done = subprocess.run([sys.executable, "-m", "msakit.cli", "train", "--nproc", "2", "--model", "mmml", "--data", str(audio_only_signal),
                           "--run-dir", str(tmp_path / "two"), "--epochs", "2", "--device", "cpu", "--quiet", *sets],
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run written to") == 1, done.stdout
    two = tmp_path / "two" / "seed_1111"
    assert len((two / "metrics.jsonl").read_text().splitlines()) == 2 and (two / "best" / "model.safetensors").is_file()
    import torch

    threads = torch.get_num_threads()
    try:
        config = resolve_config("mmml", data_path=str(audio_only_signal), overrides=overrides)
        Trainer(config, tmp_path / "one").fit()
    finally:
        torch.set_num_threads(threads)
    r2, r1 = (json.loads((run / "results.json").read_text())["metrics"] for run in (two, tmp_path / "one"))
    # Measured: predictions agree to 1e-6 (the CSV's last digit), MAE to 1e-8.
    assert r2["MAE"] == pytest.approx(r1["MAE"], abs=1e-4) and r2["Corr"] == pytest.approx(r1["Corr"], abs=1e-4)
    np.testing.assert_allclose(_column(two, "prediction"), _column(tmp_path / "one", "prediction"), atol=1e-4)
    assert r2["Corr"] > 0.5


def test_predict_video_scores_a_clip_with_the_waveform_set(tiny_bert_dir, tiny_speech_encoder_dir, tmp_path, capsys):
    """``msakit extract --audio-features waveform`` on generated clips (a voice whose pitch
    follows the label, the same words on every clip), an mmml run on them, then ``predict
    --video`` on a clip: it is extracted with the run's own set and scored."""
    for module in ("av", "librosa"):
        pytest.importorskip(module, reason="extraction needs the video extra")
    from msakit.cli import main
    from msakit.extract.media import voice, write_clip

    rows = []
    for i in range(12):
        label = 1.5 if i % 2 else -1.5
        write_clip(tmp_path / "clips" / f"clip{i}.mp4", seconds=0.6, size=(64, 48), audio=voice(0.6, f0=260 if label > 0 else 100, seed=i))
        rows.append({"path": f"clips/clip{i}.mp4", "label": label, "split": "train" if i < 8 else "valid" if i < 10 else "test",
                     "text": "this movie is what it is", "video_id": f"v{i}"})
    with open(tmp_path / "manifest.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["extract", str(tmp_path / "manifest.csv"), "--output", str(tmp_path / "feats.pkl"), "--audio-features", "waveform",
                 "--modalities", "t,a", "--quiet"]) == 0
    sidecar = json.loads((tmp_path / "feats.extractor.json").read_text())
    assert sidecar["settings"]["audio_features"] == "waveform" and sidecar["features"]["audio"]["dim"] == 1
    assert sidecar["features"]["audio"]["rate_hz"] == 16000
    overrides = _overrides(tiny_bert_dir, tiny_speech_encoder_dir, max_epochs=2, batch_size=4)
    msakit.train("mmml", tmp_path / "feats.pkl", run_dir=tmp_path / "run", overrides=overrides)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "--video", str(tmp_path / "clips" / "clip3.mp4"), "--output", str(tmp_path / "p.csv"),
                 "--transcript", "this movie is what it is"]) == 0
    result = json.loads((tmp_path / "p.json").read_text())
    (row,) = result["predictions"]
    assert np.isfinite(row["score"]) and result["modalities"] == "ta" and not result["failures"], result
    # The same clip scored from the training features (its row of the train split) gives the same score.
    from msakit.training.runs import predict_split

    predictions, split, _ = predict_split(tmp_path / "run" / "seed_1111", tmp_path / "feats.pkl", None, "train", "cpu")
    (index,) = [i for i, name in enumerate(split.ids) if "clip3" in name]
    assert row["score"] == pytest.approx(float(predictions["m"][index]), abs=1e-4)


@pytest.mark.parametrize("norm", ["layer", "group"])
def test_a_clip_scores_the_same_alone_and_in_a_padded_batch(audio_only_signal, tiny_bert_dir, tmp_path, norm):
    """Layer-norm encoders read a padded batch under an attention mask; group-norm ones (wav2vec
    2.0 base) each clip unpadded: either way a clip's outputs do not depend on its batch."""
    import torch

    from conftest import save_tiny_speech_encoder
    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    speech = save_tiny_speech_encoder(tmp_path / norm, feat_extract_norm=norm)
    trainer = Trainer(resolve_config("mmml", data_path=str(audio_only_signal), overrides=_overrides(tiny_bert_dir, speech)), tmp_path / "run")
    model, builder = trainer.model.eval(), trainer.builders["test"]
    lengths = np.asarray(builder.split.audio_lengths)
    rows = [int(np.argmin(lengths)), int(np.argmax(lengths)), 3, 5]
    assert lengths[rows[0]] < lengths[rows[1]]  # the shortest clip is padded in the batch
    with torch.no_grad():
        together = model(builder.make_batch(np.array(rows))).predictions
        for k, row in enumerate(rows):
            alone = model(builder.make_batch(np.array([row]))).predictions
            for name in ("m", "t", "a"):
                assert float(alone[name][0]) == pytest.approx(float(together[name][k]), abs=1e-5), (norm, name, row)
    assert model.group_norm is (norm == "group")


def test_forward_and_backward_under_bf16_autocast(audio_only_signal, tiny_bert_dir, tiny_speech_encoder_dir, tmp_path):
    """What ``train.precision=bf16`` does on CUDA (torch.autocast), here on the CPU: the mixed
    dtypes meet (encoder states, learned tokens, masks) and the losses and gradients are finite."""
    import torch

    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    trainer = Trainer(resolve_config("mmml", data_path=str(audio_only_signal), overrides=_overrides(tiny_bert_dir, tiny_speech_encoder_dir)),
                      tmp_path / "run")
    model = trainer.model.train()
    batch = next(trainer.builders["train"].batches(8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(batch)
    loss = sum(v.float() for o in trainer.objectives for v in o(output, batch, 1).values())
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.speech.feature_extractor.conv_layers[0].conv.weight.grad.abs().sum() > 0  # the waveform path is trained end to end


def test_parameter_count_at_the_published_size():
    """roberta-large + data2vec-audio-large + 5 CME layers, built on the meta device (no memory,
    no weights): 837,131,779 parameters. The reference has 839,756,291: 2,624,512 more, which are
    RoBERTa's pooler (1,049,600; msakit's encoders drop it), its unimodal heads' second input
    half (2 × 1,024: they read the utterance and its context's pooled vectors, concatenated) and
    its fused head's (1,572,864: four CLS vectors, 4,096 wide, where msakit has two)."""
    import torch
    import transformers as T

    from msakit.models.base import InputDims
    from msakit.models.mmml import MMML, MMMLConfig

    large = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
    with torch.device("meta"):
        text = TextEncoder(T.RobertaModel(T.RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, **large),
                                          add_pooling_layer=False))
        speech = T.Data2VecAudioConfig(**large).to_diff_dict() | {"model_type": "data2vec-audio"}
        model = MMML(MMMLConfig(), InputDims(("t", "a"), 1, None), text_encoder=text,
                     architecture={"speech_encoder_config": speech, "sample_rate": 16000, "normalise": True})
    count = sum(p.numel() for p in model.parameters())
    assert count == 837_131_779
    pooler, unimodal, fused = 1024 * 1024 + 1024, 2 * 1024, 2048 * 768
    assert count + pooler + unimodal + fused == 839_756_291


def test_a_clip_shorter_than_the_receptive_field_gives_finite_outputs(audio_only_signal, tiny_bert_dir, tiny_speech_encoder_dir, tmp_path):
    import torch

    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    trainer = Trainer(resolve_config("mmml", data_path=str(audio_only_signal), overrides=_overrides(tiny_bert_dir, tiny_speech_encoder_dir)),
                      tmp_path / "run")
    model, batch = trainer.model.eval(), trainer.builders["test"].make_batch(np.array([0, 1]))
    batch.audio_lengths = torch.tensor([30, int(batch.audio_lengths[1])])  # 30 samples: under the 85-sample receptive field
    with torch.no_grad():
        predictions = model(batch).predictions
    assert all(bool(torch.isfinite(v).all()) for v in predictions.values())


def test_training_batches_hold_clips_of_similar_length(audio_only_signal, tiny_bert_dir, tiny_speech_encoder_dir, tmp_path):
    """mmml asks for length buckets: the shuffled order, cut into windows of k batches, each sorted
    by waveform length; a permutation that depends only on (seed, epoch), padded much less."""
    from msakit.config import resolve_config
    from msakit.data.batching import BatchBuilder
    from msakit.training.trainer import Trainer

    trainer = Trainer(resolve_config("mmml", data_path=str(audio_only_signal), overrides=_overrides(tiny_bert_dir, tiny_speech_encoder_dir)),
                      tmp_path / "run")
    assert trainer.builders["train"].buckets == ("a", 16, 50) and trainer.builders["valid"].buckets is None
    split = trainer.builders["train"].split
    lengths = np.asarray(split.audio_lengths)
    plain, bucketed = BatchBuilder(split, ("a",)), BatchBuilder(split, ("a",), buckets=("a", 16, 3))

    def padding(order):
        return sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in (order[i : i + 16] for i in range(0, len(order), 16)))

    for epoch in (1, 2):
        order = bucketed.order(True, 7, epoch)
        assert sorted(order.tolist()) == list(range(len(split)))
        np.testing.assert_array_equal(order, bucketed.order(True, 7, epoch))
        assert padding(order) < 0.5 * padding(plain.order(True, 7, epoch)), (padding(order), padding(plain.order(True, 7, epoch)))
    assert not np.array_equal(bucketed.order(True, 7, 1), bucketed.order(True, 7, 2))
    np.testing.assert_array_equal(bucketed.order(False, 7, 1), np.arange(len(split)))  # evaluation order untouched
