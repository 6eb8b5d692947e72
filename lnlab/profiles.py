"""Named run sizes as plain dicts of ``TrainConfig`` overrides; any field can be overridden.

- ``ci``: fastnet on a class-balanced CIFAR-10 subset; one run trains in 72–78 s on 2 idle CPU cores
  (RESULTS.md, "A 4-config `ci` sweep"), so a CE + LogitNorm pair in under 3 minutes (tests, CI, notebook
  smoke runs).
- ``quick``: a laptop CPU; two runs at once on 2 cores took about 700 s each (4 runs in 1,440 s; chosen on
  validation data; both in benchmarks/RESULTS.md, "The `quick` profile ... over 3 seeds").
- ``laptop``: the CPU reference recipe (benchmarks/RESULTS.md, "laptop reference recipe"): the paper's
  optimiser (SGD lr 0.1 at batch 128, momentum 0.9, weight decay 5e-4, crop + flip, no label
  smoothing) with a smaller network (``airnet``, 0.49M parameters) and 60 epochs instead of 200 (one
  warm-up epoch, then a linear decay; Nesterov momentum), bf16 on CPU, about 22 min per run on 2 idle
  cores (29–42 min when the cores are shared, as for six of the eight shipped runs); 500 training images
  per class held out for validation. Chosen on validation data among two candidates written down before
  training (30 or 60 epochs, RESULTS.md). Its runs ship in the reference source (``lnlab/reference/laptop``).
- ``paper``: the paper's recipe (Sec. 5.1): WRN-40-2, 200 epochs, full CIFAR-10, a GPU.
- ``reference``: the recipe of the shipped reference runs (:mod:`lnlab.shipped`), read from the
  reference source; its runs are loaded, never trained (the shipped ``laptop`` runs were trained on a CPU,
  as their provenance says; a GPU-trained recipe folder would be read the same way).

Small profiles use a linear lr warm-up: at lr 0.1 LogitNorm's gradient, about 1/(τ·||f||) with a
small ||f|| at initialisation, first blows the logit norm up and hurts small-scale accuracy.
They apply the same warm-up to CE, so the pair differs only in the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lnlab.config import TrainConfig
from lnlab.shipped import (recipe_for, reference_config, reference_recipes, reference_seeds, reference_taus,
                           shipped_run)

ALL_OFFLINE_OOD = ("textures", "mnist", "tinyimagenet", "gaussian", "uniform")

# A profile entry, not a TrainConfig field: the fraction of every class's training images held out for
# validation ("val"), turned into ``subset_per_class`` for the run's training set by ``make_config``
# (CIFAR-10: 5,000 − 500 = 4,500 per class; tinyimagenet100: 450).
HOLDOUT = "holdout"
# Profile entries too: the fractions of every class a small profile trains on and tests on (ci: 10 %, i.e. 500
# and 100 CIFAR-10 images per class), so that it costs the same on a training set of any size; it always
# leaves at least DEFAULT_HOLDOUT of each class out for validation.
TRAIN_FRACTION, TEST_FRACTION = "train_fraction", "test_fraction"
DEFAULT_HOLDOUT = 0.1

PROFILES: dict[str, dict[str, Any]] = {
    "ci": {
        "model": "fastnet", "model_width": 32, "epochs": 10, "batch_size": 64, "lr": 0.1,
        "warmup_epochs": 1, "schedule": "cosine",
        TRAIN_FRACTION: 0.1, TEST_FRACTION: 0.1, "norm_subset": 500,  # CIFAR-10: 500 / 100 per class
        "ood": ("textures", "mnist", "tinyimagenet", "gaussian"), "ood_limit": 500,
        "device": "cpu",
    },
    # Warm-up 3 epochs: chosen on validation data only (held-out training images vs validation noise) among
    # warm-up, peak lr and weight decay by benchmarks/profile_search.py (benchmarks/RESULTS.md). Weight decay 2e-3
    # comes from an earlier search that read the test OOD sets; RESULTS.md keeps both.
    "quick": {
        "model": "fastnet", "model_width": 32, "epochs": 30, "batch_size": 64, "lr": 0.1,
        "weight_decay": 2e-3, "warmup_epochs": 3, "schedule": "cosine",
        TRAIN_FRACTION: 0.2, TEST_FRACTION: 0.2, "norm_subset": 1000,  # CIFAR-10: 1,000 / 200 per class
        "ood": ("textures", "mnist", "tinyimagenet", "gaussian"), "ood_limit": 1000,
        "device": "auto",
    },
    "laptop": {
        "model": "airnet", "model_width": 32, "epochs": 60, "batch_size": 128, "lr": 0.1, "momentum": 0.9,
        "nesterov": True, "weight_decay": 5e-4, "schedule": "linear", "warmup_epochs": 1,
        HOLDOUT: 0.1, "test_subset_per_class": None, "norm_subset": 1000,
        "ood": ("textures", "mnist", "tinyimagenet", "gaussian"), "ood_limit": 2000,
        "device": "cpu", "amp": True, "channels_last": True,
    },
    "paper": {
        "model": "wrn40_2", "epochs": 200, "batch_size": 128, "lr": 0.1, "momentum": 0.9,
        "weight_decay": 5e-4, "schedule": "step", "milestones": (0.4, 0.7), "gamma": 0.1,
        "warmup_epochs": 0, "ood": ALL_OFFLINE_OOD, "device": "cuda", "amp": True,
        "channels_last": True,
    },
}


DEFAULT_SWEEP = (0.005, 0.01, 0.02, 0.04, 0.1)  # the τ grid of notebook 04 (the paper's CIFAR-10 choice: 0.04)

REFERENCE = "reference"  # the profile read from the reference runs (lnlab.shipped.reference_config)


def make_config(profile: str = "ci", **overrides: Any) -> TrainConfig:
    """``TrainConfig`` of a profile with ``overrides`` applied, e.g.
    ``make_config("ci", loss="logitnorm", tau=0.04, epochs=4)``."""
    if profile == REFERENCE:
        return reference_config(**overrides)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; pass one of {[*PROFILES, REFERENCE]}")
    values = {**PROFILES[profile], **overrides}
    values.update(_for_training_set(PROFILES[profile], values, overrides))
    try:
        return TrainConfig(**values)
    except TypeError as exc:  # an unknown keyword
        raise ValueError(f"{exc}; valid fields: {list(TrainConfig.__dataclass_fields__)}") from None


def _for_training_set(profile: dict[str, Any], values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A profile carried over to the run's training set (unless the caller set the fields): its held-out
    fraction (``HOLDOUT``) or its training fraction (``TRAIN_FRACTION``, never more than leaves
    ``DEFAULT_HOLDOUT`` out) as ``subset_per_class``, its test fraction as ``test_subset_per_class``, and its
    OOD sets without those that share images or classes with the training set (replaced by the set's own
    near-OOD set, ``lnlab.data.default_ood_for``)."""
    from lnlab.data import check_training_set, default_ood_for, images_per_class

    dataset, root = values.get("dataset", "cifar10"), values.get("data_root")
    check_training_set(dataset, root)  # the one-line error before anything is read
    holdout, train, test = (values.pop(name, None) for name in (HOLDOUT, TRAIN_FRACTION, TEST_FRACTION))
    changes: dict[str, Any] = {}
    if "subset_per_class" not in overrides and (holdout or train):
        per_class = images_per_class(dataset, root)
        held = max(1, round((holdout or DEFAULT_HOLDOUT) * per_class))
        if per_class - held < 1:
            raise ValueError(f"training set {dataset!r} has {per_class} images in its smallest class: too few to hold "
                             "some out for validation; add images or pass subset_per_class")
        changes["subset_per_class"] = per_class - held if holdout else min(max(1, round(train * per_class)),
                                                                             per_class - held)
    if "test_subset_per_class" not in overrides and test:
        changes["test_subset_per_class"] = max(1, round(test * images_per_class(dataset, root, split="test")))
    if "ood" not in overrides and "ood" in profile:
        changes["ood"] = default_ood_for(dataset, tuple(profile["ood"]))
    return changes


def sweep_taus(profile: str, asked: Sequence[float] | None = None, dataset: str | None = None) -> list[float]:
    """The τ grid of notebook 04 (``sweep_taus=None`` there): ``asked``, else :data:`DEFAULT_SWEEP`;
    for the reference profile the asked values its runs (trained on ``dataset``) have (all of theirs if
    none), ValueError if there are no reference runs."""
    if profile != REFERENCE:
        return [float(t) for t in (asked or DEFAULT_SWEEP)]
    recipe = recipe_for(dataset)
    reference_config(recipe)  # the clear error when there are no reference runs
    there = reference_taus(recipe)
    return [float(t) for t in asked or () if float(t) in there] or there


def default_seeds(profile: str, taus: Sequence[float] = (0.04,), **overrides: Any) -> list[int]:
    """What ``seeds=None`` means in the notebooks and ``lnlab figures``: every seed for which the reference
    source holds the CE run and a LogitNorm run at each of ``taus``, when the profile's runs are the shipped
    ones (profile ``reference``, or a profile whose seed-0 CE run is shipped); else ``[0]``."""
    if not reference_recipes():
        return [0]
    try:
        if profile != REFERENCE and shipped_run(make_config(profile, loss="ce", seed=0, **overrides).key()) is None:
            return [0]
        return reference_seeds(recipe_for(overrides.get("dataset")), taus=taus) or [0]
    except ValueError:
        return [0]

