"""LogitNorm loss (paper Eq. 7) and its lower bounds (Prop. 3 and the attainable simplex bound)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lnlab import LogitNormLoss, confidence_cap, logit_norm_loss, lower_bound, tight_lower_bound
from lnlab.losses import simplex_logits

TAUS = [0.01, 0.04, 0.1, 0.5, 1.0, 5.0]
CLASS_COUNTS = [2, 3, 10, 100, 1000]


def random_batch(n=64, k=10, scale=3.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=generator) * scale
    targets = torch.randint(0, k, (n,), generator=generator)
    return logits, targets


def test_equals_cross_entropy_of_explicitly_normalized_logits():
    logits, targets = random_batch()
    tau = 0.04
    normalized = logits / (tau * (logits.norm(dim=1, keepdim=True) + 1e-7))
    expected = F.cross_entropy(normalized, targets)
    assert torch.allclose(logit_norm_loss(logits, targets, tau), expected, rtol=1e-6, atol=1e-6)
    per_sample = F.cross_entropy(normalized, targets, reduction="none")
    assert torch.allclose(logit_norm_loss(logits, targets, tau, reduction="none"), per_sample, atol=1e-6)
    assert torch.allclose(logit_norm_loss(logits, targets, tau, reduction="sum"), per_sample.sum(), rtol=1e-5)


def test_module_matches_function():
    logits, targets = random_batch(seed=1)
    assert torch.equal(LogitNormLoss(tau=0.1)(logits, targets), logit_norm_loss(logits, targets, 0.1))
    assert "tau=0.1" in repr(LogitNormLoss(tau=0.1))


@pytest.mark.parametrize("scale", [1e-3, 0.5, 7.0, 1e4])
def test_invariant_to_positive_scaling_of_logits(scale):
    logits, targets = random_batch(seed=2)
    base = logit_norm_loss(logits.double(), targets, 0.04, eps=0.0)
    scaled = logit_norm_loss(logits.double() * scale, targets, 0.04, eps=0.0)
    assert torch.allclose(base, scaled, rtol=1e-5)


def test_plain_cross_entropy_is_not_scale_invariant():
    """Control for the invariance test: CE does change when logits are scaled (paper Sec. 3)."""
    logits, targets = random_batch(seed=2)
    assert not torch.allclose(F.cross_entropy(logits, targets), F.cross_entropy(logits * 7.0, targets))


def test_gradient_is_orthogonal_to_logits():
    """The loss depends only on the direction of f, so ∂L/∂f ⟂ f for every sample."""
    logits, targets = random_batch(n=32, seed=3)
    logits = logits.double().requires_grad_(True)
    logit_norm_loss(logits, targets, 0.04, eps=0.0, reduction="sum").backward()
    gradient = logits.grad
    cosine = (gradient * logits).sum(1) / (gradient.norm(dim=1) * logits.norm(dim=1))
    assert gradient.abs().max() > 1e-3  # a real, non-zero gradient
    assert cosine.abs().max() < 1e-6


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("k", CLASS_COUNTS)
def test_loss_is_at_least_both_bounds(tau, k):
    logits, targets = random_batch(n=256, k=k, seed=k)
    # include near-optimal rows: the target coordinate dominating the others
    logits[:64] = -1.0
    logits[torch.arange(64), targets[:64]] = 50.0
    losses = logit_norm_loss(logits.double(), targets, tau, eps=0.0, reduction="none")
    assert float(losses.min()) >= float(tight_lower_bound(tau, k)) - 1e-9
    assert float(tight_lower_bound(tau, k)) >= float(lower_bound(tau, k)) - 1e-12


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("k", CLASS_COUNTS)
def test_tight_bound_is_attained_by_the_simplex(tau, k):
    target = k - 1
    vector = simplex_logits(k, target)
    assert math.isclose(float(vector.norm()), 1.0, rel_tol=1e-12)
    loss = logit_norm_loss(vector.unsqueeze(0), torch.tensor([target]), tau, eps=0.0)
    assert math.isclose(float(loss), float(tight_lower_bound(tau, k)), rel_tol=1e-5, abs_tol=1e-12)


def test_simplex_beats_random_unit_directions():
    """No random unit direction does better than the simplex vertex (tightness, k=10, τ=0.5)."""
    k, tau = 10, 0.5
    generator = torch.Generator().manual_seed(4)
    directions = torch.randn(20000, k, generator=generator, dtype=torch.float64)
    directions[:, 0] += 3.0  # bias towards the target so the search is not hopeless
    losses = logit_norm_loss(directions, torch.zeros(20000, dtype=torch.long), tau, eps=0.0, reduction="none")
    assert float(losses.min()) > float(tight_lower_bound(tau, k))


def test_bounds_match_closed_forms_and_vectorise():
    taus = np.array([0.01, 0.04, 0.1, 1.0])
    ks = np.array([[10], [100]])
    expected = np.log(1 + (ks - 1) * np.exp(-2 / taus))
    assert np.allclose(lower_bound(taus, ks), expected)
    gap = np.sqrt(ks / (ks - 1))
    assert np.allclose(tight_lower_bound(taus, ks), np.log(1 + (ks - 1) * np.exp(-gap / taus)))
    assert lower_bound(taus, ks).shape == (2, 4)
    as_tensor = lower_bound(torch.tensor(taus), 10)
    assert isinstance(as_tensor, torch.Tensor)
    assert torch.allclose(as_tensor, torch.tensor(expected[0]))
    # the cap is the softmax confidence at the optimum: exp(-bound)
    assert np.allclose(confidence_cap(taus, 10), np.exp(-tight_lower_bound(taus, 10)))
    assert np.allclose(confidence_cap(taus, 10, tight=False), 1 / (1 + 9 * np.exp(-2 / taus)))


def test_bound_decreases_with_smaller_tau_and_grows_with_k():
    taus = np.geomspace(0.005, 2, 50)
    assert np.all(np.diff(lower_bound(taus, 10)) > 0)
    assert np.all(np.diff(tight_lower_bound(np.full(3, 0.1), np.array([10, 100, 1000]))) > 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_match_float32(dtype):
    logits, targets = random_batch(n=128, seed=5)
    low = logits.to(dtype)
    value = logit_norm_loss(low, targets, 0.04)
    reference = logit_norm_loss(low.float(), targets, 0.04)
    assert value.dtype == torch.float32
    assert torch.allclose(value, reference, rtol=1e-6)
    # and close to the full-precision inputs despite the rounding of the logits themselves
    assert torch.allclose(value, logit_norm_loss(logits, targets, 0.04), rtol=0.05)


def test_low_precision_gradient_flows_in_input_dtype():
    logits, targets = random_batch(n=16, seed=6)
    low = logits.to(torch.bfloat16).requires_grad_(True)
    logit_norm_loss(low, targets, 0.04).backward()
    assert low.grad.dtype == torch.bfloat16 and torch.isfinite(low.grad.float()).all()


def test_all_zero_logits_are_finite():
    logits = torch.zeros(4, 10, requires_grad=True)
    loss = logit_norm_loss(logits, torch.tensor([0, 1, 2, 3]), 0.04)
    loss.backward()
    assert math.isclose(loss.item(), math.log(10), rel_tol=1e-6)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("tau", [0, -0.1, float("nan"), float("inf"), "abc", None])
def test_bad_tau_raises(tau):
    logits, targets = random_batch(n=4)
    with pytest.raises(ValueError, match="tau"):
        logit_norm_loss(logits, targets, tau)
    with pytest.raises(ValueError, match="tau"):
        LogitNormLoss(tau)


@pytest.mark.parametrize(
    "logits, targets, message",
    [
        (torch.zeros(10), torch.zeros(1, dtype=torch.long), "2-D"),
        (torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long), "2-D"),
        (torch.zeros(4, 10), torch.tensor([0, 1, 2, 10]), r"\[0, 9\]"),
        (torch.zeros(4, 10), torch.tensor([0, 1, 2, -1]), r"\[0, 9\]"),
        (torch.zeros(4, 10), torch.tensor([0, 1, 2]), "3 entries"),
        (torch.zeros(4, 10), torch.zeros(4, 1, dtype=torch.long), "1-D"),
        (torch.zeros(4, 10), torch.zeros(4), "integer"),
    ],
)
def test_bad_logits_or_targets_raise(logits, targets, message):
    with pytest.raises(ValueError, match=message):
        logit_norm_loss(logits, targets, 0.04)


def test_bad_reduction_and_bound_arguments_raise():
    logits, targets = random_batch(n=4)
    with pytest.raises(ValueError, match="reduction"):
        logit_norm_loss(logits, targets, 0.04, reduction="avg")
    with pytest.raises(ValueError, match="tau"):
        lower_bound(np.array([0.1, -1.0]), 10)
    with pytest.raises(ValueError, match="num_classes"):
        tight_lower_bound(0.1, 1)
