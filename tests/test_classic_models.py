"""EF-LSTM, LF-DNN, the CH-SIMS multi-task models (MTFN, MLF-DNN, MLMF) and TFR-Net against the
reference structure (MMSA 2.2.1) and their own promises.

Reference counts are built from the reference files' layer lists (``models/singleTask/
EF_LSTM.py``, ``LF_DNN.py``, ``models/multiTask/MTFN.py``, ``MLF_DNN.py``, ``MLMF.py``), with the
parameter-free 768-d stand-in for the reference's fixed text features (tests/test_baselines.py).
The multi-task models: their unimodal heads learn from the data's human unimodal labels
(changing those labels changes what is trained), and data without them is refused. TFR-Net:
training inputs made incomplete, evaluation inputs taken as given, the reconstruction loss.
(Every model, these included, also runs through tests/test_every_model.py and the robustness
grid of tests/test_robustness.py.)
"""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import torch

import msakit
from msakit.data.mmsa import write_mmsa_pickle
from msakit.data.safe_pickle import safe_load
from msakit.data.synthetic import SyntheticSpec, make_synthetic_data
from msakit.errors import DataError
from msakit.models import InputDims
from test_baselines import _batch, _linear, _lstm, _model, _subnet, _text_subnet, _trainable, reference_lmf, reference_tfn

MOSI_ALIGNED = InputDims(("t", "a", "v"), 5, 20)  # aligned_50.pkl: text 768, audio 5, vision 20, 50 positions
SIMS = InputDims(("t", "a", "v"), 33, 709)  # CH-SIMS unaligned: text 768, audio 33, vision 709


def reference_ef_lstm(text_in, audio_in, video_in, seq_len, hidden, layers):
    in_size = text_in + audio_in + video_in
    lstm = _lstm(in_size, hidden) + (layers - 1) * _lstm(hidden, hidden)
    return 2 * seq_len + lstm + _linear(hidden, hidden) + _linear(hidden, 1)  # BatchNorm1d(seq_lens)


def reference_lf_dnn(text_in, audio_in, video_in, text_hidden, audio_hidden, video_hidden, text_out, post_fusion_dim):
    return (
        _subnet(audio_in, audio_hidden) + _subnet(video_in, video_hidden) + _text_subnet(text_in, text_hidden, text_out)
        + _linear(text_out + audio_hidden + video_hidden, post_fusion_dim) + _linear(post_fusion_dim, post_fusion_dim) + _linear(post_fusion_dim, 1)
    )


def _heads(c, text_out):
    """post_{text,audio,video}_layer_1..3 of the multi-task references."""
    def head(i, d):
        return _linear(i, d) + _linear(d, d) + _linear(d, 1)

    return head(text_out, c.post_text_dim) + head(c.audio_hidden, c.post_audio_dim) + head(c.video_hidden, c.post_video_dim)


def test_parameter_counts_equal_the_reference_structure():
    with torch.device("meta"):
        ef, c = _model("ef_lstm", "mosi", MOSI_ALIGNED)
        reference = reference_ef_lstm(768, 5, 20, 50, c.hidden, c.layers)
        # the one difference: batch norm over the 793 features instead of the 50 positions
        assert _trainable(ef) == reference - 2 * 50 + 2 * (768 + 5 + 20)
        lf, c = _model("lf_dnn", "mosi", InputDims(("t", "a", "v"), 5, 20))
        assert _trainable(lf) == reference_lf_dnn(768, 5, 20, c.text_hidden, c.audio_hidden, c.video_hidden, c.text_out, c.post_fusion_dim)
        assert (reference, _trainable(ef), _trainable(lf)) == (885_605, 887_091, 597_171)  # the docstrings' numbers

        mlf, c = _model("mlf_dnn", "sims", SIMS)
        assert _trainable(mlf) == reference_lf_dnn(768, 33, 709, c.text_hidden, c.audio_hidden, c.video_hidden, c.text_out, c.post_fusion_dim) + _heads(c, c.text_out)
        mtfn, c = _model("mtfn", "sims", SIMS)
        assert _trainable(mtfn) == reference_tfn(768, 33, 709, c.text_hidden, c.audio_hidden, c.video_hidden, c.text_out, c.post_fusion_dim) + _heads(c, c.text_out)
        mlmf, c = _model("mlmf", "sims", SIMS)
        assert _trainable(mlmf) == reference_lmf(768, 33, 709, c.text_hidden, c.audio_hidden, c.video_hidden, c.rank) + _heads(c, c.text_hidden // 2)
        assert (_trainable(mlf), _trainable(mtfn), _trainable(mlmf)) == (283_388, 140_957_188, 1_413_392)


def test_multitask_defaults_are_the_reference_sims_values():
    with torch.device("meta"):
        mtfn, mlf, mlmf = (_model(name, "sims", SIMS)[1] for name in ("mtfn", "mlf_dnn", "mlmf"))
    assert (mtfn.weight_m, mtfn.weight_t, mtfn.weight_a, mtfn.weight_v, mtfn.lr_other) == (0.6, 0.4, 0.0, 1.0, 5e-3)
    assert (mlf.weight_m, mlf.weight_t, mlf.weight_a, mlf.weight_v, mlf.post_video_dim) == (0.6, 0.2, 0.8, 0.8, 32)
    assert (mlmf.weight_m, mlmf.weight_t, mlmf.rank, mlmf.lr_factor, mlmf.text_hidden) == (0.2, 1.0, 3, 1e-3, 256)


@pytest.mark.parametrize("name", ["mtfn", "mlf_dnn", "mlmf"])
def test_multitask_outputs_groups_and_objective(name):
    small = {"text_hidden": 16, "text_out": 8, "video_hidden": 16, "audio_hidden": 8} if name != "mlmf" else {"text_hidden": 16, "video_hidden": 16}
    model, c = _model(name, **small)
    out = model.eval()(_batch())
    assert {k: tuple(v.shape) for k, v in out.predictions.items()} == {"m": (3,), "t": (3,), "a": (3,), "v": (3,)}
    groups = model.parameter_groups()
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len([p for p in model.parameters() if p.requires_grad])  # each trained once
    by_name = {g["name"]: g for g in groups}
    assert by_name["a_subnet"]["weight_decay"] == c.audio_weight_decay and by_name["other"]["weight_decay"] == c.weight_decay
    if name == "mlmf":
        assert by_name["factors"]["lr"] == c.lr_factor and len(by_name["factors"]["params"]) == 3
    (objective,) = model.build_objectives(None, "sims")
    labels = {"m": torch.zeros(3), "t": torch.ones(3), "a": torch.full((3,), -1.0), "v": torch.zeros(3)}
    losses = objective(out, dataclasses.replace(_batch(), labels=labels), 0)
    expected = {f"l1_{s}" for s, w in (("m", c.weight_m), ("t", c.weight_t), ("a", c.weight_a), ("v", c.weight_v)) if w}
    assert set(losses) == expected
    assert losses["l1_t"].item() == pytest.approx(c.weight_t * (out.predictions["t"] - 1).abs().mean().item(), rel=1e-6)


def test_ef_lstm_prediction_does_not_depend_on_padding():
    model, _ = _model("ef_lstm", "mosi", MOSI_ALIGNED, hidden=16, layers=2)
    model.eval()
    lengths = (9, 6, 12)
    batch = _batch(lengths, lengths, lengths)  # aligned: one frame per position
    with torch.no_grad():
        together = model(batch).predictions["m"]
        for i, n in enumerate(lengths):
            alone = dataclasses.replace(
                _batch((n,), (n,), (n,)), text_ids=batch.text_ids[i : i + 1, :n], audio=batch.audio[i : i + 1, :n], vision=batch.vision[i : i + 1, :n]
            )
            torch.testing.assert_close(model(alone).predictions["m"], together[i : i + 1], rtol=1e-4, atol=1e-5)
        noisy = dataclasses.replace(batch, audio=batch.audio.clone())
        noisy.audio[1, 6:] = 100.0  # past sample 1's length
        torch.testing.assert_close(model(noisy).predictions["m"], together)


# --- training on the data's human unimodal labels ---------------------------------------------


@pytest.fixture(scope="module")
def label_files(tmp_path_factory):
    """The same small data three times: as generated (with regression_labels_T/A/V), with the
    text labels replaced (negated), and without the audio labels."""
    directory = tmp_path_factory.mktemp("unimodal_labels")
    raw = make_synthetic_data(SyntheticSpec(n_train=64, n_valid=16, n_test=24, max_audio_frames=12, max_vision_frames=12, seed=9))
    paths = {"original": write_mmsa_pickle(directory / "original.pkl", raw)}
    changed = safe_load(paths["original"])
    for split in changed.values():
        split["regression_labels_T"] = -np.asarray(split["regression_labels_T"])
    paths["text_changed"] = write_mmsa_pickle(directory / "text_changed.pkl", changed)
    missing = safe_load(paths["original"])
    for split in missing.values():
        del split["regression_labels_A"]
    paths["no_audio_labels"] = write_mmsa_pickle(directory / "no_audio_labels.pkl", missing)
    return paths


def _train(name, data, run_dir, tiny_bert_dir, **model):
    from msakit.models import get_model_class

    overrides = {
        "model": {"text_encoder": str(tiny_bert_dir), **get_model_class(name).TEST_OVERRIDES, **model},
        "train": {"batch_size": 16, "max_epochs": 1, "early_stop": 100, "progress": False, "num_threads": 1},
    }
    msakit.train(name, data, run_dir=run_dir, overrides=overrides)
    with open(run_dir / "seed_1111" / "test_predictions.csv") as f:
        return np.array([float(row["prediction"]) for row in csv.DictReader(f)])


@pytest.mark.parametrize("name", ["mlf_dnn", "mtfn", "mlmf"])
def test_changing_the_human_text_labels_changes_training(name, label_files, tiny_bert_dir, tmp_path):
    original = _train(name, label_files["original"], tmp_path / "a", tiny_bert_dir, weight_t=1.0)
    changed = _train(name, label_files["text_changed"], tmp_path / "b", tiny_bert_dir, weight_t=1.0)
    assert np.abs(original - changed).max() > 1e-4  # the text head's labels reach the shared text sub-network
    if name == "mlf_dnn":  # control: with the text task's weight at 0 the text labels are unused and the runs equal
        unused_a = _train(name, label_files["original"], tmp_path / "c", tiny_bert_dir, weight_t=0.0)
        unused_b = _train(name, label_files["text_changed"], tmp_path / "d", tiny_bert_dir, weight_t=0.0)
        np.testing.assert_array_equal(unused_a, unused_b)


@pytest.mark.parametrize("name", ["mtfn", "mlf_dnn", "mlmf"])
def test_data_without_the_unimodal_labels_is_refused_with_the_reason(name, label_files, tiny_bert_dir, tmp_path):
    with pytest.raises(DataError) as refused:
        _train(name, label_files["no_audio_labels"], tmp_path / "run", tiny_bert_dir)
    message = str(refused.value)
    assert "\n" not in message and "regression_labels_A" in message and "'train'" in message and "human unimodal labels" in message
    # Without audio the audio labels are not needed; and evaluation never needs unimodal labels.
    if name == "mlf_dnn":
        overrides = {"model": {"text_encoder": str(tiny_bert_dir), "text_hidden": 16, "text_out": 8, "video_hidden": 8, "post_fusion_dim": 16},
                     "data": {"modalities": "t,v"}, "train": {"batch_size": 16, "max_epochs": 1, "progress": False, "num_threads": 1}}
        msakit.train(name, label_files["no_audio_labels"], run_dir=tmp_path / "tv", overrides=overrides)
        assert np.isfinite(msakit.evaluate(tmp_path / "tv", label_files["no_audio_labels"], device="cpu")["summary"]["MAE"]["mean"])


def test_ef_lstm_refuses_unaligned_data_naming_the_aligned_file(label_files, tiny_bert_dir, tmp_path):
    with pytest.raises(DataError, match=r"EF-LSTM needs word-aligned audio/vision.*aligned_50\.pkl"):
        _train("ef_lstm", label_files["original"], tmp_path / "run", tiny_bert_dir)


# --- TFR-Net -----------------------------------------------------------------------------------


def _bigru(i, h, layers):
    one = lambda x: 3 * h * x + 3 * h * h + 6 * h  # noqa: E731  (weights and both bias vectors, per direction)
    return 2 * one(i) + (layers - 1) * 2 * one(2 * h)


def reference_tfr_net(text_in, audio_in, video_in, widths, d, nlevels, kernels, fusion_hidden, gru_layers, cls_hidden):
    from test_baselines import _transformer

    convs = sum(i * d * k for i, k in zip((text_in, audio_in, video_in), kernels) if i != d)
    deep = max(nlevels, 3)
    attention = 6 * _transformer(d, nlevels) + 3 * _transformer(d, deep) + sum(_transformer(w, deep) for w in widths)
    generators = sum(_linear(3 * d, i) for i in (text_in, audio_in, video_in))
    gates = sum(_bigru(3 * d, h, gru_layers) + (2 * h * 3 + 1) + _linear(2 * h + 3 * d, h) for h in fusion_hidden)
    total = sum(fusion_hidden)
    return convs + attention + generators + gates + 2 * total + _linear(total, cls_hidden) + _linear(cls_hidden, 1)


def test_tfr_net_parameter_count_equals_the_reference_structure():
    with torch.device("meta"):
        model, c = _model("tfr_net", "mosi", InputDims(("t", "a", "v"), 5, 20))
    reference = reference_tfr_net(
        768, 5, 20, (c.seq_len_t, c.seq_len_a, c.seq_len_v), c.model_dim, c.layers, (c.conv_kernel_t, c.conv_kernel_a, c.conv_kernel_v),
        (c.fusion_hidden_t, c.fusion_hidden_a, c.fusion_hidden_v), c.fusion_gru_layers, c.cls_hidden,
    )
    assert (c.seq_len_t, c.seq_len_a, c.seq_len_v, c.temporal_heads) == (50, 500, 375, 25)  # MMSA's MOSI unaligned seq_lens
    assert _trainable(model) == reference
    assert reference == 14_850_620  # the docstring's number


def test_tfr_net_trains_on_incomplete_inputs_and_predicts_from_what_it_is_given():
    model, c = _model("tfr_net", "mosi", InputDims(("t", "a", "v"), 5, 20), model_dim=8, heads=2, layers=1, seq_len_t=16, seq_len_a=20, seq_len_v=24,
                      temporal_heads=2, fusion_gru_layers=1, missing_rate_a=0.5)
    batch = _batch((9, 6, 12), (14, 7, 20), (11, 24, 5))
    torch.manual_seed(0)
    out = model.train()(batch)
    rebuilt, target, missing = out.extras["reconstruction"]["a"]
    assert rebuilt.shape == target.shape == (3, 20, 5) and missing.shape == (3, 20)
    lengths = torch.tensor([14, 7, 20])
    assert not missing[torch.arange(20)[None, :] >= lengths[:, None]].any()  # only valid frames go missing
    assert 0.3 < missing.sum().item() / lengths.sum().item() < 0.7
    text_missing = out.extras["reconstruction"]["t"][2]
    assert not text_missing[:, 0].any() and not text_missing[torch.arange(3), torch.tensor([9, 6, 12]) - 1].any()  # [CLS], last token kept
    torch.testing.assert_close(target, _batch((9, 6, 12), (14, 7, 20), (11, 24, 5)).audio[:, :20])  # the complete frames are the target

    (l1, reconstruction) = model.build_objectives(None, "mosi")
    assert set(reconstruction(out, batch, 2)) == {"reconstruction_t", "reconstruction_a", "reconstruction_v"}
    assert reconstruction(out, batch, 1) == {}  # the reference adds it from the second epoch
    model.eval()
    with torch.no_grad():
        first, second = model(batch), model(batch)
    assert first.extras == {} and torch.equal(first.predictions["m"], second.predictions["m"])  # no corruption in evaluation


def test_reconstruction_loss_counts_only_missing_positions():
    from msakit.objectives.feature_reconstruction import masked_reconstruction_loss

    target = torch.randn(2, 5, 3)
    missing = torch.tensor([[True, False, False, False, False], [False, False, True, True, False]])
    exact_where_missing = torch.where(missing[..., None], target, torch.randn(2, 5, 3) * 100)
    assert masked_reconstruction_loss(exact_where_missing, target, missing, sim_weight=5.0).item() == pytest.approx(0.0, abs=1e-6)
    off = target + missing[..., None] * 0.5  # off by 0.5 at the 9 missing values: smooth L1 0.125 each
    assert masked_reconstruction_loss(off, target, missing, sim_weight=0.0).item() == pytest.approx(0.125, rel=1e-3)



# --- msakit synth --kind sims: the SIMS-shaped set the multi-task models train on ---------------


def test_synth_kind_sims_writes_sims_shaped_data_that_mlf_dnn_trains_on(tiny_bert_dir, tmp_path, capsys):
    from msakit.cli import main
    from msakit.models import get_model_class

    sizes = ["--n-train", "32", "--n-valid", "8", "--n-test", "8", "--seed", "3"]
    sims = tmp_path / "sims.pkl"
    assert main(["synth", str(sims), "--kind", "sims", *sizes]) == 0
    written = safe_load(sims)
    same = make_synthetic_data(SyntheticSpec(n_train=32, n_valid=8, n_test=8, seed=3, audio_dim=33, vision_dim=709))
    for split in ("train", "valid", "test"):
        assert written[split]["audio"].shape[2] == 33 and written[split]["vision"].shape[2] == 709  # CH-SIMS's feature sizes
        for key in ("regression_labels", "regression_labels_T", "regression_labels_A", "regression_labels_V"):
            labels = np.asarray(written[split][key])
            assert np.abs(labels).max() <= 1.0 and np.abs(labels).max() > 0.5  # CH-SIMS's [-1, 1], spread over it
            np.testing.assert_allclose(labels, np.asarray(same[split][key]) / 3.0, rtol=1e-6)  # the generator's labels, rescaled
        assert written[split]["raw_text"] == same[split]["raw_text"]
    # The multi-task model trains on it from the command line, unimodal heads included.
    run = tmp_path / "run"
    settings = {"text_encoder": str(tiny_bert_dir), **get_model_class("mlf_dnn").TEST_OVERRIDES}
    sets = [a for key, value in settings.items() for a in ("--set", f"model.{key}={value}")]
    assert main(["train", "--model", "mlf_dnn", "--data", str(sims), "--kind", "sims", "--epochs", "1", "--quiet",
                 "--run-dir", str(run), "--set", "train.batch_size=16", "--set", "train.num_threads=1", *sets]) == 0
    results = msakit.evaluate(run, sims, device="cpu")
    assert np.isfinite(results["summary"]["MAE"]["mean"]) and results["summary"]["MAE"]["mean"] < 1.5  # on SIMS's scale
    with open(run / "seed_1111" / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and all(np.isfinite(float(row["prediction"])) for row in rows)


@pytest.mark.parametrize("other", ["--aligned", "--weak-noisy", "--utterance"])
def test_synth_kind_sims_refuses_settings_that_are_not_sims_shaped(other, tmp_path, capsys):
    from msakit.cli import main

    assert main(["synth", str(tmp_path / "x.pkl"), "--kind", "sims", other]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "--kind sims" in error and other in error
    assert not (tmp_path / "x.pkl").exists()
    if other == "--aligned":  # and the clip set has no kind
        assert main(["synth", str(tmp_path / "clips"), "--clips", "4", "--kind", "sims"]) == 2
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and "--kind" in error and "--clips" in error
