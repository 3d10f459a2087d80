"""MISA, MAG-BERT and MMIM: structure against the reference, learning, layouts, reloading."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

import msakit
from msakit.config import resolve_config
from msakit.data import load_dataset
from msakit.data.batching import BatchBuilder
from msakit.data.synthetic import SyntheticSpec, write_synthetic
from msakit.encoders.text import TextEncoder, load_tokenizer
from msakit.errors import ConfigError, DataError
from msakit.models import InputDims, get_model_class
from msakit.training.trainer import Trainer, predict_builder

D_A, D_V = 5, 20  # the small_synthetic fixture's feature sizes


@pytest.fixture(scope="module")
def aligned_synthetic(small_synthetic, tmp_path_factory):
    """The small_synthetic samples in the aligned_50.pkl layout: no *_lengths, one frame per
    text position, lengths from the text mask."""
    spec = SyntheticSpec(n_train=96, n_valid=32, n_test=40, max_audio_frames=24, max_vision_frames=30, seed=3, aligned=True)
    path = write_synthetic(tmp_path_factory.mktemp("aligned") / "aligned_50.pkl", spec)
    aligned, unaligned = load_dataset(path), load_dataset(small_synthetic)
    assert aligned.aligned and not unaligned.aligned
    assert aligned["test"].raw_text == unaligned["test"].raw_text
    words = np.array([len(t.split()) + 2 for t in aligned["test"].raw_text])  # + [CLS], [SEP]
    np.testing.assert_array_equal(aligned["test"].audio_lengths, np.minimum(words, 24))
    return path


def _build(name, tiny_bert_dir, modalities=("t", "a", "v")):
    cls = get_model_class(name)
    torch.manual_seed(0)
    return cls(cls.config_class(), InputDims(modalities, D_A if "a" in modalities else None, D_V if "v" in modalities else None), TextEncoder.from_pretrained(tiny_bert_dir))


def _shapes(modules) -> Counter:
    return Counter(tuple(p.shape) for m in modules for p in m.parameters())


def _non_text_shapes(model) -> Counter:
    text = {id(p) for p in model.text_model.parameters()}
    return Counter(tuple(p.shape) for p in model.parameters() if id(p) not in text)


def _batch(small_synthetic, tiny_bert_dir, data=None, n=6):
    dataset = load_dataset(data or small_synthetic)
    builder = BatchBuilder(dataset["test"], ("t", "a", "v"), load_tokenizer(tiny_bert_dir))
    return next(builder.batches(n))


# --- structure against the reference (MMSA 2.2.1 model files), same configuration and sizes --------


def test_misa_matches_the_reference_layers_except_the_unused_ones(tiny_bert_dir, small_synthetic):
    model = _build("misa", tiny_bert_dir)
    H, h = model.text_model.hidden_size, 128
    lstm = lambda i, o: nn.LSTM(i, o, bidirectional=True)  # noqa: E731
    used = [  # MMSA MISA.__init__ (use_cmd_sim: no discriminator), hidden sizes = input sizes
        lstm(D_V, D_V), lstm(2 * D_V, D_V), lstm(D_A, D_A), lstm(2 * D_A, D_A),
        nn.Linear(H, h), nn.LayerNorm(h), nn.Linear(4 * D_V, h), nn.LayerNorm(h), nn.Linear(4 * D_A, h), nn.LayerNorm(h),
        *[nn.Linear(h, h) for _ in range(7)],  # private t/v/a, shared, recon t/v/a
        nn.Linear(6 * h, 3 * h), nn.Linear(3 * h, 1),
        nn.LayerNorm(2 * D_V), nn.LayerNorm(2 * D_A), nn.TransformerEncoderLayer(h, 2),
    ]
    unused = [nn.Linear(h, 4), nn.LayerNorm(2 * H)]  # sp_discriminator, tlayer_norm: built, never used
    assert _non_text_shapes(model) == _shapes(used)
    reference = sum(p.numel() for m in used + unused for p in m.parameters())
    ours = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in model.text_model.parameters())
    assert reference - ours == (4 * h + 4) + 2 * 2 * H
    out = model.eval()(_batch(small_synthetic, tiny_bert_dir))
    assert out.predictions["m"].shape == (6,)
    assert out.features["m"].shape == (6, 3 * h) and all(out.extras["shared"][s].shape == (6, h) for s in "tav")


def test_mag_bert_matches_the_reference_layers(tiny_bert_dir, aligned_synthetic, small_synthetic):
    model = _build("mag_bert", tiny_bert_dir)
    H = model.text_model.hidden_size
    reference = [  # MMSA BERT_MAG: MAG(...) and the classifier; BertPooler(H → H) lives in its BERT
        nn.Linear(D_V + H, H), nn.Linear(D_A + H, H), nn.Linear(D_V, H), nn.Linear(D_A, H), nn.LayerNorm(H),
        nn.Linear(H, 1), nn.Linear(H, H),
    ]
    assert _non_text_shapes(model) == _shapes(reference)
    out = model.eval()(_batch(small_synthetic, tiny_bert_dir, aligned_synthetic))
    assert out.predictions["m"].shape == (6,) and out.features["m"].shape == (6, H)


def test_mmim_matches_the_reference_layers(tiny_bert_dir, small_synthetic):
    model = _build("mmim", tiny_bert_dir)
    H = model.text_model.hidden_size

    def mmilb(y):
        return [nn.Linear(H, y), nn.Linear(y, y), nn.Linear(H, y), nn.Linear(y, y), nn.Linear(y, y // 4)]

    reference = [  # MMSA MMIM.__init__ with the mosi config (bidirectional, d_*h = d_*out = 16, d_prjh = 128)
        nn.LSTM(D_V, 16, bidirectional=True), nn.Linear(32, 16), nn.LSTM(D_A, 16, bidirectional=True), nn.Linear(32, 16),
        *mmilb(16), *mmilb(16), nn.Linear(128, H), nn.Linear(128, 16), nn.Linear(128, 16),
        nn.Linear(H + 32, 128), nn.Linear(128, 128), nn.Linear(128, 1),
    ]
    assert _non_text_shapes(model) == _shapes(reference)
    out = model.eval()(_batch(small_synthetic, tiny_bert_dir))
    shapes = {k: tuple(v.shape) for k, v in out.features.items()}
    assert shapes == {"t": (6, H), "a": (6, 16), "v": (6, 16), "m": (6, 128)}  # Feature_t/a/v/f
    assert out.predictions["m"].shape == (6,)


# --- learning, reloading --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,layout,model_overrides",
    [("misa", "unaligned", {"lr": 1e-3}), ("mmim", "unaligned", {}), ("mag_bert", "aligned", {"lr": 1e-3})],
)
def test_learns_the_planted_signal_and_reloads_with_identical_predictions(name, layout, model_overrides, small_synthetic, aligned_synthetic, tiny_overrides, tmp_path):
    # The tiny BERT is random (it cannot read the sentiment words), so the signal must come
    # through audio/vision; the learning rates of the pretrained-BERT references are raised.
    data = aligned_synthetic if layout == "aligned" else small_synthetic
    overrides = tiny_overrides(max_epochs=8, num_threads=1)
    overrides["model"].update(model_overrides)
    result = msakit.train(name, data, run_dir=tmp_path / "run", overrides=overrides)
    y = load_dataset(data)["test"].labels["m"]
    constant = float(np.mean(np.abs(y - np.median(y))))  # the best constant predictor's MAE
    assert result.summary["MAE"]["mean"] < 0.85 * constant, (result.summary["MAE"]["mean"], constant)
    assert result.summary["Corr"]["mean"] > 0.4

    seed_dir = tmp_path / "run" / "seed_1111"
    with open(seed_dir / "test_predictions.csv") as f:
        saved = np.array([float(row["prediction"]) for row in csv.DictReader(f)])
    model, tokenizer, meta = msakit.load_run(seed_dir)
    assert meta["model"] == name
    from msakit.data.standardize import load_run_standardizer

    test = load_dataset(data)["test"]
    standardizer = load_run_standardizer(seed_dir)  # the run's training-split statistics, as evaluate/predict apply them
    test = standardizer.apply(test) if standardizer is not None else test
    builder = BatchBuilder(test, tuple(meta["input_dims"]["modalities"]), tokenizer)
    first = predict_builder(model, builder, 16, torch.device("cpu"))["m"]
    again = predict_builder(msakit.load_run(seed_dir)[0], builder, 7, torch.device("cpu"))["m"]
    np.testing.assert_allclose(first, saved, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(first, again, rtol=0, atol=1e-6)  # another batch size, another load
    if name == "mag_bert":  # a trained MAG-BERT refuses unaligned frames at evaluation too
        with pytest.raises(DataError, match="aligned_50.pkl"):
            msakit.evaluate(seed_dir, small_synthetic, device="cpu")


# --- layouts and modality subsets -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name,layout,modalities",
    [("misa", "aligned", None), ("misa", "unaligned", "a,v"), ("mmim", "aligned", None), ("mmim", "unaligned", "t,a"), ("mag_bert", "aligned", "t,v")],
)
def test_trains_on_other_layouts_and_subsets(name, layout, modalities, small_synthetic, aligned_synthetic, tiny_overrides, tmp_path):
    overrides = tiny_overrides(max_epochs=1, num_threads=1)
    if modalities:
        overrides["data"] = {"modalities": modalities}
    result = msakit.train(name, aligned_synthetic if layout == "aligned" else small_synthetic, run_dir=tmp_path / "r", overrides=overrides)
    assert np.isfinite(result.summary["MAE"]["mean"])


def test_mag_bert_refuses_unaligned_data_naming_the_file_to_use(small_synthetic, tiny_overrides, tmp_path):
    config = resolve_config("mag_bert", data_path=str(small_synthetic), overrides=tiny_overrides())
    with pytest.raises(DataError, match=r"word-aligned.*unaligned.*aligned_50\.pkl") as error:
        Trainer(config, tmp_path / "r")
    assert "\n" not in str(error.value) and str(small_synthetic) in str(error.value)
    from msakit.cli import main

    code = main(["train", "--model", "mag_bert", "--data", str(small_synthetic), "--run-dir", str(tmp_path / "cli"), "--set", f"model.text_encoder={tiny_overrides()['model']['text_encoder']}"])
    assert code != 0


@pytest.mark.parametrize("name,modalities", [("misa", "t"), ("misa", "v"), ("mag_bert", "a,v"), ("mag_bert", "t"), ("mmim", "a,v"), ("mmim", "t")])
def test_unsupported_modality_subsets_are_refused_with_the_supported_ones(name, modalities, small_synthetic, aligned_synthetic, tiny_overrides, tmp_path):
    overrides = tiny_overrides() | {"data": {"modalities": modalities}}
    config = resolve_config(name, data_path=str(aligned_synthetic), overrides=overrides)
    with pytest.raises(ConfigError, match=f"data.modalities={modalities}; use t,a"):
        Trainer(config, tmp_path / "r")


# --- mechanisms -----------------------------------------------------------------------------------


def test_embedding_hook_applies_on_both_text_encoder_paths(tiny_bert_dir, small_synthetic):
    encoder = TextEncoder.from_pretrained(tiny_bert_dir).eval()
    batch = _batch(small_synthetic, tiny_bert_dir)
    with torch.no_grad():
        plain = encoder(batch.text_ids, batch.text_mask)
        identity = encoder(batch.text_ids, batch.text_mask, embedding_hook=lambda e: e)
        scaled_fast = encoder(batch.text_ids, batch.text_mask, embedding_hook=lambda e: 1.7 * e)
        encoder.unpadded = False
        scaled_stock = encoder(batch.text_ids, batch.text_mask, embedding_hook=lambda e: 1.7 * e)
        after = encoder(batch.text_ids, batch.text_mask)
    torch.testing.assert_close(identity, plain)
    torch.testing.assert_close(scaled_fast, scaled_stock, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(scaled_fast, plain)
    torch.testing.assert_close(after, plain, rtol=1e-4, atol=1e-5)  # the hook is gone afterwards


def test_frames_map_to_token_positions_and_a_zero_shift_leaves_the_layer_norm(tiny_bert_dir, aligned_synthetic, small_synthetic):
    from msakit.models.mag_bert import frames_per_token

    frames = torch.arange(1, 13, dtype=torch.float32).view(2, 3, 2)
    mapped = frames_per_token(frames, torch.tensor([3, 1]), width=5)
    assert mapped.shape == (2, 5, 2)
    assert torch.equal(mapped[0, :3], frames[0]) and mapped[0, 3:].abs().sum() == 0
    assert torch.equal(mapped[1, :1], frames[1, :1]) and mapped[1, 1:].abs().sum() == 0
    model = _build("mag_bert", tiny_bert_dir).eval()
    batch = _batch(small_synthetic, tiny_bert_dir, aligned_synthetic)
    with torch.no_grad():  # zero frames still shift by b_v, b_a; with those zeroed too, the gate is LayerNorm(e)
        for layer in (model.gate.W_v, model.gate.W_a):
            layer.weight.zero_(), layer.bias.zero_()
        gated = model.text_model(batch.text_ids, batch.text_mask, embedding_hook=lambda e: model.gate(e, torch.zeros(*e.shape[:2], D_A), torch.zeros(*e.shape[:2], D_V)))
        normed = model.text_model(batch.text_ids, batch.text_mask, embedding_hook=model.gate.layer_norm)
    torch.testing.assert_close(gated, normed)


def test_mmim_routes_stage_1_to_the_estimators_and_stage_2_to_the_rest(tiny_bert_dir, small_synthetic, tiny_overrides, tmp_path):
    trainer = Trainer(resolve_config("mmim", data_path=str(small_synthetic), overrides=tiny_overrides()), tmp_path / "r")
    model = trainer.model.train()
    batch = next(trainer.builders["train"].batches(16))
    names = {id(p): n for n, p in model.named_parameters()}

    def reached(term_names):
        model.zero_grad(set_to_none=True)
        output = model(batch)
        terms = {}
        for objective in trainer.objectives:
            terms.update(objective(output, batch, 1))
        sum(terms[k] for k in term_names).backward()
        return {names[id(p)].split(".")[0] for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}

    assert reached(["mmilb_estimator"]) == {"mmilb"}
    stage_2 = reached(["l1_m", "cpc", "mmilb_lld", "mmilb_entropy"])
    assert "mmilb" not in stage_2 and {"text_model", "sequence_encoders", "cpc", "fusion", "regressor"} <= stage_2
    assert [g["name"] for g in model.parameter_groups()] == ["text", "mmilb", "main"]


def test_misa_clips_gradient_values_before_each_step(tiny_bert_dir):
    model = _build("misa", tiny_bert_dir)
    for p in model.parameters():
        p.grad = torch.full_like(p, 5.0)
    model.gradient_clipping().apply(model)
    assert all(p.grad.max() == pytest.approx(0.8) for p in model.parameters())


def test_dataset_defaults_follow_the_reference_configs():
    misa = resolve_config("misa", kind="mosei")
    assert (misa.train.batch_size, misa.train.grad_accumulation, misa.model_config.sim_weight, misa.model_config.dropout) == (64, 2, 0.8, 0.5)
    assert resolve_config("misa").train.batch_size == 16
    mag = resolve_config("mag_bert", kind="sims")
    assert (mag.model_config.lr, mag.model_config.mag_dropout, mag.train.grad_accumulation) == (5e-5, 0.1, 1)
    mmim = resolve_config("mmim")
    assert (mmim.train.batch_size, mmim.model_config.cpc_weight, mmim.model_config.mmilb_weight) == (32, 0.1, 0.1)
    with pytest.raises(ConfigError, match="model.hidden_dim=30 must be divisible by model.transformer_heads=4"):
        resolve_config("misa", overrides={"model": {"hidden_dim": 30, "transformer_heads": 4}})


def test_mag_displacement_is_capped_at_beta_times_the_embedding_norm():
    from msakit.models.mag_bert import MultimodalAdaptationGate

    torch.manual_seed(0)
    gate = MultimodalAdaptationGate(8, D_A, D_V, beta_shift=0.5, dropout=0.0)
    e, a, v = torch.randn(3, 7, 8), torch.randn(3, 7, D_A), torch.randn(3, 7, D_V)
    with torch.no_grad():
        small = gate.displacement(e, 1e-3 * a, 1e-3 * v)
        for layer in (gate.W_v, gate.W_a):
            layer.weight.mul_(1e3)
        large = gate.displacement(e, a, v)
    limit = 0.5 * e.norm(dim=-1)
    assert (small.norm(dim=-1) < limit).all()  # a small shift passes unchanged (α = 1)
    torch.testing.assert_close(large.norm(dim=-1), limit, rtol=1e-4, atol=1e-5)  # a large one is scaled to β‖e‖
    torch.testing.assert_close(gate(e, a, v), gate.layer_norm(e + large))
