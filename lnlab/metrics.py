"""OOD-detection and calibration metrics (paper Sec. 5 "Evaluation metrics", Table 1; ECE in Sec. 5.3).

Thin wrappers over scikit-learn and torchmetrics.  In-distribution (ID) samples are the
positive class, scores are "higher = more ID", and every number is a fraction in [0, 1].

* ``fpr95``: false-positive rate on OOD samples at the threshold where 95% of ID samples are
  accepted (TPR = 0.95).
* ``auroc``: area under the ROC curve.
* ``aupr_in`` / ``aupr_out``: average precision with ID / OOD as the positive class.
* ``ece``: expected calibration error with equal-width confidence bins (Guo et al. 2017).
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torchmetrics.functional.classification import multiclass_calibration_error

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
    """``{"fpr95", "auroc", "aupr_in", "aupr_out"}`` for ID-vs-OOD detection (paper Table 1)."""
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


def _probabilities_and_labels(logits_or_probs: ArrayLike, labels: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.as_tensor(np.asarray(logits_or_probs) if isinstance(logits_or_probs, list) else logits_or_probs)
    values = values.detach().float().cpu()
    targets = torch.as_tensor(labels).detach().long().cpu()
    if values.dim() != 2:
        raise ValueError(f"logits_or_probs must be 2-D (num_samples, num_classes), got shape {tuple(values.shape)}")
    if targets.dim() != 1 or targets.shape[0] != values.shape[0]:
        raise ValueError(f"labels must be 1-D with {values.shape[0]} entries, got shape {tuple(targets.shape)}")
    if values.shape[0] == 0:
        raise ValueError("logits_or_probs is empty; pass at least one sample")
    if not torch.isfinite(values).all():
        raise ValueError("logits_or_probs contains NaN or inf")
    is_probability = bool((values >= 0).all() and (values <= 1).all() and torch.allclose(values.sum(1), torch.ones(1), atol=1e-4))
    probabilities = values if is_probability else torch.softmax(values, dim=1)
    return probabilities, targets


def ece(logits_or_probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    """Expected calibration error, equal-width bins on the top-1 confidence (torchmetrics, L1 norm).

    Rows that already are probabilities (non-negative, summing to 1) are used as they are; anything
    else is treated as logits and passed through a softmax.
    """
    probabilities, targets = _probabilities_and_labels(logits_or_probs, labels)
    value = multiclass_calibration_error(
        probabilities, targets, num_classes=probabilities.shape[1], n_bins=n_bins, norm="l1"
    )
    return float(value)


def reliability_bins(logits_or_probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per-bin mean confidence, accuracy and count for a reliability diagram (bins as in :func:`ece`).

    Returns numpy arrays ``bin_lower``, ``bin_upper``, ``confidence``, ``accuracy`` (NaN for empty
    bins) and ``count``.  ``sum(count/N * |accuracy - confidence|)`` over non-empty bins is the ECE.
    """
    probabilities, targets = _probabilities_and_labels(logits_or_probs, labels)
    confidence, prediction = probabilities.max(dim=1)
    correct = (prediction == targets).double().numpy()
    confidence = confidence.double().numpy()
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
    """Top-1 accuracy as a fraction in [0, 1]."""
    probabilities, targets = _probabilities_and_labels(logits, labels)
    return float((probabilities.argmax(dim=1) == targets).double().mean())
