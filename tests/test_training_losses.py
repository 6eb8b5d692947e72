"""The training losses behind one interface (lnlab.losses.TRAINING_LOSSES), each against a direct
computation of its formula in float64, and the config's loss fields (validation, cache keys, labels)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lnlab.config import TrainConfig
from lnlab.losses import (TRAINING_LOSSES, CrossEntropyLoss, ELogitNormLoss, LabelSmoothingLoss,
                          LogitNormTrainingLoss, LogitPenaltyLoss, logit_norm_loss, training_loss)
from lnlab.models import build_model, classifier_head
from tests.tests_support import requires_cifar10


def batch(n=16, k=10, d=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=gen) * 3
    targets = torch.randint(0, k, (n,), generator=gen)
    head = torch.nn.Linear(d, k)
    with torch.no_grad():
        head.weight.copy_(torch.randn(k, d, generator=gen))
    return logits, targets, head


def log_softmax_rows(f: np.ndarray) -> np.ndarray:
    shifted = f - f.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_cross_entropy_and_logitnorm_are_the_functions_they_name():
    logits, targets, head = batch()
    assert torch.equal(CrossEntropyLoss()(logits, targets, head), F.cross_entropy(logits, targets))
    assert torch.allclose(LogitNormTrainingLoss(0.04)(logits, targets, head), logit_norm_loss(logits, targets, 0.04))


@pytest.mark.parametrize("weight", [1e-4, 1e-2, 0.5])
def test_logit_penalty_is_ce_plus_lambda_times_mean_squared_norm(weight):
    logits, targets, head = batch()
    f, y = logits.double().numpy(), targets.numpy()
    ce = -log_softmax_rows(f)[np.arange(len(y)), y].mean()
    expected = ce + weight * (f ** 2).sum(axis=1).mean()
    assert float(LogitPenaltyLoss(weight)(logits, targets, head)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2])
def test_label_smoothing_is_cross_entropy_against_the_smoothed_target(alpha):
    logits, targets, head = batch()
    f, y = logits.double().numpy(), targets.numpy()
    k = f.shape[1]
    target = np.full_like(f, alpha / k)
    target[np.arange(len(y)), y] += 1 - alpha
    expected = -(target * log_softmax_rows(f)).sum(axis=1).mean()
    assert float(LabelSmoothingLoss(alpha)(logits, targets, head)) == pytest.approx(expected, rel=1e-5)


def elogitnorm_by_hand(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """ELogitNorm written out sample by sample and class by class (float64), autograd-able: the scale of
    sample i is the mean over all k classes j of |f_ŷ − f_j| / ‖w_ŷ − w_j‖, where the j = ŷ term is 0."""
    total = 0
    n, k = logits.shape
    for i in range(n):
        row = logits[i]
        top = int(torch.argmax(row))
        terms = []
        for j in range(k):
            if j == top:
                terms.append(row[top] * 0)  # the predicted class's own (zero) gap, counted in the mean
            else:
                terms.append((row[top] - row[j]).abs() / torch.sqrt(((weight[top] - weight[j]) ** 2).sum()))
        scale = sum(terms) / k
        scaled = row / scale
        total = total + (torch.logsumexp(scaled, 0) - scaled[targets[i]])
    return total / n


def test_elogitnorm_value_and_gradients_match_a_direct_implementation():
    logits, targets, head = batch(n=12, k=7, d=5, seed=3)
    targets[0] = int(logits[0].argmin())  # a sample whose predicted class is not its target
    logits = logits.double().requires_grad_(True)
    head = head.double()
    ours = ELogitNormLoss(eps=0.0)(logits, targets, head)
    ours.backward()
    grad_logits, grad_weight = logits.grad.clone(), head.weight.grad.clone()

    f = logits.detach().clone().requires_grad_(True)
    w = head.weight.detach().clone().requires_grad_(True)
    reference = elogitnorm_by_hand(f, targets, w)
    reference.backward()
    assert float(ours.detach()) == pytest.approx(float(reference.detach()), rel=1e-10)
    assert torch.allclose(grad_logits, f.grad, atol=1e-10)
    assert torch.allclose(grad_weight, w.grad, atol=1e-10)  # the gradient reaches the head's weights


def test_elogitnorm_counts_the_zero_gap_of_the_predicted_class():
    # with the mean over the k - 1 other classes instead, the scale would be k / (k - 1) times larger
    logits = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    weight = torch.eye(3, dtype=torch.float64)
    head = torch.nn.Linear(3, 3).double()
    with torch.no_grad():
        head.weight.copy_(weight)
    gap_scale = (2 / math.sqrt(2) + 3 / math.sqrt(2)) / 3  # (0 + 2/√2 + 3/√2) / k
    expected = F.cross_entropy(logits / gap_scale, torch.tensor([0]))
    assert float(ELogitNormLoss(eps=0.0)(logits, torch.tensor([0]), head).detach()) == pytest.approx(float(expected), rel=1e-12)


def test_elogitnorm_is_invariant_to_the_scale_of_the_logits():
    # like LogitNorm (paper Eq. 7) the loss does not see ||f||: the scale s(x) grows with it
    logits, targets, head = batch(seed=5)
    loss = ELogitNormLoss(eps=0.0)
    with torch.no_grad():
        base = float(loss(logits.double(), targets, head.double()))
        for factor in (0.01, 4.0, 300.0):
            assert float(loss(factor * logits.double(), targets, head.double())) == pytest.approx(base, rel=1e-9)


def test_elogitnorm_needs_the_head_and_the_model_provides_it():
    logits, targets, _ = batch()
    with pytest.raises(ValueError, match="classifier head"):
        ELogitNormLoss()(logits, targets, None)
    model = build_model("fastnet", num_classes=10, width=8)
    assert classifier_head(model) is model.fc and classifier_head(model).out_features == 10


@pytest.mark.parametrize("name,field,bad,message", [
    ("logitnorm", "tau", 0.0, "tau must be"), ("logit_penalty", "penalty", -1e-3, "penalty must be"),
    ("logit_penalty", "penalty", float("nan"), "penalty must be"), ("label_smoothing", "smoothing", 1.0, "below 1"),
    ("label_smoothing", "smoothing", 0.0, "smoothing must be"),
])
def test_a_bad_hyperparameter_is_refused_at_the_boundary(name, field, bad, message):
    with pytest.raises(ValueError, match=message):
        training_loss(name, **{field: bad})
    with pytest.raises(ValueError, match=message):
        TrainConfig(loss=name, **{field: bad})


def test_unknown_loss_names_the_valid_ones():
    with pytest.raises(ValueError, match="logit_penalty.*label_smoothing.*elogitnorm"):
        TrainConfig(loss="focal")


def test_a_loss_hashes_only_its_own_hyperparameter():
    ce = TrainConfig(loss="ce")
    assert ce.key() == TrainConfig(loss="ce", penalty=0.5, smoothing=0.3, tau=0.2).key()
    ln = TrainConfig(loss="logitnorm", tau=0.04)
    assert ln.key() == TrainConfig(loss="logitnorm", tau=0.04, penalty=0.5).key() != TrainConfig(loss="logitnorm", tau=0.01).key()
    lp = TrainConfig(loss="logit_penalty", penalty=1e-3)
    assert lp.key() != TrainConfig(loss="logit_penalty", penalty=1e-2).key()
    assert lp.key() == TrainConfig(loss="logit_penalty", penalty=1e-3, tau=0.5).key()
    assert "penalty" not in ce.canonical() and "smoothing" not in ln.canonical()
    assert TrainConfig(loss="label_smoothing", smoothing=0.1).canonical()["smoothing"] == 0.1
    assert len({TrainConfig(loss=name).key() for name in TRAINING_LOSSES}) == len(TRAINING_LOSSES)


def test_labels_name_the_loss_and_its_hyperparameter():
    assert [TrainConfig(loss=name).label() for name in TRAINING_LOSSES] == [
        "CE", "LogitNorm τ=0.04", "Logit penalty λ=0.001", "Label smoothing α=0.1", "ELogitNorm"]
    assert TrainConfig(loss="logit_penalty", penalty=1e-4).loss_parameter() == 1e-4
    assert TrainConfig(loss="elogitnorm").loss_parameter() is None


@requires_cifar10
@pytest.mark.parametrize("loss", ["ce", "logitnorm", "elogitnorm"])
def test_the_trainer_records_the_norm_each_loss_sees(loss):
    from lnlab.profiles import make_config
    from lnlab.train import train

    config = make_config("ci", loss=loss, tau=0.05, epochs=1, subset_per_class=30, test_subset_per_class=10,
                         ood_limit=50, norm_subset=50)
    result = train(config, progress=False)
    row = result.history[-1]
    if loss == "ce":
        assert row["seen_train_mean"] == pytest.approx(row["norm_train_mean"])
    elif loss == "logitnorm":
        assert row["seen_train_mean"] == pytest.approx(1 / 0.05, rel=1e-5)  # ‖f/(τ‖f‖)‖ = 1/τ (paper Eq. 6)
    else:  # ELogitNorm: ‖f/s(x)‖ from the final head, computed here from the returned weights
        head = torch.nn.Linear(result.state_dict["fc.weight"].shape[1], 10)
        head.load_state_dict({"weight": result.state_dict["fc.weight"], "bias": result.state_dict["fc.bias"]})
        with torch.no_grad():
            seen = ELogitNormLoss().seen_logits(result.logits["test"].clone(), head)
        assert row["seen_test_mean"] == pytest.approx(float(seen.norm(dim=1).mean()), rel=1e-4)
        assert row["seen_test_mean"] != pytest.approx(row["norm_test_mean"], rel=1e-2)
