"""The images a run reads: its training subset, and every evaluation set by name.

Evaluation sets (``eval_set(config, name)``):

- ``"test"``: the ID test set, a class-balanced subset of ``test_subset_per_class`` per class if set;
- ``"train"``: ``norm_subset`` un-augmented training images of the run's training subset (norm tracking);
- ``"val"``: held-out training images, i.e. training images the run did *not* train on (the
  complement of its ``subset_per_class`` subset), class balanced: the ID side of validation,
  used with the ``gaussian_val`` noise to choose τ without the test OOD sets (paper Sec. 5.1);
- ``"val_pixels"``, ``"val_jigsaw"``, ``"val_blend"``: validation OOD sets built from the held-out
  images, as in the Outlier Exposure line (Hendrycks et al. 2019, App. on validation sets): each
  image's pixels permuted, its 4x4 grid of 8x8 patches shuffled, the mean of two images of
  different classes (at most ``ood_limit`` each, seeded);
- any other name: an OOD set (registered, a user's own pack / folder, or a path), at most
  ``ood_limit`` images, a fixed seeded subset.

``tracked_sets(config)`` is the fixed family of sets whose logit norm a run records every epoch
(and whose logits it stores at a few epochs along training): it does not depend on the OOD sets a
caller happens to name first (``config.ood`` only adds extra sets).

Subsets are seeded with ``SUBSET_SEED``, not the run's seed, so runs compare on the same images
(except ``val``, whose pool depends on which images the run's seed left out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lnlab.data import balanced_subset, default_ood_for, load_dataset, overlapping_ood
from lnlab.paths import data_root

if TYPE_CHECKING:
    from lnlab.config import TrainConfig

SUBSET_SEED = 0
VAL_PER_CLASS = 500  # held-out images per class in "val" (fewer if fewer are left out)
# Tracked every epoch by every run, whatever its ``ood`` (lnlab.config.DEFAULT_OOD plus uniform noise):
# registered sets whose packs are missing here are left out, and the run's record says which sets it has.
TRACKED_OOD = ("textures", "mnist", "tinyimagenet", "gaussian", "uniform")
DERIVED_VALIDATION_OOD = ("val_pixels", "val_jigsaw", "val_blend")
VALIDATION_OOD_SETS = ("gaussian_val", *DERIVED_VALIDATION_OOD)  # the OOD side of validation (lnlab.tau)
VALIDATION_ID = "val"  # the ID side of validation: held-out training images (paper Sec. 5.1)
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


def _load(name: str, split: str, root, n=None, labelled: bool = False):
    """``load_dataset`` memoised in this process (notebooks ask for the same sets many times);
    ``labelled``: ``name`` is the run's training set (a user's own set is read with its labels)."""
    key = (name, split, str(data_root(root)), n, labelled)
    if key not in _MEMO:
        _MEMO[key] = load_dataset(name, split, root=root, n=n, seed=SUBSET_SEED, labelled=labelled)
    return _MEMO[key]


def _own(config: "TrainConfig", split: str):
    """A split ("train" / "test") of the run's training set."""
    return _load(config.dataset, split, config.data_root, labelled=True)


def training_subset(config: "TrainConfig") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """(images, labels, indices into the full training split, class names) of the run's training data."""
    train = _own(config, "train")
    index = torch.arange(len(train))
    if config.subset_per_class is not None:
        index = balanced_subset(train.labels, config.subset_per_class, config.seed)
    classes = list(train.classes) if train.classes else [str(c) for c in range(int(train.labels.max()) + 1)]
    return train.images[index], train.labels[index], index, classes


def eval_set(config: "TrainConfig", name: str) -> EvalSet:
    """The images (and labels for ID sets) of evaluation set ``name`` of a run (module docstring)."""
    if name == "test":
        test = _own(config, "test")
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
    if name in DERIVED_VALIDATION_OOD:
        return EvalSet(name, _derived(name, _held_out(config), config.ood_limit), None)
    reason = overlapping_ood(config.dataset, name)
    if reason:
        raise ValueError(reason)
    ood = _load(name, "test", config.data_root, config.ood_limit)
    return EvalSet(name, ood.images, None)


def check_held_out(config: "TrainConfig") -> None:
    """Raise ValueError (before any training) if the run keeps no training images out for ``"val"``."""
    if config.subset_per_class is None:
        raise ValueError("no held-out training images for 'val': the run trains on the whole training set; "
                         "pass subset_per_class (e.g. 4500) to keep some images out for validation")


def _held_out(config: "TrainConfig") -> EvalSet:
    check_held_out(config)
    train = _own(config, "train")
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


def _derived(name: str, val: EvalSet, limit: int | None) -> torch.Tensor:
    """A validation OOD set made from the held-out images ``val`` (module docstring), uint8."""
    gen = torch.Generator().manual_seed(SUBSET_SEED + 1 + DERIVED_VALIDATION_OOD.index(name))
    pick = torch.randperm(len(val.images), generator=gen)[:limit]
    images, labels, n = val.images[pick], val.labels[pick], len(pick)
    if name == "val_pixels":  # every image's 32x32 pixel positions permuted (colours kept together)
        flat = images.flatten(2)
        order = torch.argsort(torch.rand(n, flat.shape[2], generator=gen), dim=1)
        return torch.gather(flat, 2, order[:, None, :].expand_as(flat)).view_as(images)
    if name == "val_jigsaw":  # the 4x4 grid of 8x8 patches shuffled
        patches = images.unfold(2, 8, 8).unfold(3, 8, 8).reshape(n, 3, 16, 8, 8)
        order = torch.argsort(torch.rand(n, 16, generator=gen), dim=1)
        patches = torch.gather(patches, 2, order[:, None, :, None, None].expand_as(patches))
        return patches.view(n, 3, 4, 4, 8, 8).permute(0, 1, 2, 4, 3, 5).reshape(n, 3, 32, 32).contiguous()
    # val_blend: the mean of two held-out images of different classes
    partner = torch.randperm(n, generator=gen)
    same = labels[partner] == labels
    partner[same] = torch.roll(partner, 1)[same]  # few left with the same class: roll them away
    return ((images.int() + images[partner].int() + 1) // 2).to(torch.uint8)


def tracked_ood(dataset: str) -> tuple[str, ...]:
    """The OOD sets of :data:`TRACKED_OOD` for a run trained on ``dataset``: a set that shares images or
    classes with it is replaced by the dataset's near-OOD set (``tinyimagenet`` → ``tinyimagenet100-other``
    for ``tinyimagenet100``)."""
    return default_ood_for(dataset, TRACKED_OOD)


def tracked_sets(config: "TrainConfig") -> list[str]:
    """The sets a run records every epoch: "train", "test", each of :func:`tracked_ood` available here, the
    validation sets ("val" and ``VALIDATION_OOD_SETS``) when the run holds images out, then each extra
    set of ``config.ood``. A set named in ``config.ood`` must exist (it raises clearly otherwise)."""
    from lnlab.data import DatasetNotFoundError

    names = ["train", "test"]
    for name in tracked_ood(config.dataset):
        if name in config.ood:
            names.append(name)
            continue
        try:
            _load(name, "test", config.data_root, config.ood_limit)
            names.append(name)
        except DatasetNotFoundError:
            continue
    if config.subset_per_class is not None:
        try:
            _held_out(config)
            names += ["val", *VALIDATION_OOD_SETS]
        except ValueError:  # the subset uses every training image of some class: nothing held out
            pass
    return names + [name for name in config.ood if name not in names]


def load_train_data(config: "TrainConfig") -> TrainData:
    """Load every set a run tracks (:func:`tracked_sets`); raises (clearly) before any training if a
    set named in ``config.ood`` is missing."""
    images, labels, _, classes = training_subset(config)
    sets = {name: eval_set(config, name) for name in tracked_sets(config)}
    return TrainData(images, labels, classes, {name: s.images for name, s in sets.items()}, sets["test"].labels)
