"""Every training loss behind one interface, and the LogitNorm bounds (Wei et al., ICML 2022, arXiv 2205.09310v2).

Training losses (:data:`TRAINING_LOSSES`, picked by ``TrainConfig.loss``; :func:`training_loss`): each is an
``nn.Module`` called as ``loss(logits, targets, head)`` with the raw float logits, integer targets and the
network's classifier head (``lnlab.models.classifier_head``: the final ``nn.Linear``), which a loss that
needs the head's weights reads and the others ignore; the training loop calls every loss the same way.
They run without per-call input checks (which would force a host-device sync every step); their
hyperparameter is validated once, at construction. Cross-entropy, LogitNorm (Eq. 7), and three controls:
the logit penalty (CE + λ‖f‖², Dauphin & Cubuk, ICLR 2021), label smoothing (Szegedy et al., CVPR 2016)
and ELogitNorm (Ding, Liu, Unger & Eilertsen, CVPR 2026, arXiv 2504.11434), LogitNorm's τ-free successor.

Paper notation: ``f = f(x; θ)`` are the raw logits, ``τ`` the temperature.

* Eq. (6)-(7): ``L_logit_norm(f, y) = CE(f / (τ ‖f‖), y)``. Only the direction of ``f`` is learned;
  the normalized logit vector has norm ``1/τ`` whatever ``‖f‖`` is.
* Prop. 3 (lower bound): ``L ≥ log(1 + (k-1) e^{-2/τ})`` for ``k`` classes.  The bound uses the gap
  ``(f_y - f_j)/‖f‖ ≤ 2`` between the target coordinate and every other coordinate.
* A tighter, attainable bound: on the unit sphere the gap ``u_y - u_j`` shared by *all* ``j ≠ y``
  is at most ``sqrt(k/(k-1))``, reached by the regular-simplex vector ``u_y = sqrt((k-1)/k)``,
  ``u_j = -1/sqrt(k(k-1))``.  Hence ``L ≥ log(1 + (k-1) e^{-sqrt(k/(k-1))/τ})``, with equality there.
"""

from __future__ import annotations

import math
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ArrayLike = Union[float, int, np.ndarray, torch.Tensor]

_REDUCTIONS = ("mean", "sum", "none")


def validate_tau(tau: float) -> float:
    """Return ``tau`` as a float, or raise ValueError unless it is a finite number > 0."""
    return _positive_number("tau", tau, "0.04 (the paper's value on CIFAR-10)")


def _validate_logits_targets(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a 2-D tensor (batch, num_classes), got shape {shape}")
    if not isinstance(targets, torch.Tensor) or targets.dim() != 1:
        shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"targets must be a 1-D tensor of class indices, got shape {shape}")
    if targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets has {targets.shape[0]} entries but logits has {logits.shape[0]} rows; pass one target per row"
        )
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices (torch.long), got dtype {targets.dtype}")
    num_classes = logits.shape[1]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ValueError(
            f"targets must lie in [0, {num_classes - 1}] for {num_classes} classes, "
            f"got values in [{int(targets.min())}, {int(targets.max())}]"
        )


def normalize_logits(logits: torch.Tensor, tau: float, eps: float = 1e-7) -> torch.Tensor:
    """``f / (τ (‖f‖₂ + ε))`` row-wise (paper Eq. 6), in float32 at least (float64 stays float64)."""
    if logits.dtype != torch.float64:
        logits = logits.float()
    norms = torch.linalg.vector_norm(logits, dim=-1, keepdim=True)
    return logits / (tau * (norms + eps))


def logit_norm_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    tau: float,
    eps: float = 1e-7,
    reduction: str = "mean",
) -> torch.Tensor:
    """LogitNorm loss, paper Eq. (7): cross-entropy of ``f / (τ (‖f‖₂ + ε))``.

    Computed in float32 even for bfloat16/float16 logits (the result is float32; float64 stays float64); finite for
    all-zero logits thanks to ``eps``.  Invariant to scaling ``logits`` by any ``s > 0``.

    Args:
        logits: raw logits, shape ``(batch, num_classes)``.
        targets: class indices, shape ``(batch,)``.
        tau: temperature ``τ > 0`` (paper: 0.04 for CIFAR-10).
        eps: added to the norm so that zero logits stay finite.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    tau = validate_tau(tau)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    _validate_logits_targets(logits, targets)
    return F.cross_entropy(normalize_logits(logits, tau, eps), targets, reduction=reduction)


class LogitNormLoss(nn.Module):
    """``nn.Module`` form of :func:`logit_norm_loss` (paper Eq. 7), e.g. ``LogitNormLoss(tau=0.04)``."""

    def __init__(self, tau: float = 0.04, eps: float = 1e-7, reduction: str = "mean") -> None:
        super().__init__()
        self.tau = validate_tau(tau)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.eps = eps
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logit_norm_loss(logits, targets, self.tau, self.eps, self.reduction)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, eps={self.eps}, reduction={self.reduction!r}"


def validate_penalty(weight: float) -> float:
    """Return the logit penalty's λ as a float, or raise ValueError unless it is a finite number > 0."""
    return _positive_number("penalty", weight, "1e-3 (CE + λ·‖f‖², Dauphin & Cubuk 2021)")


def validate_smoothing(alpha: float) -> float:
    """Return label smoothing's α as a float, or raise ValueError unless 0 < α < 1."""
    value = _positive_number("smoothing", alpha, "0.1 (Szegedy et al. 2016)")
    if value >= 1:
        raise ValueError(f"smoothing must be below 1 (α = 1 is the uniform target), e.g. 0.1; got {alpha!r}")
    return value


def _positive_number(name: str, value: Any, example: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number such as {example}, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0 such as {example}, got {value!r}")
    return number


def _at_least_float32(values: torch.Tensor) -> torch.Tensor:
    """float32 for low-precision inputs; float64 stays float64."""
    return values if values.dtype == torch.float64 else values.float()


class TrainingLoss(nn.Module):
    """A training objective, ``loss(logits, targets, head) -> float32 scalar`` (module docstring).

    ``logits`` are the raw logits (any float dtype; computed in float32), ``targets`` class indices,
    ``head`` the classifier head (``nn.Linear``, ``weight`` of shape (classes, features)) or None for a
    loss that does not read it (``needs_head`` False).
    """

    name = ""
    needs_head = False

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, head: nn.Module | None = None) -> torch.Tensor:
        return F.cross_entropy(self.seen_logits(logits, head), targets)

    def seen_logits(self, logits: torch.Tensor, head: nn.Module | None = None) -> torch.Tensor:
        """The logits the loss's softmax sees: the raw ones (CE, the logit penalty, label smoothing), or their
        rescaled copy (LogitNorm: ``f / (τ‖f‖)``, norm 1/τ; ELogitNorm: ``f / s(x)``). The trainer records
        their norm per epoch beside the raw norm (``seen_<set>_<stat>``)."""
        return _at_least_float32(logits)

    def label(self) -> str:
        return self.name


class CrossEntropyLoss(TrainingLoss):
    """Cross-entropy of the raw logits: ``-log softmax(f)_y`` (the paper's baseline)."""

    name = "ce"

    def label(self) -> str:
        return "CE"


class LogitNormTrainingLoss(TrainingLoss):
    """LogitNorm, paper Eq. (7): cross-entropy of ``f / (τ (‖f‖₂ + ε))`` (:func:`logit_norm_loss`)."""

    name = "logitnorm"

    def __init__(self, tau: float = 0.04) -> None:
        super().__init__()
        self.tau = validate_tau(tau)

    def seen_logits(self, logits, head=None):
        return normalize_logits(logits, self.tau)

    def label(self) -> str:
        return f"LogitNorm τ={self.tau:g}"


class LogitPenaltyLoss(TrainingLoss):
    """Logit penalty (Dauphin & Cubuk, ICLR 2021, "Deconstructing the regularization of BatchNorm"):
    ``CE(f, y) + λ · mean_batch ‖f‖₂²``.

    The control for LogitNorm's argument (paper Sec. 3): it *shrinks* the logit norm, where LogitNorm
    *decouples* the loss from it. λ > 0 (:func:`validate_penalty`).
    """

    name = "logit_penalty"

    def __init__(self, penalty: float = 1e-3) -> None:
        super().__init__()
        self.penalty = validate_penalty(penalty)

    def forward(self, logits, targets, head=None):
        logits = _at_least_float32(logits)
        return F.cross_entropy(logits, targets) + self.penalty * logits.square().sum(1).mean()

    def label(self) -> str:
        return f"Logit penalty λ={self.penalty:g}"


class LabelSmoothingLoss(TrainingLoss):
    """Label smoothing (Szegedy et al., CVPR 2016): cross-entropy against ``(1 - α)·onehot(y) + α/k``,
    i.e. ``(1 - α)·CE(f, y) + α·mean_j(-log softmax(f)_j)`` (``F.cross_entropy(label_smoothing=α)``).

    Lowers confidence on the training set; reported to hurt OOD detection (arXiv 2410.06134).
    """

    name = "label_smoothing"

    def __init__(self, smoothing: float = 0.1) -> None:
        super().__init__()
        self.smoothing = validate_smoothing(smoothing)

    def forward(self, logits, targets, head=None):
        return F.cross_entropy(_at_least_float32(logits), targets, label_smoothing=self.smoothing)

    def label(self) -> str:
        return f"Label smoothing α={self.smoothing:g}"


class ELogitNormLoss(TrainingLoss):
    """ELogitNorm (Ding, Liu, Unger & Eilertsen, CVPR 2026, arXiv 2504.11434; official code
    limchaos/ELogitNormOOD): cross-entropy of ``f / s(x)`` with the feature-space distance to the
    decision boundaries of the predicted class ``ŷ = argmax f`` in place of LogitNorm's ``τ‖f‖``:

        s(x) = (1/k) Σ_j |f_ŷ − f_j| / ‖w_ŷ − w_j‖₂,

    ``w`` the rows of the head's weight (the ``j = ŷ`` term is 0, and counts in the mean). No
    temperature. The gradient flows through ``s`` and the head's weights, as in the official code.
    """

    name = "elogitnorm"
    needs_head = True

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        self.eps = eps

    def seen_logits(self, logits, head=None):
        if head is None:
            raise ValueError("ELogitNorm needs the classifier head (lnlab.models.classifier_head(model)); pass head=")
        logits = _at_least_float32(logits)
        weight = head.weight.to(logits.dtype)
        top, predicted = logits.max(dim=1)
        gaps = (top[:, None] - logits).abs()  # (batch, classes); 0 at the predicted class
        distances = torch.cdist(weight, weight)  # ‖w_a − w_b‖, (classes, classes)
        distances = distances + torch.eye(len(weight), device=weight.device, dtype=weight.dtype)  # 0/1, not 0/0
        scale = (gaps / distances[predicted]).mean(dim=1, keepdim=True)
        return logits / (scale + self.eps)

    def label(self) -> str:
        return "ELogitNorm"


# name -> (loss class, the TrainConfig field holding its hyperparameter or None)
TRAINING_LOSSES: dict[str, tuple[type[TrainingLoss], str | None]] = {
    "ce": (CrossEntropyLoss, None),
    "logitnorm": (LogitNormTrainingLoss, "tau"),
    "logit_penalty": (LogitPenaltyLoss, "penalty"),
    "label_smoothing": (LabelSmoothingLoss, "smoothing"),
    "elogitnorm": (ELogitNormLoss, None),
}


def training_loss(name: str, **hyperparameters: float) -> TrainingLoss:
    """The training loss ``name`` (:data:`TRAINING_LOSSES`) with its hyperparameter, e.g.
    ``training_loss("logitnorm", tau=0.04)``; hyperparameters of other losses are ignored."""
    if name not in TRAINING_LOSSES:
        raise ValueError(f"unknown loss {name!r}; pass one of {list(TRAINING_LOSSES)}")
    cls, field = TRAINING_LOSSES[name]
    return cls() if field is None else cls(hyperparameters[field]) if field in hyperparameters else cls()


def _as_array(value: ArrayLike, name: str, integer: bool = False):
    """Convert to a float64 numpy array (or keep a tensor) and validate positivity."""
    if isinstance(value, torch.Tensor):
        array = value.detach().double()
        bad = ~torch.isfinite(array) | (array <= 0)
        has_bad = bool(bad.any())
    else:
        array = np.asarray(value, dtype=np.float64)
        has_bad = bool(np.any(~np.isfinite(array) | (array <= 0)))
    if has_bad:
        example = "0.04" if name == "tau" else "10"
        raise ValueError(f"{name} must be finite and > 0 everywhere (e.g. {example}), got {value!r}")
    return array


def _class_count(num_classes: ArrayLike):
    k = _as_array(num_classes, "num_classes")
    if (k < 2).any():
        raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
    return k


def _bound_from_gap(tau: ArrayLike, k, gap) -> ArrayLike:
    """``log(1 + (k-1) exp(-gap/τ))``, stable for tiny τ (log1p of an underflowing exp -> 0)."""
    tau = _as_array(tau, "tau")
    lib = torch if isinstance(tau, torch.Tensor) or isinstance(k, torch.Tensor) else np
    if lib is torch:
        tau, k, gap = (torch.as_tensor(v, dtype=torch.float64) for v in (tau, k, gap))
        return torch.log1p((k - 1) * torch.exp(-gap / tau))
    return np.log1p((k - 1) * np.exp(-gap / tau))


def lower_bound(tau: ArrayLike, num_classes: ArrayLike) -> ArrayLike:
    """Paper Prop. 3: ``L_logit_norm ≥ log(1 + (k-1) e^{-2/τ})``.

    Vectorised (numpy arrays or tensors broadcast).  Not attainable for k > 2 in general: it
    assumes a gap of 2 between the target and every other normalized coordinate, which a unit
    vector cannot have for all k-1 others at once; see :func:`tight_lower_bound`.
    """
    k = _class_count(num_classes)
    return _bound_from_gap(tau, k, 2.0)


def simplex_gap(num_classes: ArrayLike) -> ArrayLike:
    """Largest common gap ``u_y - u_j`` (all ``j ≠ y``) of a unit vector: ``sqrt(k/(k-1))``."""
    k = _class_count(num_classes)
    return (k / (k - 1)) ** 0.5


def tight_lower_bound(tau: ArrayLike, num_classes: ArrayLike) -> ArrayLike:
    """Attainable lower bound of the LogitNorm loss: ``log(1 + (k-1) e^{-sqrt(k/(k-1))/τ})``.

    The loss of one sample is ``log(1 + Σ_{j≠y} exp((u_j - u_y)/τ))`` with ``u = f/‖f‖``.  By
    symmetry and convexity of the sum, its minimum on the unit sphere has all ``u_j`` (``j ≠ y``)
    equal: the regular-simplex vertex ``u_y = sqrt((k-1)/k)``, ``u_j = -1/sqrt(k(k-1))``, whose gap
    is ``sqrt(k/(k-1))`` (≤ 2 of Prop. 3, so this bound is ≥ :func:`lower_bound`).
    """
    k = _class_count(num_classes)
    return _bound_from_gap(tau, k, simplex_gap(k))


def simplex_logits(num_classes: int, target: int = 0) -> torch.Tensor:
    """The unit-norm regular-simplex logit vector that attains :func:`tight_lower_bound`."""
    k = int(num_classes)
    if k < 2 or not 0 <= target < k:
        raise ValueError(f"need num_classes >= 2 and 0 <= target < num_classes, got {num_classes}, {target}")
    vector = torch.full((k,), -1.0 / math.sqrt(k * (k - 1)), dtype=torch.float64)
    vector[target] = math.sqrt((k - 1) / k)
    return vector


def confidence_cap(tau: ArrayLike, num_classes: ArrayLike, tight: bool = True) -> ArrayLike:
    """Highest softmax confidence at the loss optimum: ``1 / (1 + (k-1) e^{-gap/τ})``.

    ``gap = sqrt(k/(k-1))`` (attainable, default) or 2 (``tight=False``, the Prop. 3 gap).  Shows why
    many classes need a small τ: with ``k = 1000`` and ``τ = 0.1`` the cap is far below 1.
    """
    k = _class_count(num_classes)
    gap = simplex_gap(k) if tight else 2.0
    bound = _bound_from_gap(tau, k, gap)
    lib = torch if isinstance(bound, torch.Tensor) else np
    return lib.exp(-bound)
