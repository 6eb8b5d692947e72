"""OOD metrics against hand-made score sets and independent computations; ECE and bins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lnlab import accuracy, ece, ood_metrics, reliability_bins


def test_perfect_separation():
    result = ood_metrics(np.linspace(2, 3, 100), np.linspace(0, 1, 50))
    assert result == {"fpr95": 0.0, "auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0}


def test_reversed_scores_are_worst_case():
    result = ood_metrics(np.linspace(0, 1, 100), np.linspace(2, 3, 50))
    assert result["fpr95"] == 1.0 and result["auroc"] == 0.0


def test_identical_distributions_give_chance_auroc():
    rng = np.random.default_rng(0)
    result = ood_metrics(rng.normal(size=20000), rng.normal(size=20000))
    assert abs(result["auroc"] - 0.5) < 0.015
    assert abs(result["fpr95"] - 0.95) < 0.015


def test_fpr95_matches_a_direct_threshold_count():
    """FPR95 = share of OOD scores at or above the threshold that keeps 95% of ID scores."""
    rng = np.random.default_rng(1)
    id_scores, ood_scores = rng.normal(1.5, 1, 4000), rng.normal(0, 1, 3000)
    threshold = np.sort(id_scores)[::-1][int(np.ceil(0.95 * id_scores.size)) - 1]
    assert (id_scores >= threshold).mean() >= 0.95
    expected = (ood_scores >= threshold).mean()
    assert ood_metrics(id_scores, ood_scores)["fpr95"] == pytest.approx(expected, abs=1e-12)


def test_auroc_and_aupr_match_pairwise_and_precision_definitions():
    rng = np.random.default_rng(2)
    id_scores, ood_scores = rng.normal(1, 1, 300), rng.normal(0, 1, 200)
    result = ood_metrics(torch.tensor(id_scores), torch.tensor(ood_scores))
    pairwise = (id_scores[:, None] > ood_scores[None, :]).mean()  # Mann-Whitney U statistic
    assert result["auroc"] == pytest.approx(pairwise, abs=1e-12)
    # average precision = mean precision at each positive, ranks by decreasing score
    def average_precision(pos, neg):
        scores = np.concatenate([pos, neg])
        is_pos = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])[np.argsort(-scores)]
        precision_at_k = np.cumsum(is_pos) / np.arange(1, is_pos.size + 1)
        return precision_at_k[is_pos == 1].mean()
    assert result["aupr_in"] == pytest.approx(average_precision(id_scores, ood_scores), abs=1e-12)
    assert result["aupr_out"] == pytest.approx(average_precision(-ood_scores, -id_scores), abs=1e-12)
    assert all(0.0 <= value <= 1.0 for value in result.values())


@pytest.mark.parametrize(
    "id_scores, ood_scores, message",
    [
        ([], [1.0], "id_scores is empty"),
        ([1.0], [], "ood_scores is empty"),
        ([1.0, float("nan")], [0.0], "NaN"),
        ([1.0], [float("inf")], "NaN or inf"),
        (np.zeros((2, 2)), [0.0], "1-D"),
    ],
)
def test_bad_scores_raise(id_scores, ood_scores, message):
    with pytest.raises(ValueError, match=message):
        ood_metrics(id_scores, ood_scores)


def numpy_ece(probabilities, labels, n_bins):
    """Independent ECE: a plain loop over equal-width bins [i/n, (i+1)/n), the last one closed at 1."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    total, n = 0.0, len(labels)
    for i in range(n_bins):
        lower, upper = i / n_bins, (i + 1) / n_bins
        members = []
        for row, label in zip(probabilities, labels):
            confidence = max(row)
            if lower <= confidence < upper or (i == n_bins - 1 and confidence == 1.0):
                members.append((confidence, float(list(row).index(confidence) == label)))
        if members:
            mean_confidence = sum(c for c, _ in members) / len(members)
            mean_accuracy = sum(a for _, a in members) / len(members)
            total += len(members) / n * abs(mean_accuracy - mean_confidence)
    return total


def overconfident_predictions(seed=3, n=5000, k=10):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 3
    labels = np.where(rng.random(n) < 0.6, logits.argmax(1), rng.integers(0, k, n))
    return logits, labels


def test_ece_matches_independent_computation_and_bins_add_up():
    logits, labels = overconfident_predictions()
    probabilities = torch.softmax(torch.tensor(logits), 1)
    expected = numpy_ece(probabilities.numpy(), labels, 15)
    assert expected > 0.05  # the fixture is miscalibrated, so a zero ECE would be caught
    assert ece(probabilities, torch.tensor(labels)) == pytest.approx(expected, abs=1e-9)
    assert ece(probabilities.float().numpy(), labels) == pytest.approx(expected, abs=1e-6)  # float32 rows
    assert ece(probabilities, labels, n_bins=5) == pytest.approx(numpy_ece(probabilities.numpy(), labels, 5), abs=1e-9)
    bins = reliability_bins(probabilities, labels, n_bins=15)
    assert bins["count"].sum() == len(labels)
    filled = bins["count"] > 0
    assert np.all((bins["confidence"][filled] >= bins["bin_lower"][filled]) & (bins["confidence"][filled] <= bins["bin_upper"][filled]))
    assert np.isnan(bins["accuracy"][~filled]).all()


def test_ece_puts_a_confidence_of_exactly_one_in_the_last_bin():
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0], [0.55, 0.45]])
    labels = np.array([0, 0, 0])
    bins = reliability_bins(probabilities, labels, n_bins=10)
    assert bins["count"][-1] == 2 and bins["count"][5] == 1
    assert bins["accuracy"][-1] == 0.5
    expected = 2 / 3 * abs(0.5 - 1.0) + 1 / 3 * abs(1.0 - 0.55)
    assert ece(probabilities, labels, n_bins=10) == pytest.approx(expected) == pytest.approx(numpy_ece(probabilities, labels, 10))


def test_perfect_calibration_has_small_ece():
    rng = np.random.default_rng(4)
    confidence = rng.uniform(0.1, 1.0, 50000)
    probabilities = np.stack([confidence, 1 - confidence], 1)
    labels = np.where(rng.random(50000) < confidence, 0, 1)  # correct with probability = confidence
    probabilities = np.where(confidence[:, None] >= 0.5, probabilities, probabilities[:, ::-1])
    labels = np.where(confidence >= 0.5, labels, 1 - labels)
    assert ece(probabilities, labels) < 0.01
    assert ece(probabilities, 1 - labels) > 0.3


@pytest.mark.parametrize("values", [
    [[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]],   # logits: negative entries
    [[0.5, 0.5, 0.5], [0.2, 0.3, 0.5]],   # first row sums to 1.5
    [[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]],   # non-negative logits, rows do not sum to 1
])
def test_ece_and_bins_refuse_anything_but_probabilities(values):
    for function in (ece, reliability_bins):
        with pytest.raises(ValueError, match=r"torch\.softmax\(logits, 1\)"):
            function(torch.tensor(values), torch.tensor([0, 2]))


def test_ece_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        ece(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        ece(torch.full((2, 2), float("nan")), torch.zeros(2))
    with pytest.raises(ValueError, match="2 entries"):
        ece(torch.full((2, 2), 0.5), torch.zeros(3))
    with pytest.raises(ValueError, match="n_bins"):
        ece(torch.full((2, 2), 0.5), torch.zeros(2), n_bins=0)


def test_accuracy_works_on_logits_and_validates_inputs():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75
    assert accuracy(-logits, np.array([0, 1, 1, 1])) == 0.25
    with pytest.raises(ValueError, match="4 entries"):
        accuracy(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="2-D"):
        accuracy(torch.zeros(4), torch.zeros(4))
