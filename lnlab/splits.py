"""The images a run reads: its training subset, and every evaluation set by name.

Evaluation sets (``eval_set(config, name)``):

- ``"test"``: the ID test set, a class-balanced subset of ``test_subset_per_class`` per class if set;
- ``"train"``: ``norm_subset`` un-augmented training images of the run's training subset (norm tracking);
- ``"val"``: held-out training images, i.e. training images the run did *not* train on (the
  complement of its ``subset_per_class`` subset), class balanced: the ID side of validation,
  used with the ``gaussian_val`` noise to choose τ without the test OOD sets (paper Sec. 5.1);
- any other name: an OOD set (registered, a user's own pack / folder, or a path), at most
  ``ood_limit`` images, a fixed seeded subset.

Subsets are seeded with ``SUBSET_SEED``, not the run's seed, so runs compare on the same images
(except ``val``, whose pool depends on which images the run's seed left out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lnlab.data import balanced_subset, load_dataset
from lnlab.paths import data_root

if TYPE_CHECKING:
    from lnlab.config import TrainConfig

SUBSET_SEED = 0
VAL_PER_CLASS = 500  # held-out images per class in "val" (fewer if fewer are left out)
_MEMO: dict[tuple, object] = {}


@dataclass
class EvalSet:
    """uint8 images (N, 3, 32, 32) of one evaluation set and its labels (None for OOD sets)."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor | None


@dataclass
class TrainData:
    """What training reads: the training subset and the sets tracked every epoch (CPU uint8)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    classes: list[str]
    eval_images: dict[str, torch.Tensor]  # "train" (norm subset), "test", then each tracked OOD set
    test_labels: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _load(name: str, split: str, root, n=None):
    """``load_dataset`` memoised in this process (notebooks ask for the same sets many times)."""
    key = (name, split, str(data_root(root)), n)
    if key not in _MEMO:
        _MEMO[key] = load_dataset(name, split, root=root, n=n, seed=SUBSET_SEED)
    return _MEMO[key]


def training_subset(config: "TrainConfig") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """(images, labels, indices into the full training split, class names) of the run's training data."""
    train = _load(config.dataset, "train", config.data_root)
    index = torch.arange(len(train))
    if config.subset_per_class is not None:
        index = balanced_subset(train.labels, config.subset_per_class, config.seed)
    classes = list(train.classes) if train.classes else [str(c) for c in range(int(train.labels.max()) + 1)]
    return train.images[index], train.labels[index], index, classes


def eval_set(config: "TrainConfig", name: str) -> EvalSet:
    """The images (and labels for ID sets) of evaluation set ``name`` of a run (module docstring)."""
    if name == "test":
        test = _load(config.dataset, "test", config.data_root)
        if config.test_subset_per_class is None:
            return EvalSet("test", test.images, test.labels)
        keep = balanced_subset(test.labels, config.test_subset_per_class, SUBSET_SEED)
        return EvalSet("test", test.images[keep], test.labels[keep])
    if name == "train":
        images, labels, _, classes = training_subset(config)
        per_class = max(1, min(config.norm_subset // len(classes), int(torch.bincount(labels).min())))
        keep = balanced_subset(labels, per_class, SUBSET_SEED)
        return EvalSet("train", images[keep], labels[keep])
    if name == "val":
        return _held_out(config)
    ood = _load(name, "test", config.data_root, config.ood_limit)
    return EvalSet(name, ood.images, None)


def check_held_out(config: "TrainConfig") -> None:
    """Raise ValueError (before any training) if the run keeps no training images out for ``"val"``."""
    if config.subset_per_class is None:
        raise ValueError("no held-out training images for 'val': the run trains on the whole training set; "
                         "pass subset_per_class (e.g. 4500) to keep some images out for validation")


def _held_out(config: "TrainConfig") -> EvalSet:
    check_held_out(config)
    train = _load(config.dataset, "train", config.data_root)
    _, _, used, _ = training_subset(config)
    left = torch.ones(len(train), dtype=torch.bool)
    left[used] = False
    pool = left.nonzero().squeeze(1)
    if pool.numel() == 0:
        raise ValueError(f"no held-out training images for 'val': subset_per_class={config.subset_per_class} uses "
                         "every training image of some class; pass a smaller subset_per_class")
    per_class = min(VAL_PER_CLASS, int(torch.bincount(train.labels[pool]).min()))
    keep = pool[balanced_subset(train.labels[pool], per_class, SUBSET_SEED)]
    return EvalSet("val", train.images[keep], train.labels[keep])


def load_train_data(config: "TrainConfig") -> TrainData:
    """Load every set a run reads; raises (clearly) before any training if one is missing."""
    images, labels, _, classes = training_subset(config)
    sets = {name: eval_set(config, name) for name in ("train", "test", *config.ood)}
    return TrainData(images, labels, classes, {name: s.images for name, s in sets.items()}, sets["test"].labels)
