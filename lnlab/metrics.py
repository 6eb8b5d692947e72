"""OOD-detection and calibration metrics (paper Sec. 5 "Evaluation metrics", Table 1; ECE for calibration).

OOD metrics are thin wrappers over scikit-learn.  In-distribution (ID) samples are the
positive class, scores are "higher = more ID", and every number is a fraction in [0, 1].

* ``fpr95``: false-positive rate on OOD samples at the threshold where 95% of ID samples are
  accepted (TPR = 0.95, ID positive), the convention of the paper and its official code.
* ``auroc``: area under the ROC curve.
* ``aupr_in`` / ``aupr_out``: average precision with ID / OOD as the positive class.
* ``ece``: expected calibration error with equal-width confidence bins (Guo et al. 2017), on
  probabilities only (``torch.softmax(logits, 1)``): logits and probabilities cannot be told apart.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

ArrayLike = Union[np.ndarray, torch.Tensor, list]


def _scores_array(scores: ArrayLike, name: str) -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().float().cpu().numpy()
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of scores (one per sample), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; pass at least one score")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf; check the model's logits before scoring")
    return array


def fpr_at_tpr(id_scores: ArrayLike, ood_scores: ArrayLike, tpr: float = 0.95) -> float:
    """False-positive rate on OOD when the threshold keeps ``tpr`` of ID samples (ID positive)."""
    id_array = _scores_array(id_scores, "id_scores")
    ood_array = _scores_array(ood_scores, "ood_scores")
    labels = np.concatenate([np.ones_like(id_array), np.zeros_like(ood_array)])
    false_pos, true_pos, _ = roc_curve(labels, np.concatenate([id_array, ood_array]), drop_intermediate=False)
    return float(false_pos[np.searchsorted(true_pos, tpr, side="left")])


def ood_metrics(id_scores: ArrayLike, ood_scores: ArrayLike) -> dict[str, float]:
    """``{"fpr95", "auroc", "aupr_in", "aupr_out"}`` for ID-vs-OOD detection (paper Table 1), fractions in [0, 1].

    ``id_scores`` and ``ood_scores``: one score per sample, higher = more in-distribution (MSP, energy, …).
    ID is the positive class. ``fpr95`` is the share of OOD samples accepted as ID at the threshold that
    keeps 95% of the ID samples (TPR 95% on ID), as in the paper and its official code; lower is better.

    Other libraries may label the other way: pytorch-ood 0.4's ``OODMetrics`` takes outlier scores
    (higher = more OOD, e.g. ``-msp``), makes OOD the positive class, and its ``FPR95TPR`` is the share
    of *ID* samples flagged as OOD at the threshold that catches 95% of the OOD samples. The same scores
    then give another number: on the shipped CE seed-0 run (MSP, CIFAR-10 test set vs Textures) this
    ``fpr95`` is 73.9% and ``OODMetrics``'s ``FPR95TPR`` 47.7% (``tests/test_fpr95_convention.py``).
    AUROC does not depend on the labelling (82.8% there from both).
    """
    id_array = _scores_array(id_scores, "id_scores")
    ood_array = _scores_array(ood_scores, "ood_scores")
    labels = np.concatenate([np.ones_like(id_array), np.zeros_like(ood_array)])
    scores = np.concatenate([id_array, ood_array])
    return {
        "fpr95": fpr_at_tpr(id_array, ood_array, 0.95),
        "auroc": float(roc_auc_score(labels, scores)),
        "aupr_in": float(average_precision_score(labels, scores)),
        "aupr_out": float(average_precision_score(1 - labels, -scores)),
    }


PROBABILITY_ATOL = 1e-3  # how far a row sum may be from 1 (float16 / float32 softmax rounding)


def _labels_array(labels: ArrayLike, num_rows: int) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    targets = np.asarray(labels)
    if targets.ndim != 1 or targets.shape[0] != num_rows:
        raise ValueError(f"labels must be 1-D with {num_rows} entries, got shape {targets.shape}")
    if targets.size and not np.issubdtype(targets.dtype, np.integer):
        if not np.all(np.mod(targets, 1) == 0):
            raise ValueError(f"labels must be integer class indices, got dtype {targets.dtype}")
    return targets.astype(np.int64)


def _rows_array(values: ArrayLike, name: str) -> np.ndarray:
    """A finite, non-empty 2-D float64 array ``(num_samples, num_classes)``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_samples, num_classes), got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one sample")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf")
    return array


def _probabilities_and_labels(probabilities: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate class probabilities (rows >= 0 summing to 1) and their labels; float64 / int64 arrays."""
    array = _rows_array(probabilities, "probabilities")
    sums = array.sum(axis=1)
    bad = (array < 0).any(axis=1) | (np.abs(sums - 1.0) > PROBABILITY_ATOL)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"probabilities must be non-negative rows summing to 1 (row {row} sums to {sums[row]:.4g}, "
                         f"min {array[row].min():.4g}); for logits pass torch.softmax(logits, 1)")
    return array, _labels_array(labels, array.shape[0])


def ece(probabilities: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017) of class probabilities, ``n_bins`` equal-width bins.

    ``sum over bins of count/N * |accuracy - mean confidence|`` on the top-1 confidence, bins as in
    :func:`reliability_bins`. ``probabilities`` must be rows of probabilities (non-negative, summing to
    1): pass ``torch.softmax(logits, 1)`` for logits (for LogitNorm, the raw logits, as the paper scores).
    """
    bins = reliability_bins(probabilities, labels, n_bins)
    filled = bins["count"] > 0
    weights = bins["count"][filled] / bins["count"].sum()
    return float(np.sum(weights * np.abs(bins["accuracy"][filled] - bins["confidence"][filled])))


def reliability_bins(probabilities: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per-bin mean confidence, accuracy and count for a reliability diagram (the bins of :func:`ece`).

    ``probabilities``: rows of class probabilities (see :func:`ece`). Bin ``i`` holds top-1
    confidences in ``[i/n, (i+1)/n)``, the last bin also 1.0. Returns numpy arrays ``bin_lower``,
    ``bin_upper``, ``confidence``, ``accuracy`` (NaN for empty bins) and ``count``;
    ``sum(count/N * |accuracy - confidence|)`` over non-empty bins is the ECE.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer such as 15, got {n_bins!r}")
    array, targets = _probabilities_and_labels(probabilities, labels)
    confidence, prediction = array.max(axis=1), array.argmax(axis=1)
    correct = (prediction == targets).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=n_bins) / count
        mean_accuracy = np.bincount(index, weights=correct, minlength=n_bins) / count
    return {
        "bin_lower": edges[:-1],
        "bin_upper": edges[1:],
        "confidence": mean_confidence,
        "accuracy": mean_accuracy,
        "count": count,
    }


def accuracy(logits: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy as a fraction in [0, 1] (``logits`` or probabilities: only the argmax counts)."""
    array = _rows_array(logits, "logits")
    targets = _labels_array(labels, array.shape[0])
    return float((array.argmax(axis=1) == targets).mean())
