"""Every registered model, whoever wrote it: learns the planted synthetic signal, trains on an
aligned and an unaligned MMSA layout (or refuses with one clear line), and reloads from its
run directory with the predictions it wrote.

Parametrized over ``msakit.models.available_models()``, so a new model is tested by being
registered. Tiny sizes: a model's class may carry ``TEST_OVERRIDES`` (model settings for a
fast run); ``LOCAL_OVERRIDES`` below covers models written before that attribute existed.
A model that reads other inputs than the default synthetic features may carry ``TEST_SETUP``:
``synthetic`` (``SyntheticSpec`` changes for its own copy of the layouts, e.g. a waveform as
audio), ``data`` (data settings) and ``fixtures`` (model setting -> the conftest fixture whose
path it takes, e.g. a tiny local encoder directory).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

import msakit
from msakit.data.mmsa import write_mmsa_pickle
from msakit.data.safe_pickle import safe_load
from msakit.data.synthetic import SyntheticSpec, write_synthetic
from msakit.errors import MsakitError
from msakit.models import available_models, get_model_class

# MAG-BERT learns through a gate on the (here random, tiny) text encoder's embeddings: slower.
# MCTN predicts from text alone (audio/vision only shape its joint representation in training),
# read through the tiny random encoder and two LSTM encoders: slower too.
LEARN_EPOCHS = {"mag_bert": 8, "mctn": 12}
LOCAL_OVERRIDES = {"late_fusion": {"lr_other": 1e-2}, "mag_bert": {"lr": 1e-3}, "mmmie": {"frame_stride": 3, "model_dim": 16, "transformer_ff_dim": 32, "lr_other": 5e-3}}


def _write_layouts(directory, **changes):
    unaligned = write_synthetic(directory / "unaligned.pkl", SyntheticSpec(n_train=192, n_valid=48, n_test=96, max_audio_frames=20, max_vision_frames=24, seed=5, **changes))
    raw = safe_load(unaligned)
    for split in raw.values():
        split.pop("audio_lengths"), split.pop("vision_lengths")
    aligned = write_mmsa_pickle(directory / "aligned.pkl", raw)
    return {"unaligned": unaligned, "aligned": aligned}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """The same small synthetic data as an unaligned file (per-modality lengths) and an aligned
    one (no ``*_lengths`` keys: MMSA's aligned layout, lengths from the text mask)."""
    return _write_layouts(tmp_path_factory.mktemp("every_model"))


def _overrides(model: str, tiny_bert_dir, request=None, **train) -> dict:
    cls = get_model_class(model)
    setup = getattr(cls, "TEST_SETUP", {})
    fixtures = {name: str(request.getfixturevalue(fixture)) for name, fixture in setup.get("fixtures", {}).items()}
    settings = {"text_encoder": str(tiny_bert_dir), **LOCAL_OVERRIDES.get(model, {}), **getattr(cls, "TEST_OVERRIDES", {}), **fixtures}
    return {
        "model": settings,
        "train": {"batch_size": 16, "grad_accumulation": 1, "early_stop": 100, "progress": False, "num_threads": 1, **train},
        **({"data": setup["data"]} if "data" in setup else {}),
    }


def _train_or_refusal(model, data, run_dir, overrides):
    try:
        return msakit.train(model, data, run_dir=run_dir, overrides=overrides), None
    except MsakitError as refusal:
        return None, refusal


@pytest.mark.parametrize("model", available_models())
def test_model_learns_trains_on_both_layouts_and_reloads(model, layouts, tiny_bert_dir, tmp_path, request):
    # The first layout the model accepts is trained long enough to learn (4 epochs) and
    # reloaded; the other only has to train (2 epochs) or be refused in one line.
    if "synthetic" in getattr(get_model_class(model), "TEST_SETUP", {}):
        layouts = _write_layouts(tmp_path / "data", **get_model_class(model).TEST_SETUP["synthetic"])
    results, refusals = {}, {}
    for layout in ("unaligned", "aligned"):
        epochs = LEARN_EPOCHS.get(model, 4) if not results else 2
        result, refusals[layout] = _train_or_refusal(model, layouts[layout], tmp_path / layout, _overrides(model, tiny_bert_dir, request, max_epochs=epochs))
        if result is not None:
            results[layout] = result
    for layout, refusal in refusals.items():
        if refusal is not None:  # a refusal is one line that says why (and what to use)
            message = str(refusal)
            assert "\n" not in message and len(message) > 20, (layout, message)
            assert "align" in message.lower(), (layout, message)
    assert results, f"{model} refused both layouts: {refusals}"
    for result in results.values():
        assert np.isfinite(result.summary["MAE"]["mean"])

    layout, result = next(iter(results.items()))
    labels = safe_load(layouts[layout])
    y_train, y_test = np.asarray(labels["train"]["regression_labels"]), np.asarray(labels["test"]["regression_labels"])
    constant_mae = float(np.mean(np.abs(y_test - np.median(y_train))))  # the best constant for MAE
    mae = result.summary["MAE"]["mean"]
    assert mae < 0.8 * constant_mae and mae < 0.8 * float(np.std(y_test)), (layout, mae, constant_mae, float(np.std(y_test)))

    # The run directory alone reproduces the predictions written at the end of training.
    seed_dir = tmp_path / layout / "seed_1111"
    with open(seed_dir / "test_predictions.csv") as f:
        written = np.array([float(row["prediction"]) for row in csv.DictReader(f)])
    predicted = msakit.training.runs.predict_split(seed_dir, layouts[layout], None, "test", "cpu")[0]["m"]
    np.testing.assert_allclose(predicted, written, rtol=1e-4, atol=1e-5)
    again = msakit.evaluate(tmp_path / layout, layouts[layout], device="cpu")["per_seed"]["seed_1111"]
    assert again["MAE"] == pytest.approx(mae, abs=1e-5)
