"""``TrainConfig``: every knob of a training run, validated up front, hashed into a cache key.

Defaults follow the official LogitNorm code (hongxin001/logitnorm_ood, ``train.py`` +
``algorithms/base_framework.py``): WRN-40-2, SGD lr 0.1, momentum 0.9, weight decay 5e-4,
batch 128, 200 epochs, lr divided by 10 after epochs 80 and 140 (``MultiStepLR([80, 140])``),
no Nesterov momentum, τ = 0.04 for CIFAR-10 (paper Sec. 5.1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from lnlab.losses import TRAINING_LOSSES, training_loss

LOSSES = tuple(TRAINING_LOSSES)  # ce, logitnorm, logit_penalty, label_smoothing, elogitnorm
SCHEDULES = ("step", "cosine", "linear")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_OOD = ("textures", "mnist", "tinyimagenet", "gaussian")
# Bump when a change to the training code changes results: old cache entries then stop matching.
# 2: the classifier head runs in float32 under bf16 autocast; evaluation fields left the key.
# 3: bf16 autocast on CPUs too (``amp`` is hashed on every device); a fixed family of sets tracked every
#    epoch (lnlab.splits.tracked_sets); logits stored at a few epochs along training (snapshots).
ENGINE_VERSION = 3
# Fields that do not change the weights or the training history's training columns, so they stay
# out of the cache key: where the packs live, and what is evaluated (which OOD sets, how many
# images of each, the test and norm subsets). Asking for another OOD set reuses the run and
# computes that set's logits from the saved weights (``Run.logits_for``).
EVALUATION_FIELDS = ("ood", "ood_limit", "norm_subset", "test_subset_per_class")
_NOT_HASHED = ("data_root", *EVALUATION_FIELDS)
ID_SET_NAMES = ("test", "train", "val")  # evaluation sets of the run's own dataset (lnlab.splits)
# Each loss's hyperparameter field (lnlab.losses.TRAINING_LOSSES): hashed only for the loss that reads it.
LOSS_FIELDS = ("tau", "penalty", "smoothing")
_FLOAT_FIELDS = ("tau", "penalty", "smoothing", "lr", "momentum", "weight_decay", "gamma", "warmup_epochs")


@dataclass
class TrainConfig:
    """One training run (paper Sec. 5.1 recipe by default). ``key()`` names it in the run cache.

    Model/data: ``dataset`` (the training set: a registered name such as ``cifar10``, ``cifar100``,
    ``tinyimagenet100``, or your own pack or folder of class sub-folders, ``lnlab.data.training_set_path``;
    the number of classes comes from it), ``model`` (see ``lnlab.models``),
    ``model_width`` / ``model_depth`` (None = the model's default; depth only for fastnet),
    ``subset_per_class`` (class-balanced training subset, None = all), ``test_subset_per_class``,
    ``augment`` (pad-crop + flip). Loss: ``loss`` (``lnlab.losses.TRAINING_LOSSES``): "ce", "logitnorm"
    (paper Eq. 7) with ``tau``, "logit_penalty" with ``penalty`` (λ), "label_smoothing" with ``smoothing``
    (α), "elogitnorm" (no hyperparameter).
    Optimisation: SGD ``lr``, ``momentum``, ``weight_decay``, ``nesterov``; ``schedule`` "step"
    (lr × ``gamma`` at each fraction of ``epochs`` in ``milestones``), "cosine" or "linear" (to 0);
    ``warmup_epochs`` of linear warm-up per step. Tracking: logit-norm statistics every epoch on a
    fixed family of sets whatever ``ood`` says (``lnlab.splits.tracked_sets``: ``norm_subset``
    un-augmented training images, the test set, the default OOD sets, the validation sets, plus
    each extra set in ``ood``, at most ``ood_limit`` images each). Hardware: ``device``, ``amp``
    (bf16 autocast on a GPU or a CPU with native bf16, ``lnlab.precision``), ``channels_last``,
    ``compile``. ``data_root`` is where the packs live (not hashed).
    """

    dataset: str = "cifar10"
    model: str = "wrn40_2"
    model_width: int | None = None
    model_depth: int | None = None
    loss: str = "ce"
    tau: float = 0.04
    penalty: float = 1e-3
    smoothing: float = 0.1
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "step"
    milestones: tuple[float, ...] = (0.4, 0.7)
    gamma: float = 0.1
    warmup_epochs: float = 0
    subset_per_class: int | None = None
    test_subset_per_class: int | None = None
    norm_subset: int = 1000
    ood: tuple[str, ...] = DEFAULT_OOD
    ood_limit: int | None = None
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    data_root: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.ood, str):
            self.ood = (self.ood,)
        self.ood = tuple(_ood_name(str(name)) for name in self.ood)
        self.dataset = _ood_name(str(self.dataset))  # a registered name in lower case
        self.milestones = tuple(float(m) for m in self.milestones)
        for name in _FLOAT_FIELDS:  # 1 and 1.0 must give the same key
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, float(value))
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> "TrainConfig":
        """Raise ValueError (saying what to pass) for any invalid field; return self."""
        from lnlab.models import available_models

        _choice("loss", self.loss, LOSSES)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("model", self.model, tuple(available_models()))
        if not (self.device in DEVICES or str(self.device).startswith("cuda:")):
            raise ValueError(f"device must be one of {DEVICES} (or 'cuda:N'), got {self.device!r}")
        training_loss(self.loss, **{name: getattr(self, name) for name in LOSS_FIELDS})  # validates its hyperparameter
        check_datasets(self.dataset, self.ood, self.data_root)
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("norm_subset", self.norm_subset)
        for name in ("subset_per_class", "test_subset_per_class", "ood_limit", "model_width", "model_depth"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if self.model_depth is not None and self.model != "fastnet":
            raise ValueError(f"model_depth applies to fastnet only; pass model_depth=None for {self.model!r}")
        _finite("lr", self.lr, low=0, strict=True)
        _finite("momentum", self.momentum, low=0, high=1)
        _finite("weight_decay", self.weight_decay, low=0)
        _finite("gamma", self.gamma, low=0, high=1, strict=True)
        _finite("warmup_epochs", self.warmup_epochs, low=0)
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must not exceed epochs ({self.epochs})")
        if any(not 0 < m <= 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones are increasing fractions of training in (0, 1], e.g. (0.4, 0.7); got {self.milestones}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0; pass nesterov=False or a momentum such as 0.9")
        return self

    # ------------------------------------------------------------------ identity
    def resolved_device(self) -> str:
        """"cuda" / "cuda:N" / "cpu": what ``device`` means on this machine ("auto" = cuda if available)."""
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Inverse of ``to_dict``; unknown keys raise ValueError naming the valid ones."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; valid: {[f.name for f in dataclasses.fields(cls)]}")
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def canonical(self) -> dict[str, Any]:
        """The fields that change results, normalised: what ``key()`` hashes.

        ``device`` is resolved to its type (a GPU run differs from a CPU run); ``amp`` is hashed as
        asked (a CPU without native bf16 trains such a run in float32 and records that in its
        provenance); a loss's hyperparameter only for that loss (``tau`` is None for the others, so a
        τ sweep shares one CE run; ``penalty`` and ``smoothing`` appear only for their losses, which
        keeps the keys of runs made before they existed). A user's own training set adds the
        fingerprint of its images and labels (``lnlab.data.dataset_fingerprint``).
        """
        from lnlab.data import dataset_fingerprint

        values = self.to_dict()
        for name in (*_NOT_HASHED, "penalty", "smoothing"):
            values.pop(name)
        device_type = torch.device(self.resolved_device()).type
        values["device"] = device_type
        own = TRAINING_LOSSES[self.loss][1]
        if own != "tau":
            values["tau"] = None
        if own in ("penalty", "smoothing"):
            values[own] = getattr(self, own)
        fingerprint = dataset_fingerprint(self.dataset, self.data_root)
        if fingerprint is not None:
            values["dataset_fingerprint"] = fingerprint
        values["engine_version"] = ENGINE_VERSION
        return values

    def key(self) -> str:
        """Short sha256 of the canonical JSON of ``canonical()`` (16 hex digits)."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def loss_module(self):
        """The training loss of this run (``lnlab.losses.training_loss``) with its hyperparameter."""
        return training_loss(self.loss, **{name: getattr(self, name) for name in LOSS_FIELDS})

    def loss_parameter(self) -> float | None:
        """The value of the loss's own hyperparameter (τ, λ or α), None for CE and ELogitNorm."""
        field_name = TRAINING_LOSSES[self.loss][1]
        return None if field_name is None else getattr(self, field_name)

    def label(self) -> str:
        """Short human label, e.g. ``"CE"``, ``"LogitNorm τ=0.04"``, ``"Logit penalty λ=0.001"``."""
        return self.loss_module().label()


# ---------------------------------------------------------------------- helpers
def _ood_name(name: str) -> str:
    """Registered names are case-insensitive; a user's own set or path keeps its spelling."""
    from lnlab.data import is_registered

    return name.lower() if is_registered(name) else name


def _choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; pass one of {list(valid)}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _finite(name: str, value: Any, low: float | None = None, high: float | None = None, strict: bool = False) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    bad = not math.isfinite(number)
    bad |= low is not None and (number <= low if strict else number < low)
    bad |= high is not None and number > high
    if bad:
        bounds = f"{'>' if strict else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}")


def check_datasets(dataset: str, ood: tuple[str, ...], root: str | None) -> None:
    """The training set registered or found on disk; OOD names registered OOD sets or a user's own (checked
    on load), none sharing images or classes with the training set (``lnlab.data.overlapping_ood``)."""
    from lnlab.data import DATASETS, check_training_set, is_registered, overlapping_ood

    check_training_set(dataset, root)
    for name in ood:
        reason = overlapping_ood(dataset, name)
        if reason:
            raise ValueError(reason)
    bad = [n for n in ood if n == dataset or (is_registered(n) and not DATASETS[n.lower()].is_ood) or not n.strip()
           or n in ID_SET_NAMES]
    if bad:
        oods = [n for n, d in DATASETS.items() if d.is_ood and n != dataset]
        raise ValueError(f"{bad} cannot be OOD sets for dataset {dataset!r} ({list(ID_SET_NAMES)} name its ID sets); "
                         f"pass ood= names from {oods} or your own set (a pack <data root>/NAME.npz, a folder "
                         "<data root>/NAME/, or a path)")
    if len(set(ood)) != len(ood):
        raise ValueError(f"ood lists a set twice: {list(ood)}; pass each name once")
