"""A user's own labelled image set as a run's training set (behind ``lnlab.data.load_dataset``).

Accepted, by path or by name under the data root (``<root>/<name>.npz``, ``<root>/<name>/``):

- a pack ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (and optionally ``classes``),
  plain HWC uint8 or JPEG bytes (the schema of ``data/README.md``); or with ``x``, ``y`` only;
- a folder of class sub-folders: ``<folder>/train/<class>/*.png|jpg`` and ``<folder>/test/<class>/…``,
  or ``<folder>/<class>/*.png|jpg`` alone.

A set without its own test split is split per class with a fixed seed: ``TEST_FRACTION`` of every
class (at least one image) is the test split, the rest the training split, the same on every call.
Images of any size are resized like the registered sets (short side 32, bilinear, antialiased,
centre crop). ``fingerprint`` names the images and labels, so that a run's cache key changes when
the files do (``lnlab.config.TrainConfig.canonical``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from lnlab import _sources as src

TEST_FRACTION = 0.2  # of each class, for a set without a test split of its own
SPLIT_SEED = 0
Arrays = tuple[torch.Tensor, torch.Tensor, list[str]]
_FINGERPRINTS: dict[tuple, str] = {}


def locate(name: str, base: Path) -> Path | None:
    """The pack or folder a user's training set ``name`` stands for, or None if there is none."""
    path = Path(str(name)).expanduser()
    for candidate in (path, base / f"{name}.npz", base / str(name)):
        if (candidate.suffix == ".npz" and candidate.is_file()) or (candidate.is_dir() and _class_folders(candidate)):
            return candidate.resolve()
    return None


def _class_folders(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` that hold images (a train/test pair counts through its ``train``)."""
    inner = folder / "train" if (folder / "train").is_dir() and (folder / "test").is_dir() else folder
    return [p for p in sorted(inner.iterdir()) if p.is_dir() and next(
        (f for f in p.rglob("*") if f.suffix.lower() in src.IMAGE_SUFFIXES), None)]


def read(path: Path, split: str) -> Arrays:
    """(uint8 images (N, 3, 32, 32), int64 labels, class names) of ``split`` ("train" or "test")."""
    train, test, classes = _read_both(path)
    images, labels = train if split == "train" else test
    return images, labels, classes


def _read_both(path: Path) -> tuple[tuple, tuple, list[str]]:
    if path.suffix == ".npz":
        try:
            x_train, y_train, classes = src.read_pack(path, "train")
            x_test, y_test, _ = src.read_pack(path, "test")
        except src.SourceUnavailable:  # a pack with x, y only
            x_train, y_train, classes = src.read_pack(path, "test")
            x_test = y_test = None
        if y_train is None:
            raise ValueError(f"training set {path} has no labels: a pack needs 'y_train' (or 'y') beside its images")
        classes = classes or [str(c) for c in range(int(y_train.max()) + 1)]
    elif (path / "train").is_dir() and (path / "test").is_dir():
        x_train, y_train, classes = src.read_folder(path / "train", labelled=True)
        x_test, test_labels, test_classes = src.read_folder(path / "test", labelled=True)
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise ValueError(f"{path / 'test'} has classes {unknown} that {path / 'train'} lacks; give both splits the "
                             "same class folders")
        y_test = torch.tensor([classes.index(test_classes[i]) for i in test_labels.tolist()], dtype=torch.int64)
    else:
        x_train, y_train, classes = src.read_folder(path, labelled=True)
        x_test = y_test = None
    if x_test is None:
        (x_train, y_train), (x_test, y_test) = _split(x_train, y_train)
    if len(classes) < 2:
        raise ValueError(f"training set {path} has {len(classes)} class; a classifier needs at least 2 class folders "
                         "(or label values)")
    return (x_train, y_train), (x_test, y_test), list(classes)


def _split(images: torch.Tensor, labels: torch.Tensor) -> tuple[tuple, tuple]:
    """Seeded per-class split: ``TEST_FRACTION`` of each class (at least 1) to test."""
    counts = torch.bincount(labels)
    if int(counts[counts > 0].min()) < 2:
        small = [int(c) for c in (counts == 1).nonzero().flatten()]
        raise ValueError(f"classes {small} have a single image: a test split needs at least 2 per class; add images")
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    order = torch.randperm(len(labels), generator=gen)
    test = torch.zeros(len(labels), dtype=torch.bool)
    for cls in labels.unique().tolist():
        members = order[labels[order] == cls]
        test[members[:max(1, round(TEST_FRACTION * len(members)))]] = True
    return (images[~test], labels[~test]), (images[test], labels[test])


def fingerprint(path: Path) -> str:
    """sha256 (16 hex digits) of a set's images, labels and class names; memoised per file state."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    state = (str(path), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if state not in _FINGERPRINTS:
        digest = hashlib.sha256()
        train, test, classes = _read_both(path)
        for images, labels in (train, test):
            digest.update(np.ascontiguousarray(images.numpy()).tobytes())
            digest.update(labels.numpy().astype(np.int64).tobytes())
        digest.update("\n".join(classes).encode())
        _FINGERPRINTS[state] = digest.hexdigest()[:16]
    return _FINGERPRINTS[state]
