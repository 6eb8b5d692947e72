"""Datasets for LogitNorm experiments (Wei et al., ICML 2022, Sec. 4.1 / Table 1).

In-distribution: CIFAR-10, CIFAR-100. OOD test sets of the paper: SVHN, Textures (DTD),
Places365, LSUN-Crop, LSUN-Resize, iSUN; plus MNIST, Tiny ImageNet, CIFAR-100 (near-OOD for
CIFAR-10) and synthetic Gaussian / uniform noise (the paper tunes tau on Gaussian noise).

Every set is returned as uint8 images ``(N, 3, 32, 32)``. ``load_dataset`` tries, in order:

a. a pack ``<root>/<name>.npz`` (schema: ``x_train/y_train/x_test/y_test/classes`` or ``x``/``y``,
   plain HWC uint8 or JPEG bytes ``<key>_jpeg`` + ``<key>_offsets``; decoded once, cached);
b. torchvision's dataset class, downloading into ``<root>/torchvision`` (or the cache when the
   root is read-only) when the network allows;
c. an image folder ``<root>/<name>/`` (any depth, jpg/jpeg/png; in-distribution sets:
   ``<root>/<name>/<split>/<class>/*.png``), resized like (b): short side 32, bilinear with
   antialias, centre crop.

``root``: argument, else ``$LNLAB_DATA``, else ``data/`` at the repository root. Decoded packs,
converted folders and downloads on a read-only root go under ``lnlab.paths.cache_root()``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from lnlab import _labelled, _sources as src
from lnlab._loader import CIFAR_MEAN, CIFAR_STD, Loader, balanced_subset, normalize
from lnlab.paths import data_root

__all__ = [
    "CIFAR_MEAN", "CIFAR_STD", "DATASETS", "DatasetInfo", "DatasetNotFoundError", "DatasetTable",
    "ImageSet", "Loader", "available_datasets", "balanced_subset", "load_dataset", "normalize",
]

IN_DISTRIBUTION, OOD, VALIDATION = "in-distribution", "ood", "validation"
SYNTHETIC_SIZE = 10_000


@dataclass(frozen=True)
class DatasetInfo:
    """Registry entry: role, splits and the sources ``load_dataset`` tries."""

    name: str
    role: str  # "in-distribution" | "ood"
    description: str
    also_ood: bool = False  # an in-distribution set that is also an OOD set (cifar100 for cifar10)
    torchvision: str | None = None  # class in torchvision.datasets
    tv_calls: dict[str, list[dict[str, Any]]] | None = None  # split -> kwargs of each call (concatenated)
    host: str = ""  # download host, probed before trying
    tv_marker: str = ""  # file or folder torchvision creates in its root once downloaded
    synthetic: bool = False
    train_per_class: int | None = None  # training images per class (in-distribution sets with balanced classes)
    test_per_class: int | None = None  # test images per class
    overlaps: tuple[str, ...] = ()  # in-distribution sets this set shares images or classes with: never OOD for them
    near_ood: str | None = None  # an in-distribution set's own near-OOD set (shares neither images nor classes)

    @property
    def is_ood(self) -> bool:
        """Usable as an OOD set (test or validation)."""
        return self.role in (OOD, VALIDATION) or self.also_ood

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", "test") if self.role == IN_DISTRIBUTION else ("test",)

    @property
    def sources(self) -> list[str]:
        if self.synthetic:
            return ["synthetic"]
        tv = [f"torchvision:{self.torchvision}"] if self.torchvision else []
        return ["pack", *tv, "folder"]


def _tv_splits(train: dict, test: dict) -> dict[str, list[dict[str, Any]]]:
    return {"train": [train], "test": [test]}


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo("cifar10", IN_DISTRIBUTION, "CIFAR-10, 10 classes (paper's main ID set)", False, "CIFAR10",
                    _tv_splits({"train": True}, {"train": False}), "www.cs.toronto.edu", "cifar-10-batches-py",
                    train_per_class=5000, test_per_class=1000),
        DatasetInfo("cifar100", IN_DISTRIBUTION, "CIFAR-100, 100 classes; near-OOD for CIFAR-10", True, "CIFAR100",
                    _tv_splits({"train": True}, {"train": False}), "www.cs.toronto.edu", "cifar-100-python",
                    train_per_class=500, test_per_class=100),
        DatasetInfo("tinyimagenet100", IN_DISTRIBUTION, "Tiny ImageNet, 100 of its 200 classes at 32x32 (k = 100; "
                    "pack: shared data README)", train_per_class=500, test_per_class=50,
                    near_ood="tinyimagenet100-other"),
        DatasetInfo("svhn", OOD, "SVHN test digits (far-OOD)", False, "SVHN",
                    {"test": [{"split": "test"}]}, "ufldl.stanford.edu", "test_32x32.mat"),
        DatasetInfo("textures", OOD, "DTD textures, all 47 classes (far-OOD)", False, "DTD",
                    {"test": [{"split": s} for s in ("train", "val", "test")]}, "www.robots.ox.ac.uk", "dtd"),
        DatasetInfo("places365", OOD, "Places365 val, small 256px images (far-OOD)", False, "Places365",
                    {"test": [{"split": "val", "small": True}]}, "data.csail.mit.edu", "val_256"),
        DatasetInfo("lsun-c", OOD, "LSUN crop (ODIN release, image folder)"),
        DatasetInfo("lsun-r", OOD, "LSUN resize (ODIN release, image folder)"),
        DatasetInfo("isun", OOD, "iSUN (ODIN release, image folder)"),
        DatasetInfo("mnist", OOD, "MNIST test digits, grey -> RGB, 28 -> 32 (far-OOD)", False, "MNIST",
                    {"test": [{"train": False}]}, "ossci-datasets.s3.amazonaws.com", "MNIST"),
        DatasetInfo("tinyimagenet", OOD, "Tiny ImageNet val, all 200 classes (near-OOD for CIFAR-10)",
                    overlaps=("tinyimagenet100",)),
        DatasetInfo("tinyimagenet100-other", OOD, "Tiny ImageNet val, the 100 classes tinyimagenet100 does not have "
                    "(near-OOD for it)"),
        DatasetInfo("gaussian", OOD, "clip(N(0, 0.5^2), -1, 1) noise in the network's input space (OE code), seeded",
                    synthetic=True),
        DatasetInfo("gaussian_val", VALIDATION, "validation OOD set for choosing tau: the same noise as 'gaussian', "
                    "another seed stream", synthetic=True),
        DatasetInfo("gaussian_pixel", OOD, "clip(N(0.5, 0.25^2), 0, 1) noise in pixel space, seeded", synthetic=True),
        DatasetInfo("uniform", OOD, "U[0, 1] noise, seeded", synthetic=True),
    ]
}


class DatasetNotFoundError(FileNotFoundError):
    """No source could provide a dataset; the message says what was tried and how to provide it."""


@dataclass
class ImageSet:
    """One split of a dataset: uint8 ``images`` (N, 3, 32, 32), int64 ``labels`` or None, ``classes``.

    Unpacks as ``images, labels, classes = load_dataset(...)``.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    classes: list[str] | None
    name: str
    split: str = "test"
    source: str = ""

    def __iter__(self) -> Iterator[Any]:
        return iter((self.images, self.labels, self.classes))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        n_cls = "None" if self.classes is None else len(self.classes)
        return (f"ImageSet(name={self.name!r}, split={self.split!r}, source={self.source!r}, "
                f"images={tuple(self.images.shape)} uint8, labels={'None' if self.labels is None else 'int64'}, "
                f"classes={n_cls})")


def _info(name: str) -> DatasetInfo:
    key = str(name).lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; pass one of: {', '.join(DATASETS)}")
    return DATASETS[key]


# Synthetic sets: (kind, seed stream). Each name draws from its own stream of the generator, so the
# validation noise never repeats an image of the test noise.
_SYNTHETIC = {"gaussian": ("input_gaussian", 0), "gaussian_val": ("input_gaussian", 1),
              "gaussian_pixel": ("pixel_gaussian", 0), "uniform": ("uniform", 0)}


def synthetic(name: str, n: int = SYNTHETIC_SIZE, seed: int = 0) -> torch.Tensor:
    """Seeded noise images, uint8 (n, 3, 32, 32).

    ``gaussian`` / ``gaussian_val``: ``clip(N(0, 0.5^2), -1, 1)`` per value in the network's
    normalised input space, the Outlier Exposure code's Gaussian noise that the paper tunes τ on
    (Sec. 5.1), stored as the pixels ``mean + std * v`` that normalise back to it (to 1/255).
    ``gaussian_val`` is the validation copy from another seed stream. ``gaussian_pixel``:
    ``round(255 * clip(0.5 + 0.25 * z, 0, 1))`` (lnlab's earlier definition; about twice the
    amplitude once normalised). ``uniform``: every value 0..255 equally likely, i.e. U[0, 1].
    """
    kind, stream = _SYNTHETIC[name]
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, stream]).generate_state(1)[0]
    gen = torch.Generator().manual_seed(int(state))
    shape = (n, 3, 32, 32)
    if kind == "input_gaussian":
        value = (0.5 * torch.randn(shape, generator=gen)).clamp_(-1, 1)
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (CIFAR_MEAN, CIFAR_STD))
        return (mean + std * value).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    if kind == "pixel_gaussian":
        z = torch.randn(shape, generator=gen)
        return (0.5 + 0.25 * z).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)


def load_dataset(name: str, split: str = "test", root: str | os.PathLike | None = None,
                 n: int | None = None, seed: int = 0, labelled: bool = False) -> ImageSet:
    """Load one split of a dataset as uint8 images (N, 3, 32, 32) + labels + class names.

    A registered name (``DATASETS``) tries its sources in order pack -> torchvision -> image
    folder (see the module docstring). Any other name is a user's own OOD set, found without
    registering it (:func:`load_custom`): ``<root>/<name>.npz``, an image folder ``<root>/<name>/``,
    or ``name`` as a path to either; with ``labelled`` (or ``split="train"``) it is a user's own
    training set instead (:func:`training_set_path`: a pack or a folder of class sub-folders, with its
    train and test splits and labels, ``lnlab._labelled``). ``n`` keeps at most ``n`` images (a subset chosen with
    ``seed``, in original order); for the synthetic sets it is the number generated (default
    10,000). Raises ``ValueError`` for a bad split or ``n``, ``DatasetNotFoundError`` if nothing
    provides the set.
    """
    if n is not None and int(n) < 1:
        raise ValueError(f"n must be a positive number of images or None; got {n}")
    if not is_registered(name) and (labelled or split == "train"):
        if split not in ("train", "test"):
            raise ValueError(f"a training set has splits ['train', 'test']; got split={split!r}")
        path = training_set_path(name, root)
        images, labels, classes = _labelled.read(path, split)
        keep = _subset(images.shape[0], n, seed)
        if keep is not None:
            images, labels = images[keep], labels[keep]
        return ImageSet(images, labels, classes, str(name), split, f"{'pack' if path.suffix else 'folder'}:{path}")
    if not is_registered(name):
        if split != "test":
            raise ValueError(f"dataset {name!r} has splits ['test'] (an OOD set); got split={split!r}")
        images, source = load_custom(name, root)
        return ImageSet(_first(images, n, seed), None, None, str(name), split, source)
    info = _info(name)
    if split not in info.splits:
        raise ValueError(f"dataset {info.name!r} has splits {list(info.splits)}; got split={split!r}")
    if info.synthetic:
        return ImageSet(synthetic(info.name, int(n or SYNTHETIC_SIZE), seed), None, None, info.name, split, "synthetic")
    base = data_root(root)
    images, labels, classes, source = _resolve(info, split, base)
    keep = _subset(images.shape[0], n, seed)
    if keep is not None:
        images, labels = images[keep], None if labels is None else labels[keep]
    return ImageSet(images, labels, classes, info.name, split, source)


def _subset(total: int, n: int | None, seed: int) -> torch.Tensor | None:
    """Sorted indices of a seeded subset of ``n`` of ``total`` items, or None to keep all."""
    if n is None or int(n) >= total:
        return None
    return torch.randperm(total, generator=torch.Generator().manual_seed(int(seed)))[: int(n)].sort().values


def _first(images: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    keep = _subset(images.shape[0], n, seed)
    return images if keep is None else images[keep]


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered dataset (else it is read as a user's own set or a path)."""
    return str(name).lower() in DATASETS


DISPLAY_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tinyimagenet100": "Tiny ImageNet-100",
                 "tinyimagenet": "Tiny ImageNet", "tinyimagenet100-other": "Tiny ImageNet, other 100 classes",
                 "textures": "Textures", "mnist": "MNIST", "svhn": "SVHN", "gaussian": "Gaussian noise",
                 "uniform": "uniform noise"}


def display_name(name: str) -> str:
    """How figures and tables name a set: ``"CIFAR-10"``; a user's set by its file or folder name."""
    key = str(name).lower()
    return DISPLAY_NAMES.get(key, key if is_registered(key) else Path(str(name)).stem or str(name))


def in_distribution_names() -> list[str]:
    return [n for n, d in DATASETS.items() if d.role == IN_DISTRIBUTION]


# ----------------------------------------------------------------------------- training sets
def training_set_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """The pack or folder of a user's own training set ``name`` (a path, or ``<root>/<name>.npz`` or
    ``<root>/<name>/``); ``DatasetNotFoundError`` (one line, what to pass) if there is none."""
    base = data_root(root)
    path = _labelled.locate(name, base)
    if path is None:
        raise DatasetNotFoundError(
            f"unknown dataset {str(name)!r}: neither a registered training set ({', '.join(in_distribution_names())}) "
            f"nor a pack or class folders at {name} or under {base}; pass dataset= one of those, a .npz with "
            "x_train/y_train/x_test/y_test, or a folder <root>/<class>/*.png (with train/ and test/ sub-folders, "
            "or split per class by lnlab)")
    return path


def check_training_set(name: str, root: str | os.PathLike | None = None) -> None:
    """ValueError (one line) unless ``name`` is a registered in-distribution set or a
    user's training set found on disk (cheap: nothing is decoded)."""
    if is_registered(name):
        if DATASETS[str(name).lower()].role != IN_DISTRIBUTION:
            raise ValueError(f"{name!r} is an OOD set, not a training set; pass dataset= one of "
                             f"{in_distribution_names()}, a pack or a folder of class sub-folders")
        return
    try:
        training_set_path(name, root)
    except DatasetNotFoundError as exc:
        raise ValueError(str(exc)) from None


def dataset_fingerprint(name: str, root: str | os.PathLike | None = None) -> str | None:
    """None for a registered set (its name identifies it); for a user's training set, the sha256 of its
    images, labels and class names (it enters the cache key of the runs trained on it)."""
    return None if is_registered(name) else _labelled.fingerprint(training_set_path(name, root))


def images_per_class(name: str, root: str | os.PathLike | None = None, split: str = "train") -> int:
    """Images of the smallest class in a split of a training set (registered sets: their registry entry)."""
    info = DATASETS.get(str(name).lower())
    known = None if info is None else info.train_per_class if split == "train" else info.test_per_class
    if known:
        return known
    labels = load_dataset(name, split, root=root, labelled=True).labels
    return int(torch.bincount(labels)[torch.bincount(labels) > 0].min())


def overlapping_ood(dataset: str, ood: str) -> str | None:
    """Why ``ood`` cannot be an OOD set of a run trained on ``dataset`` (shared images or classes), or None."""
    info = DATASETS.get(str(ood).lower())
    if info is not None and str(dataset).lower() in info.overlaps:
        near = DATASETS[str(dataset).lower()].near_ood
        instead = f"use {near!r} instead" if near else "use a set that shares neither"
        return (f"OOD set {info.name!r} shares images and classes with the training set {dataset!r} "
                f"({info.description}); {instead}")
    if not is_registered(dataset) and not is_registered(ood) and str(ood) == str(dataset):
        return f"OOD set {ood!r} is the training set itself; pass another set"
    return None


def default_ood_for(dataset: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` with each set that overlaps ``dataset`` replaced by the dataset's near-OOD set (dropped if
    it has none): the OOD sets of a profile carried over to another training set."""
    info = DATASETS.get(str(dataset).lower())
    out = []
    for name in names:
        if overlapping_ood(dataset, name):
            name = info.near_ood if info is not None else None
        if name and name not in out:
            out.append(name)
    return tuple(out)


def load_custom(name: str | os.PathLike, root: str | os.PathLike | None = None) -> tuple[torch.Tensor, str]:
    """Images of an unregistered OOD set and where they came from, without registering it.

    Tried in order: ``name`` as a path to a ``.npz`` pack or an image folder; ``<root>/<name>.npz``
    (key ``x``, plain HWC uint8 or JPEG bytes ``x_jpeg`` + ``x_offsets``, any image size); an
    image folder ``<root>/<name>/`` (jpg/png at any depth, any size). Images are resized like the
    registered sets (short side 32, bilinear, antialiased, centre crop).
    """
    base = data_root(root)
    path = Path(name).expanduser()
    candidates = [path] if path.suffix == ".npz" or path.is_dir() or os.sep in str(name) else []
    candidates += [base / f"{name}.npz", base / str(name)]
    tried = []
    for candidate in candidates:
        try:
            if candidate.suffix == ".npz":
                return src.read_pack(candidate, "test")[0], f"pack:{candidate}"
            return src.read_folder(candidate, labelled=False)[0], f"folder:{candidate}"
        except src.SourceUnavailable as exc:
            tried.append(str(exc))
    raise DatasetNotFoundError(
        f"OOD set {str(name)!r} is not a registered dataset and was not found: " + "; ".join(tried)
        + f". Put a pack at {base / (str(name) + '.npz')} (key 'x', HWC uint8) or images in {base / str(name)}/, "
        f"pass a path, or use a registered name: {', '.join(n for n, d in DATASETS.items() if d.is_ood)}")


def _resolve(info: DatasetInfo, split: str, base: Path) -> tuple[Any, Any, Any, str]:
    tried: list[str] = []
    pack = base / f"{info.name}.npz"
    try:
        return (*src.read_pack(pack, split), f"pack:{pack}")
    except src.SourceUnavailable as exc:
        tried.append(f"pack: {exc}")
    if info.torchvision:
        calls = info.tv_calls[split]
        target = src.download_dir(base)
        try:
            return (*src.read_torchvision(info.torchvision, calls, info.host, target), f"torchvision:{info.torchvision}")
        except src.SourceUnavailable as exc:
            tried.append(f"torchvision.datasets.{info.torchvision} into {target}: {exc}")
    folder = base / info.name / split if info.role == IN_DISTRIBUTION else base / info.name
    try:
        return (*src.read_folder(folder, labelled=info.role == IN_DISTRIBUTION), f"folder:{folder}")
    except src.SourceUnavailable as exc:
        tried.append(f"folder: {exc}")
    raise DatasetNotFoundError(_not_found_message(info, split, base, tried)) from None


def _not_found_message(info: DatasetInfo, split: str, base: Path, tried: list[str]) -> str:
    layout = (f"{base / info.name / split}/<class>/*.png" if info.role == IN_DISTRIBUTION
              else f"{base / info.name}/**/*.jpg|png")
    how = [f"put a pack at {base / (info.name + '.npz')} (schema: data/README.md)"]
    if info.torchvision:
        calls = info.tv_calls[split]
        each = f" for split in {[c['split'] for c in calls]}" if len(calls) > 1 else ""
        how.append(f"run with internet once ({src.torchvision_call(info.torchvision, calls[0])}{each})")
    how.append(f"put images in {layout}")
    return (f"dataset {info.name!r} (split {split!r}) not found under {base}. Tried: " + "; ".join(tried)
            + ". To provide it: " + ", or ".join(how) + ", or set LNLAB_DATA / root= to the folder holding it.")


# ----------------------------------------------------------------------------- listing
class DatasetTable(list):
    """A list of dicts (one per dataset) that prints as a table."""

    COLUMNS = ("name", "role", "present", "sources", "description")
    root: Path | None = None

    def __str__(self) -> str:
        rows = [[_cell(row, c) for c in self.COLUMNS] for row in self]
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(self.COLUMNS)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [f"datasets under {self.root}" if self.root else "datasets"]
        lines += [fmt.format(*self.COLUMNS), fmt.format(*("-" * w for w in widths))]
        return "\n".join(line.rstrip() for line in lines + [fmt.format(*r) for r in rows])

    __repr__ = __str__

    def _repr_html_(self) -> str:  # notebooks
        head = "".join(f"<th>{c}</th>" for c in self.COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{_cell(r, c)}</td>" for c in self.COLUMNS) + "</tr>" for r in self)
        return f"<table><tr>{head}</tr>{body}</table>"


def _cell(row: dict[str, Any], column: str) -> str:
    value = row[column]
    if column == "role" and value == IN_DISTRIBUTION and row["ood"]:
        return f"{value} + ood"
    if value is False:
        return "missing"
    return ", ".join(value) if isinstance(value, list) else str(value)


def _present(info: DatasetInfo, base: Path) -> str | bool:
    """Which source would serve the dataset offline right now, or False."""
    if info.synthetic:
        return "synthetic"
    if (base / f"{info.name}.npz").is_file():
        return "pack"
    if info.torchvision and (src.download_dir(base) / info.tv_marker).exists():
        return "torchvision"
    folder = base / info.name
    if folder.is_dir() and next((p for p in folder.rglob("*") if p.suffix.lower() in src.IMAGE_SUFFIXES), None):
        return "folder"
    return False


def available_ood_sets(dataset: str = "cifar10", root: str | os.PathLike | None = None) -> list[str]:
    """Registered test OOD sets for ``dataset`` that can be loaded here without a download (in registry order)."""
    base = data_root(root)
    return [d.name for d in DATASETS.values()
            if d.is_ood and d.role != VALIDATION and d.name != dataset and _present(d, base)]


def available_datasets(root: str | os.PathLike | None = None) -> DatasetTable:
    """Every registered dataset: name, role, whether it is also an OOD set, sources, local presence.

    ``present`` is the source that would serve it now ("pack", "folder", "torchvision",
    "synthetic") or False (it would need a download or files).
    """
    base = data_root(root)
    table = DatasetTable(
        {"name": d.name, "role": d.role, "ood": d.is_ood,
         "splits": list(d.splits), "sources": d.sources, "present": _present(d, base), "description": d.description}
        for d in DATASETS.values()
    )
    table.root = base
    return table
