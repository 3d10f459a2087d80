"""The speed benchmark's reference-style sides (benchmarks/model_speed.py) compute the same model:
with nothing padded, each gives msakit's predictions from the shared weights, and each trains."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import model_speed  # noqa: E402

from msakit.data.mmsa import read_mmsa_pickle  # noqa: E402
from msakit.data.synthetic import SyntheticSpec, sims_spec, write_synthetic  # noqa: E402
from msakit.models import get_model_class  # noqa: E402

# "frozen" cases give the two sides different text states (msakit its frozen encoder, the reference fixed
# features): nothing to compare prediction by prediction, so they are timed only.
CASES = [case for cases in model_speed.CASES.values() for case in cases if case.text != "frozen"]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model_speed")
    spec = dict(n_train=48, n_valid=8, n_test=8, max_audio_frames=24, max_vision_frames=30, seed=3)
    files = {
        (aligned, "mosi"): read_mmsa_pickle(write_synthetic(directory / f"{aligned}.pkl", SyntheticSpec(aligned=aligned, **spec)), kind="mosi")
        for aligned in (False, True)
    }
    files[False, "sims"] = read_mmsa_pickle(write_synthetic(directory / "sims.pkl", sims_spec(**spec)), kind="sims")  # msakit synth --kind sims
    return files


@pytest.mark.parametrize("case", CASES, ids=[f"{c.model}-{c.text}" for c in CASES])
def test_reference_side_matches_msakit_and_trains(case, datasets, tiny_bert_dir, tmp_path):
    torch.manual_seed(0)
    overrides = {"text_encoder": str(tiny_bert_dir), **getattr(get_model_class(case.model), "TEST_OVERRIDES", {})}
    trainer, msakit, references = model_speed.prepare_case(case, datasets[case.aligned, case.kind], tmp_path, model_overrides=overrides)
    length, differences = model_speed.unpadded_differences(trainer, msakit, references)
    assert length >= 4
    assert max(differences.values()) < 1e-5, differences

    # One batch on every side: padded to the file's width on the reference sides, trimmed on msakit's.
    trainer.model.train()
    rows = np.arange(8)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    inputs = model_speed.ReferenceInputs(trainer)
    assert inputs.ids.shape[1] == model_speed.TEXT_PAD
    for _ in range(trainer.config.train.grad_accumulation):  # up to an optimiser step on each side
        msakit.step(trainer.builders["train"].make_batch(rows))
        for side in references.values():
            side.step(inputs.take(rows))
    after = dict(trainer.model.named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    assert any(not torch.equal(before[name], after[name]) for name in before)
