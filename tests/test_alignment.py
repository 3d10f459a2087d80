"""The covariance alignment loss and its pair-set parser."""

from __future__ import annotations

import warnings

import pytest
import torch

from msakit.objectives.alignment import CovarianceAlignment, batch_covariance, covariance_alignment_loss, parse_pairs


def test_zero_for_identical_batches_and_for_a_shift():
    torch.manual_seed(0)
    x = torch.randn(12, 5)
    assert covariance_alignment_loss(x, x.clone()) == 0
    assert covariance_alignment_loss(x, x + torch.randn(1, 5) * 7) < 1e-10


def test_matches_the_formula_and_numpy_covariance():
    torch.manual_seed(1)
    x, y = torch.randn(9, 4, dtype=torch.float64), torch.randn(9, 4, dtype=torch.float64)
    torch.testing.assert_close(batch_covariance(x), torch.cov(x.T))
    expected = (torch.cov(x.T) - torch.cov(y.T)).square().sum() / (4 * 4**2)
    torch.testing.assert_close(covariance_alignment_loss(x, y), expected.float())


def test_invariant_to_permuting_samples():
    torch.manual_seed(2)
    x, y = torch.randn(10, 3), torch.randn(10, 3)
    perm = torch.randperm(10)
    torch.testing.assert_close(covariance_alignment_loss(x[perm], y), covariance_alignment_loss(x, y))
    torch.testing.assert_close(covariance_alignment_loss(x[perm], y[torch.randperm(10)]), covariance_alignment_loss(x, y))


def test_grows_when_one_modality_is_scaled():
    torch.manual_seed(3)
    x = torch.randn(16, 4)
    y = x + 0.1 * torch.randn(16, 4)
    losses = [float(covariance_alignment_loss(x, y * s)) for s in (1.0, 1.5, 2.0, 4.0)]
    assert losses == sorted(losses) and losses[-1] > 10 * losses[0]


def test_gradient_matches_finite_differences():
    torch.manual_seed(4)
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)

    def loss64(a, b):
        d = batch_covariance(a) - batch_covariance(b)
        return d.square().sum() / (4 * 3**2)

    assert torch.autograd.gradcheck(loss64, (x, y))
    # and the public function's float32 gradient agrees with the float64 one
    x32, y32 = x.detach().float().requires_grad_(), y.detach().float().requires_grad_()
    covariance_alignment_loss(x32, y32).backward()
    loss64(x, y).backward()
    torch.testing.assert_close(x32.grad.double(), x.grad, atol=1e-5, rtol=1e-4)


def test_batch_of_one_warns_and_gives_a_differentiable_zero_not_nan():
    x = torch.randn(1, 4, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="batch of 1"):
        loss = covariance_alignment_loss(x, torch.randn(1, 4))
    assert loss == 0 and not torch.isnan(loss)
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.bad_input
def test_different_sizes_are_refused_with_the_dims():
    with pytest.raises(ValueError, match=r"\(8, 16\) and \(8, 32\)"):
        covariance_alignment_loss(torch.randn(8, 16), torch.randn(8, 32))
    with pytest.raises(ValueError, match="F_a has 16 dims and F_v has 32.*align_dim"):
        CovarianceAlignment(parse_pairs("a-v"), {"a": 16, "v": 32, "t": 32, "m": 128})
    with pytest.raises(ValueError, match="no 'v' features"):
        CovarianceAlignment(parse_pairs("a-v"), {"a": 16, "t": 16, "m": 128})


def test_pair_sets_parse():
    assert parse_pairs("a-v") == [("a", "v", 1.0)]
    assert parse_pairs("t-a,t-v", default_weight=0.1) == [("t", "a", 0.1), ("t", "v", 0.1)]
    assert parse_pairs("all") == [("t", "a", 1.0), ("t", "v", 1.0), ("a", "v", 1.0)]
    assert parse_pairs("none") == [] and parse_pairs("") == []
    assert parse_pairs("a-v:0.5, t-m:2") == [("a", "v", 0.5), ("t", "m", 2.0)]
    assert parse_pairs([("a", "v")]) == [("a", "v", 1.0)]
    for bad in ("a-a", "a-x", "av", "a-v,v-a", "a-v:lots"):
        with pytest.raises(ValueError):
            parse_pairs(bad)


def test_objective_names_one_term_per_pair():
    from msakit.models.base import ModelOutput

    torch.manual_seed(5)
    features = {s: torch.randn(8, 4) for s in "tav"}
    objective = CovarianceAlignment(parse_pairs("a-v:0.5,t-a"), {"t": 4, "a": 4, "v": 4})
    terms = objective(ModelOutput({}, features), None, 1)
    assert set(terms) == {"cov_av", "cov_ta"}
    torch.testing.assert_close(terms["cov_av"], 0.5 * covariance_alignment_loss(features["a"], features["v"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        objective(ModelOutput({}, features), None, 1)


def test_alignment_skips_samples_whose_modality_was_dropped():
    """Under modality dropout a sample with its audio (or vision) absent has nothing to align:
    the a-v term is the loss over the samples that have both, and a batch with fewer than two
    such samples contributes zero (no warning, no NaN)."""
    from types import SimpleNamespace

    from msakit.objectives.alignment import CovarianceAlignment, covariance_alignment_loss

    g = torch.Generator().manual_seed(0)
    features = {"a": torch.randn(6, 4, generator=g), "v": torch.randn(6, 4, generator=g)}
    objective = CovarianceAlignment([("a", "v", 2.0)], {"a": 4, "v": 4})
    output = SimpleNamespace(features=features)
    absent = {"a": torch.tensor([True, False, False, False, False, False]), "v": torch.tensor([False, False, True, False, False, False])}
    keep = torch.tensor([False, True, False, True, True, True])
    masked = objective(output, SimpleNamespace(absent=absent), epoch=1)["cov_av"]
    assert torch.allclose(masked, 2.0 * covariance_alignment_loss(features["a"][keep], features["v"][keep]))
    full = objective(output, SimpleNamespace(absent=None), epoch=1)["cov_av"]
    assert not torch.allclose(masked, full)
    almost_all = {"a": torch.tensor([True, True, True, True, True, False])}
    assert objective(output, SimpleNamespace(absent=almost_all), epoch=1)["cov_av"].item() == 0.0


def test_training_batches_say_which_modalities_were_dropped(small_synthetic):
    from msakit.data import load_dataset
    from msakit.data.batching import BatchBuilder

    split = load_dataset(small_synthetic)["train"]
    builder = BatchBuilder(split, ("a", "v"), tokenizer=None)
    batches = list(builder.batches(16, shuffle=True, seed=1, epoch=1, modality_dropout={"a": 0.5}))
    assert all(set(b.absent) == {"a"} and b.absent["a"].dtype == torch.bool for b in batches)
    for b in batches:  # absent audio is all-zero frames
        assert not b.audio[b.absent["a"]].any()
    assert 0 < sum(int(b.absent["a"].sum()) for b in batches) < len(split)
    assert next(builder.batches(16)).absent is None
