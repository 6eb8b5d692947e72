"""Evaluation sets, batched inference and logit-norm statistics for the training loop.

The paper's Fig. 1(b)/Sec. 3 argument is about the raw logit norm ||f(x)||_2: under
cross-entropy it keeps growing on training data, inflating softmax confidence everywhere.
``norm_stats`` summarises that norm per set; ``predict`` returns raw float32 logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from lnlab.data import Loader, balanced_subset, load_dataset

if TYPE_CHECKING:
    from lnlab.config import TrainConfig

EVAL_BATCH_SIZE = 1024
NORM_STATS = {"mean": None, "median": 0.5, "p10": 0.1, "p90": 0.9}
SUBSET_SEED = 0  # evaluation subsets do not depend on the run's seed, so runs compare on the same images


@dataclass
class TrainData:
    """Everything a run reads: the training images and the fixed evaluation sets (CPU uint8)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    classes: list[str]
    eval_images: dict[str, torch.Tensor]  # "train" (norm subset), "test", then each OOD set
    test_labels: torch.Tensor
    norm_labels: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_train_data(config: "TrainConfig") -> TrainData:
    """Load and subset every set a run needs; raises (clearly) before any training if one is missing."""
    train = load_dataset(config.dataset, "train", root=config.data_root)
    images, labels = train.images, train.labels
    if config.subset_per_class is not None:
        keep = balanced_subset(labels, config.subset_per_class, config.seed)
        images, labels = images[keep], labels[keep]
    classes = list(train.classes) if train.classes else [str(c) for c in range(int(labels.max()) + 1)]
    per_class = max(1, min(config.norm_subset // len(classes), int(torch.bincount(labels).min())))
    norm_idx = balanced_subset(labels, per_class, SUBSET_SEED)
    test = load_eval_sets(config)
    eval_images = {"train": images[norm_idx], **{name: s.images for name, s in test.items()}}
    return TrainData(images, labels, classes, eval_images, test["test"].labels, labels[norm_idx])


def load_eval_sets(config: "TrainConfig", names: tuple[str, ...] | None = None) -> dict:
    """The ID test set ("test", class-balanced subset if configured) and the OOD sets, as ImageSets.

    ``names`` defaults to ``config.ood``; each OOD set keeps at most ``config.ood_limit`` images
    (a fixed seeded subset). The same function serves training and later evaluation (CLI).
    """
    test = load_dataset(config.dataset, "test", root=config.data_root)
    if config.test_subset_per_class is not None:
        keep = balanced_subset(test.labels, config.test_subset_per_class, SUBSET_SEED)
        test.images, test.labels = test.images[keep], test.labels[keep]
    sets = {"test": test}
    for name in config.ood if names is None else names:
        sets[name] = load_dataset(name, "test", root=config.data_root, n=config.ood_limit, seed=SUBSET_SEED)
    return sets


def eval_loader(images: torch.Tensor, device: torch.device, channels_last: bool) -> Loader:
    """Un-augmented, unshuffled batches of normalized images on ``device``."""
    return Loader(images, None, batch_size=EVAL_BATCH_SIZE, shuffle=False, augment=False, device=device,
                  channels_last=channels_last)


@torch.inference_mode()
def predict(model: nn.Module, loader: Loader, amp: bool = False) -> torch.Tensor:
    """Raw logits (float32, CPU) of every image in ``loader``, model in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for x, _ in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            outputs.append(model(x).float())
    return torch.cat(outputs).cpu()


def norm_stats(logits: torch.Tensor) -> dict[str, float]:
    """Mean, median, 10th and 90th percentile of the raw logit norm ||f(x)||_2 (paper Sec. 3)."""
    norms = torch.linalg.vector_norm(logits.float(), dim=1)
    stats = {}
    for name, q in NORM_STATS.items():
        stats[name] = float(norms.mean()) if q is None else float(torch.quantile(norms, q))
    return stats
