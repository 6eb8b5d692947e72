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
    """Independent ECE: equal-width bins [i/n, (i+1)/n) on the top-1 confidence."""
    confidence, prediction = probabilities.max(1), probabilities.argmax(1)
    total = 0.0
    for lower in np.arange(n_bins) / n_bins:
        in_bin = (confidence >= lower) & (confidence < lower + 1 / n_bins)
        if in_bin.any():
            total += in_bin.mean() * abs((prediction[in_bin] == labels[in_bin]).mean() - confidence[in_bin].mean())
    return total


def overconfident_predictions(seed=3, n=5000, k=10):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 3
    labels = np.where(rng.random(n) < 0.6, logits.argmax(1), rng.integers(0, k, n))
    return logits, labels


def test_ece_matches_independent_computation_and_bins_add_up():
    logits, labels = overconfident_predictions()
    probabilities = torch.softmax(torch.tensor(logits), 1).numpy()
    expected = numpy_ece(probabilities, labels, 15)
    assert ece(torch.tensor(logits), torch.tensor(labels)) == pytest.approx(expected, abs=1e-5)
    assert ece(probabilities, labels) == pytest.approx(expected, abs=1e-5)  # probabilities pass through
    bins = reliability_bins(logits, labels, n_bins=15)
    assert bins["count"].sum() == len(labels)
    filled = bins["count"] > 0
    from_bins = np.sum(bins["count"][filled] / len(labels) * np.abs(bins["accuracy"][filled] - bins["confidence"][filled]))
    assert from_bins == pytest.approx(expected, abs=1e-5)
    assert np.all((bins["confidence"][filled] >= bins["bin_lower"][filled]) & (bins["confidence"][filled] <= bins["bin_upper"][filled]))


def test_perfect_calibration_has_small_ece():
    rng = np.random.default_rng(4)
    confidence = rng.uniform(0.1, 1.0, 50000)
    probabilities = np.stack([confidence, 1 - confidence], 1)
    labels = np.where(rng.random(50000) < confidence, 0, 1)  # correct with probability = confidence
    probabilities = np.where(confidence[:, None] >= 0.5, probabilities, probabilities[:, ::-1])
    labels = np.where(confidence >= 0.5, labels, 1 - labels)
    assert ece(probabilities, labels) < 0.01
    assert ece(probabilities, 1 - labels) > 0.3


def test_accuracy_and_bad_inputs():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75
    with pytest.raises(ValueError, match="4 entries"):
        accuracy(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="2-D"):
        ece(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        ece(torch.full((2, 2), float("nan")), torch.zeros(2))
