"""MISA's subspace losses and MMIM's mutual-information terms: known values and gradient routing."""

from __future__ import annotations

import math

import pytest
import torch

from msakit.objectives.infomax import MMILB, cpc_nce, gaussian_entropy_term, gaussian_log_likelihood_term
from msakit.objectives.subspace import central_moment_discrepancy, difference_loss, reconstruction_loss


def test_cmd_is_zero_for_identical_batches_with_a_finite_gradient():
    torch.manual_seed(0)
    x = torch.rand(16, 8, requires_grad=True)
    value = central_moment_discrepancy(x, x.detach().clone(), 5)
    assert value.item() == 0.0
    value.backward()
    assert torch.isfinite(x.grad).all()


def test_cmd_known_values():
    x = torch.rand(32, 4)
    # A shift moves only the mean: CMD = ‖shift‖ (every central moment is unchanged).
    shift = torch.tensor([0.3, 0.0, -0.4, 0.0])
    assert central_moment_discrepancy(x, x + shift, 5).item() == pytest.approx(0.5, abs=1e-5)
    # Same mean, different spread: {−1, 1} vs {−2, 2} per dim (k = 1) → |1 − 4| + |0 − 0| + |1 − 16| + 0 (K = 5).
    a = torch.tensor([[-1.0], [1.0]])
    assert central_moment_discrepancy(a, 2 * a, 5).item() == pytest.approx(3.0 + 15.0)
    assert central_moment_discrepancy(a, 2 * a, 2).item() == pytest.approx(3.0)
    # Order of samples does not matter; batch sizes may differ.
    assert central_moment_discrepancy(x, x[torch.randperm(32)], 5).item() == pytest.approx(0.0, abs=1e-5)
    assert central_moment_discrepancy(x, torch.cat([x, x]), 5).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="one k"):
        central_moment_discrepancy(x, x[:, :2])


def test_difference_loss_is_zero_for_orthogonal_features_and_positive_for_shared_ones():
    u = torch.tensor([1.0, -1.0, 1.0, -1.0])  # centred, orthogonal across the batch to v
    v = torch.tensor([1.0, 1.0, -1.0, -1.0])
    x = u[:, None] * torch.tensor([[0.5, -2.0, 1.0]])
    y = v[:, None] * torch.tensor([[3.0, 1.0]])
    assert difference_loss(x, y).item() == pytest.approx(0.0, abs=1e-12)
    assert difference_loss(x + 5.0, y - 1.0).item() == pytest.approx(0.0, abs=1e-12)  # centred first
    # Identical one-dimensional features: X̂ᵀX̂ = Σ_b (±1)² over unit rows = B → loss B² (B = 4).
    single = u[:, None]
    assert difference_loss(single, single).item() == pytest.approx(16.0, rel=1e-5)
    torch.manual_seed(0)
    a = torch.randn(16, 6)
    assert difference_loss(a, a).item() > difference_loss(a, torch.randn(16, 6)).item()
    # Row scaling does not change it (rows are normalised).
    assert difference_loss(3.0 * a, a).item() == pytest.approx(difference_loss(a, a).item(), rel=1e-4)


def test_reconstruction_loss_is_the_mean_squared_error():
    a = torch.zeros(2, 3)
    assert reconstruction_loss(a, a).item() == 0.0
    assert reconstruction_loss(a, a + 2.0).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="shapes differ"):
        reconstruction_loss(a, torch.zeros(3, 2))


def test_cpc_known_values():
    # Perfect predictions of B orthonormal targets: pos = 1, each row's logsumexp = log(e + B − 1).
    b = 4
    eye = torch.eye(b)
    assert cpc_nce(eye, 3.0 * eye).item() == pytest.approx(math.log(math.e + b - 1) - 1.0, rel=1e-6)
    # Predictions pointing away: pos = −1 → worse (higher).
    assert cpc_nce(eye, -eye).item() > cpc_nce(eye, eye).item()
    torch.manual_seed(0)
    x = torch.randn(32, 8)
    assert cpc_nce(x, x).item() < cpc_nce(x, torch.randn(32, 8)).item()


def test_log_likelihood_term_and_entropy_known_values():
    mu = torch.randn(5, 3)
    assert gaussian_log_likelihood_term(mu, torch.zeros(5, 3), mu).item() == 0.0
    # (μ − y)² = 1 everywhere, σ² = 1: −½ per dim, 3 dims.
    assert gaussian_log_likelihood_term(mu, torch.zeros(5, 3), mu + 1.0).item() == pytest.approx(-1.5)
    # Larger predicted variance → the term is closer to 0 (the reference's form has no −½ log σ²).
    assert gaussian_log_likelihood_term(mu, torch.ones(5, 3), mu + 1.0).item() > -1.5
    # ±1 on each axis: biased covariance = I (log det 0); scaled by 2: log det = k·log 4.
    k = 3
    points = torch.cat([torch.eye(k), -torch.eye(k)]) * math.sqrt(k)
    assert gaussian_entropy_term(points, points).item() == pytest.approx(0.0, abs=1e-5)
    assert gaussian_entropy_term(2 * points, points).item() == pytest.approx(0.25 * k * math.log(4.0), rel=1e-5)


def test_mmilb_routes_each_stage_to_its_own_parameters():
    torch.manual_seed(0)
    estimator = MMILB(6, 8)
    x = torch.randn(10, 6, requires_grad=True)
    y = torch.randn(10, 8, requires_grad=True)
    estimator.log_likelihood(x.detach(), y.detach()).backward()  # stage 1
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in estimator.named_parameters() if "entropy" not in n)
    assert x.grad is None and y.grad is None
    estimator.zero_grad(set_to_none=True)
    (estimator.log_likelihood(x, y, frozen=True) + estimator.project(y, frozen=True).sum()).backward()  # stage 2
    assert all(p.grad is None for p in estimator.parameters())
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="y_size must be >= 4"):
        MMILB(6, 2)
