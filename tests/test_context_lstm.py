"""``data.context_encoder=lstm``: each utterance read through a bidirectional LSTM over its
window of utterance vectors (bc-LSTM style). The window follows the video's clip order within
the split, a withheld modality gives nothing back through it, a model learns what only the
neighbours carry (text through a frozen encoder, where joining the transcripts hurt; audio),
and a saved run reads its neighbours again when it predicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import fit_killed_at, fit_with_harmful_correction
from msakit.data.context import ContextSpec, windows
from msakit.errors import ConfigError

FAST = {"progress": False, "num_threads": 1}


def test_windows_follow_clip_order_and_stop_at_the_video():
    ids = ["a$_$2", "b$_$1", "a$_$1", "a$_$3", "b$_$2", "a$_$4"]
    rows, lengths, positions = windows(ids, ContextSpec(1))
    assert rows.shape == (6, 3)
    # a$_$2 (row 0): a$_$1 (row 2) before, itself, a$_$3 (row 3) after
    assert rows[0, :lengths[0]].tolist() == [2, 0, 3] and positions[0] == 1
    # a$_$1 (row 2) opens its video: itself first
    assert rows[2, :lengths[2]].tolist() == [2, 0] and positions[2] == 0 and rows[2, 2] == -1
    # b$_$2 (row 4) closes its video: b$_$1 before it, nothing of video a
    assert rows[4, :lengths[4]].tolist() == [1, 4] and positions[4] == 1
    rows, lengths, positions = windows(ids, ContextSpec(2, side="past"))
    assert rows.shape == (6, 3) and rows[5, :lengths[5]].tolist() == [0, 3, 5] and positions[5] == 2
    with pytest.raises(ConfigError, match="context_encoder"):
        ContextSpec(1, encoder="gru")


def test_a_withheld_modality_gives_nothing_back_through_its_window():
    from msakit.data.batching import BatchBuilder
    from msakit.data.types import Split

    n = 4
    audio = np.arange(n * 2 * 3, dtype=np.float32).reshape(n, 2, 3) + 1
    split = Split(name="train", ids=[f"v$_${i}" for i in range(n)], raw_text=["x"] * n, labels={"m": np.zeros(n, np.float32)},
                  audio=audio, audio_lengths=np.full(n, 2))
    builder = BatchBuilder(split, ("a",), context=ContextSpec(1, modalities=("a",), encoder="lstm"))
    batch = builder.make_batch(np.arange(n))
    assert batch.audio.shape == (n, 2, 3)  # the context columns are the model's to add
    assert batch.context["a"].shape == (n, 3, 3) and batch.context["a_lengths"].tolist() == [2, 3, 3, 2]
    assert np.allclose(batch.context["a"][1].numpy(), audio[[0, 1, 2]].mean(axis=1))
    withheld = builder.make_batch(np.arange(n), absent={"a": np.array([False, True, False, False])})
    assert withheld.context["a_lengths"].tolist() == [2, 0, 3, 2]


def _neighbour_table(directory: Path, seed: int = 0) -> Path:
    """Videos of one tone each (label +-1.5): every other clip says it ("great"/"terrible"), the
    clips between say nothing ("a film"): their label is only in their neighbours."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, videos in (("train", 24), ("dev", 6), ("test", 8)):
        lines = ["video_id\tclip_id\ttext\tlabel"]
        for v in range(videos):
            tone = 1 if v % 2 else -1
            for clip in range(1, 8):
                text = ("a great film" if tone > 0 else "a terrible film") if clip % 2 else "a film"
                lines.append(f"{split}{v}\t{clip}\t{text}\t{tone * 1.5 + rng.normal(0, 0.1):.3f}")
        (directory / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return directory


def test_a_frozen_text_encoder_reads_the_neighbours_through_the_lstm(tiny_bert_dir, tmp_path):
    import msakit
    from msakit.training.runs import predict_split

    data = _neighbour_table(tmp_path / "t")
    maes = {}
    for name, context in (("alone", {}), ("lstm", {"context": 1, "context_encoder": "lstm", "context_hidden": 16})):
        result = msakit.train("tfn", data, run_dir=tmp_path / name, overrides={
            "model": {"text_encoder": str(tiny_bert_dir), "lr_other": 5e-3}, "data": {"modalities": ("t",), **context},
            "train": {"max_epochs": 10, "batch_size": 16, "grad_accumulation": 1, "early_stop": 100, **FAST}})
        maes[name] = result.summary["MAE"]["mean"]
    assert maes["lstm"] < 0.5 * maes["alone"], maes  # the silent clips get their video's tone

    seed_dir = tmp_path / "lstm" / "seed_1111"
    meta = json.loads((seed_dir / "best" / "model.json").read_text())
    assert meta["utterance_context"] == {"sizes": {"t": 32}, "hidden": 16}
    again, target, _ = predict_split(seed_dir, data, None, "test", "cpu")
    assert float(np.mean(np.abs(again["m"] - target.labels["m"]))) == pytest.approx(maes["lstm"], abs=1e-4)
    # ... the neighbours are read: the same clips scored one per video predict otherwise.
    lines = (data / "test.tsv").read_text().splitlines()
    alone = tmp_path / "alone_clips"
    alone.mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (alone / name).write_text((data / name).read_text())
    (alone / "test.tsv").write_text("\n".join([lines[0]] + [f"solo{i}\t" + line.split("\t", 1)[1] for i, line in enumerate(lines[1:])]) + "\n")
    solo, _, _ = predict_split(seed_dir, alone, None, "test", "cpu")
    assert not np.allclose(solo["m"], again["m"], atol=1e-3)


def test_audio_read_through_the_lstm_lets_a_model_read_a_clip_against_its_speaker(tmp_path):
    import msakit
    from msakit.training.runs import predict_split
    from test_context_frames import _speaker_relative

    data = _speaker_relative(tmp_path / "speakers.pkl", seed=3)
    maes = {}
    for k in (0, 3):
        result = msakit.train("late_fusion", data, run_dir=tmp_path / f"ctx{k}", overrides={
            "data": {"modalities": ("a",), "context": k, "context_modalities": "a", "context_encoder": "lstm", "context_hidden": 8},
            "model": {"lr_other": 5e-3},
            "train": {"max_epochs": 40, "batch_size": 32, "grad_accumulation": 1, "early_stop": 100, **FAST}})
        maes[k] = result.summary["MAE"]["mean"]
    # The offset hides the label without the speaker's other clips (0.70x here; the neighbours'
    # plain mean, data.context_encoder=join, learns this linear task faster: 0.75x in 12 epochs).
    assert maes[3] < 0.8 * maes[0], maes
    seed_dir = tmp_path / "ctx3" / "seed_1111"
    meta = json.loads((seed_dir / "best" / "model.json").read_text())
    assert meta["input_dims"]["audio_dim"] == 8 and meta["utterance_context"] == {"sizes": {"a": 4}, "hidden": 8}
    again, target, _ = predict_split(seed_dir, data, None, "test", "cpu")
    assert float(np.mean(np.abs(again["m"] - target.labels["m"]))) == pytest.approx(maes[3], abs=1e-4)


def test_a_killed_lstm_context_run_resumes_to_the_same_bytes(tiny_bert_dir, tmp_path, monkeypatch):
    """The context LSTM, its optimiser state and the neighbours' encodings (through a fine-tuned
    encoder, in training mode) resume exactly."""
    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    data = _neighbour_table(tmp_path / "t")
    config = resolve_config("late_fusion", data_path=str(data), overrides={
        "model": {"text_encoder": str(tiny_bert_dir)}, "data": {"modalities": ("t",), "context": 1, "context_encoder": "lstm", "context_hidden": 8},
        "train": {"max_epochs": 3, "batch_size": 16, "grad_accumulation": 1, "early_stop": 100, **FAST}})
    Trainer(config, tmp_path / "straight").fit()
    fit_killed_at(config, tmp_path / "killed", monkeypatch, 2)
    Trainer(config, tmp_path / "killed").fit(resume=True)
    for name in ("test_predictions.csv", "metrics.jsonl"):
        straight, killed = (tmp_path / "straight" / name).read_text(), (tmp_path / "killed" / name).read_text()
        if name == "metrics.jsonl":  # wall-clock timings aside
            strip = lambda text: [{k: v for k, v in json.loads(line).items() if "seconds" not in k and "per_s" not in k} for line in text.splitlines()]  # noqa: E731
            straight, killed = strip(straight), strip(killed)
        assert straight == killed, name


def _text_context_model(tiny_bert_dir):
    """late_fusion on text with the utterance-level LSTM, its output layer made non-zero (as
    after training), and a builder over two videos of four clips."""
    import torch

    from msakit.data.batching import BatchBuilder
    from msakit.data.types import Split
    from msakit.encoders.context import attach_utterance_context
    from msakit.encoders.text import TextEncoder, load_tokenizer
    from msakit.models import InputDims, get_model_class

    torch.manual_seed(0)
    model_class = get_model_class("late_fusion")
    model = model_class(model_class.config_class(), InputDims(("t",)), text_encoder=TextEncoder.from_pretrained(tiny_bert_dir))
    attach_utterance_context(model, {"t": 32}, 8)
    torch.nn.init.normal_(model.utterance_context.encoders["t"].project.weight)
    texts = ["a great film", "a film", "a terrible film", "a film"] * 2
    split = Split(name="test", ids=[f"v{i // 4}$_${i % 4}" for i in range(8)], raw_text=texts, labels={"m": np.zeros(8, np.float32)})
    builder = BatchBuilder(split, ("t",), load_tokenizer(tiny_bert_dir), context=ContextSpec(1, encoder="lstm"))
    return model.eval(), builder


def test_a_forward_that_fails_leaves_no_context_behind(tiny_bert_dir):
    """A forward that raises (out of memory, a bad request in a server) skips the hook that
    clears the text encoder's context shift; the next batch must not read it."""
    import torch

    model, builder = _text_context_model(tiny_bert_dir)
    with torch.no_grad():
        clean = model(builder.make_batch(np.arange(3))).predictions["m"]
        model.forward = lambda batch: (_ for _ in ()).throw(RuntimeError("CUDA out of memory"))
        with pytest.raises(RuntimeError, match="out of memory"):
            model(builder.make_batch(np.arange(8)))
        del model.forward
        again = model(builder.make_batch(np.arange(3))).predictions["m"]
    assert torch.equal(clean, again)


@pytest.mark.parametrize("encoder", ["join", "lstm"])
def test_a_clip_missing_a_modality_is_scored_as_training_withheld_it(tmp_path, encoder):
    """``predict --video``/serve (a clip without audio) and robustness (audio missing) give the
    model what training's modality dropout gave it for a withheld modality: no context from
    the neighbours either, not the neighbours' audio beside zero frames (a pattern it never saw)."""
    import torch

    import msakit
    from msakit.data import load_dataset
    from msakit.data.batching import BatchBuilder
    from msakit.data.standardize import load_run_standardizer
    from msakit.training.checkpoint import load_model
    from msakit.training.runs import predict_split, run_context
    from msakit.workflows.robustness import _SeedEvaluator
    from test_context_frames import _speaker_relative

    data = _speaker_relative(tmp_path / "speakers.pkl", seed=3)
    msakit.train("late_fusion", data, run_dir=tmp_path / "run", overrides={
        "data": {"modalities": ("a", "v"), "context": 2, "context_modalities": "a", "context_encoder": encoder, "context_hidden": 4},
        "model": {"lr_other": 5e-3},
        "train": {"max_epochs": 2, "batch_size": 32, "grad_accumulation": 1, "modality_dropout": "a:0.5", **FAST}})
    seed_dir = tmp_path / "run" / "seed_1111"
    model, _, _ = load_model(seed_dir)
    test = load_dataset(data, "mosi", ("a", "v"), splits=("test",))["test"]
    test = load_run_standardizer(seed_dir).apply(test)
    builder = BatchBuilder(test, ("a", "v"), context=run_context(seed_dir))
    n = len(test)
    withheld = np.arange(n) % 3 == 0

    def as_trained(absent):
        with torch.no_grad():
            return model(builder.make_batch(np.arange(n), {"a": absent})).predictions["m"].numpy()

    served, _, _ = predict_split(seed_dir, data, None, "test", "cpu", absent={"a": withheld})
    assert np.allclose(served["m"][withheld], as_trained(withheld)[withheld], atol=1e-5)
    missing = _SeedEvaluator(seed_dir, test, "mosi", "cpu", 64, 0).pattern(frozenset("a"))
    assert np.allclose(missing, as_trained(np.ones(n, bool)), atol=1e-5)


def test_text_first_keeps_its_text_stage_context(tiny_bert_dir, tmp_path):
    """model.fusion=text_first (Self-MM; a candidate of the default fusion=auto): the frozen text
    prediction is the text stage's, context LSTM included. A correction that only hurts never
    beats epoch 0, and the run then scores exactly as its text stage did."""
    from msakit.config import resolve_config
    from msakit.data.synthetic import SyntheticSpec, write_synthetic
    from msakit.training.trainer import Trainer

    data = write_synthetic(tmp_path / "speakers.pkl", SyntheticSpec(n_train=64, n_valid=24, n_test=24, max_audio_frames=24,
                                                                    max_vision_frames=24, clips_per_speaker=4, seed=5))
    config = resolve_config("self_mm", data_path=str(data), overrides={
        "model": {"text_encoder": str(tiny_bert_dir), "fusion": "text_first"},
        "data": {"modalities": ("t", "a"), "context": 1, "context_encoder": "lstm", "context_hidden": 8},
        "train": {"batch_size": 16, "max_epochs": 2, **FAST}})
    fit_with_harmful_correction(Trainer(config, tmp_path / "tf"))
    results = json.loads((tmp_path / "tf" / "results.json").read_text())
    assert results["best_epoch"] == 0
    assert results["metrics"] == results["text_stage"]["metrics"]


@pytest.mark.parametrize("encoder", ["join", "lstm"])
def test_a_stage_on_other_modalities_than_the_context_trains_without_it(tiny_bert_dir, tmp_path, encoder):
    """Context on audio only and model.fusion=text_first: the text stage (text alone) has no
    modality to read with its neighbours and trains without context, instead of refusing the
    run with data.context_modalities naming none of the stage's modalities."""
    from msakit.config import resolve_config
    from msakit.data.synthetic import SyntheticSpec, write_synthetic
    from msakit.training.trainer import Trainer

    data = write_synthetic(tmp_path / "speakers.pkl", SyntheticSpec(n_train=48, n_valid=16, n_test=16, max_audio_frames=24,
                                                                    max_vision_frames=24, clips_per_speaker=4, seed=5))
    config = resolve_config("self_mm", data_path=str(data), overrides={
        "model": {"text_encoder": str(tiny_bert_dir), "fusion": "text_first"},
        "data": {"modalities": ("t", "a"), "context": 1, "context_modalities": "a", "context_encoder": encoder, "context_hidden": 4},
        "train": {"batch_size": 16, "max_epochs": 1, **FAST}})
    Trainer(config, tmp_path / "tf").fit()
    assert json.loads((tmp_path / "tf" / "text_stage" / "config.json").read_text())["data"]["context"] == 0
    # --compare-text-only's run on text alone is the text stage, settings included
    from msakit.workflows.text_only import text_only_overrides

    alone = text_only_overrides({"data": {"context": 1, "context_modalities": "a", "context_encoder": encoder}})
    assert alone["data"]["context"] == 0
    assert text_only_overrides({"data": {"context": 2, "context_modalities": "t,a"}})["data"]["context"] == 2
    meta = json.loads((tmp_path / "tf" / "best" / "model.json").read_text())
    assert meta["input_dims"]["audio_dim"] == 2 * 5  # the run itself reads its audio with the neighbours
    assert ("utterance_context" in meta) == (encoder == "lstm")


def test_a_pretraining_stage_reads_only_its_own_modalities_context(tiny_bert_dir, small_synthetic, tmp_path):
    """KuDA's knowledge stages (one per modality) with text context: the text stage keeps it, the
    audio and vision stages train without it (they refused the run before)."""
    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    config = resolve_config("kuda", data_path=str(small_synthetic), overrides={
        "model": {"text_encoder": str(tiny_bert_dir)}, "data": {"context": 1, "context_encoder": "lstm"}, "train": FAST})
    trainer = Trainer(config, tmp_path / "k")
    stages = {s.name: trainer.stage_config(s).data for s in trainer.model.pretraining_stages()}
    assert {name: data.context for name, data in stages.items()} == {"knowledge_t": 1, "knowledge_v": 0, "knowledge_a": 0}


@pytest.mark.parametrize("encoder", ["join", "lstm"])
def test_a_model_folder_alone_reads_its_neighbours_as_trained(tiny_bert_dir, tmp_path, encoder):
    """``best/`` loads on its own (the user guide's run layout): shipped without the run's
    config.json, it still reads each utterance with the neighbours it was trained with."""
    import shutil

    import msakit
    from msakit.training.runs import predict_split

    data = _neighbour_table(tmp_path / "t")
    msakit.train("late_fusion", data, run_dir=tmp_path / "run", overrides={
        "model": {"text_encoder": str(tiny_bert_dir)}, "data": {"modalities": ("t",), "context": 1, "context_encoder": encoder, "context_hidden": 4},
        "train": {"max_epochs": 1, "batch_size": 16, "grad_accumulation": 1, **FAST}})
    shipped = tmp_path / "shipped"
    shutil.copytree(tmp_path / "run" / "seed_1111" / "best", shipped / "best")
    trained, _, _ = predict_split(tmp_path / "run" / "seed_1111", data, None, "test", "cpu")
    alone, _, _ = predict_split(shipped, data, None, "test", "cpu")
    assert np.array_equal(alone["m"], trained["m"])


@pytest.mark.parametrize("encoder", ["join", "lstm"])
def test_robustness_reads_the_neighbours_and_its_missing_curves_are_the_corrupted_splits(tmp_path, encoder):
    """``msakit robustness`` on a run with audio context: the clean point is the run's own
    evaluation (the neighbours read as trained), and a missing-audio curve is what the corrupted
    split gives, point by point: with context a clip's prediction depends on its neighbours'
    audio too, so the per-pattern composition (each clip's own modalities only) does not apply."""
    import msakit
    from msakit.workflows.robustness import build_grid, robustness
    from test_context_frames import _speaker_relative

    data = _speaker_relative(tmp_path / "speakers.pkl", seed=3)
    msakit.train("late_fusion", data, run_dir=tmp_path / "run", overrides={
        "data": {"modalities": ("a", "v"), "context": 2, "context_modalities": "a", "context_encoder": encoder, "context_hidden": 4},
        "model": {"lr_other": 5e-3},
        "train": {"max_epochs": 2, "batch_size": 32, "grad_accumulation": 1, "modality_dropout": "a:0.3", **FAST}})
    curves = build_grid(("a", "v"), rates=(0.0, 0.5, 1.0), missing="a")
    composed = robustness(tmp_path / "run", data, curves=curves, output_dir=tmp_path / "c", progress=False, device="cpu")
    direct = robustness(tmp_path / "run", data, curves=curves, output_dir=tmp_path / "d", compose_missing=False, progress=False, device="cpu")
    evaluated = msakit.evaluate(tmp_path / "run", data, device="cpu")["per_seed"]["seed_1111"]
    (curve,) = composed["curves"].values()
    assert curve["points"][0]["per_seed"]["run" if "run" in curve["points"][0]["per_seed"] else "seed_1111"]["MAE"] == pytest.approx(evaluated["MAE"], abs=1e-6)
    for p, q in zip(curve["points"], next(iter(direct["curves"].values()))["points"]):
        for seed in p["per_seed"]:
            assert p["per_seed"][seed]["MAE"] == pytest.approx(q["per_seed"][seed]["MAE"], abs=1e-6)
